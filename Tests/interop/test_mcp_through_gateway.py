"""The official Python MCP SDK (`mcp` on PyPI) through the gateway's /mcp/{name} route,
`auth: {strategy: none}`: real issuer, real upstream, real gateway binary, real HTTP.

Each test tags its requests with a unique `X-Test-Id` header (an ordinary end-to-end header
the gateway must pass on), so it can pick out of the upstream's header log exactly the
requests it caused.
"""

from __future__ import annotations

import json
import os
import uuid
from typing import Any

import anyio
import httpx2
import jwt
import pytest
import requests
from jwcrypto import jwk as jwcrypto_jwk
from jwcrypto import jwt as jwcrypto_jwt
from mcp import ClientSession, MCPError
from mcp.client.client import Client
from mcp.client.streamable_http import streamable_http_client
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS, LATEST_HANDSHAKE_VERSION, LATEST_MODERN_VERSION

from interop_helpers import AUDIENCE, new_rsa_key, read_header_log

COOKIE = "sid=interop-cookie-must-not-reach-upstream; theme=dark"
TOOLS = {"add", "echo_headers", "count", "wait"}
CALL_TIMEOUT = 60


# --------------------------------------------------------------------------- helpers


def new_test_id() -> str:
    return "t-" + uuid.uuid4().hex


def http_client(token: str | None, test_id: str, responses: list | None = None) -> httpx2.AsyncClient:
    """The httpx2 client the SDK's streamable-HTTP transport uses: it is how mcp 2.x takes
    extra headers. Sends the user's ID token, a Cookie (must never reach the upstream) and the
    test's tag. With `responses`, records (method, status, headers) of every answer."""
    headers = {"Cookie": COOKIE, "X-Test-Id": test_id}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    hooks = {}
    if responses is not None:

        async def record(resp: httpx2.Response) -> None:
            responses.append((resp.request.method, resp.status_code, resp.headers))

        hooks["response"] = [record]
    return httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30, read=CALL_TIMEOUT), event_hooks=hooks)


def tool_value(result: Any) -> Any:
    """A tool's return value: structuredContent["result"] (wrapped scalar), the structured
    object itself, or the JSON of the first text block."""
    assert not result.is_error, f"tool failed: {result}"
    sc = result.structured_content
    if isinstance(sc, dict):
        return sc["result"] if set(sc) == {"result"} else sc
    text = result.content[0].text
    try:
        return json.loads(text)
    except ValueError:
        return text


def assert_no_user_credentials(requests_seen, where: str) -> None:
    for req in requests_seen:
        assert "authorization" not in req.names, f"{where}: upstream got Authorization on {req.method}: {req.headers}"
        assert "cookie" not in req.names, f"{where}: upstream got Cookie on {req.method}: {req.headers}"


def run(fn, *args):
    return anyio.run(fn, *args)


def leaf_exceptions(exc: BaseException) -> list[BaseException]:
    """The exceptions inside (nested) exception groups; the SDK's task groups wrap errors."""
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in leaf_exceptions(inner)]
    return [exc]


def run_expecting_mcp_error(fn) -> MCPError:
    """Run `fn`; it must fail with an MCPError (possibly wrapped in exception groups)."""
    try:
        run(fn)
    except BaseException as exc:  # noqa: BLE001 (inspected below)
        errors = [e for e in leaf_exceptions(exc) if isinstance(e, MCPError)]
        if not errors:
            raise
        return errors[0]
    pytest.fail("the MCP client connected with a token the gateway must reject")


# --------------------------------------------------------------------------- fixtures' own sanity


def test_issuer_serves_discovery_and_a_jwks_that_verifies_its_tokens(issuer):
    """Guards the fixture, not the gateway: the JWKS the gateway will fetch really verifies
    the minted tokens (checked with jwcrypto, an implementation independent of PyJWT)."""
    disco = requests.get(issuer.url + "/.well-known/openid-configuration", timeout=5).json()
    assert disco["issuer"] == issuer.url
    jwks = requests.get(disco["jwks_uri"], timeout=5).json()
    (key,) = jwks["keys"]
    assert {key["kty"], key["alg"], key["use"], key["kid"]} == {"RSA", "RS256", "sig", issuer.kid}
    token = issuer.mint()
    verified = jwcrypto_jwt.JWT(jwt=token, key=jwcrypto_jwk.JWKSet.from_json(json.dumps(jwks)))
    claims = json.loads(verified.claims)
    assert claims["aud"] == AUDIENCE and claims["iss"] == issuer.url and claims["email"]
    assert jwt.get_unverified_header(token) == {"alg": "RS256", "kid": issuer.kid, "typ": "JWT"}


