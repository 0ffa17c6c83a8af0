-- GET /api/licenses/public-key: no database, the framework baseline.
local common = dofile("common.lua")
wrk.path = "/api/licenses/public-key"
setup, done = common.setup, common.done
