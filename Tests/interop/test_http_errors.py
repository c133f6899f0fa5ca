"""Requests the gateway's HTTP parser refuses get the gateway's JSON error, not a bare 400
(found by an outside probe, issue 20): a header section over the parser's limit is 431
`headers_too_large`, conflicting lengths and malformed framing 400 `bad_request`, each with
`Connection: close` — whichever driver serves (the event-loop one, or SWITCHBOARD_FAST_PATH=off).
Raw sockets: no HTTP client would send these.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
from pathlib import Path

import pytest

from interop_helpers import HOST, free_port, stop_process, switchboard_binary, wait_for_http_200

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module", params=["on", "off"])
def gateway(request, tmp_path_factory):
    base = tmp_path_factory.mktemp(f"http-errors-{request.param}")
    config = base / "connections.yaml"
    config.write_text('version: 1\nusers: {issuer: "http://127.0.0.1:9", audience: agent0}\nconnections:\n'
                      '  - {name: files, kind: application, upstream: "http://127.0.0.1:9", auth: {strategy: none}}\n')
    port = free_port()
    log = base / "gateway.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([str(switchboard_binary(ROOT)), "gateway", "--config", str(config), "--port", str(port)],
                                stdout=subprocess.DEVNULL, stderr=out, env=dict(os.environ, SWITCHBOARD_FAST_PATH=request.param))
    try:
        wait_for_http_200(f"http://{HOST}:{port}/healthz", proc, 30, "the gateway", log)
        yield port
    finally:
        stop_process(proc)


def exchange(port: int, raw: bytes) -> tuple[int, dict, bytes]:
    """Sends `raw`, reads until the gateway closes; (status, headers, body)."""
    with socket.create_connection((HOST, port), timeout=10) as s:
        s.sendall(raw)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
    return int(lines[0].split()[1]), headers, body


def test_an_oversized_header_section_is_431_in_json(gateway):
    status, headers, body = exchange(gateway, b"GET /rest/files/x HTTP/1.1\r\nHost: gw\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n")
    assert status == 431, (status, body[:200])
    assert headers.get("content-type") == "application/json" and headers.get("connection") == "close", headers
    assert json.loads(body)["error"] == "headers_too_large"


@pytest.mark.parametrize("raw", [
    b"POST /rest/files/x HTTP/1.1\r\nHost: gw\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
    b"POST /rest/files/x HTTP/1.1\r\nHost: gw\r\nContent-Length: abc\r\n\r\n",
    b"POST /rest/files/x HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
    b"GET /rest/files/x HTTP/1.1\r\nHost: gw\r\nBad Header Name: x\r\n\r\n",
], ids=["two-lengths", "bad-length", "bad-chunk", "bad-header-name"])
def test_a_malformed_request_is_400_bad_request_in_json(gateway, raw):
    status, headers, body = exchange(gateway, raw)
    assert status == 400, (status, body[:200])
    assert headers.get("content-type") == "application/json" and headers.get("connection") == "close", headers
    answer = json.loads(body)
    assert answer["error"] == "bad_request" and answer["message"], answer
