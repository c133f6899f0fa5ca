"""The gateway's own MCP endpoint, `/mcp`, through the official Python MCP SDK client: one
list of every MCP server alice may reach (todo0 via idjag, the GitHub stand-in via oauth-sts,
a third Python-SDK server via `none` added while the client is connected), each call routed to
its server under alice's own credential for it, consent and failures told per server, list
changes pushed, virtual servers, and upstream sessions re-opened when an upstream forgets them.

The whole system runs as subprocesses (system_fixtures.py); the gateway's connections.yaml is
a copy the tests edit while it runs.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import httpx2
import jwt
import requests
import pytest
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

from idp_fixtures import GITHUB_AUDIENCE
from interop_helpers import free_port, stop_process, wait_for_port, wait_until
from mcp_client import CALL_TIMEOUT, Notes, call_tool, http, list_tools, meta_of, run, text_of
from mcp_client import sdk_session as with_session
from system_fixtures import TODO0_RESOURCE, System, consent, login, system  # noqa: F401  (system is a fixture)

HERE = Path(__file__).resolve().parent
TODO_TOOLS = {"todo0__get-todos", "todo0__create-todo", "todo0__toggle-todo", "todo0__delete-todo"}
GITHUB_TOOLS = {"github-mcp__get_me", "github-mcp__add_pull_request_comment"}
UNAVAILABLE = "switchboard/unavailable"
FAILURE = "switchboard/failure"


# --------------------------------------------------------------------------- helpers


def claims(bearer: str) -> dict:
    return jwt.decode(bearer.removeprefix("Bearer "), options={"verify_signature": False})


def last_token(relay) -> str:
    tokens = [line for line in relay.sent_text().splitlines() if line.lower().startswith("authorization: bearer ")]
    assert tokens, "no credential reached the upstream"
    return tokens[-1].split(":", 1)[1].strip()


def posts(relay) -> int:
    """The POSTs the gateway sent through `relay` (a closed session's DELETE may come late, in the background)."""
    return sum(1 for line in relay.request_lines() if line.startswith("POST "))


def connection_loaded(system: System, name: str, present: bool = True) -> bool:
    names = {c["name"] for c in system.status()["connections"]}
    return (name in names) == present


@pytest.fixture(scope="module")
def weather(tmp_path_factory):
    """The third MCP server (official Python SDK), not yet in connections.yaml."""
    base = tmp_path_factory.mktemp("weather")
    port = free_port()
    server = {"port": port, "call_log": base / "calls.jsonl", "log": base / "weather.log", "proc": None}

    def start() -> None:
        with open(server["log"], "ab") as out:
            server["proc"] = subprocess.Popen(
                [sys.executable, str(HERE / "third_mcp_server.py"), str(port), "--call-log", str(server["call_log"]), "--dynamic"],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, cwd=str(HERE))
        wait_for_port(port, server["proc"], timeout=30, what="the third MCP server", log=server["log"])

    server["start"] = start
    start()
    try:
        yield server
    finally:
        stop_process(server["proc"])


# =========================================================================== tests, in order


def test_one_list_from_every_server_with_consent_missing_named(system: System):
    url = system.gateway.url + "/mcp"
    tools = list_tools(url, system.alice_id_token)
    names = {t.name for t in tools.tools}
    assert TODO_TOOLS <= names, names
    assert not names & GITHUB_TOOLS, "GitHub's tools are listed before alice consented"
    assert all("__" in n for n in names), names
    unavailable = meta_of(tools).get(UNAVAILABLE, [])
    github = [u for u in unavailable if u["connection"] == "github-mcp"]
    assert len(github) == 1 and github[0]["code"] == "interaction_required" and github[0]["interaction_uri"].startswith("http"), unavailable
    assert {u["connection"] for u in unavailable} == {"github-mcp"}, unavailable

    # The panel's view of the same: per connection, the tools alice sees or why there are none.
    doc = requests.get(system.gateway.url + "/api/tools", headers={"Authorization": f"Bearer {system.alice_id_token}"}, timeout=30)
    assert doc.status_code == 200, doc.text
    by_name = {c["name"]: c for c in doc.json()["connections"]}
    assert {t["qualified_name"] for t in by_name["todo0"]["tools"]} == TODO_TOOLS and not by_name["todo0"]["consent_required"]
    assert all(t["description"] for t in by_name["todo0"]["tools"]), by_name["todo0"]
    assert by_name["github-mcp"]["consent_required"] and by_name["github-mcp"]["tools"] == [], by_name["github-mcp"]
    assert by_name["github-mcp"]["interaction_uri"].startswith(system.idp.issuer), by_name["github-mcp"]
    assert requests.get(system.gateway.url + "/api/tools", timeout=10).status_code == 401


def test_calls_are_routed_under_alices_own_credential_per_server(system: System):
    url = system.gateway.url + "/mcp"
    alice = claims(system.alice_id_token)
    result = call_tool(url, system.alice_id_token, "todo0__get-todos", {})
    assert not result.is_error, text_of(result)
    token = claims(last_token(system.todo0_relay))
    assert token["sub"] == alice["sub"] and token["aud"] == TODO0_RESOURCE, token
    assert system.alice_id_token not in system.todo0_relay.sent_text(), "the ID token reached todo0"

    # GitHub needs consent: a tool error a model can read, carrying where to consent.
    refused = call_tool(url, system.alice_id_token, "github-mcp__get_me", {})
    assert refused.is_error, text_of(refused)
    failure = meta_of(refused)[FAILURE]
    assert failure["code"] == "interaction_required" and failure["connection"] == "github-mcp", failure
    assert failure["interaction_uri"] in text_of(refused), text_of(refused)

    # After consent its tools appear, and a call runs under the STS token for GitHub's MCP audience.
    consent(system.alice_browser, failure["interaction_uri"])
    names = {t.name for t in list_tools(url, system.alice_id_token).tools}
    assert GITHUB_TOOLS <= names and TODO_TOOLS <= names, names
    me = call_tool(url, system.alice_id_token, "github-mcp__get_me", {})
    assert not me.is_error, text_of(me)
    github = claims(last_token(system.isv_relay))
    assert github["aud"] in (GITHUB_AUDIENCE, GITHUB_AUDIENCE + "/mcp"), github


def proxied_lines(system: System, connection: str) -> list[str]:
    return [line for line in system.gateway.log_text().splitlines() if "proxied" in line and f"connection={connection}" in line]


def test_warm_calls_via_mcp_take_the_event_loop_and_answer_like_the_direct_route(system: System):
    """The second and later tools/call in a session (token verified, credential and upstream
    session at hand) are forwarded by the event-loop driver: the access log says `via=event-loop`
    for them, the first (which opens the upstream session) `via=aggregate`; the answers carry the
    gateway's session id, never the upstream's, and say what the direct route says."""
    url = system.gateway.url + "/mcp"
    out: dict[str, Any] = {}
    before = len(proxied_lines(system, "todo0"))

    async def body(session: ClientSession) -> None:
        out["results"] = [await session.call_tool("todo0__get-todos", {}) for _ in range(4)]

    responses: list = []

    async def scenario() -> None:
        async with http(system.alice_id_token) as client:
            async def record(resp: httpx2.Response) -> None:
                responses.append((resp.request.method, resp.status_code, resp.headers.get("mcp-session-id")))
            client.event_hooks["response"] = [record]
            async with streamable_http_client(url, http_client=client) as (read, write):
                async with ClientSession(read, write) as session:
                    with anyio.fail_after(CALL_TIMEOUT):
                        await session.initialize()
                        await body(session)

    run(scenario)
    texts = [text_of(r) for r in out["results"]]
    assert not any(r.is_error for r in out["results"]) and len(set(texts)) == 1, texts
    direct = requests.post(system.mcp_url("todo0"), json={"jsonrpc": "2.0", "id": 9, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "d", "version": "1"}}},
        headers={"Authorization": f"Bearer {system.alice_id_token}", "Accept": "application/json, text/event-stream"}, timeout=30)
    assert direct.status_code == 200, direct.text
    upstream_session = direct.headers["Mcp-Session-Id"]
    sessions = {sid for method, status, sid in responses if method == "POST" and status == 200}
    assert len(sessions) == 1 and upstream_session not in sessions, responses
    lines = proxied_lines(system, "todo0")[before:]
    via = [line.split("via=", 1)[1].split()[0] for line in lines if "method=POST" in line]
    assert via.count("event-loop") >= 3 and "aggregate" in via, lines


