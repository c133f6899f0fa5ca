-- wrk script: one MCP tools/call per request, 2026-07-28 stateless (no session), keep-alive.
-- TOOL, ARGS and TOKEN come from the environment (set by bench/todo0).
local tool = os.getenv("TOOL") or "get-todos"
local args = os.getenv("ARGS") or "{}"
local token = os.getenv("TOKEN")
local counter = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/json, text/event-stream"
wrk.headers["Authorization"] = "Bearer " .. token
wrk.headers["MCP-Protocol-Version"] = "2026-07-28"
wrk.headers["Mcp-Method"] = "tools/call"
wrk.headers["Mcp-Name"] = tool

request = function()
  counter = counter + 1
  local a = string.gsub(args, "%%N", tostring(counter))
  local body = '{"jsonrpc":"2.0","id":' .. counter .. ',"method":"tools/call","params":{"name":"' .. tool ..
    '","arguments":' .. a .. ',"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}'
  return wrk.format(nil, nil, nil, body)
end

local threads = {}
setup = function(thread) table.insert(threads, thread) end

errors = 0
response = function(status, headers, body)
  if status ~= 200 or string.find(body, '"isError":true', 1, true) then errors = errors + 1 end
end

done = function(summary, latency, requests)
  local errors = 0
  for _, t in ipairs(threads) do errors = errors + (t:get("errors") or 0) end
  io.write(string.format("RESULT requests=%d rps=%.1f p50_us=%d p99_us=%d p999_us=%d non2xx_or_tool_errors=%d socket_errors=%d\n",
    summary.requests, summary.requests / (summary.duration / 1e6), latency:percentile(50), latency:percentile(99),
    latency:percentile(99.9), errors, summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
