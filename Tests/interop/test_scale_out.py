"""Several gateway replicas sharing state in PostgreSQL (`gateway.state`): Sources/PostgresState,
Sources/Gateway/Proxy/Pipeline/SharedCredentials.swift. The cluster is replica_fixtures.py's;
test_scale_out_nginx.py puts nginx in front of it.

    mcp SDK / requests ──> replica A ─┐                      ┌─ IdP (counts ID-JAG exchanges in its log)
                        └─> replica B ─┴─ PostgreSQL 15 ────┤
                                          (initdb, loopback) └─ todo0

1. 40 concurrent first calls for one user, spread over both replicas: exactly one ID-JAG exchange.
2. What the database holds is sealed: no token, no user id in clear; every replica reads it.
3. Replicas started at once against an empty database migrate it once.
4. The database stopped: calls whose credential a replica holds in process still work, the rest
   are answered 503 `state_unavailable`, /readyz says so, nothing crashes; restarted: all resumes.
5. `gateway.state` without a key is refused with line:column.
"""

from __future__ import annotations

import re
import time
import subprocess
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from cryptography.hazmat.primitives import serialization

from idp_fixtures import start_idp
from interop_helpers import HOST, built_switchboard, new_rsa_key, stop_process, wait_until
from mcp_client import call_tools
from postgres_fixtures import remove_postgres, start_postgres, wait_for_postgres_down
from replica_fixtures import REPO_ROOT, shared_config, cluster  # noqa: F401  (cluster is a fixture)
from system_fixtures import SHIPPED_CONFIG, _base_env, login, start_gateway

JWT_SHAPE = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.")


def tools_call(gateway_url: str, id_token: str, tool: str = "get-todos", args: dict | None = None):
    (result,) = call_tools(gateway_url + "/mcp/todo0", id_token, [(tool, args or {})])
    return result


def test_forty_concurrent_first_calls_over_two_replicas_cause_one_exchange(cluster):
    token, _ = login(cluster.idp, "alice")
    before = cluster.exchanges()
    urls = [cluster.replicas[i % 2].url for i in range(40)]
    with ThreadPoolExecutor(max_workers=40) as pool:
        results = list(pool.map(lambda u: tools_call(u, token["id_token"]), urls))
    assert all(not r.is_error and isinstance(r.structured_content, dict) for r in results), [r for r in results if r.is_error][:2]
    assert cluster.exchanges() - before == 1, cluster.idp.log_tail()
    # Both replicas served calls (the spread was real) and both now hold the credential.
    for gw in cluster.replicas:
        status = requests.get(gw.url + "/api/connections/status", headers={"Authorization": f"Bearer {token['id_token']}"}, timeout=10).json()
        todo0 = next(c for c in status["user"]["connections"] if c["name"] == "todo0") if "user" in status else None
        assert todo0 is None or todo0.get("status") != "ERROR", status


def test_what_the_database_holds_is_sealed_and_bound_to_its_key(cluster, tmp_path):
    bob, _ = login(cluster.idp, "bob")
    assert not tools_call(cluster.replicas[0].url, bob["id_token"]).is_error
    assert cluster.pg.psql("SELECT count(*) FROM switchboard_credential WHERE expires_at > now()") == "2"  # alice's and bob's
    dump = cluster.pg.psql("SELECT encode(key, 'hex') || ' ' || key_id || ' ' || encode(sealed, 'escape') FROM switchboard_credential")
    assert not JWT_SHAPE.search(dump), "a token is stored in clear"
    for clear in ("00u-bob", "00u-alice", "Bearer", "todo0", "mcp:connect"):
        assert clear not in dump, f"{clear!r} is stored in clear"

    # Bob's sealed credential copied onto alice's row does not open there (the row's key is the
    # associated data): a replica that has nothing in process ignores it and exchanges anew for
    # alice, never handing her bob's token.
    alice, _ = login(cluster.idp, "alice")
    rows = dict(line.split("|") for line in cluster.pg.psql(
        "SELECT encode(key, 'hex'), encode(sealed, 'hex') FROM switchboard_credential ORDER BY expires_at").splitlines())
    assert len(rows) == 2
    alice_row, bob_row = list(rows)  # alice's exchange came first
    cluster.pg.psql(f"UPDATE switchboard_credential SET sealed = decode('{rows[bob_row]}', 'hex') WHERE key = decode('{alice_row}', 'hex')")
    (tmp_path / "c").mkdir()
    c = start_gateway(cluster.binary, tmp_path / "c", cluster.env, cluster.config)
    try:
        before = cluster.exchanges()
        assert not tools_call(c.url, alice["id_token"]).is_error
        assert cluster.exchanges() - before == 1, "the swapped row was used"
        assert "does not open with the keys listed" in c.log_text(), c.log_text()[-2000:]
    finally:
        stop_process(c.proc)


