"""todo0 (`switchboard todo0`) against the official Python MCP SDK and plain HTTP: real issuer
(JWKS), real binary, real SQLite on a temporary data directory, real HTTP on 127.0.0.1.

1. The SDK in handshake mode (ClientSession, 2025-11-25) and in Client auto mode (2026-07-28):
   the full create / list / toggle / delete cycle.
2. Authorization: 403 insufficient_scope as the SDK surfaces it and on the wire (RFC 6750
   challenge listing every needed scope), 401 with resource_metadata, the RFC 9728 document.
3. Isolation: another user's todo is indistinguishable from a missing one.
4. Durability: acknowledged writes (creates, toggles, deletes) survive `kill -9` in the middle
   of a burst of concurrent writes.
5. Concurrency: concurrent writers lose no update.

PROTOCOLS.md sections E and F are the reference.
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable

import anyio
import httpx2
import pytest
import requests
from mcp import ClientSession, MCPError
from mcp.client.auth.utils import extract_field_from_www_auth, extract_resource_metadata_from_www_auth, extract_scope_from_www_auth
from mcp.client.client import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import ProtectedResourceMetadata
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS, LATEST_HANDSHAKE_VERSION, LATEST_MODERN_VERSION

from interop_helpers import OIDCIssuer
from todo0_fixtures import (
    ACCEPT,
    ALL_SCOPES,
    CONNECT,
    MANAGE,
    READ,
    STATELESS_VERSION,
    TOOL_NAMES,
    Todo0,
    call_tool_raw,
    mint_access_token,
    rpc_result,
    start_todo0,
    stateless_body,
    stateless_headers,
)

CALL_TIMEOUT = 60
WRITERS = 4


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def todo_issuer():
    iss = OIDCIssuer().start()
    try:
        yield iss
    finally:
        iss.stop()


@pytest.fixture(scope="module")
def todo0(todo_issuer, tmp_path_factory):
    """One todo0 shared by the non-destructive tests of this module."""
    base = tmp_path_factory.mktemp("todo0")
    t = start_todo0(todo_issuer, base / "data", base / "logs")
    try:
        yield t
    finally:
        t.stop()


@pytest.fixture
def fresh_todo0(todo_issuer, tmp_path):
    """A todo0 of its own (the durability tests SIGKILL and restart it)."""
    t = start_todo0(todo_issuer, tmp_path / "data", tmp_path / "logs")
    try:
        yield t
    finally:
        t.stop()


def new_user() -> str:
    return "00u-" + uuid.uuid4().hex[:12]


# --------------------------------------------------------------------------- SDK helpers


def sdk_http(token: str | None, responses: list | None = None) -> httpx2.AsyncClient:
    """The httpx2 client the SDK's streamable-HTTP transport uses (how mcp 2.x takes the
    bearer token). With `responses`, records every answer as (method, status, response)."""
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    hooks = {}
    if responses is not None:

        async def record(resp: httpx2.Response) -> None:
            responses.append((resp.request.method, resp.status_code, resp))

        hooks["response"] = [record]
    return httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30, read=CALL_TIMEOUT), event_hooks=hooks)


def run(fn: Callable, *args) -> Any:
    return anyio.run(fn, *args)


def leaf_exceptions(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in leaf_exceptions(inner)]
    return [exc]


def structured(result: Any) -> dict:
    assert not result.is_error, f"tool failed: {result}"
    assert isinstance(result.structured_content, dict), result
    return result.structured_content


def text_of(result: Any) -> str:
    assert result.content and result.content[0].type == "text", result
    return result.content[0].text


class Session:
    """The same calls over ClientSession (handshake) or Client (auto): both have list_tools
    and call_tool with the same result types."""

    def __init__(self, s: Any) -> None:
        self.s = s

    async def list_tools(self):
        return await self.s.list_tools()

    async def call(self, name: str, args: dict | None = None):
        return await self.s.call_tool(name, args or {})


async def with_handshake_session(todo0: Todo0, token: str, body, responses: list | None = None, out: dict | None = None):
    async with sdk_http(token, responses) as http:
        async with streamable_http_client(todo0.mcp_url, http_client=http) as (read, write):
            async with ClientSession(read, write) as session:
                with anyio.fail_after(CALL_TIMEOUT):
                    init = await session.initialize()
                    if out is not None:
                        out["init"] = init
                    await body(Session(session))


async def with_auto_client(todo0: Todo0, token: str, body, responses: list | None = None, out: dict | None = None):
    async with sdk_http(token, responses) as http:
        with anyio.fail_after(CALL_TIMEOUT):
            async with Client(streamable_http_client(todo0.mcp_url, http_client=http), mode="auto") as client:
                if out is not None:
                    out["version"] = client.protocol_version
                    out["server_info"] = client.server_info
                await body(Session(client))


MODES = {"handshake": with_handshake_session, "auto": with_auto_client}


# --------------------------------------------------------------------------- raw helpers


def get_todos_raw(todo0: Todo0, token: str, http=requests) -> list[dict]:
    result = rpc_result(call_tool_raw(http, todo0, token, "get-todos"))
    assert result.get("isError") is False, result
    return result["structuredContent"]["todos"]


def rest_todos(todo0: Todo0, token: str) -> list[dict]:
    r = requests.get(todo0.rest_url, headers={"Authorization": f"Bearer {token}"}, timeout=30)
    assert r.status_code == 200, f"GET {todo0.rest_url}: HTTP {r.status_code} {r.text[:300]}"
    return r.json()["todos"]


def parse_challenge(www: str) -> dict[str, str]:
    assert www.lower().startswith("bearer "), www
    return {k: v for k, v in re.findall(r'([a-z_]+)="([^"]*)"', www)}


# =========================================================================== 1. the SDK, both modes


@pytest.mark.parametrize("mode", list(MODES))
def test_sdk_full_cycle(todo0, todo_issuer, mode):
    """initialize (or server/discover), tools/list, create ×2, list, toggle, delete, list."""
    token = mint_access_token(todo_issuer, resource=todo0.resource, uid=new_user(), scopes=ALL_SCOPES)
    responses: list = []
    out: dict[str, Any] = {}

    async def body(s: Session) -> None:
        out["tools"] = await s.list_tools()
        out["empty"] = await s.call("get-todos")
        out["c1"] = await s.call("create-todo", {"title": "Buy milk"})
        out["c2"] = await s.call("create-todo", {"title": "  Write the report  "})
        out["list"] = await s.call("get-todos")
        id1 = structured(out["c1"])["todo"]["id"]
        id2 = structured(out["c2"])["todo"]["id"]
        out["toggle"] = await s.call("toggle-todo", {"id": id1})
        out["delete"] = await s.call("delete-todo", {"id": id2})
        out["final"] = await s.call("get-todos")

    run(MODES[mode], todo0, token, body, responses, out)

    # --- the negotiated protocol
    if mode == "handshake":
        init = out["init"]
        assert init.protocol_version in HANDSHAKE_PROTOCOL_VERSIONS
        assert init.protocol_version == LATEST_HANDSHAKE_VERSION, init.protocol_version
        assert init.server_info.name == "todo0"
        assert init.capabilities.tools is not None
        session_ids = {r.headers.get("mcp-session-id") for m, _, r in responses if m == "POST" and r.headers.get("mcp-session-id")}
        assert len(session_ids) == 1, f"one Mcp-Session-Id expected: {[(m, s, dict(r.headers)) for m, s, r in responses]}"
        deletes = [s for m, s, _ in responses if m == "DELETE"]
        assert deletes and deletes[-1] in (200, 204), f"closing the transport ends the session: {deletes}"
    else:
        assert out["version"] == LATEST_MODERN_VERSION == STATELESS_VERSION, out["version"]
        assert out["server_info"] is not None and out["server_info"].name == "todo0", out["server_info"]
        assert all(r.headers.get("mcp-session-id") is None for _, _, r in responses), "2026-07-28 has no sessions"
        posts = [r for m, _, r in responses if m == "POST"]
        assert posts and all(r.request.headers.get("mcp-protocol-version") == STATELESS_VERSION for r in posts)
        assert "initialize" not in [r.request.headers.get("mcp-method") for r in posts], "auto mode fell back to the handshake"
    assert all(s < 400 for _, s, _ in responses), [(m, s) for m, s, _ in responses]

    # --- tools/list: the four tools, each with an object inputSchema
    tools = {t.name: t for t in out["tools"].tools}
    assert set(tools) == TOOL_NAMES, set(tools)
    for name, tool in tools.items():
        schema = tool.input_schema
        assert isinstance(schema, dict) and schema.get("type") == "object", (name, schema)
        assert tool.description, name
    assert tools["create-todo"].input_schema["required"] == ["title"]
    assert tools["create-todo"].input_schema["properties"]["title"]["type"] == "string"
    for name in ("toggle-todo", "delete-todo"):
        assert tools[name].input_schema["required"] == ["id"], name
        assert tools[name].input_schema["properties"]["id"]["type"] == "integer", name
    assert not tools["get-todos"].input_schema.get("required"), tools["get-todos"].input_schema

    # --- the cycle
    assert structured(out["empty"]) == {"todos": []}
    assert text_of(out["empty"]) == "You have no todos yet."

    t1, t2 = structured(out["c1"])["todo"], structured(out["c2"])["todo"]
    assert (t1["title"], t1["done"]) == ("Buy milk", False), t1
    assert (t2["title"], t2["done"]) == ("Write the report", False), t2  # trimmed
    assert isinstance(t1["id"], int) and isinstance(t2["id"], int) and t1["id"] != t2["id"]
    assert str(t1["id"]) in text_of(out["c1"]) and "Buy milk" in text_of(out["c1"])

    listed = structured(out["list"])["todos"]
    assert [(t["id"], t["title"], t["done"]) for t in listed] == [(t1["id"], "Buy milk", False), (t2["id"], "Write the report", False)]
    text = text_of(out["list"])
    assert text.startswith("You have 2 todos"), text
    assert f"- [ ] Buy milk (id {t1['id']})" in text and f"- [ ] Write the report (id {t2['id']})" in text, text

    toggled = structured(out["toggle"])["todo"]
    assert (toggled["id"], toggled["done"]) == (t1["id"], True), toggled
    assert "now done" in text_of(out["toggle"])

    deleted = structured(out["delete"])
    assert deleted["todo"]["id"] == t2["id"] and deleted.get("deleted") is True, deleted

    final = structured(out["final"])["todos"]
    assert [(t["id"], t["title"], t["done"]) for t in final] == [(t1["id"], "Buy milk", True)], final
    assert f"- [x] Buy milk (id {t1['id']})" in text_of(out["final"]), text_of(out["final"])
    assert "Write the report" not in text_of(out["final"])

    # The REST face sees the same store.
    assert [(t["id"], t["done"]) for t in rest_todos(todo0, token)] == [(t1["id"], True)]


# =========================================================================== 2. authorization


@pytest.mark.parametrize("mode", list(MODES))
def test_sdk_sees_403_insufficient_scope(todo0, todo_issuer, mode):
    """A token with mcp:connect + mcp:tools:read: reading works, create-todo is refused with
    HTTP 403 insufficient_scope. Without an OAuth provider the SDK (mcp 2.x) turns a non-JSON-RPC
    4xx answer into MCPError(-32603, "Server returned an error response"); the 403 and its
    challenge are what the SDK's own httpx2 client received, parsed with the SDK's helpers."""
    user = new_user()
    token = mint_access_token(todo_issuer, resource=todo0.resource, uid=user, scopes=(CONNECT, READ))
    responses: list = []
    out: dict[str, Any] = {}

    async def body(s: Session) -> None:
        out["before"] = await s.call("get-todos")
        try:
            out["create"] = await s.call("create-todo", {"title": "not allowed"})
        except MCPError as e:
            out["error"] = e
        # The session (or the stateless client) is still usable after the refusal.
        out["after"] = await s.call("get-todos")

    run(MODES[mode], todo0, token, body, responses, out)

    assert "create" not in out, f"create-todo succeeded with a read-only token: {out.get('create')}"
    err = out["error"]
    assert isinstance(err, MCPError), err
    assert err.error.code == -32603 and err.error.message == "Server returned an error response", err.error

    refused = [r for m, s, r in responses if m == "POST" and s == 403]
    assert len(refused) == 1, [(m, s) for m, s, _ in responses]
    (r403,) = refused
    assert json.loads(r403.request.content)["params"]["name"] == "create-todo"
    assert extract_field_from_www_auth(r403, "error") == "insufficient_scope", r403.headers.get("www-authenticate")
    assert set(extract_scope_from_www_auth(r403).split()) == {CONNECT, READ, MANAGE}, r403.headers.get("www-authenticate")
    assert extract_resource_metadata_from_www_auth(r403) == todo0.mcp_base + "/.well-known/oauth-protected-resource/mcp"
    assert r403.json()["error"] == "insufficient_scope"

    assert structured(out["before"])["todos"] == [] and structured(out["after"])["todos"] == [], "nothing was created"


def test_403_insufficient_scope_on_the_wire(todo0, todo_issuer):
    user = new_user()
    read_only = mint_access_token(todo_issuer, resource=todo0.resource, uid=user, scopes=(CONNECT, READ))
    r = call_tool_raw(requests, todo0, read_only, "create-todo", {"title": "nope"})
    assert r.status_code == 403, f"{r.status_code} {r.text}"
    www = r.headers.get("WWW-Authenticate", "")
    assert re.match(r'^Bearer error="insufficient_scope", ', www), www
    ch = parse_challenge(www)
    assert ch["error"] == "insufficient_scope"
    assert set(ch["scope"].split()) == {CONNECT, READ, MANAGE}, www
    assert ch["resource_metadata"] == todo0.mcp_base + "/.well-known/oauth-protected-resource/mcp", www
    assert r.headers["Content-Type"].startswith("application/json")
    assert r.json()["error"] == "insufficient_scope", r.text
    # The read-only token may still read, and nothing was written.
    assert get_todos_raw(todo0, read_only) == []

    # toggle/delete need mcp:tools:manage as well.
    for name in ("toggle-todo", "delete-todo"):
        r = call_tool_raw(requests, todo0, read_only, name, {"id": 1})
        assert r.status_code == 403, (name, r.status_code, r.text)
        assert set(parse_challenge(r.headers["WWW-Authenticate"])["scope"].split()) == {CONNECT, READ, MANAGE}

    # A token without mcp:connect is refused on any /mcp request; get-todos without read too.
    manage_only = mint_access_token(todo_issuer, resource=todo0.resource, uid=user, scopes=(MANAGE,))
    r = requests.post(todo0.mcp_url, json=stateless_body("tools/list"), headers=stateless_headers(manage_only, "tools/list"), timeout=30)
    assert r.status_code == 403, f"{r.status_code} {r.text}"
    ch = parse_challenge(r.headers["WWW-Authenticate"])
    assert ch["error"] == "insufficient_scope" and CONNECT in ch["scope"].split(), ch
    connect_only = mint_access_token(todo_issuer, resource=todo0.resource, uid=user, scopes=(CONNECT,))
    r = call_tool_raw(requests, todo0, connect_only, "get-todos")
    assert r.status_code == 403, f"{r.status_code} {r.text}"
    assert set(parse_challenge(r.headers["WWW-Authenticate"])["scope"].split()) == {CONNECT, READ}


def test_401_with_resource_metadata_and_the_rfc9728_document(todo0, todo_issuer):
    prm_url = todo0.mcp_base + "/.well-known/oauth-protected-resource/mcp"
    init = {
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": LATEST_HANDSHAKE_VERSION, "capabilities": {}, "clientInfo": {"name": "raw", "version": "0"}},
    }
    r = requests.post(todo0.mcp_url, json=init, headers={"Accept": ACCEPT, "Content-Type": "application/json"}, timeout=30)
    assert r.status_code == 401, f"{r.status_code} {r.text}"
    www = r.headers.get("WWW-Authenticate", "")
    assert www.startswith("Bearer ") and f'resource_metadata="{prm_url}"' in www, www

    # The stateless wire too, and a bad token (wrong aud, wrong typ) is 401 invalid_token.
    r = requests.post(todo0.mcp_url, json=stateless_body("tools/list"), headers=stateless_headers(None, "tools/list"), timeout=30)
    assert r.status_code == 401 and f'resource_metadata="{prm_url}"' in r.headers.get("WWW-Authenticate", ""), r.headers
    wrong_aud = mint_access_token(todo_issuer, resource="http://127.0.0.1:1/mcp", uid=new_user())
    r = call_tool_raw(requests, todo0, wrong_aud, "get-todos")
    assert r.status_code == 401, f"{r.status_code} {r.text}"
    ch = parse_challenge(r.headers["WWW-Authenticate"])
    assert ch["error"] == "invalid_token" and ch["resource_metadata"] == prm_url, ch
    id_token = todo_issuer.mint(aud=todo0.resource)  # typ JWT: an ID token is not an access token
    r = call_tool_raw(requests, todo0, id_token, "get-todos")
    assert r.status_code == 401 and 'error="invalid_token"' in r.headers.get("WWW-Authenticate", ""), (r.status_code, r.headers)

    # RFC 9728: the document the challenge points at names the issuer.
    doc_r = requests.get(prm_url, timeout=10)
    assert doc_r.status_code == 200 and doc_r.headers["Content-Type"].startswith("application/json"), doc_r.text
    doc = doc_r.json()
    assert doc["resource"] == todo0.resource, doc
    assert doc["authorization_servers"] == [todo_issuer.url], doc
    assert set(doc["scopes_supported"]) >= {CONNECT, READ, MANAGE}, doc
    assert doc.get("bearer_methods_supported") == ["header"], doc
    prm = ProtectedResourceMetadata.model_validate(doc)  # the SDK's own model accepts it
    assert [str(u).rstrip("/") for u in prm.authorization_servers] == [todo_issuer.url]


# =========================================================================== 3. isolation


def test_another_users_todo_is_invisible_and_untouchable(todo0, todo_issuer):
    alice = mint_access_token(todo_issuer, resource=todo0.resource, uid=new_user())
    bob = mint_access_token(todo_issuer, resource=todo0.resource, uid=new_user())
    created = rpc_result(call_tool_raw(requests, todo0, alice, "create-todo", {"title": "Alice's secret"}))
    alice_id = created["structuredContent"]["todo"]["id"]
    unknown_id = alice_id + 10_000_000
    out: dict[str, Any] = {}

    async def body(s: Session) -> None:
        out["list"] = await s.call("get-todos")
        out["toggle"] = await s.call("toggle-todo", {"id": alice_id})
        out["delete"] = await s.call("delete-todo", {"id": alice_id})
        out["toggle_unknown"] = await s.call("toggle-todo", {"id": unknown_id})
        out["delete_unknown"] = await s.call("delete-todo", {"id": unknown_id})

    run(with_auto_client, todo0, bob, body, None, out)

    assert structured(out["list"])["todos"] == [], out["list"]
    assert "Alice's secret" not in text_of(out["list"])
    for verb in ("toggle", "delete"):
        other, unknown = out[verb], out[f"{verb}_unknown"]
        assert other.is_error is True, f"{verb} of another user's todo: {other}"
        assert unknown.is_error is True, unknown
        assert text_of(other) == f"There is no todo with id {alice_id}.", text_of(other)
        # Same shape as an id that does not exist at all (no "forbidden", no owner leak).
        assert text_of(other).replace(str(alice_id), "N") == text_of(unknown).replace(str(unknown_id), "N")
        assert not other.structured_content, other.structured_content

    # Alice's todo is untouched.
    assert [(t["id"], t["title"], t["done"]) for t in get_todos_raw(todo0, alice)] == [(alice_id, "Alice's secret", False)]
    # The same holds on the REST face.
    for method in ("PATCH", "DELETE"):
        r = requests.request(method, f"{todo0.rest_url}/{alice_id}", json={"done": True} if method == "PATCH" else None,
                             headers={"Authorization": f"Bearer {bob}"}, timeout=30)
        assert r.status_code == 404, (method, r.status_code, r.text)
    assert [(t["id"], t["done"]) for t in rest_todos(todo0, alice)] == [(alice_id, False)]


# =========================================================================== 4. durability under kill -9


@dataclass
class WriterLog:
    """What one writer thread saw: acknowledged results, the request that was in flight when
    the server died (if any), and how it ended."""

    acked: list[dict] = field(default_factory=list)
    in_flight: Any = None
    sent: int = 0
    ended_by: str = ""


def burst(todo0: Todo0, token: str, jobs: list[Callable[[int], tuple[str, dict] | None]], kill_after: float) -> list[WriterLog]:
    """Run one writer thread per job (each its own keep-alive connection), SIGKILL todo0 after
    `kill_after` seconds while they write, and return what each writer saw.

    A job is called with a sequence number and returns (tool, arguments), or None when done.
    A write is acknowledged only on HTTP 200 with a JSON-RPC result whose isError is false."""
    logs = [WriterLog() for _ in jobs]
    start = threading.Barrier(len(jobs) + 1)

    def writer(i: int) -> None:
        log, job = logs[i], jobs[i]
        http = requests.Session()
        start.wait()
        n = 0
        while True:
            step = job(n)
            if step is None:
                log.ended_by = "done"
                return
            tool, args = step
            log.in_flight = (tool, args)
            log.sent += 1
            try:
                r = call_tool_raw(http, todo0, token, tool, args, rpc_id=n, timeout=30)
                if r.status_code != 200:
                    log.ended_by = f"HTTP {r.status_code}: {r.text[:200]}"
                    return
                body = r.json()
            except requests.RequestException as e:
                log.ended_by = type(e).__name__
                return
            if "error" in body or body["result"].get("isError") is not False:
                log.ended_by = f"not acknowledged: {body}"
                return
            log.acked.append({"tool": tool, "args": args, "result": body["result"]})
            log.in_flight = None
            n += 1

    threads = [threading.Thread(target=writer, args=(i,), name=f"writer-{i}", daemon=True) for i in range(len(jobs))]
    for t in threads:
        t.start()
    start.wait()
    time.sleep(kill_after)
    todo0.kill9()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads), "a writer hangs after the kill"
    return logs


def assert_writers_were_cut_off(logs: list[WriterLog], todo0: Todo0) -> None:
    """The kill must hit a running burst: every writer acknowledged writes and was then cut off
    by the dead server (a connection error), not by a refusal from a live one."""
    for i, log in enumerate(logs):
        assert log.acked, f"writer {i} got no write acknowledged before the kill ({log.ended_by}){todo0.log_tail()}"
        assert log.ended_by not in ("", "done"), f"writer {i} ran out of work before the kill; make the burst longer"
        assert not log.ended_by.startswith(("HTTP", "not acknowledged")), f"writer {i}: {log.ended_by}{todo0.log_tail()}"


def create_job(prefix: str) -> Callable[[int], tuple[str, dict]]:
    return lambda n: ("create-todo", {"title": f"{prefix}-{n}"})


def test_acknowledged_creates_survive_kill9(fresh_todo0, todo_issuer):
    todo0 = fresh_todo0
    token = mint_access_token(todo_issuer, resource=todo0.resource, uid=new_user(), lifetime=3600)
    acked_ever: dict[int, str] = {}  # id -> title, over all rounds
    figures = []
    for rnd in range(3):
        logs = burst(todo0, token, [create_job(f"r{rnd}-w{w}") for w in range(WRITERS)], kill_after=0.5 + 0.25 * rnd)
        assert_writers_were_cut_off(logs, todo0)
        acked = {a["result"]["structuredContent"]["todo"]["id"]: a["args"]["title"] for log in logs for a in log.acked}
        in_flight_titles = {log.in_flight[1]["title"] for log in logs if log.in_flight}
        n_acked = sum(len(log.acked) for log in logs)
        assert len(acked) == n_acked, "two acknowledged creates got the same id"
        assert not set(acked) & set(acked_ever), f"round {rnd}: an id acknowledged in an earlier round was handed out again"
        acked_ever.update(acked)

        todo0.restart()
        todos = get_todos_raw(todo0, token)
        present = {t["id"]: t["title"] for t in todos}
        lost = {i: t for i, t in acked_ever.items() if present.get(i) != t}
        extra = {i: t for i, t in present.items() if i not in acked_ever}
        figures.append((rnd, n_acked, len(extra), len(in_flight_titles)))
        print(f"\n[durability/create] round {rnd}: {n_acked} creates acknowledged by {WRITERS} writers before kill -9 "
              f"(per writer {[len(l.acked) for l in logs]}), {len(in_flight_titles)} in flight, "
              f"{len(extra)} unacknowledged present after restart, {len(lost)} acknowledged lost")
        assert not lost, f"round {rnd}: {len(lost)} acknowledged creates lost after kill -9, e.g. {list(lost.items())[:5]}{todo0.log_tail()}"
        # Only a write that was in flight at the kill may have landed without its answer.
        assert set(extra.values()) <= in_flight_titles, f"round {rnd}: todos nobody was waiting for: {extra}"
        acked_ever.update(extra)  # committed now: must survive later rounds too
        assert [t["id"] for t in todos] == sorted(present), "get-todos is ordered by id"
        assert {t["id"] for t in rest_todos(todo0, token)} == set(present), "REST and MCP disagree after restart"
    assert all(n > 0 for _, n, _, _ in figures)


def prepare_todos(todo0: Todo0, token: str, count: int, writers: int = WRITERS) -> list[int]:
    """`count` todos created concurrently (and acknowledged) before a burst."""
    ids: list[int] = []
    lock = threading.Lock()
    per = count // writers

    def work(w: int) -> None:
        http = requests.Session()
        for n in range(per):
            res = rpc_result(call_tool_raw(http, todo0, token, "create-todo", {"title": f"prep-{w}-{n}"}))
            with lock:
                ids.append(res["structuredContent"]["todo"]["id"])

    threads = [threading.Thread(target=work, args=(w,)) for w in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(ids) == per * writers
    return sorted(ids)


def test_acknowledged_toggles_survive_kill9(fresh_todo0, todo_issuer):
    """Each writer flips its own 10 todos round-robin, over and over. After kill -9 and a
    restart, every todo shows the state of its last acknowledged toggle, except the one whose
    toggle was in flight (either state)."""
    todo0 = fresh_todo0
    token = mint_access_token(todo_issuer, resource=todo0.resource, uid=new_user(), lifetime=3600)
    ids = prepare_todos(todo0, token, WRITERS * 10)
    mine = [ids[w::WRITERS] for w in range(WRITERS)]
    jobs = [(lambda own: (lambda n: ("toggle-todo", {"id": own[n % len(own)]})))(own) for own in mine]

    logs = burst(todo0, token, jobs, kill_after=0.75)
    assert_writers_were_cut_off(logs, todo0)

    expected: dict[int, bool] = {i: False for i in ids}
    for log in logs:
        for a in log.acked:
            todo = a["result"]["structuredContent"]["todo"]
            assert todo["id"] == a["args"]["id"]
            assert todo["done"] is (not expected[todo["id"]]), f"a toggle did not flip: {a}"
            expected[todo["id"]] = todo["done"]
    uncertain = {log.in_flight[1]["id"] for log in logs if log.in_flight}
    n_acked = sum(len(log.acked) for log in logs)

    todo0.restart()
    state = {t["id"]: t["done"] for t in get_todos_raw(todo0, token)}
    assert set(state) == set(ids), "toggling created or removed todos"
    wrong = {i: (expected[i], state[i]) for i in ids if i not in uncertain and state[i] != expected[i]}
    print(f"\n[durability/toggle] {n_acked} toggles acknowledged before kill -9 (per writer {[len(l.acked) for l in logs]}), "
          f"{len(uncertain)} in flight, {len(wrong)} acknowledged states lost")
    assert not wrong, f"acknowledged toggles lost after kill -9 (id: (expected, actual)): {wrong}{todo0.log_tail()}"


def test_acknowledged_deletes_survive_kill9(fresh_todo0, todo_issuer):
    """Each writer deletes its own share of 2000 todos in order. After kill -9 and a restart,
    every acknowledged delete stays deleted and every todo not yet asked about is still there."""
    todo0 = fresh_todo0
    token = mint_access_token(todo_issuer, resource=todo0.resource, uid=new_user(), lifetime=3600)
    ids = prepare_todos(todo0, token, 2000)
    mine = [ids[w::WRITERS] for w in range(WRITERS)]
    jobs = [(lambda own: (lambda n: ("delete-todo", {"id": own[n]}) if n < len(own) else None))(own) for own in mine]

    logs = burst(todo0, token, jobs, kill_after=0.6)
    assert_writers_were_cut_off(logs, todo0)

    deleted = {a["args"]["id"] for log in logs for a in log.acked}
    for log in logs:
        for a in log.acked:
            assert a["result"]["structuredContent"]["todo"]["id"] == a["args"]["id"] and a["result"]["structuredContent"]["deleted"] is True
    uncertain = {log.in_flight[1]["id"] for log in logs if log.in_flight}
    untouched = set(ids) - deleted - uncertain

    todo0.restart()
    present = {t["id"] for t in get_todos_raw(todo0, token)}
    resurrected = deleted & present
    missing = untouched - present
    print(f"\n[durability/delete] {len(deleted)} deletes acknowledged before kill -9 (per writer {[len(l.acked) for l in logs]}), "
          f"{len(uncertain)} in flight, {len(resurrected)} deleted todos back after restart")
    assert not resurrected, f"acknowledged deletes undone by kill -9: {sorted(resurrected)[:20]}{todo0.log_tail()}"
    assert not missing, f"todos nobody deleted are gone: {sorted(missing)[:20]}"
    assert present <= set(ids)


# =========================================================================== 5. concurrent writers


def test_concurrent_writers_lose_no_update(todo0, todo_issuer):
    token = mint_access_token(todo_issuer, resource=todo0.resource, uid=new_user())
    threads_n, per_thread = 8, 25
    results: list[list[dict]] = [[] for _ in range(threads_n)]
    errors: list[str] = []
    start = threading.Barrier(threads_n)

    def work(w: int) -> None:
        http = requests.Session()
        start.wait()
        for n in range(per_thread):
            try:
                res = rpc_result(call_tool_raw(http, todo0, token, "create-todo", {"title": f"c-{w}-{n}"}, rpc_id=f"{w}-{n}"))
                assert res["isError"] is False, res
                results[w].append(res["structuredContent"]["todo"])
            except BaseException as e:  # noqa: BLE001 (reported below)
                errors.append(f"writer {w} #{n}: {e!r}")
                return

    threads = [threading.Thread(target=work, args=(w,)) for w in range(threads_n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors[:5]
    created = [t for r in results for t in r]
    assert len(created) == threads_n * per_thread
    ids = {t["id"] for t in created}
    assert len(ids) == threads_n * per_thread, f"{len(ids)} distinct ids for {len(created)} creates"
    listed = get_todos_raw(todo0, token)
    assert len(listed) == threads_n * per_thread, len(listed)
    assert {t["id"]: t["title"] for t in listed} == {t["id"]: t["title"] for t in created}
    assert len(rest_todos(todo0, token)) == threads_n * per_thread


def test_sigterm_ends_an_open_get_stream_and_the_server_stops(fresh_todo0, todo_issuer):
    """A client holding the server-to-client (GET) stream open must not hold a graceful shutdown
    for the whole grace period: the stream ends, and todo0 exits on SIGTERM by itself (before,
    each one kept todo0 until stop_process's SIGKILL)."""
    todo0 = fresh_todo0
    token = mint_access_token(todo_issuer, resource=todo0.resource, uid=new_user(), lifetime=3600)
    headers = {"Authorization": f"Bearer {token}", "Accept": ACCEPT, "Content-Type": "application/json"}
    init = requests.post(todo0.mcp_url, headers=headers, timeout=10, json={
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": LATEST_HANDSHAKE_VERSION, "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}})
    assert init.status_code == 200, init.text
    headers.update({"Mcp-Session-Id": init.headers["Mcp-Session-Id"], "MCP-Protocol-Version": LATEST_HANDSHAKE_VERSION,
                    "Accept": "text/event-stream"})
    stream = requests.get(todo0.mcp_url, headers=headers, stream=True, timeout=30)
    assert stream.status_code == 200 and stream.headers["Content-Type"].startswith("text/event-stream")
    assert next(stream.iter_lines()).startswith(b": stream open")
    todo0.proc.terminate()
    try:
        code = todo0.proc.wait(timeout=8)  # stop_process's grace is 10 s
    finally:
        stream.close()
    assert code == 0, f"todo0 exited with {code} after SIGTERM with a GET stream open{todo0.log_tail()}"
