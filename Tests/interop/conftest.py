"""Session fixtures of the interop suite: a real OIDC issuer, a real upstream MCP server
(the official Python SDK) and the real `switchboard gateway` binary between them.

    issuer  <── JWKS discovery ──  switchboard gateway  ── /mcp/pyserver ──>  upstream_server.py
                                          ^
                 tests (mcp SDK client, requests) with Authorization: Bearer <ID token>

Environment:
  SWITCHBOARD_BIN       the gateway binary (default: <repo>/.build/debug/switchboard)
  INTEROP_LOG_LEVEL     the gateway's LOG_LEVEL (default: trace, the most verbose, so the
                        "no token in the log" check sees everything the gateway can print)
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from interop_helpers import (
    AUDIENCE,
    HOST,
    OIDCIssuer,
    free_port,
    read_header_log,
    require_our_gateway,
    stop_process,
    switchboard_binary,
    wait_for_http_200,
    wait_for_port,
)

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parent.parent
CONNECTION = "pyserver"


@dataclass
class Upstream:
    port: int
    url: str
    header_log: Path
    stderr_log: Path
    proc: subprocess.Popen

    @property
    def authority(self) -> str:
        return f"{HOST}:{self.port}"


@dataclass
class Gateway:
    port: int
    url: str
    config_path: Path
    stderr_log: Path
    stdout_log: Path
    proc: subprocess.Popen

    def mcp_url(self, name: str = CONNECTION) -> str:
        return f"{self.url}/mcp/{name}"

    def log_text(self) -> str:
        return self.stderr_log.read_text(errors="replace") + self.stdout_log.read_text(errors="replace")


@pytest.fixture(scope="session")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("interop")


@pytest.fixture(scope="session")
def issuer():
    iss = OIDCIssuer().start()
    try:
        yield iss
    finally:
        iss.stop()


def _start_upstream(workdir: Path, attempt: int) -> Upstream:
    port = free_port()
    header_log = workdir / f"upstream-headers-{attempt}.jsonl"
    stderr_log = workdir / f"upstream-{attempt}.log"
    header_log.touch()
    with open(stderr_log, "wb") as err:
        proc = subprocess.Popen(
            [sys.executable, str(HERE / "upstream_server.py"), str(port), "--header-log", str(header_log)],
            stdin=subprocess.DEVNULL,
            stdout=err,
            stderr=subprocess.STDOUT,
            cwd=str(HERE),
        )
    up = Upstream(port=port, url=f"http://{HOST}:{port}/mcp", header_log=header_log, stderr_log=stderr_log, proc=proc)
    try:
        wait_for_port(port, proc, timeout=30, what="upstream MCP server", log=stderr_log)
        # Whoever listens there must be *our* process (a free port can be taken between the
        # look-up and the bind): a request tagged with a fresh id must show up in our log.
        probe = uuid.uuid4().hex
        deadline = time.monotonic() + 10
        while not read_header_log(header_log, probe):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"127.0.0.1:{port} is not our upstream (exit code {proc.poll()})")
            try:
                requests.get(up.url, headers={"X-Test-Id": probe}, timeout=2)
            except requests.RequestException:
                pass
            time.sleep(0.1)
        return up
    except BaseException:
        stop_process(proc)
        raise


@pytest.fixture(scope="session")
def upstream(workdir: Path):
    up = None
    errors = []
    for attempt in range(3):
        try:
            up = _start_upstream(workdir, attempt)
            break
        except (RuntimeError, TimeoutError) as e:
            errors.append(str(e))
    if up is None:
        pytest.fail("the upstream MCP server did not start:\n" + "\n".join(errors), pytrace=False)
    try:
        yield up
    finally:
        stop_process(up.proc)


def _start_gateway(binary: Path, workdir: Path, config_path: Path, attempt: int) -> Gateway:
    port = free_port()
    stderr_log = workdir / f"gateway-{attempt}.stderr.log"
    stdout_log = workdir / f"gateway-{attempt}.stdout.log"
    env = dict(os.environ)
    env["LOG_LEVEL"] = os.environ.get("INTEROP_LOG_LEVEL", "trace")
    for var in ("SWITCHBOARD_CONFIG", "GATEWAY_HOST", "GATEWAY_PORT", "DISABLED_CONNECTIONS"):
        env.pop(var, None)
    with open(stderr_log, "wb") as err, open(stdout_log, "wb") as out:
        proc = subprocess.Popen(
            [str(binary), "gateway", "--config", str(config_path), "--host", HOST, "--port", str(port)],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            env=env,
            cwd=str(workdir),
        )
    gw = Gateway(
        port=port, url=f"http://{HOST}:{port}", config_path=config_path, stderr_log=stderr_log, stdout_log=stdout_log, proc=proc
    )
    try:
        wait_for_http_200(gw.url + "/healthz", proc, timeout=60, what="switchboard gateway", log=stderr_log)
        # Whoever answers there must be *our* gateway, serving *our* file.
        require_our_gateway(gw.url, config_path, proc)
        return gw
    except BaseException:
        stop_process(proc)
        raise


@pytest.fixture(scope="session")
def gateway(workdir: Path, issuer: OIDCIssuer, upstream: Upstream):
    binary = switchboard_binary(REPO_ROOT)
    if not binary.is_file() or not os.access(binary, os.X_OK):
        pytest.fail(
            f"switchboard binary not found or not executable at {binary}. "
            f"Build it with `swift build` in {REPO_ROOT}, or point SWITCHBOARD_BIN at it.",
            pytrace=False,
        )
    config_path = workdir / "connections.yaml"
    config_path.write_text(
        textwrap.dedent(
            f"""\
            version: 1
            users:
              issuer: {issuer.url}
              audience: {AUDIENCE}
            connections:
              - name: {CONNECTION}
                kind: mcp_server
                title: Python SDK MCP server
                upstream: {upstream.url}
                auth:
                  strategy: none
            """
        )
    )
    gw = None
    errors = []
    for attempt in range(3):
        try:
            gw = _start_gateway(binary, workdir, config_path, attempt)
            break
        except (RuntimeError, TimeoutError, requests.RequestException, ValueError) as e:
            errors.append(str(e))
    if gw is None:
        pytest.fail("the gateway did not start:\n" + "\n".join(errors), pytrace=False)
    try:
        yield gw
    finally:
        stop_process(gw.proc)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """On a failure, attach the tails of the gateway's and the upstream's logs to the report."""
    report = yield
    if report.failed:
        for name in ("gateway", "upstream"):
            fixture = item.funcargs.get(name) if hasattr(item, "funcargs") else None
            path = getattr(fixture, "stderr_log", None)
            if path is not None and Path(path).exists():
                report.sections.append((f"{name} log (tail)", Path(path).read_text(errors="replace")[-6000:]))
    return report
