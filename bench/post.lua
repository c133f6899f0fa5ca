-- wrk script for bench/run: POST a fixed body (BODY_FILE) with fixed headers (HEADERS: "Name: value|Name: value").
-- With DELAY_MS set, each connection waits a random 0…2×DELAY_MS ms between its requests: with C
-- connections that is an open-ish fixed rate of about C × 1000 / DELAY_MS requests/s whose
-- arrivals are spread out, not bursts (wrk2 is not in Debian; hey's per-worker tickers fire together).
local f = io.open(os.getenv("BODY_FILE"), "rb")
local body = f:read("*a")
f:close()
wrk.method = os.getenv("METHOD") or "POST"
if wrk.method == "POST" then wrk.body = body end
for h in string.gmatch(os.getenv("HEADERS") or "", "[^|]+") do
  local name, value = string.match(h, "^%s*([^:]+):%s*(.*)$")
  if name then wrk.headers[name] = value end
end

local threads = {}
local counter = 0
setup = function(thread)
  counter = counter + 1
  thread:set("id", counter)
  table.insert(threads, thread)
end

local mean = tonumber(os.getenv("DELAY_MS") or "")
init = function(args)
  math.randomseed(os.time() * 1000 + (id or 0))
end
if mean then
  delay = function() return math.random(0, math.floor(2 * mean)) end
end

bad = 0
response = function(status, headers, body)
  if status ~= 200 then bad = bad + 1 end
end

done = function(summary, latency, requests)
  local total_bad = 0
  for _, t in ipairs(threads) do total_bad = total_bad + (t:get("bad") or 0) end
  io.write(string.format("RESULT requests=%d rps=%.1f p50_us=%d p99_us=%d p999_us=%d bad=%d socket_errors=%d\n",
    summary.requests, summary.requests / (summary.duration / 1e6), latency:percentile(50), latency:percentile(99),
    latency:percentile(99.9), total_bad, summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
