"""HTTP-level attacks on the gateway, with raw sockets, against a real `switchboard gateway` on
both drivers (the event-loop one, and SWITCHBOARD_FAST_PATH=off), a real OIDC issuer and an
upstream written here that records the raw bytes it receives on every TCP connection and
parses them itself — so each case can say what the upstream saw, byte for byte:

- request smuggling (Content-Length with Transfer-Encoding, two Content-Lengths, odd
  Transfer-Encodings, obs-fold, bad chunk sizes and extensions, chunks whose size lies): the
  request is refused with a JSON 400 and the connection closed, or — when it is legitimately
  parseable — the upstream gets exactly one well-framed request with the body the gateway
  read; never a second request the client hid in a body, never other framing;
- header count and size limits (431 `headers_too_large`), body limits (413
  `payload_too_large`, with Content-Length and chunked), path traversal on /rest/{name}/… in
  every encoding (400 `invalid_path`): the upstream sees nothing;
- `Connection`-nominated and hop-by-hop headers never reach the upstream, nor the caller's
  ID token, whatever header it hides in;
- Host spoofing: the upstream gets its own Host, never the caller's;
- many idle connections and slow clients do not stop the gateway from serving others.

After every test, the caller's ID token is looked for in every byte the upstream ever
received. Before what the upstream saw is read, a canary request is sent through the gateway
and awaited at the upstream (``settle``), so a stray request has had time to arrive.

Defects these cases found, now fixed (each case failed before its fix): a request body that
ended early — a chunk the parser refuses, the client_body timeout, the caller closing — went
upstream as a whole request with the bytes read so far; the head of a request the parser then
refused went upstream with an empty body; a whole request followed by bytes the parser refuses
went upstream while the caller only got the 400. A new defect is marked
xfail(strict=True, reason="DEFECT: …") on its case, and the mark goes with the fix.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import socket
import socketserver
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from interop_helpers import AUDIENCE, HOST, free_port, stop_process, switchboard_binary, wait_for_http_200

ROOT = Path(__file__).resolve().parents[2]

BASE = "/base"                 # the connection's upstream base path
MAX_HEADER_COUNT = 30
MAX_HEADER_BYTES = 4096
MAX_BODY = 1024
CLIENT_HEADER, CLIENT_BODY, KEEPALIVE = 3.0, 2.0, 5.0
SETTLE = 0.15                  # how long a stray upstream request gets to show up (after a canary)
CANARY = BASE + "/canary"      # the targets of the requests ``settle`` sends


# --------------------------------------------------------------------------- the recording upstream


class FramingError(Exception):
    pass


@dataclass
class SeenRequest:
    """One request the upstream parsed: what it was, on which TCP connection, and its raw bytes."""

    conn: int
    method: str
    target: str
    version: str
    headers: list[tuple[str, str]]      # names lowercased, values as received
    raw_head: bytes
    body: bytes
    framing: str                        # "content-length", "chunked" or "none"
    raw: bytes

    def all(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k == name.lower()]

    def get(self, name: str) -> str | None:
        values = self.all(name)
        return values[0] if values else None

    @property
    def names(self) -> set[str]:
        return {k for k, _ in self.headers}


@dataclass
class SeenConnection:
    id: int
    raw: bytearray = field(default_factory=bytearray)      # since the last reset
    pending: bytearray = field(default_factory=bytearray)  # received, not yet a whole request
    malformed: str | None = None                           # what the upstream could not parse
    closed: bool = False


def parse_one(buf: bytes) -> tuple[dict, int] | None:
    """The first whole HTTP/1.1 request in `buf` (strict: CRLF lines, no obs-fold accepted as a
    header, one framing), and how many bytes it took; None when it is not whole yet."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        if len(buf) > 256 * 1024:
            raise FramingError("head over 256 KiB")
        return None
    raw_head = bytes(buf[:end + 4])
    lines = raw_head[:-4].split(b"\r\n")
    request_line = lines[0].decode("latin-1")
    parts = request_line.split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise FramingError(f"bad request line {request_line!r}")
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        text = line.decode("latin-1")
        if not text or text[0] in " \t":
            raise FramingError(f"folded or empty header line {text!r}")
        if ":" not in text:
            raise FramingError(f"header line without a colon {text!r}")
        name, value = text.split(":", 1)
        if name != name.strip() or not re.fullmatch(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+", name):
            raise FramingError(f"bad header name {name!r}")
        if "\n" in value or "\r" in value or "\x00" in value:
            raise FramingError(f"bad header value {value!r}")
        headers.append((name.lower(), value.strip(" \t")))
    te = [v for k, v in headers if k == "transfer-encoding"]
    cl = [v for k, v in headers if k == "content-length"]
    pos = end + 4
    if te and cl:
        raise FramingError("both Transfer-Encoding and Content-Length")
    if len(cl) > 1:
        raise FramingError(f"{len(cl)} Content-Length headers")
    if te:
        if [v.lower() for v in te] != ["chunked"]:
            raise FramingError(f"Transfer-Encoding {te!r}")
        body = bytearray()
        while True:
            line_end = buf.find(b"\r\n", pos)
            if line_end < 0:
                return None
            size_text = bytes(buf[pos:line_end])
            if not re.fullmatch(rb"[0-9a-fA-F]{1,16}", size_text):
                raise FramingError(f"bad chunk size line {size_text!r}")
            size = int(size_text, 16)
            pos = line_end + 2
            if size == 0:
                if buf[pos:pos + 2] == b"":
                    return None
                if bytes(buf[pos:pos + 2]) != b"\r\n":
                    raise FramingError("trailers are not expected from the gateway")
                pos += 2
                break
            if len(buf) < pos + size + 2:
                return None
            body += buf[pos:pos + size]
            if bytes(buf[pos + size:pos + size + 2]) != b"\r\n":
                raise FramingError("chunk data not followed by CRLF")
            pos += size + 2
        framing, body = "chunked", bytes(body)
    elif cl:
        if not re.fullmatch(r"[0-9]{1,12}", cl[0]):
            raise FramingError(f"Content-Length {cl[0]!r}")
        length = int(cl[0])
        if len(buf) < pos + length:
            return None
        body = bytes(buf[pos:pos + length])
        pos += length
        framing = "content-length"
    else:
        body, framing = b"", "none"
    method, target, version = parts
    return dict(method=method, target=target, version=version, headers=headers, raw_head=raw_head, body=body,
                framing=framing, raw=bytes(buf[:pos])), pos


class RecordingUpstream:
    """A TCP server that keeps every byte it receives, per connection, parses requests itself
    and answers each whole one with a fixed, well-formed `200` (`Content-Length: 2`, `ok`). A
    connection whose bytes it cannot parse is recorded as malformed and closed."""

    ANSWER = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok"

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.connections: list[SeenConnection] = []
        self.requests: list[SeenRequest] = []
        self.everything = bytearray()   # every byte ever received, never reset (the token check)
        self.heads = bytearray()        # every request head ever parsed, never reset
        self.next_id = 0
        recorder = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                recorder._serve(self.request)

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True

        self.server = Server((HOST, 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, name="recording-upstream", daemon=True)
        self.thread.start()

    def _serve(self, sock: socket.socket) -> None:
        with self.lock:
            self.next_id += 1
            conn = SeenConnection(id=self.next_id)
            self.connections.append(conn)
        try:
            while True:
                data = sock.recv(65536)
                if not data:
                    return
                answers = 0
                with self.lock:
                    conn.raw += data
                    conn.pending += data
                    self.everything += data
                    if conn.malformed:
                        continue
                    try:
                        while (parsed := parse_one(bytes(conn.pending))) is not None:
                            fields, used = parsed
                            self.requests.append(SeenRequest(conn=conn.id, **fields))
                            self.heads += fields["raw_head"]
                            del conn.pending[:used]
                            answers += 1
                    except FramingError as e:
                        conn.malformed = str(e)
                for _ in range(answers):
                    sock.sendall(self.ANSWER)
                with self.lock:
                    if conn.malformed:
                        return
        except OSError:
            return
        finally:
            with self.lock:
                conn.closed = True
            sock.close()

    def reset(self) -> None:
        """Forgets what was seen (connections that are gone included); `everything` stays."""
        with self.lock:
            self.requests.clear()
            self.connections = [c for c in self.connections if not c.closed]
            for conn in self.connections:
                conn.raw.clear()

    def seen(self) -> tuple[list[SeenRequest], list[SeenConnection]]:
        """The requests since the last reset, and the connections that received bytes since —
        the tests' own canaries (``settle``) left out."""
        with self.lock:
            canaries = [r for r in self.requests if r.target.startswith(CANARY)]
            connections = []
            for c in self.connections:
                raw = bytes(c.raw)
                for r in canaries:
                    if r.conn == c.id:
                        raw = raw.replace(r.raw, b"", 1)
                if raw or c.pending or c.malformed:
                    connections.append(SeenConnection(c.id, bytearray(raw), bytearray(c.pending), c.malformed, c.closed))
            return [r for r in self.requests if r not in canaries], connections

    def has(self, target: str) -> bool:
        with self.lock:
            return any(r.target == target for r in self.requests)

    def raw_since_reset(self) -> bytes:
        with self.lock:
            return b"".join(bytes(c.raw) for c in self.connections)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# --------------------------------------------------------------------------- fixtures


@dataclass
class Gateway:
    port: int
    proc: subprocess.Popen
    stderr_log: Path   # conftest attaches its tail to a failure report
    driver: str        # SWITCHBOARD_FAST_PATH


@dataclass
class Creds:
    token: str             # the caller's ID token: must never reach the upstream
    smuggler_token: str    # the one hidden requests carry (so a gateway would forward them)

    @property
    def auth(self) -> bytes:
        return b"Authorization: Bearer " + self.token.encode() + b"\r\n"

    @property
    def smuggled(self) -> bytes:
        """A whole request hidden where a body is: the upstream must never receive it."""
        return (b"GET /rest/files/smuggled HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer " + self.smuggler_token.encode()
                + b"\r\nX-Smuggled: 1\r\n\r\n")


@pytest.fixture(scope="module")
def creds(issuer) -> Creds:
    return Creds(issuer.mint(lifetime=3600), issuer.mint(lifetime=3600, sub="smuggler", email="smuggler@example.com"))


@pytest.fixture(scope="module")
def upstream():
    recorder = RecordingUpstream()
    yield recorder
    recorder.stop()


@pytest.fixture(scope="module", params=["on", "off"])
def gateway(request, tmp_path_factory, issuer, upstream, creds):
    base = tmp_path_factory.mktemp(f"security-http-{request.param}")
    config = base / "connections.yaml"
    config.write_text(
        f'version: 1\n'
        f'gateway:\n'
        f'  limits: {{max_header_count: {MAX_HEADER_COUNT}, max_header_bytes: {MAX_HEADER_BYTES}, max_request_body: {MAX_BODY}}}\n'
        f'  timeouts: {{client_header: {CLIENT_HEADER}s, client_body: {CLIENT_BODY}s, keepalive: {KEEPALIVE}s}}\n'
        f'users: {{issuer: "{issuer.url}", audience: {AUDIENCE}}}\n'
        f'connections:\n'
        f'  - {{name: files, kind: application, upstream: "http://{HOST}:{upstream.port}{BASE}", auth: {{strategy: none}}}}\n')
    binary = switchboard_binary(ROOT)
    deadline = time.monotonic() + 180
    while not binary.exists() and time.monotonic() < deadline:  # being rebuilt: wait for it
        time.sleep(1)
    port = free_port()
    log = base / "gateway.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([str(binary), "gateway", "--config", str(config), "--port", str(port)],
                                stdout=subprocess.DEVNULL, stderr=out, env=dict(os.environ, SWITCHBOARD_FAST_PATH=request.param))
    try:
        wait_for_http_200(f"http://{HOST}:{port}/healthz", proc, 30, "the gateway", log)
        gw = Gateway(port, proc, log, request.param)
        # Warm: both tokens verified once and an upstream connection pooled, so that each
        # driver takes the path it takes for a warm call.
        for token in (creds.token, creds.smuggler_token):
            answers, _, _ = converse(port, b"GET /rest/files/warm HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer " + token.encode() + b"\r\n\r\n",
                                     linger=0)
            assert [a.status for a in answers] == [200], answers
        yield gw
    finally:
        stop_process(proc)


@pytest.fixture(autouse=True)
def fresh(request, upstream, creds):
    """Each test starts with an empty recording. After it: the caller's ID token was never
    received by the upstream (in any test, header, body or connection), the smuggler's never
    in a request head, and the gateway is still running."""
    upstream.reset()
    yield
    with upstream.lock:
        everything, heads = bytes(upstream.everything), bytes(upstream.heads)
    signature = creds.token.rsplit(".", 1)[-1].encode()
    assert creds.token.encode() not in everything and signature not in everything, \
        f"DEFECT: the caller's ID token reached the upstream (during or before {request.node.name})"
    assert creds.smuggler_token.encode() not in heads, f"DEFECT: an Authorization header reached the upstream ({request.node.name})"
    gw = request.node.funcargs.get("gateway")
    if gw is not None:
        assert gw.proc.poll() is None, f"the gateway exited with {gw.proc.returncode} during {request.node.name}"


# --------------------------------------------------------------------------- the caller's side


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def __repr__(self) -> str:
        return f"<{self.status} {self.body[:160]!r}>"


def parse_answers(data: bytes) -> tuple[list[Answer], bytes]:
    """The whole answers in `data` (Content-Length framed, as the gateway's are), and the rest."""
    answers = []
    while (end := data.find(b"\r\n\r\n")) >= 0:
        lines = data[:end].decode("latin-1").split("\r\n")
        headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        status = int(lines[0].split()[1])
        if 100 <= status < 200:  # an interim answer (100 Continue): no body, the answer follows
            data = data[end + 4:]
            continue
        length = int(headers.get("content-length", "0"))
        if len(data) < end + 4 + length:
            break
        answers.append(Answer(int(lines[0].split()[1]), headers, data[end + 4:end + 4 + length]))
        data = data[end + 4 + length:]
    return answers, data


def converse(port: int, raw: bytes, *, linger: float = 0.0, limit: float = 10, fin: bool = False) -> tuple[list[Answer], bool, bytes]:
    """Sends `raw` on one connection (then half-closes it, with `fin`) and reads what comes
    back: until the gateway closes, or `linger` seconds after the last whole answer (at once
    with 0). Returns (answers, whether the gateway closed, bytes that are no whole answer)."""
    data = b""
    closed = False
    with socket.create_connection((HOST, port), timeout=limit) as s:
        try:
            s.sendall(raw)
            if fin:
                s.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            pass
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            answers, _ = parse_answers(data)
            if answers and linger == 0:
                break
            s.settimeout(linger if answers else max(0.05, deadline - time.monotonic()))
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                if answers:
                    break
                continue
            except ConnectionResetError:
                closed = True
                break
            if not chunk:
                closed = True
                break
            data += chunk
    answers, rest = parse_answers(data)
    return answers, closed, rest


def error_code(answer: Answer) -> str:
    assert answer.headers.get("content-type", "").startswith("application/json"), answer
    return json.loads(answer.body)["error"]


_canaries = itertools.count()


def settle(upstream: RecordingUpstream, gateway: Gateway, creds: Creds) -> tuple[list[SeenRequest], list[SeenConnection]]:
    """What the upstream saw, once a stray request has had time to arrive: a canary request
    sent through the gateway after the case has reached the upstream (so the wait grows with
    the machine's load), then SETTLE seconds more. The canary is left out of what is returned."""
    target = f"{CANARY}-{next(_canaries)}"
    answers, _, _ = converse(gateway.port, get("/rest/files/" + target[len(BASE) + 1:], creds), limit=10)
    assert [a.status for a in answers] == [200], f"the canary was not served: {answers!r}"
    deadline = time.monotonic() + 10
    while not upstream.has(target) and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(SETTLE)
    return upstream.seen()


def describe(raw: bytes, answers, requests: list[SeenRequest], connections: list[SeenConnection]) -> str:
    out = [f"sent: {raw[:1500]!r}", f"caller got: {answers!r}", f"upstream saw {len(requests)} request(s):"]
    for c in connections:
        out.append(f"  connection {c.id}: {bytes(c.raw)[:1500]!r}" + (f" (malformed: {c.malformed})" if c.malformed else "")
                   + (f" (incomplete: {bytes(c.pending)[:200]!r})" if c.pending else ""))
    return "\n".join(out)


def assert_well_framed(raw: bytes, answers, requests: list[SeenRequest], connections: list[SeenConnection]) -> None:
    """Every byte the upstream received belongs to a whole, strictly framed request; none is a
    request the caller hid in a body."""
    why = describe(raw, answers, requests, connections)
    assert not any(c.malformed or c.pending for c in connections), "the upstream received bytes that are no whole request\n" + why
    assert not any("smuggled" in r.target or r.get("x-smuggled") for r in requests), "DEFECT: the hidden request reached the upstream\n" + why


def get(path: str, creds: Creds, extra: bytes = b"", host: bytes = b"Host: gw\r\n") -> bytes:
    return b"GET " + path.encode() + b" HTTP/1.1\r\n" + host + creds.auth + extra + b"\r\n"


# --------------------------------------------------------------------------- request smuggling and framing

ECHO = b"POST /rest/files/echo HTTP/1.1\r\nHost: gw\r\n"

# Found by these cases and fixed (each failed before its fix): a body that ended early — a
# chunk the parser refuses, the client_body timeout, the caller closing — was forwarded as a
# whole request, re-framed with a Content-Length; a request whose framing the parser refused
# after its head went upstream with an empty body; a whole request followed by bytes the
# parser refuses was served upstream while the caller only got the 400. Gateway side:
# CallerConnection (incomplete bodies fail; a refusal waits for the answers owed before it).



@dataclass
class Framing:
    id: str
    raw: object                   # Creds -> bytes
    legit: bytes | None = None    # the body when the request is legitimately parseable; None: must be refused
    fin: bool = False             # half-close after sending
    absent: tuple[str, ...] = ()  # header names the upstream must not receive when it is forwarded

    def __repr__(self) -> str:
        return self.id


def chunked(*chunks: bytes) -> bytes:
    return b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks) + b"0\r\n\r\n"