def test_raw_protocol_step_up_unknown_tools_sessions(system: System):
    url = system.gateway.url + "/mcp"
    body = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}}}
    headers = {"Authorization": f"Bearer {system.alice_id_token}", "Accept": "application/json, text/event-stream"}
    init = requests.post(url, json=body, headers=headers, timeout=30)
    assert init.status_code == 200, init.text
    session = init.headers["Mcp-Session-Id"]
    headers.update({"Mcp-Session-Id": session, "MCP-Protocol-Version": "2025-11-25"})
    # A tool that needs a wider scope: the gateway steps up on the way and says so, as on /mcp/todo0.
    created = requests.post(url, json={"jsonrpc": "2.0", "id": 5, "method": "tools/call",
                                       "params": {"name": "todo0__create-todo", "arguments": {"title": "via /mcp"}}}, headers=headers, timeout=60)
    assert created.status_code == 200 and created.json()["result"]["isError"] is False, created.text
    assert "mcp:tools:manage" in created.headers.get("Switchboard-Step-Up", ""), dict(created.headers)
    before = (posts(system.todo0_relay), posts(system.isv_relay))
    for name in ("nowhere__tool", "todo0", "no-separator"):
        r = requests.post(url, json={"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": name, "arguments": {}}},
                          headers=headers, timeout=30)
        assert r.status_code == 200 and r.json()["error"]["code"] == -32602, r.text
    # Without an ID token: 401 with the gateway's error shape.
    assert requests.post(url, json=body, timeout=10).status_code == 401
    assert (posts(system.todo0_relay), posts(system.isv_relay)) == before
    # Another user's token with alice's session id: refused as unknown.
    bob, _ = login(system.idp, "bob")
    as_bob = dict(headers, Authorization=f"Bearer {bob['id_token']}")
    r = requests.post(url, json={"jsonrpc": "2.0", "id": 4, "method": "tools/list"}, headers=as_bob, timeout=10)
    assert r.status_code == 404, r.text
    assert requests.delete(url, headers=headers, timeout=10).status_code == 200
    gone = requests.post(url, json={"jsonrpc": "2.0", "id": 3, "method": "tools/list"}, headers=headers, timeout=10)
    assert gone.status_code == 404, gone.text


