"""The whole system end to end: the official Python MCP SDK and `requests` talk to the gateway
with alice's real ID token (from the IdP's sign-in flow); the gateway runs the shipped
connections.yaml and its `idjag` and `oauth-sts` plugins get real tokens from `switchboard idp`
for `switchboard todo0` and the GitHub stand-in `switchboard isv`. Nothing is mocked.

1. /mcp/todo0 (idjag) in both SDK modes: tools/list, create-todo (the gateway's scope step-up:
   todo0 answers 403 insufficient_scope to the default token, the gateway gets a wider one
   and replays; the SDK sees only the success), get-todos, toggle, delete. Status: todo0 LIVE
   with counts.step_ups ≥ 1, the todo-mcp-as card LIVE.
2. /mcp/github-mcp (oauth-sts) before consent: what the SDK raises, and the HTTP answer (401,
   `WWW-Authenticate: Bearer error="interaction_required"`, a JSON-RPC error object plus the
   gateway's fields). alice consents in her signed-in browser; the SDK call then works.
3. /rest/github (oauth-sts, a separate consent): POST a comment, GET the list.
4. Neither the gateway's log (LOG_LEVEL=trace) nor its status JSON holds alice's ID token, an
   access token the gateway injected (recorded by the TCP relays in front of the upstreams),
   or the agent's private key.

The tests run in file order and share one system (module-scoped fixture in system_fixtures.py);
the consent tests also work alone (they obtain the interaction URI they need).
Run: python3 -m pytest Tests/interop/test_plugins_end_to_end.py -q
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Any, Callable

import anyio
import httpx2
import jwt
import pytest
import requests
from mcp import ClientSession, MCPError
from mcp.client.client import Client
from mcp.client.streamable_http import streamable_http_client
from mcp_types.version import LATEST_HANDSHAKE_VERSION, LATEST_MODERN_VERSION

from idp_fixtures import AGENT_ID, GITHUB_AUDIENCE, USERS
from system_fixtures import ISV_PORT, TODO0_RESOURCE, System, consent, system  # noqa: F401  (system is a fixture)

CALL_TIMEOUT = 60
TODO_TOOLS = {"get-todos", "create-todo", "toggle-todo", "delete-todo"}
DEFAULT_SCOPES = {"mcp:connect", "mcp:tools:read"}
MANAGE = "mcp:tools:manage"
GITHUB_MCP_AUDIENCE = GITHUB_AUDIENCE + "/mcp"
# The interaction URIs the SDK surfaced, per connection (the consent test opens the first one).
SURFACED: dict[str, list[str]] = {}
JWT_RE = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{16,}")


# --------------------------------------------------------------------------- helpers


def run(fn: Callable, *args) -> Any:
    return anyio.run(fn, *args)


def leaf_exceptions(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in leaf_exceptions(inner)]
    return [exc]


def sdk_http(token: str, responses: list | None = None) -> httpx2.AsyncClient:
    """The httpx2 client the SDK's transport uses, sending alice's ID token; with `responses`,
    records every answer the SDK received as (method, status, response)."""
    hooks = {}
    if responses is not None:

        async def record(resp: httpx2.Response) -> None:
            responses.append((resp.request.method, resp.status_code, resp))

        hooks["response"] = [record]
    return httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=httpx2.Timeout(30, read=CALL_TIMEOUT), event_hooks=hooks)


async def with_handshake_session(url: str, token: str, body, responses: list | None = None, out: dict | None = None) -> None:
    """ClientSession over streamable_http_client: the initialize handshake (2025-11-25)."""
    async with sdk_http(token, responses) as http:
        async with streamable_http_client(url, http_client=http) as (read, write):
            async with ClientSession(read, write) as session:
                with anyio.fail_after(CALL_TIMEOUT):
                    init = await session.initialize()
                    if out is not None:
                        out["version"] = init.protocol_version
                        out["server_info"] = init.server_info
                    await body(session)


async def with_auto_client(url: str, token: str, body, responses: list | None = None, out: dict | None = None) -> None:
    """The high-level Client in mode='auto' (server/discover at 2026-07-28 first)."""
    async with sdk_http(token, responses) as http:
        with anyio.fail_after(CALL_TIMEOUT):
            async with Client(streamable_http_client(url, http_client=http), mode="auto") as client:
                if out is not None:
                    out["version"] = client.protocol_version
                    out["server_info"] = client.server_info
                await body(client)


MODES = {"handshake": with_handshake_session, "auto": with_auto_client}
EXPECTED_VERSION = {"handshake": LATEST_HANDSHAKE_VERSION, "auto": LATEST_MODERN_VERSION}


def structured(result: Any) -> dict:
    assert not result.is_error, f"tool failed: {result}"
    assert isinstance(result.structured_content, dict), result
    return result.structured_content


def sdk_error(fn: Callable, *args) -> MCPError:
    """Run the scenario; it must fail with an MCPError (possibly inside exception groups)."""
    try:
        run(fn, *args)
    except BaseException as exc:  # noqa: BLE001 (inspected below)
        errors = [e for e in leaf_exceptions(exc) if isinstance(e, MCPError)]
        if not errors:
            raise
        return errors[0]
    pytest.fail("the SDK call succeeded although the user has not consented yet")


def rpc_post(system: System, name: str, body: dict, token: str | None) -> requests.Response:
    headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return requests.post(system.mcp_url(name), json=body, headers=headers, timeout=30)


def initialize_body(rpc_id: int | str) -> dict:
    return {"jsonrpc": "2.0", "id": rpc_id, "method": "initialize",
            "params": {"protocolVersion": LATEST_HANDSHAKE_VERSION, "capabilities": {}, "clientInfo": {"name": "e2e-raw", "version": "0"}}}


def verify_jwt(token: str, jwks_uri: str, *, audience: str, issuer: str) -> dict:
    key = jwt.PyJWKClient(jwks_uri, cache_keys=False).get_signing_key_from_jwt(token)
    return jwt.decode(token, key.key, algorithms=["RS256", "ES256"], audience=audience, issuer=issuer, leeway=60)


def scopes_of(claims: dict) -> set[str]:
    scp = claims.get("scp", claims.get("scope", ""))
    return set(scp.split()) if isinstance(scp, str) else set(scp)


def interaction_uri_via_gateway(system: System, connection: str) -> str | None:
    """One call through the gateway; the interaction URI when it answers interaction_required,
    None when the connection already works for alice."""
    if connection == "github":
        r = requests.get(system.rest_url("github", "repos/acme/app/issues/2/comments"),
                         headers={"Authorization": f"Bearer {system.alice_id_token}"}, timeout=30)
    else:
        r = rpc_post(system, connection, initialize_body(1), system.alice_id_token)
    if r.status_code == 401 and "interaction_required" in r.headers.get("WWW-Authenticate", ""):
        return r.json()["interaction_uri"]
    assert r.status_code < 400, f"{connection}: HTTP {r.status_code} {r.text[:300]}"
    return None


def ensure_consent(system: System, connection: str) -> None:
    uri = interaction_uri_via_gateway(system, connection)
    if uri is not None:
        consent(system.alice_browser, uri)
        assert interaction_uri_via_gateway(system, connection) is None, f"{connection} still needs consent after approving"


# =========================================================================== 0. the system


def test_gateway_serves_the_shipped_registry(system: System):
    doc = system.status()
    assert doc["config"]["last_error"] is None, doc["config"]
    by_name = {c["name"]: c for c in doc["connections"]}
    assert set(by_name) == {"todo-mcp-as", "todo0", "github", "github-mcp"}, sorted(by_name)
    assert by_name["todo-mcp-as"]["kind"] == "authorization_server"
    assert by_name["todo-mcp-as"]["details"]["issuer"] == system.idp.issuer + "/oauth2/todo-mcp"
    assert (by_name["todo0"]["strategy"], by_name["github"]["strategy"], by_name["github-mcp"]["strategy"]) == ("idjag", "oauth-sts", "oauth-sts")
    assert by_name["todo0"]["details"]["resource_indicator"] == TODO0_RESOURCE
    for c in by_name.values():
        assert c["enabled"] is True and c["status"] in ("IDLE", "LIVE"), c
    # alice's ID token from the real sign-in is what the gateway accepts.
    claims = jwt.decode(system.alice_id_token, options={"verify_signature": False})
    assert claims["iss"] == system.idp.issuer and claims["aud"] in ("agent0", ["agent0"]) and claims["sub"] == USERS["alice"]["id"], claims
    assert system.status(system.alice_id_token)["user"]["subject"] == claims["sub"]


# =========================================================================== 1. todo0 through idjag, with step-up


@pytest.mark.parametrize("mode", list(MODES))
def test_todo0_flow_with_scope_step_up(system: System, mode: str):
    """The SDK sees a plain success on every call: the 403 insufficient_scope todo0 gives the
    default token is handled inside the gateway (wider token, replay)."""
    title = f"e2e {mode} {uuid.uuid4().hex[:8]}"
    responses: list = []
    out: dict[str, Any] = {}
    sent_before = len(system.todo0_relay.sent_text())

    async def body(s) -> None:
        out["tools"] = await s.list_tools()
        out["before"] = await s.call_tool("get-todos", {})
        out["create"] = await s.call_tool("create-todo", {"title": title})
        todo_id = structured(out["create"])["todo"]["id"]
        out["listed"] = await s.call_tool("get-todos", {})
        out["toggle"] = await s.call_tool("toggle-todo", {"id": todo_id})
        out["delete"] = await s.call_tool("delete-todo", {"id": todo_id})
        out["after"] = await s.call_tool("get-todos", {})

    run(MODES[mode], system.mcp_url("todo0"), system.alice_id_token, body, responses, out)

    assert out["version"] == EXPECTED_VERSION[mode], out["version"]
    assert out["server_info"] is not None and out["server_info"].name == "todo0", out["server_info"]
    assert {t.name for t in out["tools"].tools} == TODO_TOOLS
    # Only successes reached the SDK: no 401/403 from the step-up leaked through.
    assert all(status < 400 for _, status, _ in responses), [(m, s) for m, s, _ in responses]

    created = structured(out["create"])["todo"]
    assert (created["title"], created["done"]) == (title, False), created
    before_ids = {t["id"] for t in structured(out["before"])["todos"]}
    listed = {t["id"]: t for t in structured(out["listed"])["todos"]}
    assert created["id"] not in before_ids and listed.get(created["id"], {}).get("title") == title, listed
    toggled = structured(out["toggle"])["todo"]
    assert (toggled["id"], toggled["done"]) == (created["id"], True), toggled
    deleted = structured(out["delete"])
    assert deleted["todo"]["id"] == created["id"] and deleted.get("deleted") is True, deleted
    assert created["id"] not in {t["id"] for t in structured(out["after"])["todos"]}

    # The gateway really talked to todo0 for this test, with access tokens (never the ID token).
    assert len(system.todo0_relay.sent_text()) > sent_before, "nothing reached todo0"
    assert system.alice_id_token not in system.todo0_relay.sent_text(), "alice's ID token reached todo0"

    doc = system.status()
    todo0 = system.connection("todo0", doc)
    assert todo0["status"] == "LIVE", todo0
    assert todo0["counts"]["step_ups"] >= 1, todo0["counts"]
    assert todo0["counts"]["requests"] >= 8, todo0["counts"]
    card = system.connection("todo-mcp-as", doc)
    assert card["status"] == "LIVE", card
    mine = {c["name"]: c for c in system.status(system.alice_id_token)["user"]["connections"]}
    assert mine["todo0"]["state"] == "live", mine


def test_todo0_step_up_on_the_wire(system: System):
    """What happened between the gateway and todo0 (seen by the relay): todo0 refused the default
    token with 403 insufficient_scope, and the gateway then used a token with mcp:tools:manage.
    Both are real RFC 9068 tokens of the todo-mcp AS for todo0's resource, for alice, acting as
    the agent."""
    if not any(line.split()[1] == "403" for line in system.todo0_relay.status_lines()):  # running alone
        async def cycle(s) -> None:
            created = structured(await s.call_tool("create-todo", {"title": "step-up probe"}))["todo"]
            structured(await s.call_tool("delete-todo", {"id": created["id"]}))

        run(with_auto_client, system.mcp_url("todo0"), system.alice_id_token, cycle)
    replies = system.todo0_relay.received_text()
    assert any(line.split()[1] == "403" for line in system.todo0_relay.status_lines()), \
        f"todo0 never answered 403 (was there a step-up?): {system.todo0_relay.status_lines()}"
    assert re.search(r'(?im)^www-authenticate: Bearer error="insufficient_scope"', replies), "no insufficient_scope challenge from todo0"

    as_issuer = system.idp.issuer + "/oauth2/todo-mcp"
    jwks = system.idp.as_metadata()["jwks_uri"]
    scope_sets = []
    for token in system.todo0_relay.bearer_tokens():
        claims = verify_jwt(token, jwks, audience=TODO0_RESOURCE, issuer=as_issuer)
        assert claims["sub"] in (USERS["alice"]["id"], USERS["alice"]["email"]) or claims.get("uid") == USERS["alice"]["id"], claims
        assert claims.get("act", {}).get("sub") == AGENT_ID, claims
        scope_sets.append(scopes_of(claims))
    assert any(s == DEFAULT_SCOPES for s in scope_sets), f"no default-scope token: {scope_sets}"
    assert any(MANAGE in s and DEFAULT_SCOPES <= s for s in scope_sets), f"no stepped-up token: {scope_sets}"


# =========================================================================== 2. github-mcp through oauth-sts


@pytest.mark.parametrize("mode", list(MODES))
def test_github_mcp_before_consent_the_sdk_raises_interaction_required(system: System, mode: str):
    """mcp 2.3 parses the gateway's JSON-RPC error body of the 401 and raises
    MCPError(-32001, message, data={error, interaction_uri, connection}) from the first request
    (server/discover, then initialize, in auto mode; initialize in handshake mode)."""
    if interaction_uri_via_gateway(system, "github-mcp") is None:
        pytest.skip("alice already consented to github-mcp (tests ran out of order)")

    async def body(s) -> None:
        await s.call_tool("add_pull_request_comment", {"owner": "acme", "repo": "app", "pull_number": 1, "body": "too early"})

    responses: list = []
    err = sdk_error(MODES[mode], system.mcp_url("github-mcp"), system.alice_id_token, body, responses)
    assert err.error.code == -32001, err.error
    assert "interaction_uri" in err.error.message, err.error.message
    data = err.error.data
    assert isinstance(data, dict), err.error
    assert data["error"] == "interaction_required" and data["connection"] == "github-mcp", data
    assert data["interaction_uri"].startswith(system.idp.issuer + "/oauth2/v1/interaction/"), data
    SURFACED.setdefault("github-mcp", []).append(data["interaction_uri"])
    assert responses and all(status == 401 for _, status, _ in responses), [(m, s) for m, s, _ in responses]
    # Nothing reached the GitHub MCP server without a credential.
    assert not [line for line in system.isv_relay.request_lines() if " /mcp" in line], system.isv_relay.request_lines()


def test_github_mcp_before_consent_on_the_wire(system: System):
    if interaction_uri_via_gateway(system, "github-mcp") is None:
        pytest.skip("alice already consented to github-mcp (tests ran out of order)")
    call = {"jsonrpc": "2.0", "id": "call-42", "method": "tools/call",
            "params": {"name": "add_pull_request_comment", "arguments": {"owner": "acme", "repo": "app", "pull_number": 1, "body": "LGTM"}}}
    for body, rpc_id in ((initialize_body(17), 17), (call, "call-42")):
        r = rpc_post(system, "github-mcp", body, system.alice_id_token)
        assert r.status_code == 401, f"HTTP {r.status_code} {r.text[:300]}"
        assert r.headers["WWW-Authenticate"] == 'Bearer error="interaction_required"', r.headers
        assert r.headers["Content-Type"].startswith("application/json"), r.headers
        assert "no-store" in r.headers.get("Cache-Control", ""), r.headers
        doc = r.json()
        assert doc["jsonrpc"] == "2.0" and doc["id"] == rpc_id, doc
        assert "result" not in doc, doc
        error = doc["error"]
        assert isinstance(error["code"], int) and error["code"] == -32001, error
        assert isinstance(error["message"], str) and error["message"], error
        assert error["data"]["error"] == "interaction_required", error
        assert error["data"]["interaction_uri"].startswith(system.idp.issuer + "/oauth2/v1/interaction/"), error
        assert doc["interaction_uri"] == error["data"]["interaction_uri"], doc
        assert doc["connection"] == "github-mcp" and error["data"]["connection"] == "github-mcp", doc

    card = system.connection("github-mcp")
    assert (card["status"], card["reason"]) == ("IDLE", "consent_required"), card
    mine = {c["name"]: c for c in system.status(system.alice_id_token)["user"]["connections"]}
    assert mine["github-mcp"]["state"] == "consent_required", mine
    assert mine["github-mcp"]["interaction_uri"].startswith(system.idp.issuer + "/oauth2/v1/interaction/"), mine
    # A caller without an ID token is refused before any exchange.
    anonymous = rpc_post(system, "github-mcp", initialize_body(1), None)
    assert anonymous.status_code == 401 and "interaction_uri" not in anonymous.text, anonymous.text


@pytest.mark.parametrize("mode", list(MODES))
def test_github_mcp_after_consent_the_sdk_comments(system: System, mode: str):
    surfaced = SURFACED.pop("github-mcp", [])
    if surfaced and interaction_uri_via_gateway(system, "github-mcp") is not None:
        # alice opens the link the SDK surfaced earlier (not a fresh one) and approves.
        consent(system.alice_browser, surfaced[0])
    ensure_consent(system, "github-mcp")
    text = f"LGTM ({mode} {uuid.uuid4().hex[:6]})"
    responses: list = []
    out: dict[str, Any] = {}

    async def body(s) -> None:
        out["tools"] = await s.list_tools()
        out["lgtm"] = await s.call_tool("add_pull_request_comment", {"owner": "acme", "repo": "app", "pull_number": 1, "body": "LGTM"})
        out["mine"] = await s.call_tool("add_pull_request_comment", {"owner": "acme", "repo": "app", "pull_number": 1, "body": text})

    run(MODES[mode], system.mcp_url("github-mcp"), system.alice_id_token, body, responses, out)

    assert out["version"] == EXPECTED_VERSION[mode], out["version"]
    assert {"add_pull_request_comment", "get_me"} <= {t.name for t in out["tools"].tools}
    assert all(status < 400 for _, status, _ in responses), [(m, s) for m, s, _ in responses]
    lgtm = structured(out["lgtm"])
    assert lgtm["body"] == "LGTM", lgtm
    assert re.fullmatch(rf"http://127\.0\.0\.1:{ISV_PORT}/acme/app/pull/1#issuecomment-\d+", lgtm["html_url"]), lgtm
    assert lgtm["html_url"] in out["lgtm"].content[0].text, out["lgtm"].content
    mine = structured(out["mine"])
    assert mine["body"] == text and mine["id"] > lgtm["id"], mine
    assert lgtm["user"]["login"], lgtm

    card = system.connection("github-mcp")
    assert card["status"] == "LIVE", card
    assert any(line.startswith("POST /mcp ") for line in system.isv_relay.request_lines()), system.isv_relay.request_lines()
    assert system.alice_id_token not in system.isv_relay.sent_text(), "alice's ID token reached the ISV"


def test_github_mcp_token_is_an_sts_token_for_the_mcp_audience(system: System):
    """The credential the gateway injected at /mcp is the IdP-brokered STS token of the
    github-mcp app (aud http://127.0.0.1:7000/mcp), for alice, issued to the agent."""
    ensure_consent(system, "github-mcp")
    if not any(" /mcp" in line for line in system.isv_relay.request_lines()):
        run(with_auto_client, system.mcp_url("github-mcp"), system.alice_id_token, lambda s: s.list_tools())
    tokens = sts_tokens(system)
    assert tokens["github-mcp"], f"no github-mcp token among {len(system.isv_relay.bearer_tokens())} injected"
    for claims in tokens["github-mcp"]:
        assert claims["sub"] == USERS["alice"]["id"] and claims["client_id"] == AGENT_ID, claims


def sts_tokens(system: System) -> dict[str, list[dict]]:
    """The ISV tokens the gateway injected, verified against the app that signed them."""
    out: dict[str, list[dict]] = {"github": [], "github-mcp": []}
    for token in system.isv_relay.bearer_tokens():
        aud = jwt.decode(token, options={"verify_signature": False})["aud"]
        app, audience = ("github-mcp", GITHUB_MCP_AUDIENCE) if aud in (GITHUB_MCP_AUDIENCE, [GITHUB_MCP_AUDIENCE]) else ("github", GITHUB_AUDIENCE)
        out[app].append(verify_jwt(token, f"{system.idp.issuer}/apps/{app}/keys", audience=audience, issuer=f"{system.idp.issuer}/apps/{app}"))
    return out


# =========================================================================== 3. the GitHub REST API through oauth-sts


def test_github_rest_needs_its_own_consent_then_comments(system: System):
    ensure_consent(system, "github-mcp")  # the MCP consent does not cover the REST app
    url = system.rest_url("github", "repos/acme/app/issues/2/comments")
    auth = {"Authorization": f"Bearer {system.alice_id_token}"}
    text = f"REST comment {uuid.uuid4().hex[:8]}"

    first = requests.post(url, json={"body": text}, headers=auth, timeout=30)
    if first.status_code != 401:
        pytest.skip(f"alice already consented to github (tests ran out of order): HTTP {first.status_code}")
    assert first.headers["WWW-Authenticate"] == 'Bearer error="interaction_required"', first.headers
    err = first.json()
    assert err["error"] == "interaction_required" and err["connection"] == "github", err
    assert "jsonrpc" not in err, f"a REST answer is not JSON-RPC: {err}"
    assert err["interaction_uri"].startswith(system.idp.issuer + "/oauth2/v1/interaction/"), err
    assert not [line for line in system.isv_relay.request_lines() if "/repos/" in line], "the POST reached GitHub without a credential"

    consent(system.alice_browser, err["interaction_uri"])

    created = requests.post(url, json={"body": text}, headers=auth, timeout=30)
    assert created.status_code == 201, f"HTTP {created.status_code} {created.text[:300]}"
    comment = created.json()
    assert comment["body"] == text, comment
    assert re.fullmatch(rf"http://127\.0\.0\.1:{ISV_PORT}/acme/app/pull/2#issuecomment-\d+", comment["html_url"]), comment

    assert "POST /repos/acme/app/issues/2/comments HTTP/1.1" in system.isv_relay.request_lines(), system.isv_relay.request_lines()

    listed = requests.get(url, headers=auth, timeout=30)
    assert listed.status_code == 200, f"HTTP {listed.status_code} {listed.text[:300]}"
    mine = [c for c in listed.json() if c["id"] == comment["id"]]
    assert mine and mine[0]["body"] == text and mine[0]["html_url"] == comment["html_url"], listed.json()

    # The REST consent did not leak into another issue's comments: issue 1 holds only MCP comments.
    other = requests.get(system.rest_url("github", "repos/acme/app/issues/1/comments"), headers=auth, timeout=30)
    assert other.status_code == 200 and text not in other.text, other.text[:300]

    card = system.connection("github")
    assert card["status"] == "LIVE", card
    tokens = sts_tokens(system)
    assert tokens["github"], "no REST STS token was injected"
    for claims in tokens["github"]:
        assert claims["sub"] == USERS["alice"]["id"] and claims["client_id"] == AGENT_ID, claims


# =========================================================================== 4. no secret in the log or the status


def test_no_token_or_key_in_the_gateway_log_or_status(system: System):
    """Runs last: alice's ID token, every access token the gateway injected upstream (recorded
    by the relays) and the agent's private key are absent from the gateway's stdout/stderr at
    LOG_LEVEL=trace and from the status JSON (anonymous and with alice's user view)."""
    # Make sure there is traffic of every kind to look for, even when this test runs alone.
    run(with_auto_client, system.mcp_url("todo0"), system.alice_id_token, lambda s: s.call_tool("get-todos", {}))
    injected = system.injected_tokens()
    assert system.todo0_relay.bearer_tokens(), "no todo0 access token was captured"

    log = system.gateway.log_text()
    assert log.strip(), "the gateway logged nothing at all (is LOG_LEVEL honoured?)"
    assert "trace" in log.lower() or "debug" in log.lower(), "LOG_LEVEL=trace produced no trace/debug lines"
    status_text = json.dumps(system.status()) + json.dumps(system.status(system.alice_id_token))
    metrics = requests.get(system.gateway.url + "/metrics", timeout=10).text

    secrets = {"alice's ID token": [system.alice_id_token]} | {f"injected token #{i}": [t] for i, t in enumerate(sorted(injected))}
    pem = system.idp.agent_key_file.read_text()
    key_lines = [line for line in pem.splitlines() if line and not line.startswith("-----")]
    assert key_lines
    for where, text in (("gateway log", log), ("status JSON", status_text), ("metrics", metrics)):
        for what, values in secrets.items():
            for value in values:
                assert value not in text, f"{what} is in the {where}"
                signature = value.rsplit(".", 1)[-1]
                assert signature not in text, f"the signature of {what} is in the {where}"
        assert "".join(key_lines) not in text, f"the agent's private key is in the {where}"
        assert not [line for line in key_lines if len(line) >= 32 and line in text], f"a line of the agent's private key is in the {where}"
        assert "PRIVATE KEY" not in text, f"PEM armour in the {where}"
        found = JWT_RE.findall(text)
        assert not found, f"JWT-shaped strings in the {where}: {[f[:16] + '…' for f in found]}"