# --------------------------------------------------------------------------- the happy paths


def test_client_session_initialize_list_and_call_tools(gateway, issuer, upstream):
    """ClientSession + streamable_http_client, initialize handshake, through /mcp/pyserver."""
    token = issuer.mint()
    test_id = new_test_id()
    responses: list = []
    progress: list = []
    out: dict[str, Any] = {}

    async def scenario() -> None:
        async with http_client(token, test_id, responses) as http:
            async with streamable_http_client(gateway.mcp_url(), http_client=http) as (read, write):
                async with ClientSession(read, write) as session:
                    with anyio.fail_after(CALL_TIMEOUT):
                        out["init"] = await session.initialize()
                        out["tools"] = await session.list_tools()
                        out["add"] = await session.call_tool("add", {"a": 2, "b": 3})
                        out["echo"] = await session.call_tool("echo_headers", {})

                        async def on_progress(p: float, total: float | None, message: str | None) -> None:
                            progress.append((p, total, message))

                        out["count"] = await session.call_tool("count", {"n": 4}, progress_callback=on_progress)

    run(scenario)

    init = out["init"]
    assert init.protocol_version in HANDSHAKE_PROTOCOL_VERSIONS
    assert init.protocol_version == LATEST_HANDSHAKE_VERSION, "the gateway should not change the negotiated version"
    assert init.server_info.name == "interop-upstream"
    assert {t.name for t in out["tools"].tools} >= TOOLS
    assert tool_value(out["add"]) == 5
    # SSE streaming through the gateway: 4 progress notifications before the result.
    assert tool_value(out["count"]) == 4
    assert [p for p, _, _ in progress] == [1, 2, 3, 4], progress

    # The session id the upstream issued reached the client through the gateway...
    session_ids = {h.get("mcp-session-id") for m, s, h in responses if m == "POST" and h.get("mcp-session-id")}
    assert len(session_ids) == 1, f"expected one Mcp-Session-Id from the initialize answer, got {responses}"
    (session_id,) = session_ids

    # ...and what the upstream saw: never the user's credentials, always its own Host.
    seen = read_header_log(upstream.header_log, test_id)
    assert seen, "the upstream saw none of this test's requests"
    assert_no_user_credentials(seen, "handshake session")
    for req in seen:
        assert req.all("host") == [upstream.authority], f"Host forwarded to the upstream: {req.all('host')}"

    posts = [r for r in seen if r.method == "POST"]
    first, later = posts[0], posts[1:]
    assert first.get("mcp-session-id") is None, "initialize is sent before a session exists"
    assert later, "no request after initialize reached the upstream"
    for req in later:
        assert req.get("mcp-session-id") == session_id, f"{req.method} without the session id: {req.headers}"
        assert req.get("mcp-protocol-version") == init.protocol_version, f"{req.method}: {req.headers}"

    # The tool saw the same thing from inside the SDK's request context.
    echoed = tool_value(out["echo"])
    assert "authorization" not in echoed and "cookie" not in echoed, echoed
    assert echoed.get("mcp-session-id") == session_id, echoed
    assert echoed.get("mcp-protocol-version") == init.protocol_version, echoed
    assert echoed.get("x-test-id") == test_id, echoed

    # Leaving the transport sends DELETE with the session id; the gateway forwards it.
    deletes = [r for r in seen if r.method == "DELETE"]
    assert deletes and deletes[-1].get("mcp-session-id") == session_id, [r.method for r in seen]
    delete_answers = [s for m, s, _ in responses if m == "DELETE"]
    assert delete_answers and delete_answers[-1] in (200, 204), responses


