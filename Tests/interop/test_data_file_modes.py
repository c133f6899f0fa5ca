"""Every file a service writes is its owner's only (issue 20, secrets): todo0's and the ISV
stand-in's SQLite files used to be created 0644 while the IdP's were 0600. Each service is
started by the `switchboard` binary in a fresh directory, made to write, and every file it
created — the database, its -wal and -shm, keys, the audit trail — must have no group or
other permission bits, whatever the umask the test runs under.
"""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from interop_helpers import HOST, free_port, stop_process, switchboard_binary, wait_for_http_200, wait_for_port, wait_until

ROOT = Path(__file__).resolve().parents[2]


def loose_files(directory: Path) -> list[str]:
    """Files (and directories) under `directory` that a group or others may read or write."""
    found = []
    for path in [directory, *directory.rglob("*")]:
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            found.append(f"{path.relative_to(directory.parent)} {oct(mode)}")
    return found


def start(args: list[str], base: Path, name: str) -> subprocess.Popen:
    log = base / f"{name}.log"
    with open(log, "wb") as out:
        # A permissive umask here: the binary's own rule must hold whatever it inherits.
        return subprocess.Popen([str(switchboard_binary(ROOT)), *args], stdout=subprocess.DEVNULL, stderr=out,
                                env=dict(os.environ, LOG_LEVEL="info"), cwd=str(base), preexec_fn=lambda: os.umask(0o022))


def test_todo0_data_files_are_owner_only(tmp_path):
    data = tmp_path / "todo0-data"
    port, rest = free_port(), free_port()
    proc = start(["todo0", "--host", HOST, "--port", str(port), "--rest-port", str(rest), "--data-dir", str(data),
                  "--authorization-server", "http://127.0.0.1:9"], tmp_path, "todo0")
    try:
        wait_for_port(port, proc, 30, "todo0", tmp_path / "todo0.log")
        wait_until(lambda: (data / "todo0.sqlite").exists(), 10, "todo0.sqlite")
        assert any(p.name == "todo0.sqlite" for p in data.iterdir())
        assert loose_files(data) == []
    finally:
        stop_process(proc)


def test_isv_data_files_are_owner_only(tmp_path):
    data = tmp_path / "isv-data"
    port = free_port()
    proc = start(["isv", "--host", HOST, "--port", str(port), "--data-dir", str(data), "--identity-provider", "http://127.0.0.1:9"],
                 tmp_path, "isv")
    try:
        wait_for_port(port, proc, 30, "the ISV stand-in", tmp_path / "isv.log")
        wait_until(lambda: (data / "isv.sqlite").exists(), 10, "isv.sqlite")
        assert loose_files(data) == []
    finally:
        stop_process(proc)


def test_idp_keys_and_store_are_owner_only(tmp_path):
    data = tmp_path / "idp-data"
    key = tmp_path / "agent" / "agent0-private-key.pem"
    init = subprocess.run([str(switchboard_binary(ROOT)), "idp", "--init-agent", "--data-dir", str(data), "--agent-key-file", str(key)],
                          capture_output=True, text=True, timeout=120, preexec_fn=lambda: os.umask(0o022))
    assert init.returncode == 0, init.stderr
    assert key.is_file() and loose_files(key.parent) == []
    assert loose_files(data) == []


def test_gateway_audit_trail_is_owner_only(tmp_path):
    config = tmp_path / "connections.yaml"
    config.write_text('version: 1\nusers: {issuer: "http://127.0.0.1:9", audience: agent0}\n'
                      'gateway:\n  audit: {jsonl: audit.jsonl}\nconnections: []\n')
    port = free_port()
    proc = start(["gateway", "--config", str(config), "--port", str(port)], tmp_path, "gateway")
    try:
        wait_for_http_200(f"http://{HOST}:{port}/healthz", proc, 30, "the gateway", tmp_path / "gateway.log")
        state = tmp_path / ".switchboard"
        wait_until(lambda: (state / "audit.sqlite").exists(), 10, "audit.sqlite")
        assert loose_files(state) == []
        assert (tmp_path / "audit.jsonl").exists() and loose_files(tmp_path / "audit.jsonl") == []
    finally:
        stop_process(proc)
