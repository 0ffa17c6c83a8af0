-- GET $PATHS (one path a line, with its customer key: "path key"), round robin.
local common = dofile("common.lua")
local paths, i = {}, 0
for line in io.lines(os.getenv("PATHS")) do
  local path, key = line:match("^(%S+) (%S+)$")
  paths[#paths + 1] = {path = path, key = key}
end
setup, done = common.setup, common.done

function request()
  i = i % #paths + 1
  return wrk.format("GET", paths[i].path, {["X-API-Key"] = paths[i].key})
end
