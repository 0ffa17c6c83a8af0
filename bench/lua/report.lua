-- POST /api/usage/report: each request a new report (own report_id, own instance time),
-- customers round robin, one instance per thread and customer.
local common = dofile("common.lua")
local customers, i, n = common.customers(), 0, 0
local start = os.time() - 30 * 86400
local tag
setup, done = common.setup, common.done

function init(args)
  math.randomseed(os.time() * 100 + (tid or 0))
  tag = string.format("%x%02x%04x", os.time(), tid or 0, math.random(0, 0xffff))
end

function request()
  i = i % #customers + 1
  if i == 1 then n = n + 1 end
  local c = customers[i]
  local body = common.report(c.id, "w-" .. tag, start + n, n)
  return wrk.format("POST", "/api/usage/report",
    {["X-API-Key"] = c.key, ["Content-Type"] = "application/json"}, body)
end
