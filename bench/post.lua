-- wrk script for bench/run: POST a fixed body (BODY_FILE) with fixed headers (HEADERS: "Name: value|Name: value").
local f = io.open(os.getenv("BODY_FILE"), "rb")
local body = f:read("*a")
f:close()
wrk.method = os.getenv("METHOD") or "POST"
if wrk.method == "POST" then wrk.body = body end
for h in string.gmatch(os.getenv("HEADERS") or "", "[^|]+") do
  local name, value = string.match(h, "^%s*([^:]+):%s*(.*)$")
  if name then wrk.headers[name] = value end
end

local bad = 0
response = function(status, headers, body)
  if status ~= 200 then bad = bad + 1 end
end

done = function(summary, latency, requests)
  io.write(string.format("RESULT requests=%d rps=%.1f p50_us=%d p99_us=%d p999_us=%d bad=%d socket_errors=%d\n",
    summary.requests, summary.requests / (summary.duration / 1e6), latency:percentile(50), latency:percentile(99),
    latency:percentile(99.9), bad, summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