def test_replicas_started_at_once_migrate_an_empty_database_once(tmp_path):
    binary = built_switchboard(REPO_ROOT)
    pg = start_postgres()
    started = []
    try:
        idp = start_idp(binary, tmp_path)
        started.append(idp.proc)
        config = shared_config(tmp_path, pg, tmp_path / "state.key")
        env = {"OKTA_ISSUER": idp.issuer, "AGENT_KEY_FILE": str(idp.agent_key_file), "TODO0_MCP_URL": f"http://{HOST}:9/mcp",
               "GITHUB_API_URL": f"http://{HOST}:9", "GITHUB_MCP_SERVER_URL": f"http://{HOST}:9/mcp"}
        with ThreadPoolExecutor(max_workers=3) as pool:
            gateways = list(pool.map(lambda n: (tmp_path / n).mkdir() or start_gateway(binary, tmp_path / n, env, config), ["a", "b", "c"]))
        started += [g.proc for g in gateways]
        # Every step once, in order (three replicas raced for the advisory lock).
        assert pg.psql("SELECT string_agg(version::text, ',' ORDER BY version) FROM switchboard_schema") == "1,2,3,4"
        assert pg.psql("SELECT count(*) FROM pg_tables WHERE tablename LIKE 'switchboard_%'") == "7"  # schema, credential, lease, rate, replica_activity, user_view, scopes
        for g in gateways:
            ready = requests.get(g.url + "/readyz", timeout=5)
            assert ready.status_code == 200 and ready.json()["state"] == "shared", ready.text
    finally:
        for proc in reversed(started):
            stop_process(proc)
        remove_postgres(pg)


