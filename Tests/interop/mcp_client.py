"""The official Python MCP SDK as the gateway's tests drive it: one client session per call of
`sdk_session` (streamable HTTP, the user's ID token as a bearer), and the few readers of its
results the suites share. One copy, for test_mcp_aggregation, test_policy and test_rate_limits."""

from __future__ import annotations

from typing import Any

import anyio
import httpx2
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

CALL_TIMEOUT = 60


def run(fn, *args) -> Any:
    return anyio.run(fn, *args)


def http(token: str, headers: dict[str, str] | None = None) -> httpx2.AsyncClient:
    """`headers`: more on every request (e.g. a W3C `traceparent`)."""
    return httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}", **(headers or {})}, timeout=httpx2.Timeout(30, read=CALL_TIMEOUT))


class Notes:
    """The server notifications a client session received (method names)."""

    def __init__(self) -> None:
        self.methods: list[str] = []

    async def __call__(self, message: Any) -> None:
        method = getattr(message, "method", None) or getattr(getattr(message, "root", None), "method", None)
        if isinstance(method, str):
            self.methods.append(method)


async def sdk_session(url: str, token: str, body, notes: Notes | None = None, headers: dict[str, str] | None = None) -> None:
    """Initialize a session at `url`, run `body(session)`, close it."""
    async with http(token, headers) as client:
        async with streamable_http_client(url, http_client=client) as (read, write):
            async with ClientSession(read, write, message_handler=notes) as session:
                with anyio.fail_after(CALL_TIMEOUT):
                    await session.initialize()
                    await body(session)


def list_tools(url: str, token: str) -> Any:
    """One session's tools/list result."""
    out: dict[str, Any] = {}

    async def body(session: ClientSession) -> None:
        out["tools"] = await session.list_tools()

    run(sdk_session, url, token, body)
    return out["tools"]


def call_tools(url: str, token: str, plan: list[tuple[str, dict]]) -> list[Any]:
    """The results of `plan`'s tool calls, in order, in one session."""
    out: list[Any] = []

    async def body(session: ClientSession) -> None:
        for name, arguments in plan:
            out.append(await session.call_tool(name, arguments))

    run(sdk_session, url, token, body)
    return out


def call_tool(url: str, token: str, name: str, arguments: dict) -> Any:
    return call_tools(url, token, [(name, arguments)])[0]


def text_of(result: Any) -> str:
    return " ".join(getattr(block, "text", "") for block in result.content)


def meta_of(result: Any) -> dict:
    return dict(result.meta or {})