def test_a_server_added_while_connected_is_announced_and_listed_then_disabled(system: System, weather):
    url = system.gateway.url + "/mcp"
    notes = Notes()
    seen: dict[str, Any] = {}
    original = system.config_path.read_text()

    async def body(session: ClientSession) -> None:
        seen["before"] = {t.name for t in (await session.list_tools()).tools}
        with open(system.config_path, "a") as f:
            f.write("\n  - name: weather\n    kind: mcp_server\n    title: Weather\n"
                    f"    upstream: http://127.0.0.1:{weather['port']}/mcp\n    auth:\n      strategy: none\n")
        with anyio.fail_after(30):
            while "notifications/tools/list_changed" not in notes.methods:
                await anyio.sleep(0.1)
        seen["after"] = {t.name for t in (await session.list_tools()).tools}
        seen["call"] = await session.call_tool("weather__weather_forecast", {"city": "Lisbon"})
        seen["prompts"] = {p.name for p in (await session.list_prompts()).prompts}
        seen["prompt"] = await session.get_prompt("weather__forecast_prompt", {"city": "Braga"})
        seen["resources"] = {str(r.uri) for r in (await session.list_resources()).resources}
        seen["resource"] = await session.read_resource("switchboard://weather/weather%3A%2F%2Fcities")
        notes.methods.clear()
        system.config_path.write_text(original + "\n  - name: weather\n    kind: mcp_server\n    enabled: false\n"
                                      f"    upstream: http://127.0.0.1:{weather['port']}/mcp\n    auth:\n      strategy: none\n")
        with anyio.fail_after(30):
            while "notifications/tools/list_changed" not in notes.methods:
                await anyio.sleep(0.1)
        seen["disabled"] = {t.name for t in (await session.list_tools()).tools}

    try:
        run(with_session, url, system.alice_id_token, body, notes)
    finally:
        system.config_path.write_text(original)
        wait_until(lambda: connection_loaded(system, "weather", present=False), 30, "the gateway to drop 'weather'")
    assert not any(n.startswith("weather__") for n in seen["before"]), seen["before"]
    assert "weather__weather_forecast" in seen["after"], seen["after"]
    assert not seen["call"].is_error and "Lisbon" in text_of(seen["call"]), text_of(seen["call"])
    assert [json.loads(line) for line in weather["call_log"].read_text().splitlines()] == [{"city": "Lisbon"}]
    # Prompts and resources merge and route the same way (todo0 and GitHub have none: no error for that).
    assert seen["prompts"] == {"weather__forecast_prompt"}, seen["prompts"]
    assert "Braga" in json.dumps([m.content.model_dump() for m in seen["prompt"].messages]), seen["prompt"]
    assert seen["resources"] == {"switchboard://weather/weather%3A%2F%2Fcities"}, seen["resources"]
    (content,) = seen["resource"].contents
    assert content.text == "Lisbon, Porto, Faro" and str(content.uri) == "switchboard://weather/weather%3A%2F%2Fcities", content
    assert not any(n.startswith("weather__") for n in seen["disabled"]), seen["disabled"]
    assert TODO_TOOLS <= seen["disabled"]


