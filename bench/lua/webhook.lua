-- POST /api/webhooks/stripe: signed events from $EVENTS ("<Stripe-Signature>\t<body>" per
-- line, made by bench/run.py), thread k of n sending lines k, k+n, k+2n, ... in order. About
-- 10 % of the lines are redeliveries of an event the same thread sent earlier. Counts the
-- answers that say "duplicate": true; a thread that runs out of lines says so (the run is
-- then refused: it would have sent more duplicates than planned).
local common = dofile("common.lua")
local threads, n = {}, 0

function setup(thread)
  n = n + 1
  thread:set("tid", n)
  table.insert(threads, thread)
end

local events, i = {}, 0
duplicates, wrapped = 0, 0

function init(args)
  local count = tonumber(os.getenv("THREADS") or "2")
  local index = 0
  for line in io.lines(os.getenv("EVENTS")) do
    if index % count == tid - 1 then
      local signature, body = line:match("^([^\t]+)\t(.*)$")
      events[#events + 1] = wrk.format("POST", "/api/webhooks/stripe",
        {["Stripe-Signature"] = signature, ["Content-Type"] = "application/json"}, body)
    end
    index = index + 1
  end
end

function request()
  i = i + 1
  if i > #events then
    i, wrapped = 1, 1
  end
  return events[i]
end

function response(status, headers, body)
  if body and body:find('"duplicate":%s*true') then
    duplicates = duplicates + 1
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  local dups, wraps = 0, 0
  for _, thread in ipairs(threads) do
    dups = dups + thread:get("duplicates")
    wraps = wraps + thread:get("wrapped")
  end
  io.write(string.format(
    '{"wrk": {"requests": %d, "duration_us": %d, "errors": %d, "p50_us": %d, '
    .. '"p95_us": %d, "p99_us": %d, "duplicates": %d, "wrapped": %d}}\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout + e.status,
    latency:percentile(50), latency:percentile(95), latency:percentile(99), dups, wraps))
end
