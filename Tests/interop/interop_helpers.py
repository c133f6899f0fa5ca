"""Helpers of the interop suite: free ports, a real OIDC issuer, ID-token minting, process
handling and the upstream's header log. No mocks: everything here speaks real HTTP on 127.0.0.1."""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import jwt
import requests
from cryptography.hazmat.primitives.asymmetric import rsa

HOST = "127.0.0.1"
AUDIENCE = "agent0"


# --------------------------------------------------------------------------- ports & processes


def free_port() -> int:
    """A port that was free a moment ago on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def port_is_free(port: int) -> bool:
    """Whether a server could bind 127.0.0.1:port right now. With SO_REUSEADDR, as the servers
    bind: a closed connection's TIME_WAIT on the port (a server that closed its end first, such
    as an event stream ended at shutdown) must not count as busy; a listener does."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((HOST, port))
            return True
        except OSError:
            return False


def require_our_gateway(url: str, config_path: Path, proc: subprocess.Popen | None) -> dict:
    """The gateway answering at `url` must be the process we started, serving `config_path`
    (a free port can be taken between the look-up and the bind). Returns its status document."""
    status = requests.get(url + "/api/connections/status", timeout=5).json()
    served = status.get("config", {}).get("path")
    exited = proc.poll() if proc is not None else None
    if exited is not None or Path(served or "").resolve() != Path(config_path).resolve():
        raise RuntimeError(f"{url} is not our gateway (serves {served!r}, exit code {exited})")
    return status


def wait_for_port(port: int, proc: subprocess.Popen | None, timeout: float, what: str, log: Path | None = None) -> None:
    """Wait until 127.0.0.1:port accepts TCP connections; fail early if `proc` exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what} exited with code {proc.returncode} before listening{_tail(log)}")
        try:
            with socket.create_connection((HOST, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"{what} did not listen on {HOST}:{port} within {timeout}s{_tail(log)}")


def wait_for_http_200(url: str, proc: subprocess.Popen | None, timeout: float, what: str, log: Path | None = None) -> None:
    """Wait until GET url answers 200; fail early if `proc` exits."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what} exited with code {proc.returncode} before {url} answered{_tail(log)}")
        try:
            r = requests.get(url, timeout=1)
            if r.status_code == 200:
                return
            last = f"HTTP {r.status_code}: {r.text[:200]}"
        except requests.RequestException as e:
            last = repr(e)
        time.sleep(0.1)
    raise TimeoutError(f"{what}: {url} did not answer 200 within {timeout}s (last: {last}){_tail(log)}")


def wait_until(predicate, timeout: float, what: str, interval: float = 0.2):
    """predicate()'s first truthy value within `timeout` seconds (an exception counts as not
    yet: a page being rebuilt, a server restarting); else an AssertionError naming `what`."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
            if last:
                return last
        except Exception as e:  # noqa: BLE001
            last = e
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


def stop_process(proc: subprocess.Popen, grace: float = 10) -> None:
    """SIGTERM, then SIGKILL after `grace` seconds. Only ever the process we started."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=grace)


def _tail(log: Path | None, chars: int = 4000) -> str:
    if log is None or not log.exists():
        return ""
    text = log.read_text(errors="replace")
    return f"\n--- {log} (last {chars} chars) ---\n{text[-chars:]}"


# --------------------------------------------------------------------------- OIDC issuer


def _b64url_uint(value: int) -> str:
    raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def new_rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def public_jwk(key: rsa.RSAPrivateKey, kid: str) -> dict:
    numbers = key.public_key().public_numbers()
    return {"kty": "RSA", "kid": kid, "alg": "RS256", "use": "sig", "n": _b64url_uint(numbers.n), "e": _b64url_uint(numbers.e)}


@dataclass
class OIDCIssuer:
    """A real OIDC issuer on 127.0.0.1: discovery document + JWKS, RS256 ID tokens.

    Every token it mints (good or bad) is remembered in `minted`, so the tests can prove none
    of them ever shows up in the gateway's status API or logs."""

    key: rsa.RSAPrivateKey = field(default_factory=new_rsa_key)
    kid: str = field(default_factory=lambda: "interop-" + uuid.uuid4().hex[:8])
    minted: list[str] = field(default_factory=list)
    requests_seen: list[str] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        assert self._server is not None, "issuer not started"
        return f"http://{HOST}:{self._server.server_address[1]}"

    def jwks(self) -> dict:
        return {"keys": [public_jwk(self.key, self.kid)]}

    def discovery(self) -> dict:
        return {
            "issuer": self.url,
            "jwks_uri": self.url + "/keys",
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["id_token"],
            "subject_types_supported": ["public"],
        }

    def start(self) -> "OIDCIssuer":
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server API)
                issuer.requests_seen.append(self.path)
                if self.path == "/.well-known/openid-configuration":
                    self._json(200, issuer.discovery())
                elif self.path == "/keys":
                    self._json(200, issuer.jwks())
                else:
                    self._json(404, {"error": "not_found"})

            def _json(self, status: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args) -> None:  # keep pytest output clean
                pass

        self._server = ThreadingHTTPServer((HOST, 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="oidc-issuer", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def mint(
        self,
        *,
        aud: str = AUDIENCE,
        sub: str = "user-123",
        email: str = "ada@example.com",
        key: rsa.RSAPrivateKey | None = None,
        kid: str | None = None,
        iss: str | None = None,
        lifetime: int = 600,
        iat_offset: int = 0,
    ) -> str:
        """An RS256 ID token (header kid, typ JWT; claims iss, sub, aud, iat, exp, email)."""
        now = int(time.time()) + iat_offset
        claims = {"iss": iss or self.url, "sub": sub, "aud": aud, "iat": now, "exp": now + lifetime, "email": email}
        token = jwt.encode(claims, key or self.key, algorithm="RS256", headers={"kid": kid or self.kid, "typ": "JWT"})
        self.minted.append(token)
        return token


# --------------------------------------------------------------------------- upstream header log


@dataclass
class UpstreamRequest:
    method: str
    path: str
    headers: list[tuple[str, str]]

    def get(self, name: str) -> str | None:
        name = name.lower()
        for k, v in self.headers:
            if k == name:
                return v
        return None

    def all(self, name: str) -> list[str]:
        name = name.lower()
        return [v for k, v in self.headers if k == name]

    @property
    def names(self) -> set[str]:
        return {k for k, _ in self.headers}


def read_header_log(path: Path, test_id: str | None = None) -> list[UpstreamRequest]:
    """The upstream's requests, oldest first; with `test_id`, only those carrying X-Test-Id: test_id."""
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        rec = json.loads(line)
        req = UpstreamRequest(rec["method"], rec["path"], [(k, v) for k, v in rec["headers"]])
        if test_id is None or req.get("x-test-id") == test_id:
            out.append(req)
    return out


def switchboard_binary(repo_root: Path) -> Path:
    override = os.environ.get("SWITCHBOARD_BIN")
    return Path(override) if override else repo_root / ".build" / "debug" / "switchboard"


def built_switchboard(repo_root: Path) -> Path:
    """The switchboard binary, or the test fails saying how to get one."""
    binary = switchboard_binary(repo_root)
    if not binary.is_file() or not os.access(binary, os.X_OK):
        import pytest
        pytest.fail(f"switchboard binary not found at {binary} (build it, or set SWITCHBOARD_BIN)", pytrace=False)
    return binary


def write_atomically(path: Path, text: str) -> None:
    """Writes a file as editors save one: a new file renamed over the old, so that a watcher
    never reads half of it (a plain write truncates first)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