def test_database_down_cached_calls_work_the_rest_503_then_all_resumes(cluster):
    alice, _ = login(cluster.idp, "alice")
    a = cluster.replicas[0]
    assert not tools_call(a.url, alice["id_token"]).is_error  # alice's credential is in A's process
    cluster.pg.stop("fast")
    wait_for_postgres_down(cluster.pg)
    try:
        ready = requests.get(a.url + "/readyz", timeout=10)
        assert ready.status_code == 503 and ready.json()["state"] == "unreachable", ready.text
        assert not tools_call(a.url, alice["id_token"]).is_error, "a credential held in process needs no database"
        # A user without a credential here: 503 state_unavailable, not a crash, not another's token.
        bob, _ = login(cluster.idp, "bob")
        r = requests.post(cluster.replicas[1].url + "/mcp/todo0", json={"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}},
            headers={"Authorization": f"Bearer {bob['id_token']}", "Accept": "application/json, text/event-stream"}, timeout=30)
        if r.status_code == 200:
            pytest.fail(f"bob was served while the state was down (his credential was not in B's process?): {r.text[:300]}")
        assert r.status_code == 503, f"HTTP {r.status_code} {r.text[:300]}"
        assert "state_unavailable" in r.text, r.text[:300]
        assert a.proc.poll() is None and cluster.replicas[1].proc.poll() is None
    finally:
        cluster.pg.start()
    wait_until(lambda: requests.get(a.url + "/readyz", timeout=5).status_code == 200, 20, "readyz after the database restarted")
    bob, _ = login(cluster.idp, "bob")
    assert not tools_call(cluster.replicas[1].url, bob["id_token"]).is_error


def test_state_without_a_key_is_refused_with_its_line(tmp_path):
    binary = built_switchboard(REPO_ROOT)
    key = tmp_path / "agent.pem"
    key.write_bytes(new_rsa_key().private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    env = {**_base_env(), "AGENT_KEY_FILE": str(key)}
    path = tmp_path / "connections.yaml"
    path.write_text(SHIPPED_CONFIG.read_text().replace("version: 1\n", "version: 1\ngateway:\n  state: postgres://sb@127.0.0.1:5432/sb\n", 1))
    r = subprocess.run([str(binary), "validate", str(path)], capture_output=True, text=True, timeout=60, env=env)
    assert r.returncode != 0, r.stdout + r.stderr
    assert re.search(r"connections.yaml:7:\d+: error: a shared state needs gateway.state_key", r.stdout + r.stderr), r.stdout + r.stderr  # the `state:` line
    short = tmp_path / "short.key"
    short.write_text("too-short\n")
    path.write_text(SHIPPED_CONFIG.read_text().replace(
        "version: 1\n", f"version: 1\ngateway:\n  state: mysql://sb@127.0.0.1/sb\n  state_key: file:{short}\n", 1))
    r = subprocess.run([str(binary), "validate", str(path)], capture_output=True, text=True, timeout=60, env=env)
    out = r.stdout + r.stderr
    assert r.returncode != 0 and "'mysql' is not a state store" in out and "at least 32 characters" in out, out
    assert "too-short" not in out, "a secret was printed"


def test_rate_limits_are_global_across_replicas(cluster, tmp_path):
    """5 per minute (burst 5) per user on get-todos: 12 calls alternating two replicas admit 5 in
    all, not 5 on each; the refusals are MCP tool errors with the retry time; bob has his own bucket."""
    text = cluster.config.read_text()
    anchor = "      scopes: [mcp:connect, mcp:tools:read]                   # step-up adds mcp:tools:manage when needed\n"
    assert anchor in text
    limited = tmp_path / "connections.yaml"
    limited.write_text(text.replace(anchor, anchor + "    rate_limits:\n      - {name: reads, requests: 5, per: 1m, tool: get-todos}\n", 1))
    started = []
    try:
        replicas = []
        for name in ("ra", "rb"):
            (tmp_path / name).mkdir()
            g = start_gateway(cluster.binary, tmp_path / name, cluster.env, limited)
            started.append(g.proc)
            replicas.append(g)
        alice, _ = login(cluster.idp, "alice")
        results = [tools_call(replicas[i % 2].url, alice["id_token"]) for i in range(12)]
        refused = [r for r in results if r.is_error]
        assert len(results) - len(refused) == 5 and len(refused) == 7, [r.is_error for r in results]
        for r in refused:
            assert "rate limit 'reads'" in r.content[0].text and r.meta and r.meta["switchboard/rate_limit"]["retry_after_s"] >= 1, r
        bob, _ = login(cluster.idp, "bob")
        assert not tools_call(replicas[1].url, bob["id_token"]).is_error, "bob has his own bucket"
    finally:
        for proc in reversed(started):
            stop_process(proc)


def test_every_replica_shows_the_same_status(cluster, tmp_path):
    """A replica that served nobody shows what the others saw: alice's view of todo0 (from a call
    on A) and the connection's counts, equal on every replica once each has published (every 2 s)."""
    alice, _ = login(cluster.idp, "alice")
    assert not tools_call(cluster.replicas[0].url, alice["id_token"]).is_error
    (tmp_path / "c").mkdir()
    c = start_gateway(cluster.binary, tmp_path / "c", cluster.env, cluster.config)
    try:
        auth = {"Authorization": f"Bearer {alice['id_token']}"}

        def todo0(url: str) -> tuple[dict, dict | None]:
            doc = requests.get(url + "/api/connections/status", headers=auth, timeout=10).json()
            conn = next(x for x in doc["connections"] if x["name"] == "todo0")
            mine = next((x for x in doc.get("user", {}).get("connections", []) if x["name"] == "todo0"), None)
            return conn, mine

        conn_c, mine_c = wait_until(lambda: (lambda r: r if r[1] and r[1]["state"] == "live" else None)(todo0(c.url)), 15,
                                    "replica C showing alice's todo0 as live")
        assert conn_c["status"] == "LIVE" and conn_c["counts"]["requests"] > 0, conn_c
        # Every replica, the same counts (no traffic meanwhile; each has published).
        def same_counts():
            counts = [todo0(g.url)[0]["counts"] for g in (*cluster.replicas, c)]
            return counts if all(x == counts[0] for x in counts) else None
        counts = wait_until(same_counts, 15, "the same todo0 counts on A, B and C")
        assert counts[0]["requests"] >= 40, counts  # the 40 concurrent calls and those since
    finally:
        stop_process(c.proc)


def mcp_call_raw(url: str, id_token: str, tool: str, args: dict) -> requests.Response:
    """initialize, initialized, then one tools/call on `url` (/mcp/{name}), raw: the answer's
    headers show whether the gateway stepped up during the call (Switchboard-Step-Up)."""
    base = {"Authorization": f"Bearer {id_token}", "Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
    init = requests.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "scale-out-test", "version": "1"}}}, headers=base, timeout=30)
    assert init.status_code == 200, init.text[:300]
    session = {**base, "Mcp-Session-Id": init.headers["Mcp-Session-Id"], "MCP-Protocol-Version": "2025-06-18"}
    requests.post(url, json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=session, timeout=30)
    return requests.post(url, json={"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": tool, "arguments": args}},
                         headers=session, timeout=30)


