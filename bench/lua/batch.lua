-- POST /api/usage/report/batch: $BATCH_SIZE new reports a request (a catch-up of one
-- instance: consecutive seconds), customers round robin.
local common = dofile("common.lua")
local customers, i, b = common.customers(), 0, 0
local size = tonumber(os.getenv("BATCH_SIZE") or "500")
local start = os.time() - 30 * 86400
local tag
setup, done = common.setup, common.done

function init(args)
  math.randomseed(os.time() * 100 + (tid or 0))
  tag = string.format("%x%02x%04x", os.time(), tid or 0, math.random(0, 0xffff))
end

function request()
  i = i % #customers + 1
  b = b + 1
  local c = customers[i]
  local instance = "b-" .. tag .. "-" .. b
  local parts = {}
  for n = 1, size do
    parts[n] = common.report(c.id, instance, start + n, n)
  end
  local body = '{"reports":[' .. table.concat(parts, ",") .. "]}"
  return wrk.format("POST", "/api/usage/report/batch",
    {["X-API-Key"] = c.key, ["Content-Type"] = "application/json"}, body)
end
