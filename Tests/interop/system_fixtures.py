"""The whole Switchboard system as subprocesses on 127.0.0.1, for test_plugins_end_to_end.py.

    alice's browser (requests.Session) ── sign-in, consent ──────────────────────┐
                                                                                  v
    tests (mcp SDK, requests) ── ID token ──> switchboard gateway ── agent ──> switchboard idp (free port)
                                   (shipped connections.yaml,   │                  ^        ^
                                    env vars → our ports)       │ access tokens    │ JWKS   │ JWKS
                                                                v                  │        │
                                 recording TCP relays ──> switchboard todo0 (free ports, resource :5002/mcp)
                                                     └──> switchboard isv   (:7000, REST + /mcp)

- `switchboard idp --init-agent` writes the agent's private key; the IdP runs on a free port.
- todo0 trusts `{issuer}/oauth2/todo-mcp` and calls itself `http://127.0.0.1:5002/mcp` (the
  resource registered at the IdP), whatever port it really listens on.
- The ISV stand-in must listen on 7000: the IdP mints its STS tokens for the audiences
  `http://127.0.0.1:7000` and `http://127.0.0.1:7000/mcp`, and `switchboard isv` has no flag
  to change the audience it expects. When 7000 is taken the fixture skips.
- The gateway runs a copy of the repository's connections.yaml (`System.config_path`: a test
  may edit it, the running gateway reloads it); environment variables point it at our ports
  and at the agent key.
- Between the gateway and each upstream sits a byte-for-byte TCP relay that records what the
  gateway sent, so the tests know the exact access tokens the gateway injected (and can prove
  they never show up in the gateway's log or status API).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urljoin, urlsplit

import pytest
import requests
from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session

from idp_fixtures import REDIRECT_URI, USERS, WEB_CLIENT_ID, WEB_CLIENT_SECRET, IdP, start_idp, parse_forms, sign_in
from interop_helpers import HOST, free_port, port_is_free, require_our_gateway, stop_process, built_switchboard, wait_for_http_200, wait_for_port, write_atomically
from todo0_fixtures import Todo0

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parent.parent
SHIPPED_CONFIG = REPO_ROOT / "connections.yaml"

TODO0_RESOURCE = "http://127.0.0.1:5002/mcp"  # registered at the IdP's todo-mcp AS
ISV_PORT = 7000                               # the IdP's STS audiences name this port


# --------------------------------------------------------------------------- a recording TCP relay


class RecordingRelay:
    """A plain TCP relay 127.0.0.1:port → 127.0.0.1:target_port. It copies bytes both ways
    unchanged (keep-alive, chunked bodies and SSE streams included) and keeps a copy of every
    byte in both directions: `bearer_tokens()` reads the Authorization headers the gateway
    injected, `received_text()` shows what the upstream answered."""

    def __init__(self, target_port: int, name: str) -> None:
        self.target_port = target_port
        self.name = name
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind((HOST, 0))
        self._listener.listen(64)
        self.port = self._listener.getsockname()[1]
        self._sent: list[bytearray] = []
        self._received: list[bytearray] = []
        self._lock = threading.Lock()
        self._closed = False
        self._sockets: list[socket.socket] = []
        threading.Thread(target=self._accept_loop, name=f"relay-{name}", daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def _accept_loop(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection((HOST, self.target_port), timeout=10)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            sent, received = bytearray(), bytearray()
            with self._lock:
                self._sent.append(sent)
                self._received.append(received)
                self._sockets += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream, sent), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, received), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, record: bytearray) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                with self._lock:
                    record.extend(data)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s, how in ((dst, socket.SHUT_WR), (src, socket.SHUT_RD)):
                try:
                    s.shutdown(how)
                except OSError:
                    pass

    def sent_text(self) -> str:
        with self._lock:
            return "".join(bytes(r).decode("latin-1") for r in self._sent)

    def received_text(self) -> str:
        """What the upstream answered (status lines, headers, bodies), all connections."""
        with self._lock:
            return "".join(bytes(r).decode("latin-1") for r in self._received)

    def connections(self) -> list[tuple[bytes, bytes]]:
        """Per connection, in the order they were accepted: (bytes sent, bytes received)."""
        with self._lock:
            return [(bytes(s), bytes(r)) for s, r in zip(self._sent, self._received)]

    def request_lines(self) -> list[str]:
        """`METHOD /path HTTP/1.1` of every request the gateway sent, in order per connection.
        (Not anchored at a line start: on a keep-alive connection a request follows the
        previous body directly.)"""
        return re.findall(r"\b(?:GET|POST|PUT|PATCH|DELETE|HEAD|OPTIONS) /\S* HTTP/1\.[01](?=\r\n)", self.sent_text())

    def status_lines(self) -> list[str]:
        """`HTTP/1.1 NNN reason` of every answer the upstream gave (unanchored, as above)."""
        return re.findall(r"HTTP/1\.[01] \d{3}[^\r\n]*(?=\r\n)", self.received_text())

    def bearer_tokens(self) -> set[str]:
        return set(re.findall(r"(?im)^authorization:[ \t]*bearer[ \t]+([^\s]+)[ \t]*\r?$", self.sent_text()))

    def close(self) -> None:
        self._closed = True
        try:
            self._listener.close()
        except OSError:
            pass
        with self._lock:
            for s in self._sockets:
                try:
                    s.close()
                except OSError:
                    pass


# --------------------------------------------------------------------------- processes


@dataclass
class Service:
    name: str
    url: str
    proc: subprocess.Popen
    stderr_log: Path
    stdout_log: Path

    def log_text(self) -> str:
        return "".join(p.read_text(errors="replace") for p in (self.stderr_log, self.stdout_log) if p.exists())


@dataclass
class System:
    base: Path
    idp: IdP
    todo0: Todo0
    isv: Service
    gateway: Service
    todo0_relay: RecordingRelay
    isv_relay: RecordingRelay
    config_path: Path = SHIPPED_CONFIG
    alice_id_token: str = ""
    alice_browser: requests.Session | None = None
    secrets: list[str] = field(default_factory=list)

    def mcp_url(self, name: str) -> str:
        return f"{self.gateway.url}/mcp/{name}"

    def rest_url(self, name: str, path: str) -> str:
        return f"{self.gateway.url}/rest/{name}/{path.lstrip('/')}"

    def status(self, token: str | None = None) -> dict:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        r = requests.get(self.gateway.url + "/api/connections/status", headers=headers, timeout=10)
        assert r.status_code == 200, f"status: HTTP {r.status_code} {r.text[:300]}"
        return r.json()

    def connection(self, name: str, doc: dict | None = None) -> dict:
        doc = doc or self.status()
        found = [c for c in doc["connections"] if c["name"] == name]
        assert len(found) == 1, f"{name} in {[c['name'] for c in doc['connections']]}"
        return found[0]

    def apply_config(self, text: str, timeout: float = 30) -> None:
        """Writes connections.yaml and waits until the gateway serves it (a new registry
        generation); fails with the gateway's own words if it refused the file."""
        generation = self.status()["config"]["generation"]
        write_atomically(self.config_path, text)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            config = self.status()["config"]
            assert not config.get("last_error"), f"the gateway refused the file: {config['last_error']}"
            if config["generation"] != generation:
                return
            time.sleep(0.1)
        raise AssertionError(f"the gateway did not load the new connections.yaml within {timeout}s")

    def injected_tokens(self) -> set[str]:
        return self.todo0_relay.bearer_tokens() | self.isv_relay.bearer_tokens()

    def tails(self, chars: int = 5000) -> str:
        out = []
        for name, text in (("gateway", self.gateway.log_text()), ("idp", self.idp.log_text()),
                           ("todo0", self.todo0.log_text()), ("isv", self.isv.log_text())):
            out.append(f"--- {name} (last {chars} chars) ---\n{text[-chars:]}")
        return "\n".join(out)


