"""Security and reliability, faults with real processes (issue 20): the real `switchboard gateway`
binary between real sockets that misbehave on purpose.

Each case injects one fault and checks four things:

1. the caller gets a clear answer: the documented JSON error of README's table (exact status
   and `error` code), or, for a stream already under way, a stream that ends without looking
   complete (no terminating chunk);
2. the gateway stays up: the process has not exited, `/healthz` answers 200 and a normal
   call through a healthy connection still succeeds;
3. its open file descriptors (`/proc/{pid}/fd`) come back to their baseline (+5) once the
   fault is over, and its RSS grows by less than 20 MB; the baseline is taken after a warm-up
   that includes one occurrence of the fault (one-time costs of an error path are not leaks),
   and the fault is then repeated many times, so that a leak per occurrence shows;
4. nothing of the fault leaks into other calls (calls running meanwhile keep succeeding).

Faults:

- upstream (both drivers: the event-loop one and SWITCHBOARD_FAST_PATH=off): refusing
  connections, accepting and never answering (`timeouts: {response: 1s}`), resetting (SO_LINGER
  0), answering garbage bytes, and cutting an SSE stream mid-event (MCP POST and REST GET; in
  the first event, which the gateway reads before passing the stream on, and after it);
- the users' IdP (the `users.issuer` JWKS the inbound ID-token check reads): down at the
  gateway's first call and when a new `kid` needs its keys, answering garbage (binary,
  truncated JSON, an oversized body) at its JWKS, slow (within and beyond the gateway's 10 s
  fetch timeout), and rotating its signing keys while calls run;
- the audit trail's storage: `gateway.audit.jsonl: /dev/full`, and `gateway.audit.sqlite` whose
  directory is removed (or whose files are made immutable) after start;
- connections.yaml: deleted, truncated, garbage, valid YAML that fails validation (with
  changes that would show if half applied), then restored; and 50 SIGHUPs in a row, with a
  good file and with a bad one.

A defect found (a fault the gateway hides, a behaviour README does not allow) is marked
`xfail(strict=True, raises=Defect)` with the defect and its reproduction in the reason: only
the assertion naming the defect raises `Defect`, and it comes last, so any other failure (a
crash, a leak, a wrong answer) still fails the case.

Every call the cases make to the gateway uses a connection of its own that the test closes
(http.client, `Connection: close`): a client socket left open would hold one of the gateway's
fds until its keep-alive timeout and read as a leak.

The IdP gateways refetch keys for an unknown `kid` at most once per 30 s (README, "HTTP API");
they are started and warmed first thing in this module, so that by the time their cases run
that window has mostly passed while the other cases ran.
"""

from __future__ import annotations

import gc
import http.client
import json
import os
import shutil
import signal
import socket
import sqlite3
import struct
import subprocess
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import jwt
import pytest
import requests

from interop_helpers import (
    AUDIENCE,
    HOST,
    new_rsa_key,
    public_jwk,
    stop_process,
    switchboard_binary,
    wait_for_http_200,
    wait_until,
    write_atomically,
)

ROOT = Path(__file__).resolve().parents[2]
FD_TOLERANCE = 5
RSS_TOLERANCE_KB = 20 * 1024
JWKS_COOLDOWN = 30.0  # README: "refetched on an unknown kid at most once per 30 s"
JWKS_FETCH_TIMEOUT = 10.0  # OAuthCore/JWKSKeySet.getJSON


class Defect(AssertionError):
    """A behaviour that contradicts the README: the only failure a strict xfail here expects."""


def defect_if(condition: bool, message: str) -> None:
    if condition:
        raise Defect(message)


# --------------------------------------------------------------------------- the gateway process


@dataclass
class GatewayProcess:
    """One `switchboard gateway` we started, on its own temp directory and connections.yaml."""

    base: Path
    config: Path
    port: int
    proc: subprocess.Popen
    log: Path

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def fds(self) -> int:
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    def rss_kb(self) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise AssertionError("no VmRSS")

    def status(self) -> dict:
        return get(self.url + "/api/connections/status").json()

    def log_records(self) -> list[dict]:
        out = []
        for line in self.log.read_text(errors="replace").splitlines():
            try:
                rec = json.loads(line)
            except ValueError:
                rec = {"level": "?", "message": line}
            if isinstance(rec, dict):
                out.append(rec)
        return out

    def log_tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:]

    def stop(self) -> None:
        stop_process(self.proc)


