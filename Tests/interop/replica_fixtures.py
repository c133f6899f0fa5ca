"""Several gateway replicas sharing state in PostgreSQL (`gateway.state`), for test_scale_out.py
and test_scale_out_nginx.py: a real PostgreSQL 15 (postgres_fixtures.py), the development IdP,
todo0, and two replicas A and B on one connections.yaml with a `gateway:` block naming the
database. GitHub points at the ISV stand-in's port (system_fixtures.ISV_PORT); a test that calls
GitHub starts the stand-in itself (start_isv skips that test alone when the port is busy).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from idp_fixtures import start_idp
from interop_helpers import HOST, built_switchboard, stop_process
from postgres_fixtures import remove_postgres, start_postgres
from system_fixtures import ISV_PORT, SHIPPED_CONFIG, TODO0_RESOURCE, Service, start_gateway, start_todo0

REPO_ROOT = Path(__file__).resolve().parent.parent.parent
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
        try:
            self.idp = start_idp(self.binary, base)
            self.started.append(self.idp.proc)
            self.todo0 = start_todo0(self.binary, base, self.idp.issuer)
            self.started.append(self.todo0.proc)
            self.config = shared_config(base, self.pg, base / "state.key")
            self.env = {
                "OKTA_ISSUER": self.idp.issuer, "MCP_AUTHORIZATION_SERVER": self.idp.issuer + "/oauth2/todo-mcp",
                "TODO0_MCP_URL": self.todo0.mcp_url, "TODO0_RESOURCE": TODO0_RESOURCE, "AGENT_KEY_FILE": str(self.idp.agent_key_file),
                "GITHUB_API_URL": f"http://{HOST}:{ISV_PORT}", "GITHUB_MCP_SERVER_URL": f"http://{HOST}:{ISV_PORT}/mcp",
            }
            self.replicas = [self.start_replica(base / name) for name in ("a", "b")]
        except BaseException:
            self.close()
            raise

    def start_replica(self, base: Path, config: Path | None = None) -> Service:
        """Another replica on the cluster's database, IdP and todo0 (stopped by close() at the latest)."""
        base.mkdir(parents=True, exist_ok=True)
        gw = start_gateway(self.binary, base, self.env, config or self.config)
        self.started.append(gw.proc)
        return gw

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
