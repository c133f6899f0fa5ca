"""The audit trail: one record per proxied call, matching the calls one to one (count and
fields), no token or key in it, readable with `switchboard audit` and `GET /api/audit` (admin
token only), and durable across a `kill -9` of the gateway for every call answered more than
the writer's batch interval (100 ms) before it — the honest bound: records of calls answered
within the last interval before the kill may be lost, because they are written off the
request path in batches.
"""

from __future__ import annotations

import json
import re
import signal
import sqlite3
import subprocess
import time
import uuid

import pytest
import requests

from idp_fixtures import USERS
from interop_helpers import switchboard_binary
from system_fixtures import REPO_ROOT, System, login, system  # noqa: F401  (system is a fixture)

JWT_RE = re.compile(rb"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{16,}")
ACCEPT = "application/json, text/event-stream"
POLICY = """
policies:
  - name: admins-delete
    deny: { connection: todo0, tool: delete-todo, claims: { groups: { not_contains: admins } } }
"""


def rpc(url: str, token: str, body: dict, session: str | None = None) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}", "Accept": ACCEPT}
    if session:
        headers.update({"Mcp-Session-Id": session, "MCP-Protocol-Version": "2025-11-25"})
    return requests.post(url, json=body, headers=headers, timeout=60)


def mcp_session(url: str, token: str, calls: list[tuple[str, dict]]) -> list[requests.Response]:
    """initialize, notifications/initialized, the tool calls, DELETE: exactly len(calls) + 3 requests."""
    init = rpc(url, token, {"jsonrpc": "2.0", "id": 0, "method": "initialize",
                            "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "a", "version": "1"}}})
    assert init.status_code == 200, init.text
    session = init.headers["Mcp-Session-Id"]
    assert rpc(url, token, {"jsonrpc": "2.0", "method": "notifications/initialized"}, session).status_code == 202
    out = [rpc(url, token, {"jsonrpc": "2.0", "id": i + 1, "method": "tools/call", "params": {"name": n, "arguments": a}}, session)
           for i, (n, a) in enumerate(calls)]
    requests.delete(url, headers={"Authorization": f"Bearer {token}", "Mcp-Session-Id": session, "MCP-Protocol-Version": "2025-11-25"}, timeout=30)
    return out


@pytest.fixture(scope="module")
def audited(system: System):
    token = "adm-" + uuid.uuid4().hex
    token_file = system.base / "audit-admin-token"
    token_file.write_text(token)
    original = system.config_path.read_text()
    # todo0 keeps its tool arguments in the trail, with `title` redacted.
    keep = original.replace("  - name: todo0\n", "  - name: todo0\n    audit: {arguments: true, redact: [title]}\n", 1)
    assert keep != original
    system.apply_config(keep + POLICY + f"\ngateway:\n  audit:\n    admin_token: file:{token_file}\n")
    bob, _ = login(system.idp, "bob")
    yield system, token, bob["id_token"], system.config_path.parent / ".switchboard" / "audit.sqlite"
    system.config_path.write_text(original)


def audit_cli(db, *args: str) -> list[dict]:
    out = subprocess.run([str(switchboard_binary(REPO_ROOT)), "audit", "--db", str(db), "--json", "--limit", "1000", *args],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    fields = ("sub", "email", "mcp_method", "tool", "rest_method", "path", "rule", "error", "arguments")  # absent when null
    return [dict({f: None for f in fields}, **json.loads(line)) for line in out.stdout.splitlines() if line.strip()]


def test_records_match_the_calls_one_to_one_and_hold_no_secret(audited):
    system, admin, bob, db = audited
    start = time.time()
    url = system.mcp_url("todo0")
    secret_title = "audited-" + uuid.uuid4().hex
    alice_answers = mcp_session(url, system.alice_id_token, [("get-todos", {}), ("create-todo", {"title": secret_title})])
    bob_answers = mcp_session(url, bob, [("delete-todo", {"id": 1})])
    assert all(a.status_code == 200 for a in alice_answers + bob_answers)
    assert bob_answers[0].json()["result"]["isError"] is True
    time.sleep(0.5)  # the writer's batch interval is 100 ms

    records = [r for r in audit_cli(db, "--since", str(start)) if r["connection"] == "todo0"]
    by_user = {}
    for r in records:
        by_user.setdefault(r["email"], []).append(r)
    alice, bobs = sorted(by_user["alice@example.test"], key=lambda r: r["time"]), sorted(by_user["bob@example.test"], key=lambda r: r["time"])
    # Each session: initialize, notifications/initialized, its calls, DELETE — one record each.
    assert [r["mcp_method"] for r in alice] == ["initialize", "notifications/initialized", "tools/call", "tools/call", "DELETE"], alice
    assert [r["tool"] for r in alice if r["mcp_method"] == "tools/call"] == ["get-todos", "create-todo"]
    assert all(r["decision"] == "allowed" and r["kind"] == "mcp" and r["sub"] for r in alice), alice
    assert [r["status"] for r in alice] == [200, 202, 200, 200, 200], alice
    assert any(r["step_ups"] >= 1 for r in alice if r["tool"] == "create-todo"), "create-todo needs mcp:tools:manage: one step-up"
    # Arguments kept for todo0 (audit.arguments), the named field redacted; never the value.
    assert [json.loads(r["arguments"]) for r in alice if r["mcp_method"] == "tools/call"] == [{}, {"title": "<redacted>"}], alice
    for path in db.parent.glob("audit.sqlite*"):
        assert secret_title.encode() not in path.read_bytes(), f"a redacted argument reached {path.name}"
    denied = [r for r in bobs if r["mcp_method"] == "tools/call"]
    assert len(bobs) == 4 and len(denied) == 1, bobs
    assert denied[0]["decision"] == "denied" and denied[0]["rule"] == "admins-delete" and denied[0]["tool"] == "delete-todo", denied
    assert len({r["request_id"] for r in records}) == len(records)
    assert {r["sub"] for r in alice} == {USERS["alice"]["id"]}

    # No token, key or cookie in the database file (WAL included) or in the output.
    for path in db.parent.glob("audit.sqlite*"):
        assert not JWT_RE.search(path.read_bytes()), f"a JWT-shaped string in {path.name}"
    assert not JWT_RE.search(json.dumps(records).encode())

    # Filters.
    only_bob_denied = audit_cli(db, "--user", "bob@example.test", "--decision", "denied", "--since", str(start))
    assert [r["rule"] for r in only_bob_denied] == ["admins-delete"], only_bob_denied
    assert {r["tool"] for r in audit_cli(db, "--tool", "create-todo", "--since", str(start))} == {"create-todo"}

    # The HTTP API: the admin token only.
    api = system.gateway.url + "/api/audit"
    assert requests.get(api, timeout=10).status_code == 401
    assert requests.get(api, headers={"Authorization": f"Bearer {system.alice_id_token}"}, timeout=10).status_code == 401
    r = requests.get(api, params={"user": "bob@example.test", "decision": "denied", "since": start},
                     headers={"Authorization": f"Bearer {admin}"}, timeout=10)
    assert r.status_code == 200 and [x["rule"] for x in r.json()["records"]] == ["admins-delete"], r.text
    # The panel's card counts the refusal.
    card = system.connection("todo0")
    assert card["counts"]["denied"] >= 1, card["counts"]


def test_a_call_no_step_reads_is_recorded_with_its_method_and_tool(audited):
    """Without a policy or a rate limit nothing on the way reads the body: the record still names
    the MCP method and tool (read from the body when the record is made), arguments kept too."""
    system, _, _, db = audited
    governed = system.config_path.read_text()
    assert POLICY in governed
    system.apply_config(governed.replace(POLICY, ""))
    try:
        start = time.time()
        answers = mcp_session(system.mcp_url("todo0"), system.alice_id_token, [("get-todos", {}), ("create-todo", {"title": "plain"})])
        assert [a.status_code for a in answers] == [200, 200], [a.text for a in answers]
        time.sleep(0.5)  # the writer's batch interval is 100 ms
        records = [r for r in audit_cli(db, "--since", str(start)) if r["connection"] == "todo0"][::-1]
    finally:
        system.apply_config(governed)
    assert [r.get("mcp_method") for r in records] == ["initialize", "notifications/initialized", "tools/call", "tools/call", "DELETE"], records
    assert [r.get("tool") for r in records if r.get("mcp_method") == "tools/call"] == ["get-todos", "create-todo"], records
    assert [json.loads(r["arguments"]) for r in records if r.get("mcp_method") == "tools/call"] == [{}, {"title": "<redacted>"}], records


def test_records_of_answered_calls_survive_a_kill_9(audited):
    system, _, _, db = audited
    start = time.time()
    answers = mcp_session(system.mcp_url("todo0"), system.alice_id_token, [("get-todos", {})] * 5)
    assert all(a.status_code == 200 for a in answers)
    time.sleep(0.3)  # longer than the batch interval: these are acknowledged
    system.gateway.proc.send_signal(signal.SIGKILL)
    system.gateway.proc.wait(timeout=10)
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        n = con.execute("SELECT count(*) FROM audit WHERE time >= ? AND tool = 'get-todos'", (start,)).fetchone()[0]
    finally:
        con.close()
    assert n == 5, f"{n} of 5 answered calls are in the trail after kill -9"
