"""A real PostgreSQL 15 for the scale-out tests (and bench/run's state cells): Debian's server binaries, a cluster made with
`initdb` in a temporary directory, listening on a free loopback port, started and stopped by the
test (by its pid, through pg_ctl). As root the cluster belongs to the `postgres` user (PostgreSQL
refuses to run as root). Password authentication (scram-sha-256) over TCP, as a deployment has.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from interop_helpers import HOST, free_port

PG_BIN = Path(os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin"))
DATABASE = "switchboard"
ROLE = "switchboard"


def _as_owner(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


@dataclass
class Postgres:
    base: Path
    port: int
    password: str
    running: bool = False

    @property
    def data(self) -> Path:
        return self.base / "data"

    @property
    def url(self) -> str:
        """The gateway's `gateway.state` (the password goes in `state_password`)."""
        return f"postgres://{ROLE}@{HOST}:{self.port}/{DATABASE}?sslmode=disable"

    def _ctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(_as_owner([str(PG_BIN / "pg_ctl"), "-D", str(self.data), *args]), capture_output=True, text=True, timeout=60, check=check)

    def start(self) -> None:
        self._ctl("-l", str(self.base / "server.log"), "-w", "-t", "30", "start")
        self.running = True

    def stop(self, mode: str = "fast") -> None:
        """Stops this cluster (pg_ctl signals the postmaster whose pid is in its data directory)."""
        if self.running:
            self._ctl("-m", mode, "-w", "-t", "30", "stop", check=False)
            self.running = False

    def psql(self, sql: str) -> str:
        """One statement as the superuser over the socket; its rows, `|`-separated."""
        r = subprocess.run(_as_owner(["psql",
                                      "-h", str(self.base), "-p", str(self.port), "-d", DATABASE, "-AtX", "-c", sql]),
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, f"psql: {r.stderr}"
        return r.stdout.strip()


def start_postgres() -> Postgres:
    if not (PG_BIN / "initdb").exists():
        import pytest  # the benchmark imports this module too, without pytest
        pytest.skip(f"PostgreSQL server binaries not found in {PG_BIN} (apt-get install postgresql-15)")
    base = Path(tempfile.mkdtemp(prefix="sb-pg-"))
    os.chmod(base, 0o755)
    password = "pw-" + os.urandom(12).hex()
    pg = Postgres(base=base, port=free_port(), password=password)
    if os.geteuid() == 0:
        shutil.chown(base, "postgres", "postgres")
    subprocess.run(_as_owner([str(PG_BIN / "initdb"), "-D", str(pg.data), "-U", "postgres", "--auth-local=trust", "--auth-host=scram-sha-256",
                              "-E", "UTF8", "--no-instructions"]), capture_output=True, text=True, timeout=120, check=True)
    with open(pg.data / "postgresql.conf", "a") as conf:
        conf.write(f"\nlisten_addresses = '{HOST}'\nport = {pg.port}\nunix_socket_directories = '{base}'\nfsync = off\n")
    if os.geteuid() == 0:
        shutil.chown(pg.data / "postgresql.conf", "postgres", "postgres")
    pg.start()
    subprocess.run(_as_owner(["psql", "-h", str(base), "-p", str(pg.port), "-d", "postgres", "-AtX", "-c",
                              f"CREATE ROLE {ROLE} LOGIN PASSWORD '{password}'"]), capture_output=True, text=True, timeout=30, check=True)
    subprocess.run(_as_owner(["psql", "-h", str(base), "-p", str(pg.port), "-d", "postgres", "-AtX", "-c",
                              f"CREATE DATABASE {DATABASE} OWNER {ROLE}"]), capture_output=True, text=True, timeout=30, check=True)
    return pg


def remove_postgres(pg: Postgres) -> None:
    pg.stop("immediate")
    shutil.rmtree(pg.base, ignore_errors=True)


def wait_for_postgres_down(pg: Postgres, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not (pg.data / "postmaster.pid").exists():
            return
        time.sleep(0.1)
    raise TimeoutError("PostgreSQL did not stop")