def _base_env() -> dict[str, str]:
    env = dict(os.environ)
    env["LOG_LEVEL"] = os.environ.get("INTEROP_LOG_LEVEL", "trace")
    for var in (
        "SWITCHBOARD_CONFIG", "GATEWAY_HOST", "GATEWAY_PORT", "DISABLED_CONNECTIONS", "SWITCHBOARD_DATA_DIR",
        "IDP_HOST", "IDP_PORT", "IDP_ISSUER", "ISV_HOST", "ISV_PORT",
        "TODO0_HOST", "TODO0_PORT", "TODO0_REST_PORT", "MCP_AUTHORIZATION_SERVER", "TODO0_RESOURCE", "TODO0_MCP_URL",
        "OKTA_ISSUER", "AGENT0_CLIENT_ID", "AGENT_ID", "AGENT_KEY_ID", "AGENT_KEY_FILE",
        "GITHUB_API_URL", "GITHUB_MCP_SERVER_URL", "OAUTH_STS_RESOURCE", "OAUTH_STS_RESOURCE_GITHUB_MCP", "OKTA_GITHUB_MCP_SERVER_ID",
    ):
        env.pop(var, None)
    return env


def start_isv(binary: Path, base: Path, issuer: str) -> Service:
    if not port_is_free(ISV_PORT):
        pytest.skip(f"127.0.0.1:{ISV_PORT} is busy: the ISV stand-in must listen there, because the IdP mints its STS "
                    f"tokens for the audience http://127.0.0.1:{ISV_PORT}[/mcp] and `switchboard isv` has no flag to change "
                    f"the audience it accepts (Sources/ISVStandIn/ISVApplication.swift)")
    data_dir = base / "isv-data"
    stderr_log, stdout_log = base / "isv.stderr.log", base / "isv.stdout.log"
    with open(stderr_log, "wb") as err, open(stdout_log, "wb") as out:
        proc = subprocess.Popen(
            [str(binary), "isv", "--host", HOST, "--port", str(ISV_PORT), "--data-dir", str(data_dir), "--identity-provider", issuer],
            stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=_base_env(), cwd=str(base),
        )
    svc = Service("isv", f"http://{HOST}:{ISV_PORT}", proc, stderr_log, stdout_log)
    try:
        wait_for_http_200(svc.url + "/healthz", proc, timeout=60, what="switchboard isv", log=stderr_log)
        # Ours: still running (7000 was free a moment ago) and its database is in our directory.
        if proc.poll() is not None or not (data_dir / "isv.sqlite").exists():
            raise RuntimeError(f"{svc.url} is not our ISV stand-in (exit code {proc.poll()})")
        return svc
    except BaseException:
        stop_process(proc)
        if not port_is_free(ISV_PORT) and proc.returncode not in (None, 0, -15):
            pytest.skip(f"127.0.0.1:{ISV_PORT} was taken by another process while the ISV stand-in started "
                        f"(exit code {proc.returncode}); it must listen there (the IdP's STS audience)")
        raise


