"""A third MCP server, written with the official Python SDK, that the browser test adds to
connections.yaml while the whole system runs (the "add a server and the running system picks
it up" journey).

    python3 third_mcp_server.py PORT --call-log FILE

Serves http://127.0.0.1:PORT/mcp (streamable HTTP). One tool, `weather_forecast(city)`; every
call of it is appended to FILE as one JSON line {"city": ...}, so the test can tell the call
really reached this process (not only that the page says so).
"""

from __future__ import annotations

import argparse
import json
import threading

import uvicorn
from mcp.server.mcpserver import MCPServer
from mcp.server.transport_security import TransportSecuritySettings


def build_server(call_log: str) -> MCPServer:
    server = MCPServer("weather")
    lock = threading.Lock()

    @server.tool()
    def weather_forecast(city: str) -> str:
        """Weather forecast for a city, for the next day."""
        with lock, open(call_log, "a", encoding="utf-8") as f:
            f.write(json.dumps({"city": city}) + "\n")
        return f"Forecast for {city}: clear skies, 21 degrees (from the third MCP server)"

    return server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("port", type=int)
    parser.add_argument("--call-log", required=True)
    args = parser.parse_args()
    security = TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=["127.0.0.1", "127.0.0.1:*", "localhost", "localhost:*"],
        allowed_origins=["http://127.0.0.1:*", "http://localhost:*"],
    )
    app = build_server(args.call_log).streamable_http_app(streamable_http_path="/mcp", transport_security=security, host="127.0.0.1")
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
