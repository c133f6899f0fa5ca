"""Fixtures and helpers for the todo0 interop tests (test_todo0_interop.py).

A real `switchboard todo0` process on free 127.0.0.1 ports with a fresh data directory,
accepting RFC 9068 access tokens (`typ: at+jwt`, RS256 with `kid`) minted here with PyJWT
and verified by todo0 against the JWKS of a real Python issuer (interop_helpers.OIDCIssuer):

    OIDCIssuer  <── discovery + JWKS ──  switchboard todo0  (MCP :P/mcp, REST :R/api/todos)
                                               ^
                    tests (mcp SDK client, requests) with Authorization: Bearer <at+jwt>

The process can be killed with SIGKILL and started again on the same data directory
(`Todo0.kill9()` / `Todo0.restart()`), which is what the durability tests do.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
import pytest
import requests

from interop_helpers import HOST, OIDCIssuer, free_port, stop_process, switchboard_binary, wait_for_http_200

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parent.parent

CONNECT = "mcp:connect"
READ = "mcp:tools:read"
MANAGE = "mcp:tools:manage"
ALL_SCOPES = (CONNECT, READ, MANAGE)
TOOL_NAMES = {"get-todos", "create-todo", "toggle-todo", "delete-todo"}

STATELESS_VERSION = "2026-07-28"
ACCEPT = "application/json, text/event-stream"


# --------------------------------------------------------------------------- access tokens


def mint_access_token(
    issuer: OIDCIssuer,
    *,
    resource: str,
    uid: str | None = None,
    sub: str | None = None,
    scopes: tuple[str, ...] | list[str] = ALL_SCOPES,
    lifetime: int = 900,
) -> str:
    """An RFC 9068 access token from `issuer` for `resource`: header kid + typ at+jwt,
    claims iss, sub, uid, aud, iat, exp, jti, client_id, scp (a list)."""
    now = int(time.time())
    uid = uid or "00u-" + uuid.uuid4().hex[:12]
    claims = {
        "iss": issuer.url,
        "sub": sub or f"{uid}@example.test",
        "uid": uid,
        "aud": resource,
        "iat": now,
        "exp": now + lifetime,
        "jti": uuid.uuid4().hex,
        "client_id": "todo0-interop",
        "scp": list(scopes),
    }
    token = jwt.encode(claims, issuer.key, algorithm="RS256", headers={"kid": issuer.kid, "typ": "at+jwt"})
    issuer.minted.append(token)
    return token


# --------------------------------------------------------------------------- the todo0 process


@dataclass
class Todo0:
    binary: Path
    issuer_url: str
    data_dir: Path
    log_dir: Path
    mcp_port: int
    rest_port: int
    resource: str
    proc: subprocess.Popen | None = None
    starts: int = 0
    logs: list[Path] = field(default_factory=list)

    @property
    def mcp_url(self) -> str:
        return f"http://{HOST}:{self.mcp_port}/mcp"

    @property
    def mcp_base(self) -> str:
        return f"http://{HOST}:{self.mcp_port}"

    @property
    def rest_url(self) -> str:
        return f"http://{HOST}:{self.rest_port}/api/todos"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def stderr_log(self) -> Path:
        return self.logs[-1]

    def log_text(self) -> str:
        return "".join(p.read_text(errors="replace") for p in self.logs if p.exists())

    def log_tail(self, chars: int = 4000) -> str:
        if not self.logs:
            return ""
        text = self.stderr_log.read_text(errors="replace") if self.stderr_log.exists() else ""
        return f"\n--- {self.stderr_log} (last {chars} chars) ---\n{text[-chars:]}"

    # ------------------------------------------------------------------ lifecycle

    def start(self, timeout: float = 60) -> "Todo0":
        """Start todo0 on this data directory; wait for /healthz on both ports and prove the
        process answering is ours (it serves our resource in its RFC 9728 document)."""
        assert self.proc is None or self.proc.poll() is not None, "todo0 is already running"
        self.starts += 1
        log = self.log_dir / f"todo0-{self.mcp_port}-{self.starts}.stderr.log"
        self.logs.append(log)
        env = dict(os.environ)
        env["LOG_LEVEL"] = os.environ.get("INTEROP_TODO0_LOG_LEVEL", "info")
        for var in ("TODO0_HOST", "TODO0_PORT", "TODO0_REST_PORT", "MCP_AUTHORIZATION_SERVER", "TODO0_RESOURCE", "SWITCHBOARD_DATA_DIR"):
            env.pop(var, None)
        with open(log, "wb") as err:
            self.proc = subprocess.Popen(
                [
                    str(self.binary), "todo0",
                    "--host", HOST,
                    "--port", str(self.mcp_port),
                    "--rest-port", str(self.rest_port),
                    "--data-dir", str(self.data_dir),
                    "--authorization-server", self.issuer_url,
                    "--resource", self.resource,
                ],
                stdin=subprocess.DEVNULL,
                stdout=err,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=str(self.log_dir),
            )
        try:
            wait_for_http_200(f"{self.mcp_base}/healthz", self.proc, timeout, "todo0 (MCP)", log)
            wait_for_http_200(f"http://{HOST}:{self.rest_port}/healthz", self.proc, timeout, "todo0 (REST)", log)
            doc = requests.get(f"{self.mcp_base}/.well-known/oauth-protected-resource/mcp", timeout=5).json()
            if self.proc.poll() is not None or doc.get("resource") != self.resource:
                raise RuntimeError(f"{self.mcp_base} is not our todo0 (resource {doc.get('resource')!r}, exit code {self.proc.poll()})")
        except BaseException:
            stop_process(self.proc)
            raise
        return self

    def kill9(self) -> None:
        """SIGKILL the todo0 process (ours, by pid) and reap it."""
        assert self.proc is not None
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)

    def restart(self, attempts: int = 5) -> "Todo0":
        """Start again on the same data directory, on the same ports (they are free again once
        the killed process is gone; a few retries cover a slow release)."""
        errors = []
        for _ in range(attempts):
            try:
                return self.start()
            except (RuntimeError, TimeoutError, requests.RequestException, ValueError) as e:
                errors.append(str(e))
                time.sleep(1)
        raise RuntimeError("todo0 did not restart:\n" + "\n".join(errors))

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)


def start_todo0(issuer: OIDCIssuer, data_dir: Path, log_dir: Path, attempts: int = 3) -> Todo0:
    """A fresh todo0 on free ports (a few attempts: a free port can be taken before the bind)."""
    binary = switchboard_binary(REPO_ROOT)
    if not binary.is_file() or not os.access(binary, os.X_OK):
        pytest.fail(
            f"switchboard binary not found or not executable at {binary}. "
            f"Build it with `swift build` in {REPO_ROOT}, or point SWITCHBOARD_BIN at it.",
            pytrace=False,
        )
    data_dir.mkdir(parents=True, exist_ok=True)
    log_dir.mkdir(parents=True, exist_ok=True)
    errors = []
    for _ in range(attempts):
        mcp_port, rest_port = free_port(), free_port()
        if mcp_port == rest_port:
            continue
        t = Todo0(
            binary=binary, issuer_url=issuer.url, data_dir=data_dir, log_dir=log_dir,
            mcp_port=mcp_port, rest_port=rest_port, resource=f"http://{HOST}:{mcp_port}/mcp",
        )
        try:
            return t.start()
        except (RuntimeError, TimeoutError, requests.RequestException, ValueError) as e:
            errors.append(str(e))
    pytest.fail("todo0 did not start:\n" + "\n".join(errors), pytrace=False)


# --------------------------------------------------------------------------- raw stateless JSON-RPC


def stateless_headers(token: str | None, method: str, name: str | None = None) -> dict[str, str]:
    headers = {"Accept": ACCEPT, "Content-Type": "application/json", "MCP-Protocol-Version": STATELESS_VERSION, "Mcp-Method": method}
    if name is not None:
        headers["Mcp-Name"] = name
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return headers


def stateless_body(method: str, params: dict[str, Any] | None = None, rpc_id: int | str = 1) -> dict[str, Any]:
    p = dict(params or {})
    p["_meta"] = {
        "io.modelcontextprotocol/protocolVersion": STATELESS_VERSION,
        "io.modelcontextprotocol/clientCapabilities": {},
        "io.modelcontextprotocol/clientInfo": {"name": "todo0-interop", "version": "0"},
    }
    return {"jsonrpc": "2.0", "id": rpc_id, "method": method, "params": p}


def call_tool_raw(
    http: requests.Session | Any,
    todo0: Todo0,
    token: str | None,
    name: str,
    arguments: dict[str, Any] | None = None,
    rpc_id: int | str = 1,
    timeout: float = 30,
) -> requests.Response:
    """One stateless (2026-07-28) tools/call POST to /mcp, as plain HTTP."""
    return http.post(
        todo0.mcp_url,
        json=stateless_body("tools/call", {"name": name, "arguments": arguments or {}}, rpc_id),
        headers=stateless_headers(token, "tools/call", name),
        timeout=timeout,
    )


def rpc_result(resp: requests.Response) -> dict[str, Any]:
    """The JSON-RPC result of a 200 answer (application/json, or a one-shot SSE stream)."""
    assert resp.status_code == 200, f"HTTP {resp.status_code}: {resp.text[:500]}"
    ctype = resp.headers.get("Content-Type", "")
    if ctype.startswith("text/event-stream"):
        msgs = [json.loads(line[5:]) for line in resp.text.splitlines() if line.startswith("data:")]
        msgs = [m for m in msgs if "id" in m and ("result" in m or "error" in m)]
        assert msgs, resp.text[:500]
        body = msgs[-1]
    else:
        body = resp.json()
    assert "error" not in body, f"JSON-RPC error: {body}"
    return body["result"]