def start_todo0(binary: Path, base: Path, issuer: str, authorization_server: str | None = None) -> Todo0:
    """todo0 trusting `authorization_server` (default: the IdP's embedded `{issuer}/oauth2/todo-mcp`)."""
    errors = []
    for attempt in range(3):
        mcp_port, rest_port = free_port(), free_port()
        if mcp_port == rest_port:
            continue
        t = Todo0(binary=binary, issuer_url=authorization_server or issuer + "/oauth2/todo-mcp", data_dir=base / "todo0-data", log_dir=base / "todo0-logs",
                  mcp_port=mcp_port, rest_port=rest_port, resource=TODO0_RESOURCE)
        t.data_dir.mkdir(parents=True, exist_ok=True)
        t.log_dir.mkdir(parents=True, exist_ok=True)
        try:
            return t.start()
        except (RuntimeError, TimeoutError, requests.RequestException, ValueError) as e:
            errors.append(str(e))
            time.sleep(1)
    raise RuntimeError("todo0 did not start:\n" + "\n".join(errors))


def start_gateway(binary: Path, base: Path, env_vars: dict[str, str], config: Path) -> Service:
    errors = []
    for attempt in range(3):
        port = free_port()
        stderr_log, stdout_log = base / f"gateway-{attempt}.stderr.log", base / f"gateway-{attempt}.stdout.log"
        env = _base_env()
        env.update(env_vars)
        with open(stderr_log, "wb") as err, open(stdout_log, "wb") as out:
            proc = subprocess.Popen(
                [str(binary), "gateway", "--config", str(config), "--host", HOST, "--port", str(port)],
                stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env, cwd=str(base),
            )
        svc = Service("gateway", f"http://{HOST}:{port}", proc, stderr_log, stdout_log)
        try:
            wait_for_http_200(svc.url + "/readyz", proc, timeout=60, what="switchboard gateway", log=stderr_log)
            status = require_our_gateway(svc.url, config, proc)
            if status["config"].get("last_error"):
                raise RuntimeError(f"the gateway could not load {config}: {status['config']['last_error']}")
            return svc
        except (RuntimeError, TimeoutError, requests.RequestException, ValueError, KeyError) as e:
            stop_process(proc)
            errors.append(str(e))
            time.sleep(1)
    raise RuntimeError("the gateway did not start:\n" + "\n".join(errors))