def test_client_auto_mode_negotiates_2026_07_28_through_the_gateway(gateway, issuer, upstream):
    """The high-level Client in its default mode='auto': server/discover at 2026-07-28 first
    (falling back to initialize only if that fails). Both ends speak 2026-07-28, so through a
    transparent gateway the modern, session-less wire must be chosen."""
    token = issuer.mint()
    test_id = new_test_id()
    responses: list = []
    progress: list = []
    out: dict[str, Any] = {}

    async def scenario() -> None:
        async with http_client(token, test_id, responses) as http:
            transport = streamable_http_client(gateway.mcp_url(), http_client=http)
            with anyio.fail_after(CALL_TIMEOUT):
                async with Client(transport, mode="auto") as client:
                    out["version"] = client.protocol_version
                    out["tools"] = await client.list_tools()
                    out["add"] = await client.call_tool("add", {"a": 2, "b": 3})
                    out["echo"] = await client.call_tool("echo_headers", {})

                    async def on_progress(p: float, total: float | None, message: str | None) -> None:
                        progress.append(p)

                    out["count"] = await client.call_tool("count", {"n": 3}, progress_callback=on_progress)

    run(scenario)

    assert out["version"] == LATEST_MODERN_VERSION, f"negotiated {out['version']}; responses: {responses}"
    assert {t.name for t in out["tools"].tools} >= TOOLS
    assert tool_value(out["add"]) == 5
    assert tool_value(out["count"]) == 3
    assert progress == [1, 2, 3]

    seen = read_header_log(upstream.header_log, test_id)
    assert_no_user_credentials(seen, "auto mode")
    methods = [r.get("mcp-method") for r in seen if r.method == "POST"]
    assert methods[0] == "server/discover", methods
    assert "initialize" not in methods, f"fell back to the handshake: {methods}"
    for req in seen:
        assert req.get("mcp-session-id") is None, "the 2026-07-28 wire has no sessions"
        assert req.get("mcp-protocol-version") == LATEST_MODERN_VERSION, req.headers
    calls = [r for r in seen if r.get("mcp-method") == "tools/call"]
    assert [r.get("mcp-name") for r in calls] == ["add", "echo_headers", "count"], [r.headers for r in calls]

    echoed = tool_value(out["echo"])
    assert "authorization" not in echoed and "cookie" not in echoed, echoed
    assert echoed.get("mcp-protocol-version") == LATEST_MODERN_VERSION, echoed
    assert echoed.get("mcp-method") == "tools/call" and echoed.get("mcp-name") == "echo_headers", echoed


# --------------------------------------------------------------------------- rejected callers

INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": LATEST_HANDSHAKE_VERSION, "capabilities": {}, "clientInfo": {"name": "raw", "version": "0"}},
}

BAD_TOKENS = {
    "no_token": lambda iss: None,
    "wrong_audience": lambda iss: iss.mint(aud="someone-else"),
    "other_key_same_kid": lambda iss: iss.mint(key=new_rsa_key()),
    "other_key_unknown_kid": lambda iss: iss.mint(key=new_rsa_key(), kid="not-published"),
    "wrong_issuer": lambda iss: iss.mint(iss="http://127.0.0.1:1/elsewhere"),
    "expired": lambda iss: iss.mint(iat_offset=-7200, lifetime=600),
}


@pytest.mark.parametrize("case", list(BAD_TOKENS))
def test_bad_or_missing_token_is_a_401_and_never_reaches_upstream(gateway, issuer, upstream, case):
    token = BAD_TOKENS[case](issuer)
    test_id = new_test_id()
    headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json", "X-Test-Id": test_id, "Cookie": COOKIE}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"

    r = requests.post(gateway.mcp_url(), json=INITIALIZE, headers=headers, timeout=30)
    assert r.status_code == 401, f"{case}: {r.status_code} {r.text}"
    assert r.headers["Content-Type"].startswith("application/json")
    body = r.json()
    assert body["error"] == "invalid_user_token", body
    assert body.get("message"), body
    www = r.headers.get("WWW-Authenticate", "")
    assert www.startswith("Bearer"), f"{case}: WWW-Authenticate={www!r}"
    if token is not None:
        assert 'error="invalid_token"' in www, www
        assert token not in r.text and token not in www

    # The official client cannot connect with it either (handshake and auto mode).
    async def handshake() -> None:
        async with http_client(token, test_id) as http:
            async with streamable_http_client(gateway.mcp_url(), http_client=http) as (read, write):
                async with ClientSession(read, write) as session:
                    with anyio.fail_after(CALL_TIMEOUT):
                        await session.initialize()

    async def auto() -> None:
        async with http_client(token, test_id) as http:
            with anyio.fail_after(CALL_TIMEOUT):
                async with Client(streamable_http_client(gateway.mcp_url(), http_client=http), mode="auto"):
                    pass

    for scenario in (handshake, auto):
        run_expecting_mcp_error(scenario)

    assert read_header_log(upstream.header_log, test_id) == [], "a rejected call reached the upstream"


