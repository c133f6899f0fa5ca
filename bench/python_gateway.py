"""The Python MCP gateway of bench/run: FastMCP's proxy (streamable HTTP in front, streamable
HTTP to the upstream MCP server), the peer a Python shop reaches for first.

    python bench/python_gateway.py --port P --upstream http://127.0.0.1:U/mcp --token-file F

The upstream's access token is read from a file (not argv) and sent on every upstream call;
the front is stateless (no session needed), like the 2026-07-28 requests wrk sends.
Runs in its own virtualenv (bench/run creates it: fastmcp pins its own `mcp`).
"""
import argparse
import logging

from fastmcp.client import Client
from fastmcp.client.transports import StreamableHttpTransport
from fastmcp.server import create_proxy


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--upstream", required=True)
    ap.add_argument("--token-file", required=True)
    a = ap.parse_args()
    token = open(a.token_file).read().strip()
    logging.getLogger().setLevel(logging.WARNING)
    client = Client(StreamableHttpTransport(a.upstream, headers={"Authorization": "Bearer " + token}))
    proxy = create_proxy(client, name="python-gateway")
    proxy.run(transport="http", show_banner=False, host="127.0.0.1", port=a.port, path="/mcp", stateless_http=True, log_level="warning")


if __name__ == "__main__":
    main()