def start_agent0(binary: Path, base: Path, port: int, env_vars: dict[str, str]) -> Service:
    """`switchboard agent` on `port`, configured by `env_vars` alone (OKTA_ISSUER, AGENT0_CLIENT_ID,
    AGENT0_CLIENT_SECRET, GATEWAY_URL, LLM_URL…) on top of a clean environment. The port is the
    caller's: the redirect URI registered at the IdP names it, so there is no retry on another."""
    stderr_log, stdout_log = base / "agent0.stderr.log", base / "agent0.stdout.log"
    env = _base_env()
    for var in ("AGENT0_HOST", "AGENT0_PORT", "AGENT0_PUBLIC_URL", "AGENT0_CLIENT_SECRET", "AGENT0_MODEL",
                "GATEWAY_URL", "LLM_URL", "LLM_API_KEY"):
        env.pop(var, None)
    env.update(env_vars)
    with open(stderr_log, "wb") as err, open(stdout_log, "wb") as out:
        proc = subprocess.Popen([str(binary), "agent", "--host", HOST, "--port", str(port)],
                                stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env, cwd=str(base))
    svc = Service("agent0", f"http://{HOST}:{port}", proc, stderr_log, stdout_log)
    try:
        wait_for_http_200(svc.url + "/health", proc, timeout=60, what="switchboard agent", log=stderr_log)
        # Ours: still running, and our own log says it listens at that URL.
        deadline = time.monotonic() + 5
        while "agent0 listening" not in svc.log_text() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        if proc.poll() is not None or f"{HOST}:{port}" not in svc.log_text():
            raise RuntimeError(f"{svc.url} is not our agent0 (exit code {proc.poll()})\n{svc.log_text()[-3000:]}")
        return svc
    except BaseException:
        stop_process(proc)
        raise


@dataclass
class Nginx(Service):
    """nginx as a load balancer: its own prefix directory, config, pid file and logs."""
    access_log: Path = Path()
    servers: tuple[str, ...] = ()

    def access(self) -> list[dict]:
        """The access log, one dict per request (the `balanced` log_format below): `msec` (time
        of the answer, epoch seconds), `method`, `uri`, `status`, `upstream` (`host:port`, or
        several comma-separated when nginx passed the request on), `upstream_status`, `session`
        (the request's Mcp-Session-Id), `new_session` (the answer's), `body` (the request body)."""
        if not self.access_log.exists():
            return []
        return [json.loads(line) for line in self.access_log.read_text(errors="replace").splitlines() if line.strip()]


