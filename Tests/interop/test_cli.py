"""The `switchboard` binary as a user runs it: `validate` exit codes and messages, a gateway
that refuses a broken file, and reload on SIGHUP with file watching switched off."""

from __future__ import annotations

import os
import signal
import subprocess
import textwrap
import time
from pathlib import Path

import requests

from conftest import REPO_ROOT, _start_gateway
from interop_helpers import AUDIENCE, stop_process, switchboard_binary


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(switchboard_binary(REPO_ROOT)), *args], capture_output=True, text=True, timeout=60, cwd=cwd
    )


def config(issuer: str, upstream: str, names: list[str], watch: bool = True) -> str:
    entries = "".join(
        f"""
          - name: {n}
            kind: mcp_server
            upstream: {upstream}
            auth: {{strategy: none}}"""
        for n in names
    )
    return textwrap.dedent(
        f"""\
        version: 1
        gateway:
          reload: {{watch: {str(watch).lower()}}}
        users:
          issuer: {issuer}
          audience: {AUDIENCE}
        connections:"""
    ) + entries + "\n"


def test_validate_accepts_the_shipped_registry(tmp_path: Path):
    # The shipped file reads the agent key from AGENT_KEY_FILE: create one the documented way.
    key = tmp_path / "agent.pem"
    init = run("idp", "--init-agent", "--data-dir", str(tmp_path / "idp"), "--agent-key-file", str(key))
    assert init.returncode == 0, init.stderr
    r = subprocess.run([str(switchboard_binary(REPO_ROOT)), "validate", str(REPO_ROOT / "connections.yaml")],
                       capture_output=True, text=True, timeout=60, env={**os.environ, "AGENT_KEY_FILE": str(key)})
    assert r.returncode == 0, r.stderr
    assert "OK" in r.stdout and "todo0" in r.stdout


def test_validate_names_file_line_and_column(tmp_path: Path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nusers: {issuer: http://127.0.0.1:9, audience: a}\nconnections:\n  - name: x\n    kind: mcp_server\n    upstream: http://127.0.0.1:1\n    auth: {strategy: none, scopes: [a]}\n")
    r = run("validate", str(bad))
    assert r.returncode == 1
    assert f"{bad}:7:28: error: connection 'x', strategy 'none': unknown key 'scopes'" in r.stderr, r.stderr


def test_gateway_refuses_to_start_on_a_broken_file(tmp_path: Path):
    bad = tmp_path / "connections.yaml"
    bad.write_text("version: 1\nusers: {issuer: http://127.0.0.1:9, audience: a}\nconnections:\n  - name: x\n    kind: mcp_servr\n")
    r = run("gateway", "--config", str(bad), "--port", "0")
    assert r.returncode == 1
    assert "5:11: error: unknown kind 'mcp_servr'" in r.stderr, r.stderr
    assert "did not start" in r.stderr


def test_sighup_reloads_when_watching_is_off(tmp_path: Path, issuer, upstream):
    path = tmp_path / "connections.yaml"
    path.write_text(config(issuer.url, upstream.url, ["one"], watch=False))
    gw = _start_gateway(switchboard_binary(REPO_ROOT), tmp_path, path, 0)
    try:
        def names() -> list[str]:
            doc = requests.get(gw.url + "/api/connections", timeout=5).json()
            return [c["name"] for c in doc["connections"]]

        assert names() == ["one"]
        path.write_text(config(issuer.url, upstream.url, ["one", "two"], watch=False))
        time.sleep(1.5)
        assert names() == ["one"], "watching is off: the edit alone must not reload"
        gw.proc.send_signal(signal.SIGHUP)
        deadline = time.time() + 5
        while time.time() < deadline and names() != ["one", "two"]:
            time.sleep(0.05)
        assert names() == ["one", "two"]
        assert gw.proc.poll() is None, "SIGHUP must not stop the gateway"
    finally:
        stop_process(gw.proc)