def test_unknown_connection_is_a_404(gateway, issuer):
    r = requests.post(
        gateway.url + "/mcp/nope",
        json=INITIALIZE,
        headers={"Authorization": f"Bearer {issuer.mint()}", "Accept": "application/json, text/event-stream"},
        timeout=30,
    )
    assert r.status_code == 404, r.text
    assert r.headers["Content-Type"].startswith("application/json")
    assert r.json()["error"] == "unknown_connection", r.text


# --------------------------------------------------------------------------- opt-in: long calls


@pytest.mark.skipif(not os.environ.get("INTEROP_SLOW"), reason="set INTEROP_SLOW=1 (takes ~80 s)")
@pytest.mark.parametrize("mode", ["legacy", "auto"])
def test_silent_tool_call_longer_than_the_gateway_response_timeout(gateway, issuer, mode):
    """A tools/call that stays silent for 40 s, longer than the gateway's default 30 s
    response timeout. The SDK server commits its SSE response head at once (handshake era) or
    within 15 s (2026-07-28), so the call must survive the gateway."""
    token = issuer.mint()
    out: dict[str, Any] = {}

    async def scenario() -> None:
        async with http_client(token, new_test_id()) as http:
            with anyio.fail_after(120):
                async with Client(streamable_http_client(gateway.mcp_url(), http_client=http), mode=mode) as client:
                    out["wait"] = await client.call_tool("wait", {"seconds": 40})

    run(scenario)
    assert tool_value(out["wait"]) == 40


# --------------------------------------------------------------------------- status and logs


def _one_good_call(gateway, issuer) -> str:
    token = issuer.mint()

    async def scenario() -> None:
        async with http_client(token, new_test_id()) as http:
            async with streamable_http_client(gateway.mcp_url(), http_client=http) as (read, write):
                async with ClientSession(read, write) as session:
                    with anyio.fail_after(CALL_TIMEOUT):
                        await session.initialize()
                        assert tool_value(await session.call_tool("add", {"a": 2, "b": 3})) == 5

    run(scenario)
    return token


def test_status_shows_pyserver_live_and_no_token(gateway, issuer):
    token = _one_good_call(gateway, issuer)
    r = requests.get(gateway.url + "/api/connections/status", timeout=10)
    assert r.status_code == 200, r.text
    doc = r.json()
    (conn,) = [c for c in doc["connections"] if c["name"] == "pyserver"]
    assert conn["status"] == "LIVE", conn
    assert conn["kind"] == "mcp_server"
    assert conn["counts"]["requests"] >= 1, conn
    assert token not in r.text
    for minted in issuer.minted:
        assert minted not in r.text, "an ID token appears in the status document"
        # nor its signature alone, which is the part that makes it a credential
        assert minted.rsplit(".", 1)[1] not in r.text


def test_gateway_log_never_contains_a_token(gateway, issuer):
    """Runs last in this file, after every good and bad token above went through the gateway."""
    _one_good_call(gateway, issuer)
    log = gateway.log_text()
    assert "proxied" in log, f"expected the gateway's per-request log lines in {gateway.stderr_log}"
    assert issuer.minted, "no token was minted"
    for minted in issuer.minted:
        assert minted not in log, f"an ID token appears in {gateway.stderr_log}"
        assert minted.rsplit(".", 1)[1] not in log, f"an ID token's signature appears in {gateway.stderr_log}"
    assert "interop-cookie-must-not-reach-upstream" not in log, "the caller's Cookie appears in the gateway log"