NGINX_CONF = """\
daemon off;
master_process on;
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log info;
events {{ worker_connections 1024; }}
http {{
    log_format balanced escape=json '{{"msec":"$msec","method":"$request_method","uri":"$request_uri","status":"$status",'
        '"upstream":"$upstream_addr","upstream_status":"$upstream_status","session":"$http_mcp_session_id",'
        '"new_session":"$sent_http_mcp_session_id","body":"$request_body"}}';
    access_log {prefix}/access.log balanced;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    # Round-robin, no stickiness; a server that failed once is left out for 5 s. The default
    # proxy_next_upstream (error timeout) passes on only what was not sent yet to a server that
    # failed, for a POST too (no non_idempotent).
    upstream replicas {{
{servers}
        keepalive 16;
    }}
    server {{
        listen {host}:{port};
        location / {{
            proxy_pass http://replicas;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $http_host;
            proxy_buffering off;            # SSE answers and GET streams go out as they come
            proxy_read_timeout 120s;
            # Every request header (Authorization, Mcp-Session-Id, MCP-Protocol-Version…) goes
            # through as sent, and every answer header (Mcp-Session-Id…) comes back.
        }}
    }}
}}
"""


def start_nginx(base: Path, upstreams: list[str], name: str = "nginx") -> Nginx:
    """Debian's nginx in the foreground (`daemon off;`, a child process stopped by its pid) on a
    free loopback port, balancing round-robin over `upstreams` (URLs such as a Service's `url`)
    with `max_fails=1 fail_timeout=5s`. Its prefix directory is `base/name`: config, pid file,
    error log and a JSON access log (Nginx.access()). Skips when nginx is not installed."""
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    if not os.access(binary, os.X_OK):
        pytest.skip("nginx is not installed (apt-get install nginx-light)")
    servers = tuple(urlsplit(u).netloc for u in upstreams)
    prefix = base / name
    prefix.mkdir(parents=True, exist_ok=True)
    errors = []
    for attempt in range(3):
        port = free_port()
        conf = prefix / "nginx.conf"
        conf.write_text(NGINX_CONF.format(prefix=prefix, host=HOST, port=port, servers="\n".join(
            f"        server {s} max_fails=1 fail_timeout=5s;" for s in servers)))
        stderr_log, stdout_log = prefix / f"stderr-{attempt}.log", prefix / f"stdout-{attempt}.log"
        with open(stderr_log, "wb") as err, open(stdout_log, "wb") as out:
            proc = subprocess.Popen([binary, "-p", str(prefix), "-c", str(conf), "-e", str(prefix / "error.log")],
                                    stdin=subprocess.DEVNULL, stdout=out, stderr=err, cwd=str(prefix))
        svc = Nginx(name, f"http://{HOST}:{port}", proc, stderr_log, stdout_log, access_log=prefix / "access.log", servers=servers)
        try:
            wait_for_port(port, proc, timeout=15, what="nginx", log=prefix / "error.log")
            # Ours: still running, and the pid file it wrote is this process's.
            deadline = time.monotonic() + 5
            while not (prefix / "nginx.pid").exists() and time.monotonic() < deadline:
                time.sleep(0.05)
            pid = (prefix / "nginx.pid").read_text().strip() if (prefix / "nginx.pid").exists() else ""
            if proc.poll() is not None or pid != str(proc.pid):
                raise RuntimeError(f"{svc.url} is not our nginx (pid file {pid!r}, exit code {proc.poll()})")
            return svc
        except (RuntimeError, TimeoutError) as e:
            stop_process(proc)
            errors.append(f"{e}\n{(prefix / 'error.log').read_text(errors='replace')[-2000:] if (prefix / 'error.log').exists() else ''}")
            time.sleep(0.5)
    raise RuntimeError("nginx did not start:\n" + "\n".join(errors))


# --------------------------------------------------------------------------- alice