def start_gateway(base: Path, config_text: str, fast_path: str = "on") -> GatewayProcess:
    base.mkdir(parents=True, exist_ok=True)
    config = base / "connections.yaml"
    config.write_text(config_text)
    binary = switchboard_binary(ROOT)
    # The binary may be rebuilt by a concurrent build for a moment: wait for it.
    wait_until(lambda: binary.is_file() and os.access(binary, os.X_OK), 120, f"the switchboard binary at {binary}", interval=1)
    last: Exception | None = None
    for attempt in range(3):
        port = _free_port()
        log = base / f"gateway-{attempt}.log"
        env = dict(os.environ, LOG_FORMAT="json", LOG_LEVEL="info", SWITCHBOARD_FAST_PATH=fast_path)
        for var in ("SWITCHBOARD_CONFIG", "GATEWAY_HOST", "GATEWAY_PORT", "DISABLED_CONNECTIONS"):
            env.pop(var, None)
        with open(log, "wb") as out:
            proc = subprocess.Popen([str(binary), "gateway", "--config", str(config), "--host", HOST, "--port", str(port)],
                                    stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=str(base))
        gw = GatewayProcess(base=base, config=config, port=port, proc=proc, log=log)
        try:
            wait_for_http_200(gw.url + "/healthz", proc, 60, "switchboard gateway", log)
            served = gw.status()["config"]["path"]
            if Path(base, served).resolve() != config.resolve():
                raise RuntimeError(f"{gw.url} serves {served!r}: not our gateway")
            return gw
        except (RuntimeError, TimeoutError, OSError, requests.RequestException, ValueError) as e:
            last = e
            stop_process(proc)
    raise RuntimeError(f"the gateway did not start: {last}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


@dataclass
class Baseline:
    fds: int
    rss_kb: int


@dataclass
class Answer:
    """An HTTP answer read whole (the attributes the cases use, as requests names them)."""

    status_code: int
    headers: dict  # lower-case names
    content: bytes

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")

    def json(self):
        return json.loads(self.content)


def http_call(method: str, url: str, headers: dict | None = None, body: bytes | None = None, timeout: float = 5) -> Answer:
    """A request on a connection of its own, closed by us once the answer is read: no socket of
    the test process outlives its call (requests can keep one in an unclosed pool until the
    garbage collector runs, and the gateway then keeps the other end, an fd, until its
    keep-alive timeout — which would read as a leak)."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        conn.request(method, parts.path + (f"?{parts.query}" if parts.query else ""), body=body,
                     headers=dict(headers or {}, Connection="close"))
        r = conn.getresponse()
        return Answer(r.status, {k.lower(): v for k, v in r.getheaders()}, r.read())
    finally:
        conn.close()


def get(url: str, headers: dict | None = None, timeout: float = 5) -> Answer:
    return http_call("GET", url, headers, None, timeout)


def release_client_sockets() -> None:
    """interop_helpers' start-up probes use requests, whose connections can sit in reference
    cycles: such a socket stays open (and holds one of the gateway's fds for up to its keep-alive
    timeout) until the garbage collector runs. Run it before counting the gateway's fds."""
    gc.collect()


def baseline(gw: GatewayProcess) -> Baseline:
    release_client_sockets()
    time.sleep(0.3)  # closes of the warm-up's connections are seen asynchronously
    return Baseline(gw.fds(), gw.rss_kb())


def assert_recovered(gw: GatewayProcess, base: Baseline, normal_call, what: str) -> None:
    """The gateway is up, healthy, serves a normal call, and its fds and RSS are back."""
    assert gw.proc.poll() is None, f"{what}: the gateway exited with {gw.proc.returncode}\n{gw.log_tail()}"
    r = get(gw.url + "/healthz")
    assert r.status_code == 200, f"{what}: /healthz answered {r.status_code}"
    normal_call()
    release_client_sockets()
    deadline = time.monotonic() + 15
    while (fds := gw.fds()) > base.fds + FD_TOLERANCE and time.monotonic() < deadline:
        time.sleep(0.25)  # closes are seen asynchronously
    assert fds <= base.fds + FD_TOLERANCE, f"{what}: {fds} open fds, baseline {base.fds} (+{FD_TOLERANCE} allowed):\n{fd_report(gw)}"
    grown = gw.rss_kb() - base.rss_kb
    assert grown < RSS_TOLERANCE_KB, f"{what}: RSS grew by {grown} kB (baseline {base.rss_kb} kB)"


TCP_STATES = {"01": "ESTABLISHED", "02": "SYN_SENT", "03": "SYN_RECV", "04": "FIN_WAIT1", "05": "FIN_WAIT2", "06": "TIME_WAIT",
              "07": "CLOSE", "08": "CLOSE_WAIT", "09": "LAST_ACK", "0A": "LISTEN", "0B": "CLOSING"}


def fd_report(gw: GatewayProcess) -> str:
    """What the gateway's fds are: files, and TCP sockets as local port -> peer port (state)."""
    tcp = {}
    for table in ("tcp", "tcp6"):
        try:
            lines = Path(f"/proc/{gw.pid}/net/{table}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            f = line.split()
            tcp[f[9]] = f"{int(f[1].split(':')[1], 16)} -> {int(f[2].split(':')[1], 16)} ({TCP_STATES.get(f[3], f[3])})"
    out = []
    for fd in sorted(os.listdir(f"/proc/{gw.pid}/fd"), key=int):
        try:
            target = os.readlink(f"/proc/{gw.pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            target = "tcp " + tcp.get(target[8:-1], target)
        out.append(f"  fd {fd}: {target}")
    return "\n".join(out)


def assert_json_error(r: Answer, status: int, code: str, connection: str | None = None) -> dict:
    assert r.status_code == status, (r.status_code, r.headers, r.text[:500])
    assert r.headers.get("content-type", "").startswith("application/json"), r.headers
    body = r.json()
    assert body.get("error") == code, body
    assert isinstance(body.get("message"), str) and body["message"], body
    if connection is not None:
        assert body.get("connection") == connection, body
    return body


# --------------------------------------------------------------------------- upstreams


class GoodUpstream(BaseHTTPRequestHandler):
    """A healthy HTTP/1.1 keep-alive upstream: JSON for every GET and POST."""

    protocol_version = "HTTP/1.1"

    def do_GET(self):  # noqa: N802
        self._answer({"ok": True, "path": self.path})

    def do_POST(self):  # noqa: N802
        length = int(self.headers.get("Content-Length", "0"))
        raw = self.rfile.read(length) if length else b""
        try:
            rid = json.loads(raw).get("id")
        except (ValueError, AttributeError):
            rid = None
        self._answer({"jsonrpc": "2.0", "id": rid, "result": {"ok": True}})

    def _answer(self, doc: dict):
        data = json.dumps(doc).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


def read_request(conn: socket.socket, limit: float = 10) -> bytes:
    """A request head and its Content-Length body; b'' if the peer closed first."""
    conn.settimeout(limit)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return b""
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body


def wait_for_eof(conn: socket.socket, limit: float) -> None:
    """Holds the connection until the gateway closes it (or `limit` passes)."""
    conn.settimeout(limit)
    try:
        while conn.recv(65536):
            pass
    except OSError:
        pass


SSE_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n\r\n"


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


SSE_EVENTS = {
    # MCP: a progress notification, then the JSON-RPC result.
    "mcp": (b'event: message\ndata: {"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":1,"progress":1}}\n\n',
            b'event: message\ndata: {"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"the whole answer"}]}}\n\n'),
    "rest": (b"event: tick\ndata: one\n\n", b"event: tick\ndata: two and the rest of a long event\n\n"),
}


class FaultServer:
    """A raw TCP upstream that misbehaves as told: one thread per connection running `behaviour`."""

    def __init__(self, behaviour):
        self.behaviour = behaviour
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((HOST, 0))
        self.sock.listen(256)
        self.port = self.sock.getsockname()[1]
        self.conns: list[socket.socket] = []
        self.accepted = 0
        self.stopped = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.stopped.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            self.conns.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        try:
            self.behaviour(conn)
        except OSError:
            pass
        finally:
            try:
                conn.close()
            except OSError:
                pass

    def stop(self):
        self.stopped.set()
        self.sock.close()
        for c in self.conns:
            try:
                c.close()
            except OSError:
                pass


def hang(conn):
    """Accepts, reads the request, never answers; holds the connection until the gateway drops it."""
    if read_request(conn):
        wait_for_eof(conn, 60)


def reset(conn):
    """Reads the request, then closes with SO_LINGER 0: an RST instead of an answer."""
    read_request(conn)
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


GARBAGE = bytes(range(256)) * 4 + b"\r\n\r\n\x00\xff not HTTP at all \r\n\r\n"


def garbage(conn):
    """Reads the request, answers bytes that are not HTTP, and leaves closing to the gateway."""
    if read_request(conn):
        conn.sendall(GARBAGE)
        wait_for_eof(conn, 10)


def sse_whole(conn):
    """The control: both events and the terminating chunk, as a healthy stream ends (then the
    connection is closed, as announced: this server answers one request per connection)."""
    if read_request(conn):
        first, second = SSE_EVENTS["rest"]
        head = SSE_HEAD.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n")
        conn.sendall(head + chunk(first) + chunk(second) + b"0\r\n\r\n")


def sse_cut(kind: str, where: str):
    first, second = SSE_EVENTS[kind]

    def behaviour(conn):
        if not read_request(conn):
            return
        if where == "in-first-event":
            conn.sendall(SSE_HEAD + chunk(first[: len(first) // 2]))
        else:
            conn.sendall(SSE_HEAD + chunk(first))
            time.sleep(0.05)
            conn.sendall(chunk(second[: len(second) // 2]))
        time.sleep(0.05)
        conn.shutdown(socket.SHUT_WR)  # a clean FIN mid-event: the upstream went away
        wait_for_eof(conn, 10)

    return behaviour


# --------------------------------------------------------------------------- a raw caller


@dataclass
class RawAnswer:
    status: int
    headers: dict
    body: bytes
    complete: bool  # the framing said the body ended (terminating chunk or whole Content-Length)
    raw: bytes


def raw_call(port: int, method: str, path: str, headers: dict, body: bytes = b"", limit: float = 20) -> RawAnswer:
    """One request on a fresh connection; the answer read until its framing ends or the gateway closes."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {HOST}:{port}"] + [f"{k}: {v}" for k, v in headers.items()]
    if body:
        lines.append(f"Content-Length: {len(body)}")
    s = socket.create_connection((HOST, port), timeout=limit)
    deadline = time.monotonic() + limit
    try:
        s.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        data = b""

        def more() -> bool:
            nonlocal data
            if time.monotonic() > deadline:
                raise TimeoutError(f"the gateway neither ended nor closed the answer within {limit}s: {data[:500]!r}")
            try:
                c = s.recv(65536)
            except ConnectionResetError:
                return False
            data += c
            return bool(c)

        while b"\r\n\r\n" not in data:
            if not more():
                raise AssertionError(f"the gateway closed before an answer head: {data!r}")
        head, _, rest = data.partition(b"\r\n\r\n")
        head_lines = head.decode("latin-1").split("\r\n")
        status = int(head_lines[0].split()[1])
        hdrs = {}
        for line in head_lines[1:]:
            k, _, v = line.partition(":")
            hdrs[k.strip().lower()] = v.strip()
        if "chunked" in hdrs.get("transfer-encoding", "").lower():
            payload, pos, complete = b"", 0, False
            while True:
                buf = data[len(head) + 4:]
                # parse as many whole chunks as are there
                while True:
                    eol = buf.find(b"\r\n", pos)
                    if eol < 0:
                        break
                    size = int(buf[pos:eol].split(b";")[0], 16)
                    if size == 0:
                        if buf.find(b"\r\n", eol + 2) >= 0:
                            complete = True
                        break
                    if len(buf) < eol + 2 + size + 2:
                        break
                    payload += buf[eol + 2: eol + 2 + size]
                    pos = eol + 2 + size + 2
                if complete or not more():
                    break
            if not complete:  # a partial chunk's bytes are still what the caller got
                buf = data[len(head) + 4:]
                eol = buf.find(b"\r\n", pos)
                if eol >= 0:
                    payload += buf[eol + 2:]
            return RawAnswer(status, hdrs, payload, complete, data)
        if "content-length" in hdrs:
            want = int(hdrs["content-length"])
            while len(data) - len(head) - 4 < want and more():
                pass
            got = data[len(head) + 4:]
            return RawAnswer(status, hdrs, got[:want], len(got) >= want, data)
        while more():
            pass
        return RawAnswer(status, hdrs, data[len(head) + 4:], False, data)
    finally:
        s.close()


# --------------------------------------------------------------------------- a switchable IdP


@dataclass
class SwitchableIssuer:
    """An OIDC issuer (discovery + JWKS, RS256 ID tokens) that can be switched to down (its port
    closed), slow, garbage at its JWKS, and whose published keys can be rotated."""

    keys: dict = field(default_factory=dict)  # kid -> private key, every key made
    published: list = field(default_factory=list)  # the kids whose public halves the JWKS serves
    mode: str = "ok"  # ok | slow | garbage
    delay: float = 0.0
    garbage: bytes = b""
    jwks_fetches: int = 0
    port: int = 0
    _server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def new_key(self, publish: bool = True) -> tuple[str, object]:
        kid = "k-" + uuid.uuid4().hex[:10]
        key = new_rsa_key()
        self.keys[kid] = key
        if publish:
            self.published.append(kid)
        return kid, key

    def start(self) -> "SwitchableIssuer":
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                if self.path == "/.well-known/openid-configuration":
                    self._send(200, json.dumps({"issuer": issuer.url, "jwks_uri": issuer.url + "/keys",
                                                "id_token_signing_alg_values_supported": ["RS256"],
                                                "response_types_supported": ["id_token"], "subject_types_supported": ["public"]}).encode())
                elif self.path == "/keys":
                    issuer.jwks_fetches += 1
                    mode, delay = issuer.mode, issuer.delay
                    if mode == "slow":
                        time.sleep(delay)
                    if mode == "garbage":
                        self._send(200, issuer.garbage)
                    else:
                        keys = [public_jwk(issuer.keys[kid], kid) for kid in list(issuer.published)]
                        self._send(200, json.dumps({"keys": keys}).encode())
                else:
                    self._send(404, b'{"error":"not_found"}')

            def _send(self, status, data):
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:
                    pass  # the gateway gave up waiting

            def log_message(self, *args):
                pass

        self._server = ThreadingHTTPServer((HOST, self.port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def down(self) -> None:
        """Closes the port: connections to it are refused."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def up(self) -> None:
        if self._server is None:
            deadline = time.monotonic() + 10
            while True:
                try:
                    self.start()
                    return
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.1)

    def mint(self, kid: str, key=None, lifetime: int = 600) -> str:
        """A fresh RS256 ID token (a nonce claim: never one the gateway verified before)."""
        now = int(time.time())
        claims = {"iss": self.url, "sub": "fault-user", "aud": AUDIENCE, "iat": now, "exp": now + lifetime,
                  "email": "fault@example.test", "nonce": uuid.uuid4().hex}
        return jwt.encode(claims, key if key is not None else self.keys[kid], algorithm="RS256", headers={"kid": kid, "typ": "JWT"})


# --------------------------------------------------------------------------- shared fixtures


@pytest.fixture(scope="module")
def good_upstream():
    server = ThreadingHTTPServer((HOST, 0), GoodUpstream)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://{HOST}:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def plain_issuer():
    iss = SwitchableIssuer().start()
    iss.signing_kid, _ = iss.new_key()
    yield iss
    iss.down()


def users_block(issuer_url: str) -> str:
    return f'version: 1\nusers: {{issuer: "{issuer_url}", audience: {AUDIENCE}}}\n'


def rest_call(gw: GatewayProcess, token: str, connection: str = "good", path: str = "/ping", timeout: float = 15) -> Answer:
    return get(f"{gw.url}/rest/{connection}{path}", {"Authorization": f"Bearer {token}"}, timeout)


def ok_call(gw: GatewayProcess, token: str, connection: str = "good"):
    def call():
        r = rest_call(gw, token, connection)
        assert r.status_code == 200 and r.json().get("ok") is True, (r.status_code, r.text[:300])
    return call


class CallsMeanwhile:
    """Normal calls through a healthy connection, back to back in a thread, while a fault is on:
    every one must succeed."""

    def __init__(self, call):
        self.call = call
        self.results: list[str] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self.stop.is_set():
            try:
                self.results.append(self.call())
            except Exception as e:  # noqa: BLE001
                self.results.append(f"exception: {e!r}")
            time.sleep(0.01)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(30)

    def assert_all_ok(self, what: str, expected: str = "200"):
        assert self.results, f"{what}: no call ran meanwhile"
        bad = [r for r in self.results if r != expected]
        assert not bad, f"{what}: {len(bad)} of {len(self.results)} calls made meanwhile failed: {bad[:5]}"


# =========================================================================== 1. the IdP gateways, warmed first


def start_idp_gateway(base: Path, good_upstream: str):
    """A gateway whose users' issuer is a SwitchableIssuer with one key (A), warmed up: the JWKS
    was fetched once (its 30 s cooldown starts now), fresh A tokens verified."""
    issuer = SwitchableIssuer().start()
    kid_a, _ = issuer.new_key()
    gw = start_gateway(base, users_block(issuer.url) +
                       f'connections:\n  - {{name: good, kind: application, upstream: "{good_upstream}/api", auth: {{strategy: none}}}}\n')
    held = issuer.mint(kid_a, lifetime=3600)
    r = rest_call(gw, held)
    assert r.status_code == 200, r.text
    state = {"gw": gw, "issuer": issuer, "kid_a": kid_a, "held": held, "fetched_at": time.monotonic()}
    for _ in range(20):
        assert rest_call(gw, issuer.mint(kid_a)).status_code == 200
    state["baseline"] = baseline(gw)
    return state


@pytest.fixture(scope="module")
def idp_gateway(tmp_path_factory, good_upstream):
    """For the down, garbage and slow cases, in this order: a failed fetch starts no cooldown, so
    they share one wait; the slow case's successful fetch comes last."""
    state = start_idp_gateway(tmp_path_factory.mktemp("idp-faults"), good_upstream)
    yield state
    state["gw"].stop()
    state["issuer"].down()


@pytest.fixture(scope="module")
def rotation_gateway(tmp_path_factory, good_upstream):
    state = start_idp_gateway(tmp_path_factory.mktemp("idp-rotation"), good_upstream)
    yield state
    state["gw"].stop()
    state["issuer"].down()


@pytest.fixture(scope="module", autouse=True)
def _warm_idp_gateways_first(request):
    """Starts the IdP gateways before the first case when any of their cases is selected, so
    their 30 s refetch cooldown runs out while the other cases run."""
    wanted = {name for item in request.session.items if item.module is request.module for name in item.fixturenames}
    for name in ("idp_gateway", "rotation_gateway"):
        if name in wanted:
            request.getfixturevalue(name)


def wait_out_cooldown(state: dict) -> None:
    left = state["fetched_at"] + JWKS_COOLDOWN + 0.5 - time.monotonic()
    if left > 0:
        time.sleep(left)


# =========================================================================== 2. upstream faults


UPSTREAM_FAULTS = ["refusing", "hanging", "resetting", "garbage"]
ROUTES = ["rest", "mcp"]
SSE_CUTS = [("mcp", "in-first-event"), ("mcp", "after-first-event"), ("rest", "in-first-event"), ("rest", "after-first-event")]


@pytest.fixture(scope="module", params=["event-loop", "async"])
def upstream_gateway(request, tmp_path_factory, good_upstream, plain_issuer):
    servers = {"hanging": FaultServer(hang), "resetting": FaultServer(reset), "garbage": FaultServer(garbage)}
    for kind, where in SSE_CUTS:
        servers[f"sse-{kind}-{where}"] = FaultServer(sse_cut(kind, where))
    servers["sse-whole"] = FaultServer(sse_whole)
    # A closed port: bound, never listening, so connecting is refused (and nobody else takes it).
    refusing = socket.socket()
    refusing.bind((HOST, 0))
    conns = [f'  - {{name: good, kind: application, upstream: "{good_upstream}/api", auth: {{strategy: none}}}}',
             f'  - {{name: refusing, kind: application, upstream: "http://{HOST}:{refusing.getsockname()[1]}/api", auth: {{strategy: none}}}}',
             f'  - {{name: hanging, kind: application, upstream: "http://{HOST}:{servers["hanging"].port}/api", timeouts: {{response: 1s}}, auth: {{strategy: none}}}}',
             f'  - {{name: resetting, kind: application, upstream: "http://{HOST}:{servers["resetting"].port}/api", auth: {{strategy: none}}}}',
             f'  - {{name: garbage, kind: application, upstream: "http://{HOST}:{servers["garbage"].port}/api", auth: {{strategy: none}}}}',
             f'  - {{name: sse-whole, kind: application, upstream: "http://{HOST}:{servers["sse-whole"].port}/api", auth: {{strategy: none}}}}']
    ports = {"refusing": refusing.getsockname()[1], **{f: servers[f].port for f in ("hanging", "resetting", "garbage")}}
    for fault, port in ports.items():  # the same faults behind an MCP server's route
        timeout = ", timeouts: {response: 1s}" if fault == "hanging" else ""
        conns.append(f'  - {{name: {fault}-mcp, kind: mcp_server, upstream: "http://{HOST}:{port}/mcp"{timeout}, auth: {{strategy: none}}}}')
    for kind, where in SSE_CUTS:
        name = f"sse-{kind}-{where}"
        if kind == "mcp":
            conns.append(f'  - {{name: {name}, kind: mcp_server, upstream: "http://{HOST}:{servers[name].port}/mcp", auth: {{strategy: none}}}}')
        else:
            conns.append(f'  - {{name: {name}, kind: application, upstream: "http://{HOST}:{servers[name].port}/api", auth: {{strategy: none}}}}')
    fast = "on" if request.param == "event-loop" else "off"
    gw = start_gateway(tmp_path_factory.mktemp(f"upstream-{request.param}"),
                       users_block(plain_issuer.url) + "gateway: {timeouts: {connect: 2s}}\nconnections:\n" + "\n".join(conns) + "\n", fast)
    token = plain_issuer.mint(plain_issuer.signing_kid, lifetime=3600)
    for _ in range(20):
        ok_call(gw, token)()
    yield gw, token, servers
    gw.stop()
    for s in servers.values():
        s.stop()
    refusing.close()


UPSTREAM_EXPECTED = {
    "refusing": (502, "upstream_unreachable"),
    "hanging": (504, "upstream_timeout"),
    "resetting": (502, "upstream_unreachable"),
    "garbage": (502, "upstream_unreachable"),
}


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("fault", UPSTREAM_FAULTS)
def test_upstream_fault(upstream_gateway, fault, route):
    """50 calls (25 at a time) to an upstream that refuses, hangs, resets or answers garbage, via
    /rest/{name}/… or an MCP tools/call to /mcp/{name}: each gets README's JSON error (a plain
    JSON error on the MCP route too) within bounded time."""
    gw, token, servers = upstream_gateway
    status, code = UPSTREAM_EXPECTED[fault]
    name = fault if route == "rest" else f"{fault}-mcp"

    def fault_call():
        start = time.monotonic()
        if route == "rest":
            r = rest_call(gw, token, name, "/thing", timeout=20)
        else:
            r = http_call("POST", f"{gw.url}/mcp/{name}", {"Authorization": f"Bearer {token}", "Content-Type": "application/json",
                                                          "Accept": "application/json, text/event-stream"},
                          json.dumps({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": "x", "arguments": {}}}).encode(),
                          timeout=20)
        took = time.monotonic() - start
        assert_json_error(r, status, code, connection=name)
        if fault == "hanging":
            assert 0.8 <= took <= 5, f"504 after {took:.2f}s; the connection's response timeout is 1s"
        return took

    fault_call()  # one occurrence before the baseline: one-time costs of the error path
    base = baseline(gw)
    met = servers[fault].accepted if fault in servers else 0
    with CallsMeanwhile(lambda: str(rest_call(gw, token).status_code)) as meanwhile:
        with ThreadPoolExecutor(25) as pool:  # 50 occurrences, 25 at a time
            took = list(pool.map(lambda _: fault_call(), range(50)))
    meanwhile.assert_all_ok(f"upstream {fault}")
    if fault != "refusing":
        met = servers[fault].accepted - met
        assert met >= 50, f"the faulty upstream saw {met} connections for 50 calls"  # the fault was met each time
    if fault != "hanging":
        assert max(took) < 5, f"an error answer took {max(took):.2f}s"
    assert_recovered(gw, base, ok_call(gw, token), f"upstream {fault} ({route})")


@pytest.mark.parametrize("kind,where", SSE_CUTS, ids=[f"{k}-{w}" for k, w in SSE_CUTS])
def test_upstream_cuts_an_sse_stream_mid_event(upstream_gateway, kind, where):
    """The upstream sends a 200 text/event-stream (chunked), then goes away (FIN) in the middle
    of an event. Observed on both drivers, for MCP and REST, whether the cut is in the first event
    (which the gateway reads before passing an MCP stream on) or after it: the caller gets the
    200 head and exactly the bytes the upstream sent, then the connection closes without the
    terminating chunk — the stream ends and does not look complete. A control stream that ends
    properly is seen complete by the same reader."""
    gw, token, _ = upstream_gateway
    name = f"sse-{kind}-{where}"
    first, second = SSE_EVENTS[kind]
    sent = first[: len(first) // 2] if where == "in-first-event" else first + second[: len(second) // 2]
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json, text/event-stream"}

    def cut_call():
        if kind == "mcp":
            body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "slow", "arguments": {},
                                                                                           "_meta": {"progressToken": 1}}}).encode()
            a = raw_call(gw.port, "POST", f"/mcp/{name}", dict(headers, **{"Content-Type": "application/json",
                                                                          "MCP-Protocol-Version": "2025-11-25"}), body)
        else:
            a = raw_call(gw.port, "GET", f"/rest/{name}/events", headers)
        assert a.status == 200 and a.headers.get("content-type", "").startswith("text/event-stream"), a.raw[:500]
        assert "chunked" in a.headers.get("transfer-encoding", ""), a.headers
        defect_if(a.complete, f"the cut stream looks complete to the caller (terminating chunk sent): {a.raw[-200:]!r}")
        assert a.body == sent, f"the caller got {a.body!r}, the upstream sent {sent!r}"

    control = raw_call(gw.port, "GET", "/rest/sse-whole/events", headers)
    assert control.status == 200 and control.complete and control.body == b"".join(SSE_EVENTS["rest"]), control.raw[-300:]
    cut_call()
    base = baseline(gw)
    with ThreadPoolExecutor(10) as pool:
        list(pool.map(lambda _: cut_call(), range(30)))
    assert_recovered(gw, base, ok_call(gw, token), f"sse cut {kind} {where}")


# =========================================================================== 3. audit trail storage


def calls_in_batches(gw: GatewayProcess, token: str, rounds: int = 5) -> None:
    """Rounds of 40 normal calls, 8 at a time, 150 ms apart: several of the audit writer's 100 ms batches."""
    for _ in range(rounds):
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda _: ok_call(gw, token)(), range(40)))
        time.sleep(0.15)


def open_files(gw: GatewayProcess) -> list[str]:
    """Where the gateway's open fds point (/proc/{pid}/fd)."""
    out = []
    for fd in os.listdir(f"/proc/{gw.pid}/fd"):
        try:
            out.append(os.readlink(f"/proc/{gw.pid}/fd/{fd}"))
        except OSError:
            pass
    return out


def audit_errors(gw: GatewayProcess, after: int = 0) -> list[dict]:
    return [r for r in gw.log_records()[after:] if r.get("level") in ("error", "critical") and "audit" in json.dumps(r).lower()]


def test_audit_jsonl_on_dev_full(tmp_path, good_upstream, plain_issuer):
    """Every write of the JSON-lines audit file fails (ENOSPC): calls are served, nothing crashes
    or leaks, and the failure is logged (found by this case: it was dropped without a word)."""
    gw = start_gateway(tmp_path, users_block(plain_issuer.url) + "gateway: {audit: {sqlite: 'off', jsonl: /dev/full}}\n"
                       f'connections:\n  - {{name: good, kind: application, upstream: "{good_upstream}/api", auth: {{strategy: none}}}}\n')
    try:
        token = plain_issuer.mint(plain_issuer.signing_kid)
        calls_in_batches(gw, token, rounds=2)  # warm up as loaded as the fault phase: the upstream pool grows to 8
        base = baseline(gw)
        assert "/dev/full" in open_files(gw), "the gateway did not open gateway.audit.jsonl"
        calls_in_batches(gw, token)
        assert_recovered(gw, base, ok_call(gw, token), "audit jsonl on /dev/full")
        time.sleep(0.3)
        defect_if(not audit_errors(gw), "no error logged for ~200 audit records lost to /dev/full:\n" + gw.log_tail(1500))
    finally:
        gw.stop()


def audit_rows(db: Path) -> int:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as c:
        return c.execute("SELECT count(*) FROM audit").fetchone()[0]


def deleted_files_open(gw: GatewayProcess, directory: Path) -> list[str]:
    """The gateway's open fds that point at files of `directory` that no longer exist."""
    return [t for t in open_files(gw) if t.startswith(str(directory)) and t.endswith("(deleted)")]


SQLITE_FAULTS = [
    "directory-removed",
    "files-immutable",
]


@pytest.mark.parametrize("fault", SQLITE_FAULTS)
def test_audit_sqlite_storage_goes_away_after_start(tmp_path, good_upstream, plain_issuer, fault):
    """The audit database's directory is removed, or its files are made immutable (`chattr +i`:
    root ignores chmod), after start: calls are served, nothing crashes or leaks, the failure is
    logged; once the files are writable again, records are written again."""
    gw = start_gateway(tmp_path, users_block(plain_issuer.url) + "gateway: {audit: {sqlite: trail/audit.sqlite}}\n"
                       f'connections:\n  - {{name: good, kind: application, upstream: "{good_upstream}/api", auth: {{strategy: none}}}}\n')
    trail = tmp_path / "trail"
    db = trail / "audit.sqlite"
    immutable: list[Path] = []
    try:
        token = plain_issuer.mint(plain_issuer.signing_kid)
        calls_in_batches(gw, token, rounds=2)  # warm up as loaded as the fault phase: the upstream pool grows to 8
        wait_until(lambda: audit_rows(db) >= 80, 10, "the warm-up's audit records")
        base = baseline(gw)
        log_before = len(gw.log_records())
        if fault == "directory-removed":
            shutil.rmtree(trail)
        else:
            for f in sorted(trail.iterdir()):
                r = subprocess.run(["chattr", "+i", str(f)], capture_output=True, text=True)
                if r.returncode != 0:
                    pytest.skip(f"chattr +i does not work here ({r.stderr.strip()}); as root, chmod cannot make a file unwritable")
                immutable.append(f)
        calls_in_batches(gw, token)
        assert_recovered(gw, base, ok_call(gw, token), f"audit sqlite {fault}")
        if fault == "files-immutable":
            assert wait_until(lambda: audit_errors(gw, log_before), 5, "an error logged for the records that could not be written")
            before = audit_rows(db)
            for f in immutable:
                subprocess.run(["chattr", "-i", str(f)], check=True)
            immutable.clear()
            calls_in_batches(gw, token, rounds=1)
            wait_until(lambda: audit_rows(db) >= before + 40, 10, "records written again once the files are writable")
        else:
            # Found by this case: the records went into the unlinked files without a word. Now the
            # writer says so and opens the path afresh; later records land in the new file.
            time.sleep(0.3)
            lost_into = deleted_files_open(gw, trail)
            defect_if(not audit_errors(gw, log_before),
                      f"no error logged; the audit records go into removed files {lost_into}:\n" + gw.log_tail(1500))
            calls_in_batches(gw, token, rounds=1)
            wait_until(lambda: db.exists() and audit_rows(db) >= 40, 10, "records written to the audit database opened afresh")
    finally:
        for f in immutable:
            subprocess.run(["chattr", "-i", str(f)], capture_output=True)
        gw.stop()


# =========================================================================== 4. connections.yaml faults


VALID_BUT_REFUSED = """\
version: 1
users: {{issuer: "{issuer}", audience: {aud}}}
gateway: {{reload: {{interval: 100ms}}}}
connections:
  - {{name: good, kind: application, title: HALF APPLIED, upstream: "{up}/api", auth: {{strategy: none}}}}
  - {{name: intruder, kind: application, upstream: "{up}/api", auth: {{strategy: none}}}}
  - {{name: broken, kind: application, upstream: "{up}/api", auth: {{strategy: no-such-plugin}}}}
"""

CONFIG_FAULTS = {
    "deleted": lambda p, bad: p.unlink(),
    "truncated": lambda p, bad: open(p, "w").close(),
    "garbage": lambda p, bad: p.write_bytes(b"\x00\xff\xfe\x80{{[[: - :\n\t- ][}\x1b garbage \xc3\x28"),
    "fails-validation": lambda p, bad: p.write_text(bad),
}


@pytest.fixture(scope="module")
def config_gateway(tmp_path_factory, good_upstream, plain_issuer):
    good = (users_block(plain_issuer.url) + "gateway: {reload: {interval: 100ms}}\n"
            f'connections:\n  - {{name: good, kind: application, title: Good, upstream: "{good_upstream}/api", auth: {{strategy: none}}}}\n')
    bad = VALID_BUT_REFUSED.format(issuer=plain_issuer.url, aud=AUDIENCE, up=good_upstream)
    gw = start_gateway(tmp_path_factory.mktemp("config-faults"), good)
    token = plain_issuer.mint(plain_issuer.signing_kid, lifetime=3600)
    for _ in range(20):
        ok_call(gw, token)()
    yield gw, token, good, bad
    gw.stop()


def clean_generation(gw: GatewayProcess, good: str) -> int:
    """Puts the good file back if a case left another one, and returns the generation serving it."""
    if not gw.config.exists() or gw.config.read_text(errors="replace") != good:
        g = gw.status()["config"]["generation"]
        restore_and_wait(gw, good, g)
    g0 = wait_until(lambda: (d := gw.status()["config"])["last_error"] is None and d["generation"], 10, "a clean registry")
    time.sleep(0.3)
    assert gw.status()["config"]["generation"] == g0, "the registry is still changing"
    return g0


def assert_last_good_registry(gw: GatewayProcess, token: str, generation: int) -> None:
    doc = gw.status()
    assert doc["config"]["generation"] == generation, doc["config"]
    conns = get(gw.url + "/api/connections").json()["connections"]
    assert [(c["name"], c["title"]) for c in conns] == [("good", "Good")], f"half-applied or lost registry: {conns}"
    r = rest_call(gw, token, "intruder")
    assert_json_error(r, 404, "unknown_connection")
    ok_call(gw, token)()


def restore_and_wait(gw: GatewayProcess, good: str, generation: int) -> None:
    write_atomically(gw.config, good)
    doc = wait_until(lambda: (d := gw.status())["config"]["generation"] > generation and d["config"]["last_error"] is None and d,
                     10, "the restored file to be picked up")
    assert [c["name"] for c in doc["connections"]] == ["good"], doc


@pytest.mark.parametrize("fault", list(CONFIG_FAULTS))
def test_connections_yaml_fault_keeps_the_last_good_registry(config_gateway, fault):
    gw, token, good, bad = config_gateway
    g0 = clean_generation(gw, good)
    base = baseline(gw)
    log_before = len(gw.log_records())
    with CallsMeanwhile(lambda: str(rest_call(gw, token).status_code)) as meanwhile:
        CONFIG_FAULTS[fault](gw.config, bad)
        err = wait_until(lambda: gw.status()["config"]["last_error"], 10, f"the reload of the {fault} file to be refused")
        assert err.get("message"), err
        time.sleep(0.5)  # several more polls of the broken file
        assert_last_good_registry(gw, token, g0)
        rejected = [r for r in gw.log_records()[log_before:] if r.get("level") == "error" and "reload rejected" in r.get("message", "")]
        assert rejected, gw.log_tail()
        if fault == "fails-validation":
            assert any("no-such-plugin" in e.get("message", "") and e.get("line") == 7 for e in err.get("errors", [])), err
        restore_and_wait(gw, good, g0)
        ok_call(gw, token)()
    meanwhile.assert_all_ok(f"connections.yaml {fault}")
    assert_recovered(gw, base, ok_call(gw, token), f"connections.yaml {fault}")


@pytest.mark.parametrize("file_state", ["good-file", "bad-file"])
def test_fifty_sighups_in_a_row(config_gateway, file_state):
    gw, token, good, bad = config_gateway
    g0 = clean_generation(gw, good)
    base = baseline(gw)
    log_before = len(gw.log_records())
    with CallsMeanwhile(lambda: str(rest_call(gw, token).status_code)) as meanwhile:
        if file_state == "bad-file":
            write_atomically(gw.config, bad)
            wait_until(lambda: gw.status()["config"]["last_error"], 10, "the bad file to be refused")
        for _ in range(50):
            os.kill(gw.pid, signal.SIGHUP)
            time.sleep(0.002)
        time.sleep(1)
        assert gw.proc.poll() is None, f"50 SIGHUPs stopped the gateway ({gw.proc.returncode})\n{gw.log_tail()}"
        handled = [r for r in gw.log_records()[log_before:] if r.get("message", "").startswith("SIGHUP")]
        assert handled, "no SIGHUP was handled"
        if file_state == "bad-file":
            rejected = [r for r in gw.log_records()[log_before:] if "reload rejected" in r.get("message", "")]
            assert len(rejected) >= 2, "the forced reloads of the bad file were not refused in the log"
        doc = gw.status()["config"]
        if file_state == "good-file":
            assert doc["generation"] > g0 and doc["last_error"] is None, doc
            ok_call(gw, token)()
        else:
            assert doc["last_error"], doc
            assert_last_good_registry(gw, token, g0)
            restore_and_wait(gw, good, g0)
    meanwhile.assert_all_ok(f"50 SIGHUPs, {file_state}")
    assert_recovered(gw, base, ok_call(gw, token), f"50 SIGHUPs, {file_state}")


# =========================================================================== 5. IdP faults


def assert_idp_unavailable(r: Answer) -> None:
    assert_json_error(r, 503, "idp_unavailable")
    assert r.headers.get("retry-after", "").isdigit(), r.headers


def kid_b_of(state: dict) -> tuple[str, object]:
    """A new key of the IdP gateway's issuer: published at the IdP, not yet known to the gateway
    (failed fetches leave it unknown, so the down and garbage cases share it)."""
    if "kid_b" not in state:
        state["kid_b"], state["key_b"] = state["issuer"].new_key()
    return state["kid_b"], state["key_b"]


def fetched(state: dict) -> None:
    """The gateway fetched the JWKS successfully just now: its key is known, a cooldown starts."""
    state["fetched_at"] = time.monotonic()
    state.pop("kid_b", None)
    state.pop("key_b", None)


def test_idp_down_at_the_gateways_first_call(tmp_path, good_upstream):
    """The gateway starts while its users' IdP is down: calls get 503 `idp_unavailable` with
    Retry-After at once (nothing was fetched yet, so nothing is stale to serve), and succeed as
    soon as the IdP is back (a failed fetch starts no cooldown)."""
    issuer = SwitchableIssuer().start()
    kid, _ = issuer.new_key()
    issuer.down()
    gw = start_gateway(tmp_path, users_block(issuer.url) +
                       f'connections:\n  - {{name: good, kind: application, upstream: "{good_upstream}/api", auth: {{strategy: none}}}}\n')
    try:
        assert_idp_unavailable(rest_call(gw, issuer.mint(kid)))
        base = baseline(gw)
        for _ in range(30):
            start = time.monotonic()
            assert_idp_unavailable(rest_call(gw, issuer.mint(kid)))
            assert time.monotonic() - start < 5
        issuer.up()
        token = issuer.mint(kid)
        r = rest_call(gw, token)
        assert r.status_code == 200, r.text
        assert_recovered(gw, base, ok_call(gw, token), "IdP down at the first call")
    finally:
        gw.stop()
        issuer.down()


def test_idp_down_when_a_new_kid_needs_its_keys(idp_gateway):
    s = idp_gateway
    gw, issuer = s["gw"], s["issuer"]
    wait_out_cooldown(s)
    kid_b, key_b = kid_b_of(s)
    issuer.down()
    try:
        r = rest_call(gw, issuer.mint(kid_b, key_b))  # one occurrence before the baseline
        assert_idp_unavailable(r)
        base = baseline(gw)
        with CallsMeanwhile(lambda: str(rest_call(gw, issuer.mint(s["kid_a"])).status_code)) as meanwhile:
            for _ in range(30):
                start = time.monotonic()
                assert_idp_unavailable(rest_call(gw, issuer.mint(kid_b, key_b)))
                assert time.monotonic() - start < 5
            ok_call(gw, s["held"])()
        meanwhile.assert_all_ok("IdP down: fresh tokens with the known kid")
        assert_recovered(gw, base, ok_call(gw, s["held"]), "IdP down")
    finally:
        issuer.up()
    # The slow case shows the recovery (a successful refetch here would start a new cooldown).


GARBAGE_JWKS = {
    "binary": bytes(range(256)) * 8,
    "truncated-json": b'{"keys": [{"kty": "RSA", "kid": "x", "n": "',
    "oversized": b'{"keys": [' + b" " * (3 << 20) + b"]}",
}


@pytest.mark.parametrize("kind", list(GARBAGE_JWKS))
def test_idp_answers_garbage_at_its_jwks(idp_gateway, kind):
    s = idp_gateway
    gw, issuer = s["gw"], s["issuer"]
    wait_out_cooldown(s)
    kid_b, key_b = kid_b_of(s)
    issuer.mode, issuer.garbage = "garbage", GARBAGE_JWKS[kind]
    try:
        assert_idp_unavailable(rest_call(gw, issuer.mint(kid_b, key_b)))
        base = baseline(gw)
        fetches = issuer.jwks_fetches
        with CallsMeanwhile(lambda: str(rest_call(gw, issuer.mint(s["kid_a"])).status_code)) as meanwhile:
            for _ in range(15):
                assert_idp_unavailable(rest_call(gw, issuer.mint(kid_b, key_b)))
        meanwhile.assert_all_ok(f"IdP garbage JWKS ({kind}): fresh tokens with the known kid")
        assert issuer.jwks_fetches > fetches, "the unknown kid was not even looked up"
        assert_recovered(gw, base, ok_call(gw, s["held"]), f"IdP garbage JWKS ({kind})")
    finally:
        issuer.mode = "ok"


def test_idp_jwks_slower_than_the_fetch_timeout(idp_gateway):
    """The JWKS never comes within the gateway's 10 s: the caller gets 503 in bounded time."""
    s = idp_gateway
    gw, issuer = s["gw"], s["issuer"]
    wait_out_cooldown(s)
    kid_b, key_b = kid_b_of(s)
    base = baseline(gw)
    issuer.mode, issuer.delay = "slow", JWKS_FETCH_TIMEOUT + 5
    try:
        with CallsMeanwhile(lambda: str(rest_call(gw, issuer.mint(s["kid_a"])).status_code)) as meanwhile:
            with ThreadPoolExecutor(5) as pool:  # concurrent callers share the one fetch
                start = time.monotonic()
                answers = list(pool.map(lambda _: rest_call(gw, issuer.mint(kid_b, key_b), timeout=60), range(5)))
                took = time.monotonic() - start
        for r in answers:
            assert_idp_unavailable(r)
        assert took < JWKS_FETCH_TIMEOUT + 4, f"callers waited {took:.1f}s for a JWKS that never came"
        meanwhile.assert_all_ok("IdP slower than the fetch timeout: fresh tokens with the known kid")
        assert_recovered(gw, base, ok_call(gw, s["held"]), "IdP slower than the fetch timeout")
    finally:
        issuer.mode = "ok"


def test_idp_slow_jwks_then_the_new_kid_is_accepted(idp_gateway):
    """A JWKS that takes 3 s: the call that needs it waits and succeeds; calls whose key is
    known are not held up meanwhile. This also shows the recovery after the down and garbage
    cases: the new kid is accepted once the IdP answers."""
    s = idp_gateway
    gw, issuer = s["gw"], s["issuer"]
    wait_out_cooldown(s)
    kid_b, key_b = kid_b_of(s)
    base = baseline(gw)
    issuer.mode, issuer.delay = "slow", 3.0
    try:
        with ThreadPoolExecutor(1) as pool:
            start = time.monotonic()
            pending = pool.submit(rest_call, gw, issuer.mint(kid_b, key_b), "good", "/ping", 30)
            time.sleep(0.5)
            fast = []
            for _ in range(10):
                t = time.monotonic()
                assert rest_call(gw, issuer.mint(s["kid_a"])).status_code == 200
                fast.append(time.monotonic() - t)
            r = pending.result()
            took = time.monotonic() - start
        assert r.status_code == 200, r.text
        fetched(s)
        assert 2.5 <= took < 8, took
        assert max(fast) < 1.5, f"a call with a known key waited {max(fast):.2f}s behind the slow JWKS fetch"
        issuer.mode = "ok"
        assert rest_call(gw, issuer.mint(kid_b, key_b)).status_code == 200
        assert_recovered(gw, base, ok_call(gw, s["held"]), "IdP slow")
    finally:
        issuer.mode = "ok"


def test_idp_rotates_its_signing_keys_while_calls_run(rotation_gateway):
    s = rotation_gateway
    gw, issuer = s["gw"], s["issuer"]
    wait_out_cooldown(s)
    base = s["baseline"]
    with CallsMeanwhile(lambda: str(rest_call(gw, issuer.mint(s["kid_a"])).status_code)) as with_a, \
            CallsMeanwhile(lambda: str(rest_call(gw, s["held"]).status_code)) as held:
        # Rotation 1: B is published next to A and signs from now on. The cooldown is over: the
        # first B token makes the gateway refetch, and it is accepted.
        kid_b, _ = issuer.new_key()
        fetches = issuer.jwks_fetches
        r = rest_call(gw, issuer.mint(kid_b))
        assert r.status_code == 200, r.text
        assert issuer.jwks_fetches == fetches + 1
        refetched_at = time.monotonic()
        for _ in range(20):
            assert rest_call(gw, issuer.mint(kid_b)).status_code == 200
        # A kid the IdP never published is refused, and a flood of them costs the IdP nothing
        # within the cooldown.
        fetches = issuer.jwks_fetches
        for _ in range(20):
            stranger_kid, stranger = "k-" + uuid.uuid4().hex[:10], new_rsa_key()
            assert_json_error(rest_call(gw, issuer.mint(stranger_kid, stranger)), 401, "invalid_user_token")
        # A known kid on a token signed with another key is refused too.
        assert_json_error(rest_call(gw, issuer.mint(kid_b, new_rsa_key())), 401, "invalid_user_token")
        # Rotation 2 within the cooldown: C replaces A. README: an unknown kid is refetched at
        # most once per 30 s, so C is refused (401) until then, and nothing is fetched.
        kid_c, _ = issuer.new_key()
        issuer.published.remove(s["kid_a"])
        assert time.monotonic() - refetched_at < JWKS_COOLDOWN - 2
        assert_json_error(rest_call(gw, issuer.mint(kid_c)), 401, "invalid_user_token")
        assert issuer.jwks_fetches == fetches, f"{issuer.jwks_fetches - fetches} JWKS fetches within the cooldown"
        time.sleep(0.5)
    with_a.assert_all_ok("key rotation: fresh tokens signed with the retiring key")
    held.assert_all_ok("key rotation: a verified token")
    assert rest_call(gw, issuer.mint(kid_b)).status_code == 200
    assert_recovered(gw, base, ok_call(gw, issuer.mint(kid_b)), "IdP key rotation")
