-- Shared by the wrk scripts: customers from $CUSTOMERS ("id key" per line), a per-thread
-- id, report bodies, and the JSON summary line the harness reads (bench/harness.py).
local common = {}

function common.customers()
  local list = {}
  local path = os.getenv("CUSTOMERS")
  if path then
    for line in io.lines(path) do
      local id, key = line:match("^(%S+) (%S+)$")
      if id then list[#list + 1] = {id = id, key = key} end
    end
  end
  return list
end

local threads = 0
function common.setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end

function common.uuid()
  return string.format("%04x%04x-%04x-4%03x-%04x-%04x%04x%04x",
    math.random(0, 0xffff), math.random(0, 0xffff), math.random(0, 0xffff),
    math.random(0, 0xfff), math.random(0x8000, 0xbfff),
    math.random(0, 0xffff), math.random(0, 0xffff), math.random(0, 0xffff))
end

-- One report in the guide's shape; `n` makes its counters grow.
function common.report(customer_id, instance_id, at, n)
  return string.format(
    '{"customer_id":"%s","instance_id":"%s","report_id":"%s","reported_at":"%s",'
    .. '"active_devices":%d,"total_devices":45,"mqtt_messages_published":%d,'
    .. '"mqtt_messages_received":%d,"mqtt_bytes_sent":%d,"mqtt_bytes_received":%d,'
    .. '"http_requests":%d,"http_bytes_sent":%d,"http_bytes_received":%d,'
    .. '"postgres_size_mb":125.5,"postgres_row_count":%d}',
    customer_id, instance_id, common.uuid(), os.date("!%Y-%m-%dT%H:%M:%SZ", at),
    40 + n % 5, 150000 + 100 * n, 120000 + 80 * n, 1500000 + 1000 * n, 1200000 + 800 * n,
    5000 + 10 * n, 500000 + 100 * n, 300000 + 60 * n, 500000 + n)
end

function common.done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"wrk": {"requests": %d, "duration_us": %d, "errors": %d, "p50_us": %d, '
    .. '"p95_us": %d, "p99_us": %d}}\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout + e.status,
    latency:percentile(50), latency:percentile(95), latency:percentile(99)))
end

return common