def test_a_change_an_upstream_announces_itself_reaches_the_client(system: System, weather):
    url = system.gateway.url + "/mcp"
    original = system.config_path.read_text()
    system.config_path.write_text(original + "\n  - name: weather\n    kind: mcp_server\n"
                                  f"    upstream: http://127.0.0.1:{weather['port']}/mcp\n    auth:\n      strategy: none\n")
    notes = Notes()
    seen: dict[str, Any] = {}
    try:
        wait_until(lambda: connection_loaded(system, "weather"), 30, "the gateway to load 'weather'")

        async def body(session: ClientSession) -> None:
            seen["before"] = {t.name for t in (await session.list_tools()).tools}  # opens the upstream sessions
            await anyio.sleep(1)  # the gateway follows each upstream session's stream (polled every 250 ms)
            notes.methods.clear()
            seen["scheduled"] = await session.call_tool("weather__add_alerts_tool", {})
            with anyio.fail_after(20):
                while "notifications/tools/list_changed" not in notes.methods:
                    await anyio.sleep(0.1)
            seen["after"] = {t.name for t in (await session.list_tools()).tools}

        run(with_session, url, system.alice_id_token, body, notes)
    finally:
        system.config_path.write_text(original)
        wait_until(lambda: connection_loaded(system, "weather", present=False), 30, "the gateway to drop 'weather'")
    assert not seen["scheduled"].is_error, text_of(seen["scheduled"])
    assert "weather__weather_alerts" not in seen["before"] and "weather__weather_alerts" in seen["after"], seen


def test_an_upstream_that_restarts_is_reinitialised_transparently(system: System, weather):
    url = system.gateway.url + "/mcp"
    original = system.config_path.read_text()
    system.config_path.write_text(original + "\n  - name: weather\n    kind: mcp_server\n"
                                  f"    upstream: http://127.0.0.1:{weather['port']}/mcp\n    auth:\n      strategy: none\n")
    try:
        wait_until(lambda: connection_loaded(system, "weather"), 30, "the gateway to load 'weather'")
        out: dict[str, Any] = {}

        async def body(session: ClientSession) -> None:
            out["first"] = await session.call_tool("weather__weather_forecast", {"city": "Porto"})
            # The upstream restarts: it forgets the session the gateway opened for alice.
            stop_process(weather["proc"])
            await anyio.to_thread.run_sync(weather["start"])
            out["second"] = await session.call_tool("weather__weather_forecast", {"city": "Faro"})

        run(with_session, url, system.alice_id_token, body)
        assert not out["first"].is_error and not out["second"].is_error, (text_of(out["first"]), text_of(out["second"]))
        assert "Faro" in text_of(out["second"])
        cities = [json.loads(line)["city"] for line in weather["call_log"].read_text().splitlines()]
        assert cities[-2:] == ["Porto", "Faro"], cities
    finally:
        system.config_path.write_text(original)
        wait_until(lambda: connection_loaded(system, "weather", present=False), 30, "the gateway to drop 'weather'")


def test_a_virtual_server_offers_exactly_its_globs(system: System):
    original = system.config_path.read_text()
    system.config_path.write_text(original + "\nvirtual_servers:\n  - name: reader\n    title: Read-only todos\n"
                                  "    include: ['todo0__get-*', 'github-mcp__*']\n    exclude: ['github-mcp__add_*']\n")
    url = system.gateway.url + "/mcp/v/reader"
    try:
        def served() -> set[str] | None:
            r = requests.get(url, headers={"Authorization": f"Bearer {system.alice_id_token}"}, timeout=10)
            return None if r.status_code == 404 and "unknown_virtual_server" in r.text else {"ok"}

        wait_until(served, 30, "the gateway to load the virtual server")
        names = {t.name for t in list_tools(url, system.alice_id_token).tools}
        assert names == {"todo0__get-todos", "github-mcp__get_me"}, names
        before = posts(system.todo0_relay)
        refused = call_tool(url, system.alice_id_token, "todo0__create-todo", {"title": "never"})
        assert refused.is_error and "not offered" in text_of(refused), text_of(refused)
        # The refusal sent nothing to todo0 (not even an initialize: none is needed to refuse).
        assert posts(system.todo0_relay) == before
        allowed = call_tool(url, system.alice_id_token, "todo0__get-todos", {})
        assert not allowed.is_error, text_of(allowed)
        missing = requests.post(system.gateway.url + "/mcp/v/nowhere", json={"jsonrpc": "2.0", "id": 1, "method": "ping"},
                                headers={"Authorization": f"Bearer {system.alice_id_token}"}, timeout=10)
        assert missing.status_code == 404 and missing.json()["error"] == "unknown_virtual_server", missing.text
    finally:
        system.config_path.write_text(original)
