"""Replicas behind a load balancer: Debian's nginx, round-robin, no stickiness, in front of the
cluster of replica_fixtures.py (two gateway replicas sharing state in PostgreSQL).

    mcp SDK / requests ──> nginx ──┬──> replica A ──┬── PostgreSQL 15
                   (round-robin; its   └──> replica B ──┘   IdP, todo0, ISV stand-in (:7000)
                    access log says which replica served which request of which session)

1. One MCP session on the aggregated `/mcp`, opened through nginx, keeps working while its calls
   alternate replicas: the replica that did not open it takes the sealed session id up. The
   same through `/mcp/todo0` (todo0's own session id passes through).
2. A session id no replica sealed (random, altered, another user's) is unknown on every replica.
3. Consent given after a call on replica A: the same user's call on replica B works without a
   new consent and without a new STS exchange (the credential A stored).
4. kill -9 of a replica during a load run through nginx: no caller ever gets another's todos,
   only calls in flight at the kill fail, and from 2 s after it every call succeeds on B.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import uuid
from urllib.parse import urlsplit

import pytest
import requests

from interop_helpers import stop_process
from mcp_client import call_tools, run, sdk_session, text_of
from replica_fixtures import cluster  # noqa: F401  (a fixture)
from system_fixtures import consent, login, start_isv, start_nginx
from todo0_fixtures import ACCEPT, rpc_result, stateless_body, stateless_headers

HANDSHAKE_VERSION = "2025-06-18"
SESSION_STARTED = "mcp session started"  # the gateway's log line at `initialize` on /mcp


@pytest.fixture(scope="module")
def lb(cluster, tmp_path_factory):  # noqa: F811
    n = start_nginx(tmp_path_factory.mktemp("nginx"), [r.url for r in cluster.replicas])
    try:
        yield n
    finally:
        stop_process(n.proc)


# --------------------------------------------------------------------------- helpers


def addr(service) -> str:
    return urlsplit(service.url).netloc


def rpc_method(line: dict) -> str | None:
    try:
        return json.loads(line["body"]).get("method")
    except (ValueError, AttributeError):
        return None


def todos(result) -> list[dict]:
    assert not result.is_error, text_of(result)
    return result.structured_content["todos"]


def initialize(url: str, token: str) -> requests.Response:
    return requests.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": HANDSHAKE_VERSION, "capabilities": {}, "clientInfo": {"name": "scale-out", "version": "1"}}},
        headers={"Authorization": f"Bearer {token}", "Accept": ACCEPT}, timeout=30)


def list_in_session(url: str, token: str, session: str) -> requests.Response:
    return requests.post(url, json={"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {}},
                         headers={"Authorization": f"Bearer {token}", "Accept": ACCEPT, "Mcp-Session-Id": session,
                                  "MCP-Protocol-Version": HANDSHAKE_VERSION}, timeout=30)


def stateless_call(http: requests.Session, base_url: str, token: str, tool: str, arguments: dict | None = None,
                   timeout: float = 10) -> requests.Response:
    """One 2026-07-28 tools/call POST to `/mcp/todo0` (no session: one request per call)."""
    return http.post(base_url + "/mcp/todo0", json=stateless_body("tools/call", {"name": tool, "arguments": arguments or {}}),
                     headers=stateless_headers(token, "tools/call", tool), timeout=timeout)


# =========================================================================== 1. one session, both replicas


def test_one_mcp_session_through_nginx_is_served_by_both_replicas(cluster, lb):  # noqa: F811
    alice, _ = login(cluster.idp, "alice")
    title = f"alice-{uuid.uuid4().hex[:8]}-session"
    started = [r.log_text().count(SESSION_STARTED) for r in cluster.replicas]
    out: dict = {"gets": []}

    async def body(s) -> None:
        out["tools"] = await s.list_tools()
        out["created"] = await s.call_tool("todo0__create-todo", {"title": title})
        todo_id = out["created"].structured_content["todo"]["id"]
        out["toggled"] = await s.call_tool("todo0__toggle-todo", {"id": todo_id})
        for _ in range(5):
            out["gets"].append(await s.call_tool("todo0__get-todos", {}))

    run(sdk_session, lb.url + "/mcp", alice["id_token"], body)

    names = {t.name for t in out["tools"].tools}
    assert {"todo0__get-todos", "todo0__create-todo", "todo0__toggle-todo"} <= names, names
    assert not out["created"].is_error and not out["toggled"].is_error, (text_of(out["created"]), text_of(out["toggled"]))
    for result in out["gets"]:
        assert [t["done"] for t in todos(result) if t["title"] == title] == [True], todos(result)

    # What nginx saw: one initialize, whose answer named the session; every later request of it.
    log = lb.access()
    inits = [line for line in log if line["uri"] == "/mcp" and rpc_method(line) == "initialize" and line["new_session"]]
    assert len(inits) == 1, inits
    session, opener = inits[0]["new_session"], inits[0]["upstream"]
    assert "." in session and len(session) > 64, f"not a sealed session id: {session!r}"
    mine = [line for line in log if line["session"] == session]
    calls = [line for line in mine if rpc_method(line) == "tools/call"]
    assert len(calls) == 7 and all(line["status"] == "200" for line in calls), calls
    served = {line["upstream"] for line in mine if rpc_method(line) in ("tools/list", "tools/call")}
    assert served == {addr(r) for r in cluster.replicas}, f"one session, calls served by {served}"
    # The other replica did not start a session of its own: it took this one up.
    other = next(i for i, r in enumerate(cluster.replicas) if addr(r) != opener)
    now = [r.log_text().count(SESSION_STARTED) for r in cluster.replicas]
    assert now[other] == started[other] and now[1 - other] == started[1 - other] + 1, (started, now)


def test_pass_through_mcp_todo0_session_through_nginx(cluster, lb):  # noqa: F811
    bob, _ = login(cluster.idp, "bob")
    results = call_tools(lb.url + "/mcp/todo0", bob["id_token"], [("get-todos", {})] * 4)
    assert all(not r.is_error and isinstance(r.structured_content, dict) for r in results), [text_of(r) for r in results]
    log = lb.access()
    inits = [line for line in log if line["uri"] == "/mcp/todo0" and rpc_method(line) == "initialize" and line["new_session"]]
    session = inits[-1]["new_session"]
    calls = [line for line in log if line["session"] == session and rpc_method(line) == "tools/call"]
    assert len(calls) == 4 and all(line["status"] == "200" for line in calls), calls
    assert {line["upstream"] for line in calls} == {addr(r) for r in cluster.replicas}, calls


# =========================================================================== 2. ids no replica sealed


def test_a_session_id_no_replica_sealed_for_this_user_is_unknown_everywhere(cluster):  # noqa: F811
    alice, _ = login(cluster.idp, "alice")
    bob, _ = login(cluster.idp, "bob")
    a, b = cluster.replicas
    opened = initialize(a.url + "/mcp", alice["id_token"])
    assert opened.status_code == 200, opened.text[:300]
    sealed = opened.headers["Mcp-Session-Id"]
    # Replica B never saw it, and takes it up for alice...
    taken = list_in_session(b.url + "/mcp", alice["id_token"], sealed)
    assert taken.status_code == 200 and "todo0__get-todos" in taken.text, f"HTTP {taken.status_code} {taken.text[:300]}"
    # ...but not for bob, and nothing it did not seal: a plain random id (what a replica without
    # the shared seal hands out), the sealed id altered.
    altered = sealed[:-4] + ("AAAA" if not sealed.endswith("AAAA") else "BBBB")
    for replica in (a, b):
        for token, session in ((bob["id_token"], sealed), (alice["id_token"], uuid.uuid4().hex), (alice["id_token"], altered)):
            r = list_in_session(replica.url + "/mcp", token, session)
            assert r.status_code == 404 and "unknown or ended session" in r.text, f"{replica.url} {session[:20]}…: HTTP {r.status_code} {r.text[:200]}"


# =========================================================================== 3. consent on A, call on B


def test_consent_after_a_call_on_replica_a_holds_on_replica_b(cluster, tmp_path):  # noqa: F811
    isv = start_isv(cluster.binary, tmp_path, cluster.idp.issuer)  # skips this test alone when :7000 is busy
    try:
        a, b = cluster.replicas
        alice, browser = login(cluster.idp, "alice")
        auth = {"Authorization": f"Bearer {alice['id_token']}"}
        path = "/rest/github/repos/acme/app/issues/2/comments"

        before = {r.url: requests.get(r.url + path, headers=auth, timeout=30) for r in (b, a)}
        for url, r in before.items():
            assert r.status_code == 401 and r.json()["error"] == "interaction_required", f"{url}: HTTP {r.status_code} {r.text[:300]}"
        consent(browser, before[a.url].json()["interaction_uri"])
        assert "consent granted" in cluster.idp.log_text()

        text = f"across replicas {uuid.uuid4().hex[:8]}"
        created = requests.post(a.url + path, json={"body": text}, headers=auth, timeout=30)
        assert created.status_code == 201, f"HTTP {created.status_code} {created.text[:300]}"
        sts = cluster.idp.log_text().count("issued STS token")
        assert sts >= 1

        listed = requests.get(b.url + path, headers=auth, timeout=30)
        assert listed.status_code == 200, f"replica B after consent on A: HTTP {listed.status_code} {listed.text[:300]}"
        assert [c["body"] for c in listed.json() if c["id"] == created.json()["id"]] == [text], listed.json()
        assert cluster.idp.log_text().count("issued STS token") == sts, "replica B exchanged again instead of using A's stored credential"
    finally:
        stop_process(isv.proc)


# =========================================================================== 4. kill -9 under load


def test_kill_9_of_a_replica_under_load_through_nginx(cluster, tmp_path):  # noqa: F811
    """12 threads (6 alice, 6 bob) loop get-todos through nginx over a fresh replica A and B;
    A gets SIGKILL 1.5 s in; the run goes on 3.5 s more."""
    a = cluster.start_replica(tmp_path / "a")
    b = cluster.replicas[1]
    n = start_nginx(tmp_path, [a.url, b.url], name="nginx-kill")
    try:
        users = {u: login(cluster.idp, u)[0]["id_token"] for u in ("alice", "bob")}
        run_id = uuid.uuid4().hex[:8]
        http = requests.Session()
        expected: dict[str, list] = {}
        for user, token in users.items():
            for i in range(3):
                r = stateless_call(http, n.url, token, "create-todo", {"title": f"{user}-{run_id}-{i}"}, timeout=30)
                assert not rpc_result(r).get("isError"), r.text[:300]
            listed = rpc_result(stateless_call(http, n.url, token, "get-todos", timeout=30))["structuredContent"]["todos"]
            titles = {t["title"] for t in listed}
            assert {f"{user}-{run_id}-{i}" for i in range(3)} <= titles, titles
            assert all(t.startswith(user + "-") for t in titles), titles  # this module titles every todo after its user
            expected[user] = sorted((t["id"], t["title"]) for t in listed)
        assert not {t for _, t in expected["alice"]} & {t for _, t in expected["bob"]}

        stop = threading.Event()
        records: list[tuple] = []  # (start, end, user, outcome, detail); outcome ok | failed | foreign
        lock = threading.Lock()

        def worker(user: str) -> None:
            s = requests.Session()
            while not stop.is_set():
                t0 = time.time()
                try:
                    r = stateless_call(s, n.url, users[user], "get-todos")
                    if r.status_code != 200:
                        outcome, detail = "failed", f"HTTP {r.status_code} {r.text[:120]}"
                    else:
                        result = rpc_result(r)
                        got = sorted((t["id"], t["title"]) for t in result["structuredContent"]["todos"])
                        outcome, detail = ("ok", "") if got == expected[user] else ("foreign", repr(got)[:300])
                except (requests.RequestException, AssertionError, KeyError, ValueError) as e:
                    outcome, detail = "failed", repr(e)[:200]
                with lock:
                    records.append((t0, time.time(), user, outcome, detail))

        threads = [threading.Thread(target=worker, args=(u,), daemon=True) for u in ("alice", "bob") for _ in range(6)]
        for t in threads:
            t.start()
        time.sleep(1.5)
        killed_at = time.time()
        os.kill(a.proc.pid, signal.SIGKILL)
        a.proc.wait(timeout=10)
        time.sleep(3.5)
        stop.set()
        for t in threads:
            t.join(timeout=15)

        foreign = [r for r in records if r[3] == "foreign"]
        failed = [r for r in records if r[3] == "failed"]
        before = [r for r in records if r[1] < killed_at]
        settled = [r for r in records if r[0] > killed_at + 2]
        summary = (f"{len(records)} calls, {len(failed)} failed (in flight at the kill), {len(before)} before the kill, "
                   f"{len(settled)} from kill+2 s; failures: {[(round(f[0] - killed_at, 3), round(f[1] - killed_at, 3), f[4]) for f in failed][:8]}")
        print(summary)
        assert not foreign, f"answered with data that is not the caller's: {foreign[:3]}"
        assert before and all(r[3] == "ok" for r in before), summary
        assert len(failed) <= len(threads), summary
        assert all(f[1] >= killed_at and f[0] < killed_at + 2 for f in failed), summary
        assert len(settled) >= 20 and all(r[3] == "ok" for r in settled), summary

        # Both replicas served the load before the kill; from kill+2 s on, B alone.
        log = [line for line in n.access() if line["uri"] == "/mcp/todo0" and rpc_method(line) == "tools/call"]
        assert {line["upstream"] for line in log if float(line["msec"]) < killed_at} == {addr(a), addr(b)}, log[:4]
        late = [line for line in log if float(line["msec"]) > killed_at + 2]
        assert late and all(line["status"] == "200" and line["upstream"].split(", ")[-1] == addr(b) for line in late), late[:4]
        assert b.proc.poll() is None and n.proc.poll() is None, "replica B or nginx died"
        assert requests.get(b.url + "/readyz", timeout=5).status_code == 200
    finally:
        stop_process(n.proc)
        stop_process(a.proc)
