"""The caller's side of the gateway is timed and capped (issue 20, second finding of the outside
probe: a client that sent nothing, half a request head, or went idle kept its connection for
minutes). Raw sockets against a real gateway, on both drivers (the event-loop one, and
SWITCHBOARD_FAST_PATH=off):

- a connection that sends nothing, or half a head, or drips a head one byte at a time, is
  closed after `gateway.timeouts.client_header` (half a head gets 408 `request_timeout` first);
- a body that stalls gets 408 after `client_body`; a body sent slowly but steadily is not cut;
- an idle keep-alive connection is closed after `keepalive`, not before;
- an answer that takes longer than every one of those is not cut (the caller owes nothing
  while it waits);
- `gateway.limits.max_inbound_connections`: one connection over the cap is closed at once,
  counted in /metrics; a freed slot is usable again.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from interop_helpers import AUDIENCE, HOST, OIDCIssuer, free_port, stop_process, switchboard_binary, wait_for_http_200, wait_until

ROOT = Path(__file__).resolve().parents[2]
HEADER, BODY, KEEPALIVE = 1.0, 1.0, 2.0


class Upstream(BaseHTTPRequestHandler):
    """`GET /slow` answers after 3 s (longer than every inbound timeout); `POST /echo` answers
    with the body's length as it arrived."""

    protocol_version = "HTTP/1.1"

    def do_GET(self):
        if self.path.endswith("/slow"):
            time.sleep(3)
        self._answer(b"ok")

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self._answer(json.dumps({"received": len(body)}).encode())

    def _answer(self, body: bytes):
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def auth(issuer) -> bytes:
    """The Authorization header line a proxied request carries (a real RS256 ID token)."""
    return b"Authorization: Bearer " + issuer.mint(lifetime=3600).encode() + b"\r\n"


@pytest.fixture(scope="module")
def upstream():
    server = ThreadingHTTPServer((HOST, 0), Upstream)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def start_gateway(base: Path, issuer: OIDCIssuer, upstream_port: int, gateway_yaml: str, fast_path: str):
    config = base / "connections.yaml"
    config.write_text(f'version: 1\nusers: {{issuer: "{issuer.url}", audience: {AUDIENCE}}}\n' + gateway_yaml +
                      f'connections:\n  - {{name: files, kind: application, upstream: "http://{HOST}:{upstream_port}", auth: {{strategy: none}}}}\n')
    port = free_port()
    log = base / "gateway.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([str(switchboard_binary(ROOT)), "gateway", "--config", str(config), "--port", str(port)],
                                stdout=subprocess.DEVNULL, stderr=out, env=dict(os.environ, SWITCHBOARD_FAST_PATH=fast_path))
    wait_for_http_200(f"http://{HOST}:{port}/healthz", proc, 30, "the gateway", log)
    return proc, port


@pytest.fixture(scope="module", params=["on", "off"])
def gateway(request, tmp_path_factory, issuer, upstream):
    base = tmp_path_factory.mktemp(f"inbound-{request.param}")
    proc, port = start_gateway(base, issuer, upstream, f"gateway:\n  timeouts: {{client_header: {HEADER}s, client_body: {BODY}s, keepalive: {KEEPALIVE}s}}\n",
                               request.param)
    yield port
    stop_process(proc)


def read_until_closed(s: socket.socket, limit: float = 15) -> tuple[bytes, float]:
    """Everything the gateway sends until it closes; and how long that took."""
    start = time.monotonic()
    s.settimeout(limit)
    data = b""
    try:
        while chunk := s.recv(65536):
            data += chunk
    except ConnectionResetError:
        pass
    return data, time.monotonic() - start


def parse(data: bytes) -> tuple[int, dict, bytes]:
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
    return int(lines[0].split()[1]), headers, body


def read_one_answer(s: socket.socket) -> tuple[int, dict, bytes]:
    s.settimeout(15)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(65536)
        assert chunk, f"the gateway closed before answering: {data!r}"
        data += chunk
    status, headers, body = parse(data)
    while len(body) < int(headers.get("content-length", "0")):
        body += s.recv(65536)
    return status, headers, body


def test_a_connection_that_sends_nothing_is_closed_after_client_header(gateway):
    with socket.create_connection((HOST, gateway)) as s:
        data, took = read_until_closed(s)
    assert data == b"", data
    assert HEADER * 0.8 <= took <= HEADER + 3, f"closed after {took:.2f} s; client_header is {HEADER} s"


def test_half_a_head_gets_408_then_close(gateway):
    with socket.create_connection((HOST, gateway)) as s:
        s.sendall(b"GET /rest/files/x HTTP/1.1\r\nHost: gw\r\n")
        data, took = read_until_closed(s)
    status, headers, body = parse(data)
    assert status == 408, data[:300]
    assert headers.get("content-type") == "application/json" and headers.get("connection") == "close", headers
    assert json.loads(body)["error"] == "request_timeout"
    assert took <= HEADER + 3, took