FRAMING = [
    # Content-Length with Transfer-Encoding: RFC 9112 §6.3 — "ought to be handled as an error".
    Framing("cl-te", lambda c: ECHO + c.auth + b"Content-Length: %d\r\nTransfer-Encoding: chunked\r\n\r\n" % (5 + len(c.smuggled))
            + b"0\r\n\r\n" + c.smuggled),
    Framing("te-cl", lambda c: ECHO + c.auth + b"Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked(c.smuggled)),
    Framing("te-cl-te-first", lambda c: ECHO + c.auth + b"Transfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n" + chunked(c.smuggled)),
    Framing("te-cl-zero", lambda c: ECHO + c.auth + b"Transfer-Encoding: chunked\r\nContent-Length: 0\r\n\r\n" + chunked(b"hello")
            + c.smuggled),
    Framing("cl-te-obs-folded", lambda c: ECHO + c.auth + b"Content-Length: %d\r\nTransfer-Encoding:\r\n chunked\r\n\r\n"
            % (5 + len(c.smuggled)) + b"0\r\n\r\n" + c.smuggled),
    # Two Content-Lengths.
    Framing("two-cl-same", lambda c: ECHO + c.auth + b"Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello", legit=b"hello"),
    Framing("two-cl-different", lambda c: ECHO + c.auth + b"Content-Length: 5\r\nContent-Length: %d\r\n\r\nhello" % (5 + len(c.smuggled))
            + c.smuggled),
    Framing("two-cl-different-reversed", lambda c: ECHO + c.auth + b"Content-Length: %d\r\nContent-Length: 5\r\n\r\nhello"
            % (5 + len(c.smuggled)) + c.smuggled),
    Framing("cl-list-same", lambda c: ECHO + c.auth + b"Content-Length: 5, 5\r\n\r\nhello", legit=b"hello"),
    Framing("cl-list-different", lambda c: ECHO + c.auth + b"Content-Length: 5, %d\r\n\r\nhello" % (5 + len(c.smuggled)) + c.smuggled),
    Framing("cl-plus-sign", lambda c: ECHO + c.auth + b"Content-Length: +5\r\n\r\nhello" + c.smuggled),
    Framing("cl-negative", lambda c: ECHO + c.auth + b"Content-Length: -1\r\n\r\nhello" + c.smuggled),
    Framing("cl-hex", lambda c: ECHO + c.auth + b"Content-Length: 0x5\r\n\r\nhello" + c.smuggled),
    Framing("cl-overflow", lambda c: ECHO + c.auth + b"Content-Length: 18446744073709551621\r\n\r\nhello" + c.smuggled),
    Framing("cl-leading-zeros", lambda c: ECHO + c.auth + b"Content-Length: 005\r\n\r\nhello", legit=b"hello"),
    # Transfer-Encoding variants.
    Framing("te-chunked-identity", lambda c: ECHO + c.auth + b"Transfer-Encoding: chunked, identity\r\n\r\n" + chunked(b"hello") + c.smuggled),
    Framing("te-xchunked", lambda c: ECHO + c.auth + b"Transfer-Encoding: xchunked\r\n\r\n" + chunked(b"hello") + c.smuggled),
    Framing("te-identity", lambda c: ECHO + c.auth + b"Transfer-Encoding: identity\r\n\r\nhello" + c.smuggled),
    Framing("te-identity-with-cl", lambda c: ECHO + c.auth + b"Transfer-Encoding: identity\r\nContent-Length: 5\r\n\r\nhello" + c.smuggled),
    Framing("te-chunked-twice", lambda c: ECHO + c.auth + b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"
            + chunked(b"hello") + c.smuggled),
    Framing("te-leading-space", lambda c: ECHO + c.auth + b"Transfer-Encoding:  chunked\r\n\r\n" + chunked(b"hello"), legit=b"hello"),
    Framing("te-leading-tab", lambda c: ECHO + c.auth + b"Transfer-Encoding:\tchunked\r\n\r\n" + chunked(b"hello"), legit=b"hello"),
    Framing("te-vertical-tab", lambda c: ECHO + c.auth + b"Transfer-Encoding: \x0bchunked\r\n\r\n" + chunked(b"hello") + c.smuggled),
    Framing("te-space-before-colon", lambda c: ECHO + c.auth + b"Transfer-Encoding : chunked\r\n\r\n" + chunked(b"hello") + c.smuggled),
    Framing("te-capitalised", lambda c: ECHO + c.auth + b"Transfer-Encoding: Chunked\r\n\r\n" + chunked(b"hello"), legit=b"hello"),
    Framing("te-capitalised-obs-fold", lambda c: ECHO + c.auth + b"Transfer-Encoding:\r\n Chunked\r\n\r\n" + chunked(b"hello"),
            legit=b"hello"),
    Framing("te-http10", lambda c: b"POST /rest/files/echo HTTP/1.0\r\nHost: gw\r\n" + c.auth + b"Transfer-Encoding: chunked\r\n\r\n"
            + chunked(b"hello") + c.smuggled, legit=b"hello"),
    Framing("te-nominated-by-connection", lambda c: ECHO + c.auth + b"Connection: Transfer-Encoding\r\nTransfer-Encoding: chunked\r\n\r\n"
            + chunked(b"hello"), legit=b"hello"),
    Framing("cl-nominated-by-connection", lambda c: ECHO + c.auth + b"Connection: Content-Length\r\nContent-Length: 5\r\n\r\nhello",
            legit=b"hello"),
    # obs-fold and other malformed header lines (RFC 9112 §5.2: refuse, or unfold to SP).
    Framing("obs-fold-space", lambda c: ECHO + c.auth + b"X-Folded: a\r\n b\r\nContent-Length: 5\r\n\r\nhello", legit=b"hello"),
    Framing("obs-fold-tab-header-injection", lambda c: ECHO + c.auth + b"X-Folded: a\r\n\tX-Injected: b\r\nContent-Length: 5\r\n\r\nhello",
            legit=b"hello", absent=("x-injected",)),
    Framing("obs-fold-first-header-line", lambda c: b"POST /rest/files/echo HTTP/1.1\r\n X-Lead: a\r\nHost: gw\r\n" + c.auth
            + b"Content-Length: 5\r\n\r\nhello", legit=b"hello", absent=("x-lead",)),
    Framing("obs-fold-authorization", lambda c: ECHO + b"Authorization: Bearer\r\n " + c.token.encode() + b"\r\nContent-Length: 5\r\n\r\nhello",
            legit=b"hello"),
    Framing("bare-cr-in-header", lambda c: ECHO + c.auth + b"X-A: a\rX-Injected: b\r\nContent-Length: 5\r\n\r\nhello", absent=("x-injected",)),
    Framing("nul-in-header", lambda c: ECHO + c.auth + b"X-A: a\x00b\r\nContent-Length: 5\r\n\r\nhello"),
    Framing("bare-lf-head", lambda c: (ECHO + c.auth + b"Content-Length: 5\r\n\r\n").replace(b"\r\n", b"\n") + b"hello", legit=b"hello"),
    # Bad chunk sizes and extensions.
    Framing("chunk-size-negative", lambda c: ECHO + c.auth + b"Transfer-Encoding: chunked\r\n\r\n-5\r\nhello\r\n0\r\n\r\n" + c.smuggled),
    Framing("chunk-size-hex-overflow", lambda c: ECHO + c.auth + b"Transfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\nhello\r\n0\r\n\r\n"
            + c.smuggled),
    Framing("chunk-size-0x-prefix", lambda c: ECHO + c.auth + b"Transfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n" + c.smuggled),
    Framing("chunk-size-2^64-1", lambda c: ECHO + c.auth + b"Transfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\nhello\r\n0\r\n\r\n"),
    Framing("chunk-extension", lambda c: ECHO + c.auth + b"Transfer-Encoding: chunked\r\n\r\n5;name=value\r\nhello\r\n0\r\n\r\n", legit=b"hello"),
    Framing("chunk-extension-10k", lambda c: ECHO + c.auth + b"Transfer-Encoding: chunked\r\n\r\n5;" + b"a" * 10_000 + b"\r\nhello\r\n0\r\n\r\n",
            legit=b"hello"),
    Framing("chunk-extension-bare-lf", lambda c: ECHO + c.auth + b"Transfer-Encoding: chunked\r\n\r\n5;x\n" + c.smuggled + b"\r\nhello\r\n0\r\n\r\n"),
    Framing("chunk-extension-quoted-crlf", lambda c: ECHO + c.auth + b'Transfer-Encoding: chunked\r\n\r\n5;x="a\r\nb"\r\nhello\r\n0\r\n\r\n'),
    Framing("chunk-lines-bare-lf", lambda c: ECHO + c.auth + b"Transfer-Encoding: chunked\r\n\r\n5\nhello\n0\n\n", legit=b"hello"),
    Framing("chunk-trailer-authorization", lambda c: ECHO + c.auth + b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nAuthorization: Bearer "
            + c.token.encode() + b"\r\nX-Trailer: 1\r\n\r\n", legit=b"hello", absent=("x-trailer", "authorization")),
    # A chunk whose declared size is not the size sent.
    Framing("chunk-size-smaller-than-data", lambda c: ECHO + c.auth + b"Transfer-Encoding: chunked\r\n\r\n3\r\nhello\r\n0\r\n\r\n" + c.smuggled),
    Framing("chunk-size-larger-than-data", lambda c: ECHO + c.auth + b"Transfer-Encoding: chunked\r\n\r\na\r\nhello\r\n0\r\n\r\n" + c.smuggled),
    Framing("chunk-data-without-crlf", lambda c: ECHO + c.auth + b"Transfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n"),
    # Bodies that never end: the caller half-closes, or stalls past client_body.
    Framing("chunked-no-last-chunk-then-fin", lambda c: ECHO + c.auth + b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n", fin=True),
    Framing("chunked-no-last-chunk-then-stall", lambda c: ECHO + c.auth + b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n"),
    Framing("cl-short-body-then-fin", lambda c: ECHO + c.auth + b"Content-Length: 100\r\n\r\nhello", fin=True),
    Framing("cl-short-body-then-stall", lambda c: ECHO + c.auth + b"Content-Length: 100\r\n\r\nhello"),
    # A whole request followed by bytes that are no request.
    Framing("request-then-garbage", lambda c: ECHO + c.auth + b"Content-Length: 5\r\n\r\nhello\x01\x02 garbage\r\n\r\n", legit=b"hello"),
    Framing("http10-request-then-smuggled", lambda c: b"POST /rest/files/echo HTTP/1.0\r\nHost: gw\r\n" + c.auth
            + b"Content-Length: 5\r\n\r\nhello" + c.smuggled, legit=b"hello"),
    Framing("get-with-body-holding-a-request", lambda c: b"GET /rest/files/echo HTTP/1.1\r\nHost: gw\r\n" + c.auth
            + b"Content-Length: %d\r\n\r\n" % len(c.smuggled) + c.smuggled, legit=None),
]


@pytest.mark.parametrize("case", FRAMING, ids=[c.id for c in FRAMING])
def test_request_framing(gateway, upstream, creds, case, request):
    """Refused with a JSON 400 (408 for a body that never came) and the connection closed, and
    then the upstream received nothing; or, legitimately parseable, the upstream received
    exactly one strictly framed request with the body the caller framed — never a request
    hidden in a body, never other bytes."""
    raw = case.raw(creds)
    answers, closed, rest = converse(gateway.port, raw, linger=0.3, fin=case.fin)
    requests, connections = settle(upstream, gateway, creds)
    why = describe(raw, answers, requests, connections)
    assert_well_framed(raw, answers, requests, connections)
    assert len(requests) <= 1, "DEFECT: one request from the caller, more than one to the upstream\n" + why
    assert answers, f"no answer (closed={closed}, rest={rest!r})\n" + why
    first = answers[0]
    if first.status in (400, 408):
        assert error_code(first) == {400: "bad_request", 408: "request_timeout"}[first.status], why
        assert closed and len(answers) == 1, "a refused request's connection must be closed, nothing read after it\n" + why
        assert not requests, "refused for the caller, yet the upstream received a request\n" + why
        return
    assert first.status == 200, why
    if case.id == "get-with-body-holding-a-request":
        # A GET may carry a body: forwarded as a body (with its length), never as a request.
        assert len(requests) == 1 and requests[0].body == creds.smuggled and requests[0].method == "GET", why
        return
    assert case.legit is not None, "accepted a request that must be refused\n" + why
    assert len(requests) == 1, why
    seen = requests[0]
    assert (seen.method, seen.target) == ("POST", BASE + "/echo"), why
    assert seen.body == case.legit, "the upstream received another body than the one the caller framed\n" + why
    if seen.framing == "content-length":
        assert seen.all("content-length") == [str(len(case.legit))], why
    assert seen.framing != "none" or case.legit == b"", why
    for name in case.absent:
        assert name not in seen.names, f"{name} reached the upstream\n" + why
    for extra in answers[1:]:
        assert extra.status == 400 and error_code(extra) == "bad_request" and closed, \
            "after the request's answer, only a refusal of what followed may come\n" + why


def test_the_recorder_sees_a_pipelined_second_request(gateway, upstream, creds):
    """The control: two requests pipelined on one connection are two upstream requests, each
    recorded — so the 'at most one' above would see a smuggled second one."""
    raw = get("/rest/files/one", creds) + get("/rest/files/two", creds)
    answers, _, _ = converse(gateway.port, raw, linger=0.5)
    requests, connections = settle(upstream, gateway, creds)
    assert [a.status for a in answers] == [200, 200], answers
    assert sorted(r.target for r in requests) == [BASE + "/one", BASE + "/two"], describe(raw, answers, requests, connections)


# --------------------------------------------------------------------------- header and body limits


def many_headers(n: int, size: int = 1) -> bytes:
    return b"".join(b"X-H%d: %s\r\n" % (i, b"v" * size) for i in range(n))


LIMITS = [
    # (id, raw, status, error code) — refused: the upstream sees nothing.
    ("header-count-over", lambda c: get("/rest/files/x", c, many_headers(MAX_HEADER_COUNT + 5)), 431, "headers_too_large"),
    ("header-count-far-over", lambda c: get("/rest/files/x", c, many_headers(500)), 431, "headers_too_large"),
    ("header-bytes-one-header", lambda c: get("/rest/files/x", c, b"X-Big: " + b"a" * (MAX_HEADER_BYTES + 100) + b"\r\n"), 431, "headers_too_large"),
    ("header-bytes-many-headers", lambda c: get("/rest/files/x", c, many_headers(20, 250)), 431, "headers_too_large"),
    ("header-section-over-parser-limit", lambda c: get("/rest/files/x", c, b"X-Big: " + b"a" * 200_000 + b"\r\n"), 431, "headers_too_large"),
    ("body-content-length-over", lambda c: ECHO + c.auth + b"Content-Length: %d\r\n\r\n" % (MAX_BODY + 1) + b"x" * (MAX_BODY + 1),
     413, "payload_too_large"),
    ("body-content-length-huge", lambda c: ECHO + c.auth + b"Content-Length: 99999999999999999\r\n\r\nhello", 413, "payload_too_large"),
    ("body-expect-100-continue-over", lambda c: ECHO + c.auth + b"Expect: 100-continue\r\nContent-Length: %d\r\n\r\n" % (MAX_BODY * 5),
     413, "payload_too_large"),
    ("body-chunked-over", lambda c: ECHO + c.auth + b"Transfer-Encoding: chunked\r\n\r\n" + chunked(*[b"x" * 256] * 5), 413, "payload_too_large"),
    ("body-chunked-one-huge-chunk", lambda c: ECHO + c.auth + b"Transfer-Encoding: chunked\r\n\r\n%x\r\n" % (MAX_BODY * 100)
     + b"x" * (MAX_BODY * 2), 413, "payload_too_large"),
]


@pytest.mark.parametrize("case", LIMITS, ids=[c[0] for c in LIMITS])
def test_over_a_limit_is_refused_in_json_and_nothing_reaches_the_upstream(gateway, upstream, creds, case):
    _, build, status, code = case
    raw = build(creds)
    answers, closed, rest = converse(gateway.port, raw)
    requests, connections = settle(upstream, gateway, creds)
    why = describe(raw, answers, requests, connections)
    assert answers and answers[0].status == status and error_code(answers[0]) == code, why
    assert not requests and not connections, "over a limit, yet the upstream received bytes\n" + why


WITHIN = [
    # (id, raw, the body the upstream must get, a header it must get whole)
    ("header-count-within", lambda c: get("/rest/files/x", c, many_headers(MAX_HEADER_COUNT - 5)), b"", ("x-h24", "v")),
    ("header-bytes-within", lambda c: get("/rest/files/x", c, b"X-Big: " + b"a" * (MAX_HEADER_BYTES // 2) + b"\r\n"), b"",
     ("x-big", "a" * (MAX_HEADER_BYTES // 2))),
    ("body-content-length-at-limit", lambda c: ECHO + c.auth + b"Content-Length: %d\r\n\r\n" % MAX_BODY + b"y" * MAX_BODY, b"y" * MAX_BODY, None),
    ("body-chunked-at-limit", lambda c: ECHO + c.auth + b"Transfer-Encoding: chunked\r\n\r\n" + chunked(*[b"z" * 256] * 4), b"z" * MAX_BODY, None),
]


@pytest.mark.parametrize("case", WITHIN, ids=[c[0] for c in WITHIN])
def test_within_the_limits_goes_upstream_whole(gateway, upstream, creds, case):
    _, build, body, header = case
    raw = build(creds)
    answers, _, _ = converse(gateway.port, raw)
    requests, connections = settle(upstream, gateway, creds)
    why = describe(raw, answers, requests, connections)
    assert [a.status for a in answers] == [200], why
    assert_well_framed(raw, answers, requests, connections)
    assert len(requests) == 1 and requests[0].body == body, why
    if header:
        assert requests[0].all(header[0]) == [header[1]], why


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_a_refused_body_is_never_read_as_a_request(gateway, upstream, creds, framing):
    """A body over max_request_body is refused unread (413): what it holds — a request — must
    never become one; the caller's next request on the connection is its own."""
    hidden = (creds.smuggled * 10)[:MAX_BODY * 2]
    after = get("/rest/files/after", creds)
    if framing == "content-length":
        raw = ECHO + creds.auth + b"Content-Length: %d\r\n\r\n" % len(hidden) + hidden + after
    else:
        raw = ECHO + creds.auth + b"Transfer-Encoding: chunked\r\n\r\n" + chunked(*[hidden[i:i + 256] for i in range(0, len(hidden), 256)]) + after
    answers, closed, _ = converse(gateway.port, raw, linger=0.5)
    requests, connections = settle(upstream, gateway, creds)
    why = describe(raw, answers, requests, connections)
    assert_well_framed(raw, answers, requests, connections)
    assert answers and answers[0].status == 413 and error_code(answers[0]) == "payload_too_large", why
    # Either the connection is closed after the 413, or the next request is the caller's own.
    assert [a.status for a in answers[1:]] in ([], [200]), why
    assert [r.target for r in requests] == ([BASE + "/after"] if len(answers) == 2 else []), why


# --------------------------------------------------------------------------- path traversal

TRAVERSALS = [
    "/rest/files/../files/x", "/rest/files/a/../../x", "/rest/files/..", "/rest/files/x/..", "/rest/files/./x",
    "/rest/files/%2e%2e/x", "/rest/files/%2E%2e/x", "/rest/files/%2e%2E/x", "/rest/files/.%2e/x", "/rest/files/%2e./x",
    "/rest/files/%2e/x", "/rest/files/%2e%2e", "/rest/files/..%2fx", "/rest/files/..%2Fx", "/rest/files/a%2fb",
    "/rest/files/..;/x", "/rest/files/..;jsessionid=1/x", "/rest/files/%2e%2e;/x", "/rest/files/%252e%252e/x",
    "/rest/files/%25%32%65%25%32%65/x", "/rest/files/%c0%ae%c0%ae/x", "/rest/files/%c0%2e%c0%2e/x", "/rest/files/%e0%80%ae%e0%80%ae/x",
    "/rest/files/%ef%bc%8e%ef%bc%8e/x", "/rest/files/%ef%bc%8e./x", "/rest/files/%e2%80%a5/x", "/rest/files/%e2%80%a4/x",
    "/rest/files/..%5cx", "/rest/files/a%5cb", "/rest/files/..%5C..%5Cx", "/rest/files/..\\x", "/rest/files/%5c..%5cx",
    "/rest/files//x", "/rest/files/x//y", "/rest/%2e%2e/files/x", "/rest/files/..%00/x", "/rest/files/%00/x",
    "/rest/files/%u002e%u002e/x", "/rest/files/%2/x", "/rest/files/x#/../y", "//rest/files/x",
    "http://gw/rest/files/../x", "http://gw/rest/files/%2e%2e/x",
]
# Bytes a request target may not hold at all: the HTTP parser refuses them first (bad_request).
RAW_TRAVERSALS = {
    "raw-fullwidth-dots": b"/rest/files/\xef\xbc\x8e\xef\xbc\x8e/x",
    "raw-overlong-dots": b"/rest/files/\xc0\xae\xc0\xae/x",
    "raw-tab": b"/rest/files/..\t/x",
}


@pytest.mark.parametrize("path", TRAVERSALS + list(RAW_TRAVERSALS), ids=TRAVERSALS + list(RAW_TRAVERSALS))
def test_path_traversal_is_400_invalid_path_and_never_forwarded(gateway, upstream, creds, path):
    target = RAW_TRAVERSALS.get(path, path.encode() if isinstance(path, str) else path)
    raw = b"GET " + target + b" HTTP/1.1\r\nHost: gw\r\n" + creds.auth + b"\r\n"
    answers, _, _ = converse(gateway.port, raw)
    requests, connections = settle(upstream, gateway, creds)
    why = describe(raw, answers, requests, connections)
    assert answers and answers[0].status == 400, why
    allowed = {"invalid_path", "bad_request"} if path in RAW_TRAVERSALS else {"invalid_path"}
    assert error_code(answers[0]) in allowed, why
    assert not requests and not connections, "DEFECT: a traversal reached the upstream\n" + why


def test_dots_inside_names_pass_through_unchanged(gateway, upstream, creds):
    """The control: names with dots are not dot segments; the path reaches the upstream as sent."""
    raw = get("/rest/files/a..b/.well-known/c.d...?x=../y", creds)
    answers, _, _ = converse(gateway.port, raw)
    requests, connections = settle(upstream, gateway, creds)
    assert [a.status for a in answers] == [200], answers
    assert [r.target for r in requests] == [BASE + "/a..b/.well-known/c.d...?x=../y"], describe(raw, answers, requests, connections)


# --------------------------------------------------------------------------- hop-by-hop headers and the ID token

HOP = [
    # (id, extra header lines, names that must not reach the upstream, values that must not)
    ("connection-nominates-x-secret", b"Connection: X-Secret, keep-alive\r\nX-Secret: s3cr3t-value\r\n",
     ("x-secret", "connection"), (b"s3cr3t-value",)),
    ("connection-nominates-in-a-second-header", b"Connection: keep-alive\r\nConnection: x-SECRET\r\nX-Secret: s3cr3t-value\r\n",
     ("x-secret", "connection"), (b"s3cr3t-value",)),
    ("connection-nominates-several", b"Connection: X-A,X-B ,  x-c\r\nX-A: s3cr3t-a\r\nX-B: s3cr3t-b\r\nX-C: s3cr3t-c\r\n",
     ("x-a", "x-b", "x-c"), (b"s3cr3t-a", b"s3cr3t-b", b"s3cr3t-c")),
    ("connection-nominates-authorization", b"Connection: Authorization\r\n", ("authorization", "connection"), ()),
    ("connection-close-and-authorization", b"Connection: close, Authorization\r\n", ("authorization", "connection"), ()),
    ("connection-nominates-host", b"Connection: Host\r\n", ("connection",), ()),
    ("hop-by-hop-headers", b"Keep-Alive: timeout=5\r\nTE: trailers\r\nTrailer: X-T\r\nProxy-Connection: keep-alive\r\n"
     b"Proxy-Authorization: Basic cHJveHk6czNjcjN0\r\n",
     ("keep-alive", "te", "trailer", "proxy-connection", "proxy-authorization"), (b"cHJveHk6czNjcjN0",)),
    ("upgrade-h2c", b"Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n",
     ("upgrade", "http2-settings", "connection"), ()),
    ("upgrade-websocket", b"Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n",
     ("upgrade", "connection"), ()),
    ("forwarded-spoofing", b"X-Forwarded-For: 6.6.6.6\r\nX-Forwarded-Host: evil.example\r\nX-Forwarded-Proto: https\r\nForwarded: for=6.6.6.6;host=evil.example\r\n",
     ("x-forwarded-for", "x-forwarded-host", "x-forwarded-proto", "forwarded"), (b"evil.example", b"6.6.6.6")),
    ("cookie", b"Cookie: session=s3cr3t-cookie\r\n", ("cookie",), (b"s3cr3t-cookie",)),
    ("expect", b"Expect: 100-continue\r\n", ("expect",), ()),
]


@pytest.mark.parametrize("case", HOP, ids=[c[0] for c in HOP])
def test_hop_by_hop_and_nominated_headers_never_reach_the_upstream(gateway, upstream, creds, case):
    _, extra, names, values = case
    raw = get("/rest/files/x", creds, extra)
    answers, _, _ = converse(gateway.port, raw)
    requests, connections = settle(upstream, gateway, creds)
    why = describe(raw, answers, requests, connections)
    assert answers and answers[0].status in (200, 401), why
    assert len(requests) == (1 if answers[0].status == 200 else 0), why
    assert_well_framed(raw, answers, requests, connections)
    for seen in requests:
        assert not (set(names) | {"authorization"}) & seen.names, why
    for value in values:
        assert value not in upstream.raw_since_reset(), why


TOKEN_PLACES = [
    # (id, raw) — wherever the caller's ID token is put in the head, it never reaches the upstream
    ("authorization", lambda c: get("/rest/files/x", c)),
    ("authorization-twice", lambda c: get("/rest/files/x", c, c.auth)),
    ("authorization-odd-case", lambda c: get("/rest/files/x", c).replace(b"Authorization:", b"aUTHORIZATION:")),
    ("authorization-nominated-by-connection", lambda c: get("/rest/files/x", c, b"Connection: keep-alive, authorization\r\n")),
    ("proxy-authorization", lambda c: get("/rest/files/x", c, b"Proxy-Authorization: Bearer " + c.token.encode() + b"\r\n")),
    ("cookie", lambda c: get("/rest/files/x", c, b"Cookie: id_token=" + c.token.encode() + b"\r\n")),
    ("chunked-trailer", lambda c: ECHO + c.auth + b"Transfer-Encoding: chunked\r\n\r\n" + b"5\r\nhello\r\n0\r\nAuthorization: Bearer "
     + c.token.encode() + b"\r\n\r\n"),
    ("expect-100-continue-body", lambda c: ECHO + c.auth + b"Expect: 100-continue\r\nContent-Length: 5\r\n\r\nhello"),
    ("pipelined-second-request", lambda c: get("/rest/files/x", c) + get("/rest/files/y", c)),
]


@pytest.mark.parametrize("case", TOKEN_PLACES, ids=[c[0] for c in TOKEN_PLACES])
def test_the_id_token_never_reaches_the_upstream(gateway, upstream, creds, case):
    """(The `fresh` fixture also checks, after every test, every byte the upstream ever got.)"""
    _, build = case
    raw = build(creds)
    answers, _, _ = converse(gateway.port, raw, linger=0.3)
    requests, connections = settle(upstream, gateway, creds)
    why = describe(raw, answers, requests, connections)
    # Refused (two Authorization headers may read as one bad token) or served.
    assert answers and (all(a.status == 200 for a in answers) or [a.status for a in answers] == [401]), why
    assert len(requests) == (len(answers) if answers[0].status == 200 else 0), why
    assert_well_framed(raw, answers, requests, connections)
    received = upstream.raw_since_reset()
    assert creds.token.encode() not in received and creds.token.rsplit(".", 1)[-1].encode() not in received, \
        "DEFECT: the caller's ID token reached the upstream\n" + why
    for seen in requests:
        assert not {"authorization", "proxy-authorization", "cookie"} & seen.names, why


# --------------------------------------------------------------------------- Host spoofing

HOSTS = [
    # (id, raw) — the upstream gets its own Host (and only one), or nothing when refused
    ("host-evil", lambda c: get("/rest/files/x", c, host=b"Host: evil.example\r\n")),
    ("host-evil-with-port", lambda c: get("/rest/files/x", c, host=b"Host: evil.example:80\r\n")),
    ("host-userinfo", lambda c: get("/rest/files/x", c, host=b"Host: gw@evil.example\r\n")),
    ("host-twice", lambda c: get("/rest/files/x", c, host=b"Host: gw\r\nHost: evil.example\r\n")),
    ("host-list", lambda c: get("/rest/files/x", c, host=b"Host: gw, evil.example\r\n")),
    ("host-missing", lambda c: get("/rest/files/x", c, host=b"")),
    ("host-empty", lambda c: get("/rest/files/x", c, host=b"Host:\r\n")),
    ("absolute-form-evil", lambda c: get("http://evil.example/rest/files/x", c, host=b"Host: evil.example\r\n")),
    ("absolute-form-evil-host-differs", lambda c: get("http://evil.example:8080/rest/files/x?q=1", c)),
    ("absolute-form-userinfo", lambda c: get("http://gw@evil.example/rest/files/x", c)),
    ("absolute-form-https", lambda c: get("https://evil.example:443/rest/files/x", c)),
    ("x-forwarded-host", lambda c: get("/rest/files/x", c, b"X-Forwarded-Host: evil.example\r\nForwarded: host=evil.example\r\n")),
    ("connect-authority-form", lambda c: b"CONNECT evil.example:443 HTTP/1.1\r\nHost: evil.example:443\r\n" + c.auth + b"\r\n"),
    ("options-asterisk", lambda c: b"OPTIONS * HTTP/1.1\r\nHost: gw\r\n" + c.auth + b"\r\n"),
    ("double-slash-authority", lambda c: get("//evil.example/rest/files/x", c)),
]


@pytest.mark.parametrize("case", HOSTS, ids=[c[0] for c in HOSTS])
def test_the_upstream_gets_its_own_host_never_the_callers(gateway, upstream, creds, case):
    _, build = case
    raw = build(creds)
    answers, _, _ = converse(gateway.port, raw)
    requests, connections = settle(upstream, gateway, creds)
    why = describe(raw, answers, requests, connections)
    assert answers, why
    assert_well_framed(raw, answers, requests, connections)
    if answers[0].status != 200:
        assert 400 <= answers[0].status < 500 and not requests and not connections, why
        return
    assert len(requests) == 1, why
    seen = requests[0]
    assert seen.all("host") == [f"{HOST}:{upstream.port}"], why
    assert seen.target.startswith(BASE + "/x"), why
    assert b"evil.example" not in seen.raw, why
    assert not {"x-forwarded-host", "forwarded"} & seen.names, why


@pytest.mark.parametrize("target", [b"evil.example:443", b"/rest/files/x"], ids=["authority-form", "origin-form"])
def test_connect_is_refused_and_the_connection_closed(gateway, upstream, creds, target):
    """CONNECT: 405 with Allow, and the gateway closes at once — it is no forward proxy, and
    NIO's parser reads what follows a CONNECT head as a tunnel. (Before: a 400 with no framing
    on a connection left open, the caller waiting for a close that never came.) NIO's encoder
    sends a response to CONNECT without a body (RFC 9112 §6.3), so the status, Allow and the
    close say it all. The upstream hears nothing."""
    raw = b"CONNECT " + target + b" HTTP/1.1\r\nHost: " + (target if b":" in target else b"gw") + b"\r\n" + creds.auth + b"\r\n"
    data, closed = b"", False
    start = time.monotonic()
    with socket.create_connection((HOST, gateway.port), timeout=5) as s:
        s.sendall(raw)
        s.settimeout(3)
        try:
            while chunk := s.recv(65536):
                data += chunk
            closed = True
        except socket.timeout:
            pass
        except ConnectionResetError:
            closed = True
    took = time.monotonic() - start
    head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1").lower()
    assert head.startswith("http/1.1 405"), data[:300]
    assert "\r\nallow: " in head and "connection: close" in head, head
    assert closed and took < 2.5, f"closed={closed} after {took:.2f} s: {data[:300]!r}"
    requests, connections = settle(upstream, gateway, creds)
    assert not requests and not connections, (requests, connections)


# --------------------------------------------------------------------------- availability


def served_quickly(gateway: Gateway, creds: Creds, n: int, what: str) -> None:
    """`n` requests on fresh connections, each answered 200 within 2 s."""
    for i in range(n):
        start = time.monotonic()
        answers, _, _ = converse(gateway.port, get(f"/rest/files/{what}-{i}", creds), limit=5)
        took = time.monotonic() - start
        assert [a.status for a in answers] == [200] and took < 2, f"request {i} while {what}: {answers!r} after {took:.2f} s"
    # …and on one kept-alive connection.
    with socket.create_connection((HOST, gateway.port), timeout=5) as s:
        for i in range(3):
            s.sendall(get(f"/rest/files/{what}-kept-{i}", creds))
            data = b""
            while not parse_answers(data)[0]:
                chunk = s.recv(65536)
                assert chunk, f"closed while {what}"
                data += chunk
            assert parse_answers(data)[0][0].status == 200


@pytest.mark.parametrize("kind", ["200-silent-connections", "100-half-heads", "50-idle-keepalive-after-a-request"])
def test_idle_connections_do_not_stop_the_gateway_serving_others(gateway, upstream, creds, kind):
    held: list[socket.socket] = []
    try:
        count = int(kind.split("-")[0])
        for i in range(count):
            s = socket.create_connection((HOST, gateway.port), timeout=5)
            held.append(s)
            if kind == "100-half-heads":
                s.sendall(b"GET /rest/files/x HTTP/1.1\r\nHost: gw\r\nX-Half: ")
            elif kind.startswith("50-idle"):
                s.sendall(get(f"/rest/files/idle-{i}", creds))
                data = b""
                while not parse_answers(data)[0]:
                    chunk = s.recv(65536)
                    assert chunk
                    data += chunk
        served_quickly(gateway, creds, 10, kind)
    finally:
        for s in held:
            s.close()


@pytest.mark.parametrize("kind", ["20-heads-trickled", "20-bodies-trickled"])
def test_slow_clients_do_not_stop_the_gateway_serving_others(gateway, upstream, creds, kind):
    """Slow clients, each within the timeouts, are all in flight while others are served."""
    results: list = []
    threads = []
    for i in range(20):
        if kind == "20-heads-trickled":
            # The head's first 12 bytes 0.15 s apart, the rest at once: whole within client_header.
            head = b"GET /rest/files/slow-%02d HTTP/1.1\r\nHost: gw\r\n" % i + creds.auth + b"\r\n"
            args = (head[:12], head[12:], b"")
        else:
            # The head at once, then a 10-byte body 0.15 s a byte: each within client_body.
            head = ECHO.replace(b"echo", b"slow-body-%02d" % i) + creds.auth + b"Content-Length: 10\r\n\r\n"
            args = (b"", head, b"0123456789")
        threads.append(threading.Thread(target=slow_client, args=(gateway.port, *args, 0.15, results), daemon=True))
    for t in threads:
        t.start()
    try:
        time.sleep(0.3)
        served_quickly(gateway, creds, 5, kind)
    finally:
        for t in threads:
            t.join(timeout=15)
    answers = [r for r in results if isinstance(r, list)]
    assert len(answers) == 20 and all(a and a[0].status == 200 for a in answers), results
    requests, connections = settle(upstream, gateway, creds)
    slow = [r for r in requests if "/slow" in r.target]
    assert len(slow) == 20, describe(b"", results, slow, connections)
    if kind == "20-bodies-trickled":
        assert all(r.body == b"0123456789" for r in slow), [r.body for r in slow]


def slow_client(port: int, trickled: bytes, rest: bytes, body: bytes, interval: float, results: list) -> None:
    """Trickles `trickled` one byte per `interval`, then sends `rest` at once, then `body` one
    byte per `interval`; records the answers (or the error)."""
    try:
        with socket.create_connection((HOST, port), timeout=10) as s:
            for i in range(len(trickled)):
                s.sendall(trickled[i:i + 1])
                time.sleep(interval)
            if rest:
                s.sendall(rest)
            for i in range(len(body)):
                s.sendall(body[i:i + 1])
                time.sleep(interval)
            data = b""
            s.settimeout(5)
            while not parse_answers(data)[0]:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
            results.append(parse_answers(data)[0])
    except OSError as e:
        results.append(e)
