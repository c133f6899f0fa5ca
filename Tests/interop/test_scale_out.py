"""Several gateway replicas sharing state in PostgreSQL (`gateway.state`): Sources/PostgresState,
Sources/Gateway/Proxy/Pipeline/SharedCredentials.swift.

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
import subprocess
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from idp_fixtures import start_idp
from cryptography.hazmat.primitives import serialization

from interop_helpers import HOST, built_switchboard, new_rsa_key, stop_process, wait_until
from mcp_client import call_tools
from postgres_fixtures import remove_postgres, start_postgres, wait_for_postgres_down
from system_fixtures import SHIPPED_CONFIG, TODO0_RESOURCE, _base_env, login, start_gateway, start_todo0

REPO_ROOT = Path(__file__).resolve().parent.parent.parent
JWT_SHAPE = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.")
STATE_KEY = "state-key-" + "k" * 40


def shared_config(base: Path, pg, key_file: Path) -> Path:
    """The shipped connections.yaml with a `gateway:` block naming the shared state."""
    text = SHIPPED_CONFIG.read_text()
    (base / "pg-password").write_text(pg.password + "\n")
    key_file.write_text(STATE_KEY + "\n")
    block = (f"gateway:\n  state: {pg.url}\n  state_password: file:{base / 'pg-password'}\n  state_key: file:{key_file}\n"
             f"  audit:\n    sqlite: off\n\n")
    path = base / "connections.yaml"
    path.write_text(text.replace("version: 1\n", "version: 1\n\n" + block, 1))
    return path


class Cluster:
    def __init__(self, base: Path):
        self.base = base
        self.binary = built_switchboard(REPO_ROOT)
        self.started: list = []
        self.pg = start_postgres()
        self.idp = start_idp(self.binary, base)
        self.started.append(self.idp.proc)
        self.todo0 = start_todo0(self.binary, base, self.idp.issuer)
        self.started.append(self.todo0.proc)
        self.config = shared_config(base, self.pg, base / "state.key")
        self.env = {
            "OKTA_ISSUER": self.idp.issuer, "MCP_AUTHORIZATION_SERVER": self.idp.issuer + "/oauth2/todo-mcp",
            "TODO0_MCP_URL": self.todo0.mcp_url, "TODO0_RESOURCE": TODO0_RESOURCE, "AGENT_KEY_FILE": str(self.idp.agent_key_file),
            "GITHUB_API_URL": f"http://{HOST}:9", "GITHUB_MCP_SERVER_URL": f"http://{HOST}:9/mcp",
        }
        self.replicas = []
        for name in ("a", "b"):
            (base / name).mkdir()
            gw = start_gateway(self.binary, base / name, self.env, self.config)
            self.started.append(gw.proc)
            self.replicas.append(gw)

    def exchanges(self) -> int:
        return sum(1 for line in self.idp.log_text().splitlines() if "issued ID-JAG" in line)

    def close(self) -> None:
        for proc in reversed(self.started):
            stop_process(proc)
        remove_postgres(self.pg)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = Cluster(tmp_path_factory.mktemp("scale-out"))
    try:
        yield c
    finally:
        c.close()


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
        assert pg.psql("SELECT string_agg(version::text, ',' ORDER BY version) FROM switchboard_schema") == "1,2"
        assert pg.psql("SELECT count(*) FROM pg_tables WHERE tablename LIKE 'switchboard_%'") == "4"  # schema, credential, lease, rate
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