def test_a_step_up_on_one_replica_widens_the_users_calls_on_the_others(cluster, tmp_path):
    """bob creates a todo on A: A steps up (mcp:tools:manage) and says so. On a replica that never
    saw bob, his first call asks for the widened set at once: no step-up, no new exchange (A's
    widened credential is taken from the shared level)."""
    bob, _ = login(cluster.idp, "bob")
    first = mcp_call_raw(cluster.replicas[0].url + "/mcp/todo0", bob["id_token"], "create-todo", {"title": f"step-up {uuid.uuid4().hex[:6]}"})
    assert first.status_code == 200 and "mcp:tools:manage" in first.headers.get("Switchboard-Step-Up", ""), (first.headers, first.text[:300])
    c = cluster.start_replica(tmp_path / "c")
    before = cluster.exchanges()
    again = mcp_call_raw(c.url + "/mcp/todo0", bob["id_token"], "create-todo", {"title": f"no step-up {uuid.uuid4().hex[:6]}"})
    assert again.status_code == 200 and '"isError":true' not in again.text.replace(" ", ""), again.text[:300]
    assert "Switchboard-Step-Up" not in again.headers, again.headers
    assert cluster.exchanges() == before, "the widened credential was exchanged again"
    stop_process(c.proc)


def test_a_lease_whose_holder_died_is_taken_over_when_it_runs_out(cluster, tmp_path):
    """A replica died holding alice's lease (its row left behind, no credential stored): another
    replica waits for the lease to run out, then takes it and exchanges itself — the call is late,
    not lost, and causes exactly one exchange."""
    alice, _ = login(cluster.idp, "alice")
    assert not tools_call(cluster.replicas[0].url, alice["id_token"]).is_error
    # alice's default-scope credential row: its key is the lease's key too.
    keys = cluster.pg.psql("SELECT encode(key, 'hex') FROM switchboard_credential").splitlines()
    assert keys, "no credential row"
    for key in keys:  # every credential gone, every key leased by a replica that died
        cluster.pg.psql(f"DELETE FROM switchboard_credential WHERE key = decode('{key}', 'hex')")
        cluster.pg.psql(f"INSERT INTO switchboard_lease (key, holder, expires_at) VALUES (decode('{key}', 'hex'), 'dead-replica', now() + interval '3 seconds') "
                        "ON CONFLICT (key) DO UPDATE SET holder = 'dead-replica', expires_at = now() + interval '3 seconds'")
    c = cluster.start_replica(tmp_path / "c")
    try:
        before = cluster.exchanges()
        started = time.monotonic()
        result = tools_call(c.url, alice["id_token"])
        took = time.monotonic() - started
        assert not result.is_error, result
        assert took >= 2.0, f"answered in {took:.1f}s: the dead replica's lease was not waited for"
        assert took < 15, f"answered in {took:.1f}s"
        assert cluster.exchanges() - before == 1, cluster.idp.log_tail()
        assert cluster.pg.psql("SELECT count(*) FROM switchboard_lease WHERE holder = 'dead-replica'") != str(len(keys))
    finally:
        stop_process(c.proc)