def login(idp: IdP, username: str = "alice", *, client_id: str = WEB_CLIENT_ID, client_secret: str = WEB_CLIENT_SECRET,
          scope: str = "openid profile email") -> tuple[dict, requests.Session]:
    """The OIDC authorization code flow with PKCE as the agent0 web app (authlib), the sign-in
    page driven like a browser. Returns the token response and the signed-in browser session
    (its IdP session cookie is what the consent page needs). Another web client of the IdP (one
    created through the Management API, redirect URI REDIRECT_URI) with `client_id`/`client_secret`."""
    oauth = OAuth2Session(client_id=client_id, client_secret=client_secret, scope=scope,
                          redirect_uri=REDIRECT_URI, code_challenge_method="S256", token_endpoint_auth_method="client_secret_basic")
    verifier = generate_token(64)
    url, state = oauth.create_authorization_url(idp.authorization_endpoint, code_verifier=verifier, nonce=generate_token(24))
    browser = requests.Session()
    location = sign_in(browser, url, username, USERS[username]["password"])
    params = parse_qs(urlsplit(location).query)
    assert params["state"] == [state], location
    token = oauth.fetch_token(idp.token_endpoint, authorization_response=location, code_verifier=verifier)
    assert token.get("id_token"), f"no ID token in {sorted(token)}"
    idp.remember(params["code"][0], browser.cookies.get("sb_idp_session"), token.get("id_token"), token.get("access_token"))
    return dict(token), browser


def consent(browser: requests.Session, interaction_uri: str, decision: str = "approve") -> requests.Response:
    """Open the consent page in the signed-in browser and submit its form (csrf + decision)."""
    page = browser.get(interaction_uri, allow_redirects=False, timeout=10)
    assert page.status_code == 200, f"GET {interaction_uri}: HTTP {page.status_code} {page.text[:300]}"
    forms = [f for f in parse_forms(page.text) if f["method"] == "post"]
    assert len(forms) == 1, f"expected one POST form on the consent page, got {forms}"
    form = forms[0]
    assert "csrf" in form["hidden"], form
    decided = browser.post(urljoin(page.url, form["action"]), data=dict(form["hidden"], decision=decision), allow_redirects=False, timeout=10)
    assert decided.status_code == 200, f"consent POST: HTTP {decided.status_code} {decided.text[:300]}"
    return decided


# --------------------------------------------------------------------------- the fixture


@pytest.fixture(scope="module")
def system(tmp_path_factory):
    binary = built_switchboard(REPO_ROOT)
    if not port_is_free(ISV_PORT):
        pytest.skip(f"127.0.0.1:{ISV_PORT} is busy: the ISV stand-in must listen there (the IdP's STS audience for "
                    f"GitHub is http://127.0.0.1:{ISV_PORT}; `switchboard isv` has no audience flag)")
    base = tmp_path_factory.mktemp("system")
    started: list = []
    try:
        idp = start_idp(binary, base)
        started.append(idp.proc)

        todo0 = start_todo0(binary, base, idp.issuer)
        started.append(todo0.proc)
        isv = start_isv(binary, base, idp.issuer)
        started.append(isv.proc)

        todo0_relay = RecordingRelay(todo0.mcp_port, "todo0")
        isv_relay = RecordingRelay(ISV_PORT, "isv")
        started += [todo0_relay, isv_relay]

        config_path = base / "connections.yaml"
        shutil.copyfile(SHIPPED_CONFIG, config_path)
        gateway = start_gateway(binary, base, {
            "OKTA_ISSUER": idp.issuer,
            "MCP_AUTHORIZATION_SERVER": idp.issuer + "/oauth2/todo-mcp",
            "TODO0_MCP_URL": todo0_relay.url + "/mcp",
            "TODO0_RESOURCE": TODO0_RESOURCE,
            "GITHUB_API_URL": isv_relay.url,
            "GITHUB_MCP_SERVER_URL": isv_relay.url + "/mcp",
            "AGENT_KEY_FILE": str(idp.agent_key_file),
        }, config_path)
        started.append(gateway.proc)

        sys_ = System(base=base, idp=idp, todo0=todo0, isv=isv, gateway=gateway, todo0_relay=todo0_relay, isv_relay=isv_relay,
                      config_path=config_path)
        token, browser = login(idp, "alice")
        sys_.alice_id_token = token["id_token"]
        sys_.alice_browser = browser
        sys_.secrets += [t for t in (token.get("id_token"), token.get("access_token"), token.get("refresh_token")) if t]
        yield sys_
    finally:
        for item in reversed(started):
            if isinstance(item, RecordingRelay):
                item.close()
            else:
                stop_process(item)