def test_a_head_dripped_byte_by_byte_gets_no_more_time(gateway):
    """Slowloris: each byte arrives well within the timeout, the head never does."""
    head = b"GET /rest/files/x HTTP/1.1\r\nHost: gw\r\nX-Filler: " + b"a" * 200
    with socket.create_connection((HOST, gateway)) as s:
        start = time.monotonic()
        closed_at = None
        for byte in head:
            try:
                s.sendall(bytes([byte]))
            except (BrokenPipeError, ConnectionResetError):
                closed_at = time.monotonic() - start
                break
            time.sleep(0.2)
            if time.monotonic() - start > HEADER + 4:
                break
        if closed_at is None:
            data, _ = read_until_closed(s, limit=2)
            closed_at = time.monotonic() - start
            assert data.startswith(b"HTTP/1.1 408"), data[:200]
    assert closed_at <= HEADER + 4, f"a dripped head kept its connection {closed_at:.1f} s (client_header {HEADER} s)"


def test_a_stalled_body_gets_408(gateway, auth):
    with socket.create_connection((HOST, gateway)) as s:
        s.sendall(b"POST /rest/files/echo HTTP/1.1\r\nHost: gw\r\nContent-Type: text/plain\r\nContent-Length: 100\r\n" + auth + b"\r\n" + b"x" * 10)
        data, took = read_until_closed(s)
    status, headers, body = parse(data)
    assert status == 408, data[:300]
    assert json.loads(body)["error"] == "request_timeout" and headers.get("connection") == "close"
    assert BODY * 0.8 <= took <= BODY + 3, took


def test_a_body_sent_slowly_but_steadily_is_not_cut(gateway, auth):
    """Each piece comes within client_body; the whole takes 3× longer than it."""
    with socket.create_connection((HOST, gateway)) as s:
        s.sendall(b"POST /rest/files/echo HTTP/1.1\r\nHost: gw\r\nContent-Type: text/plain\r\nContent-Length: 60\r\n" + auth + b"\r\n")
        for _ in range(6):
            time.sleep(BODY / 2)
            s.sendall(b"y" * 10)
        status, _, body = read_one_answer(s)
    assert status == 200, body
    assert json.loads(body) == {"received": 60}


def test_an_idle_keepalive_connection_is_closed_after_keepalive_not_before(gateway, auth):
    with socket.create_connection((HOST, gateway)) as s:
        s.sendall(b"GET /rest/files/x HTTP/1.1\r\nHost: gw\r\n" + auth + b"\r\n")
        status, _, body = read_one_answer(s)
        assert status == 200 and body == b"ok"
        data, took = read_until_closed(s)
    assert data == b"", data
    assert KEEPALIVE * 0.8 <= took <= KEEPALIVE + 3, f"closed {took:.2f} s after the answer; keepalive is {KEEPALIVE} s"


def test_a_second_request_within_keepalive_is_served(gateway, auth):
    with socket.create_connection((HOST, gateway)) as s:
        for _ in range(3):
            s.sendall(b"GET /rest/files/x HTTP/1.1\r\nHost: gw\r\n" + auth + b"\r\n")
            status, _, _ = read_one_answer(s)
            assert status == 200
            time.sleep(KEEPALIVE / 2)


def test_a_slow_answer_is_not_cut(gateway, auth):
    """The upstream takes 3 s: longer than every inbound timeout; the caller owes nothing meanwhile."""
    with socket.create_connection((HOST, gateway)) as s:
        s.sendall(b"GET /rest/files/slow HTTP/1.1\r\nHost: gw\r\n" + auth + b"\r\n")
        status, _, body = read_one_answer(s)
    assert status == 200 and body == b"ok"


@pytest.mark.parametrize("fast_path", ["on", "off"])
def test_one_connection_over_the_cap_is_closed_at_once(tmp_path, issuer, auth, upstream, fast_path):
    proc, port = start_gateway(tmp_path, issuer, upstream, "gateway:\n  limits: {max_inbound_connections: 3}\n", fast_path)
    try:
        # Connections are held until one is refused: at most 3 are served (fewer when another
        # client — e.g. the readiness probe's pool — still holds one), the next is closed unread.
        held: list[socket.socket] = []
        refused = None
        try:
            for _ in range(5):
                s = socket.create_connection((HOST, port))
                s.sendall(b"GET /rest/files/x HTTP/1.1\r\nHost: gw\r\n" + auth + b"\r\n")
                s.settimeout(10)
                try:
                    first = s.recv(65536)
                except ConnectionResetError:  # closed unread: the request bytes make it a reset
                    first = b""
                if not first:
                    refused = s
                    break
                assert first.startswith(b"HTTP/1.1 200"), first[:200]
                held.append(s)
            assert refused is not None, f"{len(held)} connections were served at once over a cap of 3"
            assert 1 <= len(held) <= 3, len(held)
            refused.close()
        finally:
            for s in held:
                s.close()

        def metrics() -> str | None:
            try:
                with socket.create_connection((HOST, port)) as s:
                    s.sendall(b"GET /metrics HTTP/1.1\r\nHost: gw\r\n\r\n")
                    status, _, body = read_one_answer(s)
                    return body.decode() if status == 200 else None
            except OSError:
                return None

        # A freed slot is usable again (the closes are seen asynchronously).
        text = wait_until(metrics, 10, "a connection after the held ones closed")
        counted = [line for line in text.splitlines() if line.startswith("switchboard_inbound_connections_refused_total")]
        assert counted and float(counted[0].split()[-1]) >= 1, counted
        assert any(line.startswith("switchboard_inbound_connections ") for line in text.splitlines()), text[:500]
    finally:
        stop_process(proc)
