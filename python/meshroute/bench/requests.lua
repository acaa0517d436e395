-- Two requests, alternating: the default route (bench-a) and the header-matched route (bench-b).
-- The harness passes HOST as the first script argument; done() prints one JSON line it parses.
local reqs = {}
local n = 0

function init(args)
  local host = args[1] or "bench-a.local"
  reqs[1] = wrk.format("GET", "/api/v1/items", { ["Host"] = host })
  reqs[2] = wrk.format("GET", "/api/v1/items", { ["Host"] = host, ["x-variant"] = "b" })
end

function request()
  n = n + 1
  return reqs[(n % 2) + 1]
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'MESHROUTE_WRK {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latency_us":{"mean":%.1f,"max":%d,"p50":%d,"p90":%d,"p99":%d}}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.mean, latency.max, latency:percentile(50), latency:percentile(90), latency:percentile(99)))
end
