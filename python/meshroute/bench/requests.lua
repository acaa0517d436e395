-- Requests in turn from a file (load.requests_text: "PATH<TAB>Name: value<TAB>..." per line),
-- whose path the harness passes as the first script argument; done() prints one JSON line it parses.
local reqs = {}
local n = 0

function init(args)
  local f = assert(io.open(args[1], "r"))
  for line in f:lines() do
    local path = nil
    local headers = {}
    for field in string.gmatch(line, "[^\t]+") do
      if path == nil then
        path = field
      else
        local k, v = string.match(field, "^([^:]+): (.*)$")
        headers[k] = v
      end
    end
    if path ~= nil then
      reqs[#reqs + 1] = wrk.format("GET", path, headers)
    end
  end
  f:close()
  assert(#reqs > 0, "no request in " .. args[1])
end

function request()
  n = n + 1
  return reqs[(n % #reqs) + 1]
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
