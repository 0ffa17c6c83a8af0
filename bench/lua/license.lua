-- GET /api/licenses/:id with each customer's own key, round robin (unchanged licenses).
local common = dofile("common.lua")
local customers, i = common.customers(), 0
setup, done = common.setup, common.done

function request()
  i = i % #customers + 1
  local c = customers[i]
  return wrk.format("GET", "/api/licenses/" .. c.id, {["X-API-Key"] = c.key})
end
