"""The upstream MCP server of the interop suite: the official Python SDK's MCPServer
(the mcp 2.x name of FastMCP) over streamable HTTP, started as a subprocess.

    python3 upstream_server.py PORT --header-log FILE

Serves POST/GET/DELETE http://127.0.0.1:PORT/mcp. Every HTTP request it receives is appended
to FILE as one JSON line {"method", "path", "headers": [[name, value], ...]} (names lowercased,
exactly as they reached this process), so the tests can tell what the gateway forwarded.

Tools:
  add(a, b) -> a + b
  echo_headers() -> the request headers of this tools/call, as seen through the SDK's request
                    context (Context.headers, the Starlette request's headers)
  count(n) -> n, after reporting progress 1..n (SSE notifications on the response stream)
  wait(seconds) -> seconds, after staying silent that long
"""

from __future__ import annotations

import argparse
import json
import threading

import anyio
import uvicorn
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.transport_security import TransportSecuritySettings


class RecordHeaders:
    """ASGI middleware: log the headers of every HTTP request before the SDK sees it."""

    def __init__(self, app, path: str) -> None:
        self.app = app
        self.path = path
        self.lock = threading.Lock()

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http":
            record = {
                "method": scope["method"],
                "path": scope["path"],
                "headers": [[k.decode("latin-1").lower(), v.decode("latin-1")] for k, v in scope["headers"]],
            }
            line = json.dumps(record) + "\n"
            with self.lock, open(self.path, "a", encoding="utf-8") as f:
                f.write(line)
        await self.app(scope, receive, send)


def build_server() -> MCPServer:
    server = MCPServer("interop-upstream")

    @server.tool()
    def add(a: int, b: int) -> int:
        """Add two integers."""
        return a + b

    @server.tool()
    def echo_headers(ctx: Context) -> dict[str, str]:
        """The HTTP request headers this call arrived with (names lowercased)."""
        headers = ctx.headers or {}
        return {k.lower(): v for k, v in headers.items()}

    @server.tool()
    async def count(n: int, ctx: Context) -> int:
        """Report progress 1..n, a little apart, then return n."""
        for i in range(1, n + 1):
            await ctx.report_progress(i, n, f"step {i}")
            await anyio.sleep(0.05)
        return n

    @server.tool()
    async def wait(seconds: float) -> float:
        """Stay silent for `seconds`, then return them (long calls through the gateway)."""
        await anyio.sleep(seconds)
        return seconds

    return server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("port", type=int)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--header-log", required=True, help="append one JSON line per HTTP request here")
    args = parser.parse_args()

    # DNS-rebinding protection stays on (it is the SDK's default on localhost), but must accept
    # the Host the gateway sends: the upstream's own authority, 127.0.0.1:PORT. A bare
    # "127.0.0.1" (no port) is listed too, so a client that omits the port is not a false 421.
    security = TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=["127.0.0.1", "127.0.0.1:*", "localhost", "localhost:*"],
        allowed_origins=["http://127.0.0.1:*", "http://localhost:*"],
    )
    app = build_server().streamable_http_app(
        streamable_http_path="/mcp", transport_security=security, host=args.host
    )
    uvicorn.run(RecordHeaders(app, args.header_log), host=args.host, port=args.port, log_level="info")


if __name__ == "__main__":
    main()
