"""A third MCP server, written with the official Python SDK, that the browser test adds to
connections.yaml while the whole system runs (the "add a server and the running system picks
it up" journey).

    python3 third_mcp_server.py PORT --call-log FILE [--dynamic]

Serves http://127.0.0.1:PORT/mcp (streamable HTTP). One tool, `weather_forecast(city)`; every
call of it is appended to FILE as one JSON line {"city": ...}, so the test can tell the call
really reached this process (not only that the page says so).

With --dynamic it also offers a prompt (`forecast_prompt(city)`), a resource
(`weather://cities`), and a second tool `add_alerts_tool()` that adds a third,
`weather_alerts(city)`, one second later and then tells the client its tool list changed on
the session's standalone (GET) stream, outside any request: how a server announces a change of
its own.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import threading

import uvicorn
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.transport_security import TransportSecuritySettings


def build_server(call_log: str, dynamic: bool = False) -> MCPServer:
    server = MCPServer("weather")
    lock = threading.Lock()
    background: set[asyncio.Task] = set()

    def weather_alerts(city: str) -> str:
        """Weather alerts for a city."""
        return f"No alerts for {city}"

    if dynamic:
        @server.prompt()
        def forecast_prompt(city: str) -> str:
            """A prompt asking for a city's forecast."""
            return f"What is the weather forecast for {city}?"

        @server.resource("weather://cities")
        def cities() -> str:
            """The cities this server knows."""
            return "Lisbon, Porto, Faro"

        @server.tool()
        async def add_alerts_tool(ctx: Context) -> str:
            """Adds the weather_alerts tool a second from now, then announces the new list."""
            session = ctx.session

            async def later() -> None:
                await asyncio.sleep(1)
                server.add_tool(weather_alerts, name="weather_alerts")
                await session.send_tool_list_changed()

            task = asyncio.get_running_loop().create_task(later())
            background.add(task)
            task.add_done_callback(background.discard)
            return "weather_alerts comes in a second"

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
    parser.add_argument("--dynamic", action="store_true", help="also offer add_alerts_tool (see above)")
    args = parser.parse_args()
    security = TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=["127.0.0.1", "127.0.0.1:*", "localhost", "localhost:*"],
        allowed_origins=["http://127.0.0.1:*", "http://localhost:*"],
    )
    app = build_server(args.call_log, args.dynamic).streamable_http_app(streamable_http_path="/mcp", transport_security=security, host="127.0.0.1")
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
