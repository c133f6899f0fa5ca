"""`switchboard llm` with LLM_BACKEND=bedrock against a local Bedrock stand-in that verifies
every request's AWS Signature Version 4 with botocore, the reference implementation.

    anthropic SDK ── /v1/messages ──> switchboard llm ── SigV4 ──> BedrockStandIn (127.0.0.1)
                                                                    botocore.auth.SigV4Auth recomputes
                                                                    the signature from the raw request

The stand-in rebuilds an AWSRequest from what it received (method, URL = endpoint + the raw
path as received, the headers named in SignedHeaders, the body), pins the signing time to the
received x-amz-date, lets botocore compute canonical request, string to sign and signature for
service "bedrock", and compares with the Authorization header. A mismatch is answered the way
AWS does: 403, `x-amzn-ErrorType: InvalidSignatureException`, `{"message": …}`.

On success it answers like Bedrock's Anthropic models: a Messages JSON for
`/model/{id}/invoke`, and for `/model/{id}/invoke-with-response-stream` an
`application/vnd.amazon.eventstream` body of frames built here (prelude, CRC32s, string
headers `:event-type: chunk`, `:content-type: application/json`, `:message-type: event`,
payload `{"bytes": base64(Messages event)}`), written in HTTP chunks that cut frames apart.

Sources/LLMAdapter/Backends/BedrockBackend.swift, AWS/SigV4Signer.swift and
AWS/AWSEventStream.swift are the reference.
"""

from __future__ import annotations

import base64
import datetime as dt
import hmac
import json
import re
import struct
import threading
import time
import zlib
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import quote, unquote

import anthropic
import pytest
from anthropic.types import Message, ToolUseBlock
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from interop_helpers import HOST
from llm_fixtures import LLMAdapter, llm_adapter_factory, llm_binary  # noqa: F401  (fixtures)

REGION = "eu-west-3"
MODEL_ID = "anthropic.claude-3-5-sonnet-20241022-v2:0"
ARN_MODEL_ID = "arn:aws:bedrock:eu-west-3:111122223333:inference-profile/eu.anthropic.claude-3-5-sonnet-20241022-v2:0"
ACCESS_KEY = "AKIDSWITCHBOARDTEST"
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYSWITCHBOARD"
SESSION_TOKEN = "FwoGZXIvYXdzEJr//////////session+token/with=special+chars"
ANTHROPIC_VERSION = "bedrock-2023-05-31"
MAX_SKEW = dt.timedelta(minutes=5)

TOOLS = [{
    "name": "create-todo",
    "description": "Add a todo for the signed-in user.",
    "input_schema": {"type": "object", "properties": {"title": {"type": "string", "minLength": 1}}, "required": ["title"]},
}]


# --------------------------------------------------------------------------- AWS event stream frames


def _header(name: str, value: str) -> bytes:
    n, v = name.encode(), value.encode()
    return struct.pack(">B", len(n)) + n + b"\x07" + struct.pack(">H", len(v)) + v


def event_frame(headers: list[tuple[str, str]], payload: bytes) -> bytes:
    """One `application/vnd.amazon.eventstream` message: total length, headers length, prelude
    CRC32, headers (string type 7), payload, message CRC32; integers big-endian."""
    hdrs = b"".join(_header(k, v) for k, v in headers)
    total = 12 + len(hdrs) + len(payload) + 4
    prelude = struct.pack(">II", total, len(hdrs))
    prelude += struct.pack(">I", zlib.crc32(prelude) & 0xFFFFFFFF)
    message = prelude + hdrs + payload
    return message + struct.pack(">I", zlib.crc32(message) & 0xFFFFFFFF)


def chunk_frame(event: dict) -> bytes:
    """A Bedrock `chunk` event carrying one Messages streaming event (with Bedrock's padding `p`)."""
    payload = json.dumps({"bytes": base64.b64encode(json.dumps(event).encode()).decode(), "p": "abcdefghij"}).encode()
    return event_frame([(":event-type", "chunk"), (":content-type", "application/json"), (":message-type", "event")], payload)


def exception_frame(exception_type: str, message: str) -> bytes:
    return event_frame([(":exception-type", exception_type), (":content-type", "application/json"), (":message-type", "exception")],
                       json.dumps({"message": message}).encode())


def parse_frames(data: bytes) -> list[tuple[dict[str, str], bytes]]:
    """The inverse of event_frame, to check the frames built here against their definition."""
    out = []
    while data:
        total, hlen, pcrc = struct.unpack(">III", data[:12])
        assert zlib.crc32(data[:8]) & 0xFFFFFFFF == pcrc
        assert zlib.crc32(data[: total - 4]) & 0xFFFFFFFF == struct.unpack(">I", data[total - 4: total])[0]
        h, headers = data[12: 12 + hlen], {}
        while h:
            n = h[0]
            name = h[1: 1 + n].decode()
            assert h[1 + n] == 7
            (vlen,) = struct.unpack(">H", h[2 + n: 4 + n])
            headers[name] = h[4 + n: 4 + n + vlen].decode()
            h = h[4 + n + vlen:]
        out.append((headers, data[12 + hlen: total - 4]))
        data = data[total:]
    return out


# --------------------------------------------------------------------------- the stand-in


@dataclass
class Received:
    method: str
    raw_path: str
    headers: list[tuple[str, str]]
    body: bytes
    signature_ok: bool = False
    problems: list[str] = field(default_factory=list)
    # botocore's view, for failure messages
    canonical_request: str = ""

    def header(self, name: str) -> str | None:
        values = [v for k, v in self.headers if k.lower() == name.lower()]
        return ",".join(values) if values else None

    @property
    def json(self) -> dict:
        return json.loads(self.body)


class BedrockStandIn:
    """Bedrock runtime on 127.0.0.1 (InvokeModel, InvokeModelWithResponseStream) that serves only
    requests whose SigV4 signature botocore recomputes to the same value."""

    def __init__(self, access_key: str, secret_key: str, session_token: str | None, region: str,
                 model_ids: tuple[str, ...], prefix: str = ""):
        self.access_key, self.secret_key, self.session_token, self.region = access_key, secret_key, session_token, region
        self.model_ids = model_ids
        self.prefix = prefix
        self.received: list[Received] = []
        self.stream_tail_exception: tuple[str, str] | None = None  # (type, message): end streams with an exception frame
        self.stream_chunk_size = 37  # bytes per HTTP chunk of a stream (frames cut anywhere)
        self.pause_before_exception = 0.0  # seconds between the events and the exception frame
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    @property
    def port(self) -> int:
        assert self._server is not None
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def requests(self) -> list[Received]:
        with self._lock:
            return list(self.received)

    # -- signature

    def verify(self, rec: Received) -> None:
        """Fills rec.signature_ok / rec.problems. botocore computes; this only compares."""
        auth = rec.header("authorization") or ""
        m = re.fullmatch(
            r"AWS4-HMAC-SHA256 Credential=(?P<key>[^/,]+)/(?P<date>\d{8})/(?P<region>[^/,]+)/(?P<service>[^/,]+)/aws4_request,"
            r" ?SignedHeaders=(?P<signed>[a-z0-9;-]+), ?Signature=(?P<sig>[0-9a-f]{64})", auth)
        if not m:
            rec.problems.append(f"Authorization is not a SigV4 header: {auth[:80]!r}")
            return
        amz_date = rec.header("x-amz-date") or ""
        try:
            when = dt.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.timezone.utc)
        except ValueError:
            rec.problems.append(f"x-amz-date {amz_date!r} is not YYYYMMDDTHHMMSSZ")
            return
        if abs(dt.datetime.now(dt.timezone.utc) - when) > MAX_SKEW:
            rec.problems.append(f"Signature expired: x-amz-date {amz_date} is more than 5 minutes from now")
        if m["key"] != self.access_key:
            rec.problems.append(f"unknown access key {m['key']!r}")
        if m["date"] != amz_date[:8] or m["region"] != self.region or m["service"] != "bedrock":
            rec.problems.append(f"credential scope {m['date']}/{m['region']}/{m['service']} is not {amz_date[:8]}/{self.region}/bedrock")
        signed = m["signed"].split(";")
        for needed in ("host", "x-amz-date") + (("x-amz-security-token",) if self.session_token else ()):
            if needed not in signed:
                rec.problems.append(f"{needed} is not among the signed headers {signed}")
        if self.session_token is not None and rec.header("x-amz-security-token") != self.session_token:
            rec.problems.append("x-amz-security-token is not the session token")
        if self.session_token is None and rec.header("x-amz-security-token") is not None:
            rec.problems.append("x-amz-security-token sent without a session token")

        headers = {}
        for name in signed:
            value = rec.header(name)
            if value is None:
                rec.problems.append(f"signed header {name} is missing from the request")
                return
            headers[name] = value
        request = AWSRequest(method=rec.method, url=f"http://{HOST}:{self.port}{rec.raw_path}", headers=headers, data=rec.body)
        request.context["timestamp"] = amz_date
        signer = SigV4Auth(Credentials(self.access_key, self.secret_key, self.session_token), "bedrock", self.region)
        canonical = signer.canonical_request(request)
        rec.canonical_request = canonical
        expected = signer.signature(signer.string_to_sign(request, canonical), request)
        if signer.signed_headers(signer.headers_to_sign(request)) != m["signed"]:
            rec.problems.append("SignedHeaders differs from botocore's list")
        rec.signature_ok = hmac.compare_digest(expected, m["sig"])
        if not rec.signature_ok:
            rec.problems.append("The request signature we calculated does not match the signature you provided. "
                                "Check your AWS Secret Access Key and signing method.")

    # -- answers

    @staticmethod
    def answer_for(body: dict) -> tuple[list[dict], str]:
        """Deterministic content: a tool_use when a tool is forced, else a text naming the request."""
        choice = body.get("tool_choice") or {}
        if choice.get("type") == "tool":
            return [{"type": "tool_use", "id": "toolu_bdrk_01", "name": choice["name"],
                     "input": {"title": "signed by botocore's rules, streamed in pieces"}}], "tool_use"
        last = body["messages"][-1]["content"]
        said = last if isinstance(last, str) else " ".join(b.get("text", "") for b in last if isinstance(b, dict))
        return [{"type": "text", "text": f"Bedrock stand-in here: you said {said!r}, and your signature checks out."}], "end_turn"

    def message(self, body: dict) -> dict:
        content, stop = self.answer_for(body)
        return {"id": "msg_bdrk_01", "type": "message", "role": "assistant", "model": "claude-3-5-sonnet-20241022",
                "content": content, "stop_reason": stop, "stop_sequence": None, "usage": {"input_tokens": 17, "output_tokens": 23}}

    def stream_events(self, body: dict) -> list[dict]:
        content, stop = self.answer_for(body)
        events: list[dict] = [{"type": "message_start", "message": {
            "id": "msg_bdrk_02", "type": "message", "role": "assistant", "model": "claude-3-5-sonnet-20241022", "content": [],
            "stop_reason": None, "stop_sequence": None, "usage": {"input_tokens": 17, "output_tokens": 1}}}]
        for i, block in enumerate(content):
            if block["type"] == "text":
                events.append({"type": "content_block_start", "index": i, "content_block": {"type": "text", "text": ""}})
                text = block["text"]
                for k in range(0, len(text), 10):
                    events.append({"type": "content_block_delta", "index": i, "delta": {"type": "text_delta", "text": text[k:k + 10]}})
            else:
                events.append({"type": "content_block_start", "index": i,
                               "content_block": {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}})
                raw = json.dumps(block["input"])
                for k in range(0, len(raw), 9):
                    events.append({"type": "content_block_delta", "index": i, "delta": {"type": "input_json_delta", "partial_json": raw[k:k + 9]}})
            events.append({"type": "content_block_stop", "index": i})
        events.append({"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": None}, "usage": {"output_tokens": 23}})
        events.append({"type": "message_stop", "amazon-bedrock-invocationMetrics": {
            "inputTokenCount": 17, "outputTokenCount": 23, "invocationLatency": 42, "firstByteLatency": 7}})
        return events

    # -- server

    def start(self) -> "BedrockStandIn":
        standin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802 (http.server API)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                rec = Received(self.command, self.path, [(k.lower(), v) for k, v in self.headers.items()], body)
                standin.verify(rec)
                with standin._lock:
                    standin.received.append(rec)
                if rec.problems or not rec.signature_ok:  # every problem so far is about authentication
                    return self._error(403, "InvalidSignatureException", "; ".join(rec.problems) or "bad signature")
                m = re.fullmatch(re.escape(standin.prefix) + r"/model/(?P<model>[^/]+)/(?P<op>invoke|invoke-with-response-stream)", self.path)
                if not m:
                    return self._error(404, "UnknownOperationException", f"no operation at {self.path}")
                if unquote(m["model"]) not in standin.model_ids or m["model"] != quote(unquote(m["model"]), safe=""):
                    rec.problems.append(f"model segment {m['model']!r} is not a percent-encoded known model id")
                    return self._error(404, "ResourceNotFoundException", f"model {m['model']} not found")
                try:
                    doc = json.loads(body)
                except ValueError:
                    rec.problems.append("body is not JSON")
                    return self._error(400, "ValidationException", "Malformed input request: body is not JSON")
                bad = [k for k in ("model", "stream") if k in doc]
                if doc.get("anthropic_version") != ANTHROPIC_VERSION or bad:
                    rec.problems.append(f"body: anthropic_version={doc.get('anthropic_version')!r}, extraneous keys {bad}")
                    return self._error(400, "ValidationException", f"Malformed input request: extraneous key {bad} is not permitted")
                if m["op"] == "invoke":
                    if self.headers.get("Accept") not in (None, "application/json", "*/*"):
                        rec.problems.append(f"invoke with Accept {self.headers.get('Accept')!r}")
                    return self._json(200, standin.message(doc))
                if self.headers.get("Accept") != "application/vnd.amazon.eventstream":
                    rec.problems.append(f"invoke-with-response-stream with Accept {self.headers.get('Accept')!r}")
                self._stream(standin.stream_events(doc))

            def _stream(self, events: list[dict]) -> None:
                data = b"".join(chunk_frame(e) for e in events)
                tail = exception_frame(*standin.stream_tail_exception) if standin.stream_tail_exception else b""
                if not standin.pause_before_exception:
                    data, tail = data + tail, b""
                self.send_response(200)
                self.send_header("Content-Type", "application/vnd.amazon.eventstream")
                self.send_header("Transfer-Encoding", "chunked")
                self.send_header("x-amzn-RequestId", "11111111-2222-3333-4444-555555555555")
                self.send_header("X-Amzn-Bedrock-Content-Type", "application/json")
                self.end_headers()
                # Small HTTP chunks cut frames anywhere, headers and CRCs included.
                size = standin.stream_chunk_size
                for k in range(0, len(data), size):
                    piece = data[k:k + size]
                    self.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
                    self.wfile.flush()
                if tail:
                    time.sleep(standin.pause_before_exception)
                    self.wfile.write(f"{len(tail):x}\r\n".encode() + tail + b"\r\n")
                self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()

            def _json(self, status: int, doc: dict, extra: dict[str, str] | None = None) -> None:
                data = json.dumps(doc).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("x-amzn-RequestId", "11111111-2222-3333-4444-555555555555")
                for k, v in (extra or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def _error(self, status: int, error_type: str, message: str) -> None:
                self._json(status, {"message": message}, {"x-amzn-ErrorType": f"{error_type}:http://internal.amazon.com/coral/com.amazon.coral.service/"})

            def log_message(self, *args) -> None:
                pass

        self._server = ThreadingHTTPServer((HOST, 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, name="bedrock-standin", daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


# --------------------------------------------------------------------------- fixtures


def bedrock_env(standin: BedrockStandIn, *, secret: str = SECRET_KEY, token: str | None = SESSION_TOKEN, model_id: str = MODEL_ID,
                endpoint: str | None = None) -> dict[str, str]:
    env = {
        "LLM_BACKEND": "bedrock",
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": secret,
        "AWS_REGION": REGION,
        "BEDROCK_MODEL_ID": model_id,
        "AWS_ENDPOINT_URL_BEDROCK_RUNTIME": endpoint or standin.url,
        "LLM_MAX_RETRIES": "0",
    }
    if token is not None:
        env["AWS_SESSION_TOKEN"] = token
    return env


@pytest.fixture(scope="module")
def standin():
    s = BedrockStandIn(ACCESS_KEY, SECRET_KEY, SESSION_TOKEN, REGION, (MODEL_ID,)).start()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def bedrock_adapter(standin: BedrockStandIn, llm_adapter_factory) -> LLMAdapter:
    return llm_adapter_factory(bedrock_env(standin), name="bedrock")


def sdk(adapter: LLMAdapter) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=adapter.url, api_key="any", max_retries=0, timeout=30)


def new_requests(standin: BedrockStandIn, before: int) -> list[Received]:
    return standin.requests()[before:]


def describe(recs: list[Received]) -> str:
    return "\n".join(f"{r.method} {r.raw_path} ok={r.signature_ok} problems={r.problems}\n{r.canonical_request}" for r in recs)


# --------------------------------------------------------------------------- tests


def test_event_frames_match_their_definition():
    """The frames this stand-in writes decode by the spec (so a stream failure is the adapter's)."""
    data = chunk_frame({"type": "ping"}) + exception_frame("throttlingException", "slow down")
    frames = parse_frames(data)
    assert [h[":message-type"] for h, _ in frames] == ["event", "exception"]
    assert frames[0][0] == {":event-type": "chunk", ":content-type": "application/json", ":message-type": "event"}
    assert json.loads(base64.b64decode(json.loads(frames[0][1])["bytes"])) == {"type": "ping"}
    # A known vector: an empty message is 16 bytes, prelude CRC 0x05c248eb, message CRC 0x7d98c8ff.
    assert event_frame([], b"").hex() == "000000100000000005c248eb7d98c8ff"


def test_botocore_verifier_accepts_botocore_and_rejects_a_wrong_secret(standin: BedrockStandIn):
    """The verifier itself: a request botocore signs passes; the same request signed with
    another secret, or with its path or body changed after signing, does not."""
    def signed(secret: str, path: str, body: bytes) -> Received:
        req = AWSRequest(method="POST", url=f"{standin.url}{path}", data=body,
                         headers={"content-type": "application/json", "accept": "application/json", "host": f"{HOST}:{standin.port}"})
        SigV4Auth(Credentials(ACCESS_KEY, secret, SESSION_TOKEN), "bedrock", REGION).add_auth(req)
        return Received("POST", path, [(k.lower(), v) for k, v in req.headers.items()], body)

    path = "/model/" + quote(MODEL_ID, safe="") + "/invoke"
    body = json.dumps({"anthropic_version": ANTHROPIC_VERSION, "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}).encode()
    good = signed(SECRET_KEY, path, body)
    standin.verify(good)
    assert good.signature_ok and not good.problems, good.problems
    assert "%253A" in good.canonical_request.splitlines()[1], good.canonical_request

    wrong_secret = signed("not-the-secret", path, body)
    standin.verify(wrong_secret)
    assert not wrong_secret.signature_ok
    moved = signed(SECRET_KEY, path, body)
    moved.raw_path = path.replace("invoke", "invoke-with-response-stream")
    standin.verify(moved)
    assert not moved.signature_ok
    tampered = signed(SECRET_KEY, path, body)
    tampered.body = body.replace(b"hi", b"ho")
    standin.verify(tampered)
    assert not tampered.signature_ok


def test_message_through_bedrock_with_a_verified_signature(standin: BedrockStandIn, bedrock_adapter: LLMAdapter):
    before = len(standin.requests())
    with sdk(bedrock_adapter) as client:
        message = client.messages.create(
            model="claude-whatever-the-client-says", max_tokens=300, system="be brief", stop_sequences=["END"],
            metadata={"user_id": "u-1"}, service_tier="auto", extra_body={"temperature": 0.2, "top_k": 5},
            messages=[{"role": "user", "content": "hello over SigV4"}])

    recs = new_requests(standin, before)
    assert len(recs) == 1, describe(recs)
    rec = recs[0]
    assert rec.signature_ok and not rec.problems, describe(recs) + bedrock_adapter.tail()
    assert rec.raw_path == "/model/anthropic.claude-3-5-sonnet-20241022-v2%3A0/invoke"
    assert rec.header("host") == f"{HOST}:{standin.port}"
    assert rec.header("x-amz-security-token") == SESSION_TOKEN
    body = rec.json
    assert body["anthropic_version"] == ANTHROPIC_VERSION
    # Only what Bedrock's Anthropic models accept goes through (anything else is a ValidationException there).
    assert "model" not in body and "stream" not in body, sorted(body)
    assert "metadata" not in body and "service_tier" not in body, sorted(body)
    assert body["max_tokens"] == 300 and body["system"] == "be brief" and body["stop_sequences"] == ["END"]
    assert body["temperature"] == 0.2 and body["top_k"] == 5
    assert body["messages"] == [{"role": "user", "content": "hello over SigV4"}]

    assert isinstance(message, Message)
    assert message.stop_reason == "end_turn"
    assert message.content[0].type == "text"
    assert message.content[0].text == "Bedrock stand-in here: you said 'hello over SigV4', and your signature checks out."
    assert message.usage.input_tokens == 17 and message.usage.output_tokens == 23

    health = bedrock_adapter.health()
    assert health["backend"] == "bedrock" and health["model"] == MODEL_ID
    log = bedrock_adapter.log_text()
    for secret in (SECRET_KEY, SESSION_TOKEN, rec.header("authorization").rsplit("=", 1)[1]):
        assert secret not in log, "a credential or signature shows up in the adapter's log"


def test_streamed_answer_through_bedrock_with_a_verified_signature(standin: BedrockStandIn, bedrock_adapter: LLMAdapter):
    before = len(standin.requests())
    with sdk(bedrock_adapter) as client:
        pieces: list[str] = []
        with client.messages.stream(model="m", max_tokens=300, messages=[{"role": "user", "content": "stream it"}]) as stream:
            for text in stream.text_stream:
                pieces.append(text)
            final = stream.get_final_message()

    recs = new_requests(standin, before)
    assert len(recs) == 1, describe(recs)
    rec = recs[0]
    assert rec.signature_ok and not rec.problems, describe(recs) + bedrock_adapter.tail()
    assert rec.raw_path == "/model/anthropic.claude-3-5-sonnet-20241022-v2%3A0/invoke-with-response-stream"
    assert rec.header("accept") == "application/vnd.amazon.eventstream"
    assert "stream" not in rec.json and "model" not in rec.json and rec.json["anthropic_version"] == ANTHROPIC_VERSION

    expected = "Bedrock stand-in here: you said 'stream it', and your signature checks out."
    assert len(pieces) > 3 and "".join(pieces) == expected, pieces
    assert isinstance(final, Message)
    assert [b.type for b in final.content] == ["text"] and final.content[0].text == expected
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens == 23


def test_streamed_tool_use_through_bedrock(standin: BedrockStandIn, bedrock_adapter: LLMAdapter):
    before = len(standin.requests())
    with sdk(bedrock_adapter) as client:
        with client.messages.stream(model="m", max_tokens=300, tools=TOOLS, tool_choice={"type": "tool", "name": "create-todo"},
                                    messages=[{"role": "user", "content": "add one"}],
                                    extra_headers={"anthropic-beta": "fine-grained-tool-streaming-2025-05-14, token-efficient-tools-2025-02-19"}) as stream:
            events = list(stream)
            final = stream.get_final_message()

    recs = new_requests(standin, before)
    assert len(recs) == 1 and recs[0].signature_ok and not recs[0].problems, describe(recs)
    body = recs[0].json
    assert body["tools"] == TOOLS and body["tool_choice"] == {"type": "tool", "name": "create-todo"}
    assert body["anthropic_beta"] == ["fine-grained-tool-streaming-2025-05-14", "token-efficient-tools-2025-02-19"]

    partials = [e.delta.partial_json for e in events if e.type == "content_block_delta" and e.delta.type == "input_json_delta"]
    assert len(partials) > 3
    assert final.stop_reason == "tool_use"
    uses = [b for b in final.content if isinstance(b, ToolUseBlock)]
    assert [(u.id, u.name, u.input) for u in uses] == [("toolu_bdrk_01", "create-todo", {"title": "signed by botocore's rules, streamed in pieces"})]


def test_arn_model_id_without_session_token(llm_adapter_factory):
    """An inference-profile ARN (':' and '/' in the id) and long-term keys (no session token)."""
    s = BedrockStandIn(ACCESS_KEY, SECRET_KEY, None, REGION, (ARN_MODEL_ID,)).start()
    try:
        adapter = llm_adapter_factory(bedrock_env(s, token=None, model_id=ARN_MODEL_ID), name="bedrock-arn")
        with sdk(adapter) as client:
            message = client.messages.create(model="m", max_tokens=50, messages=[{"role": "user", "content": "arn"}])
            with client.messages.stream(model="m", max_tokens=50, messages=[{"role": "user", "content": "arn"}]) as stream:
                streamed = stream.get_final_message()
        recs = s.requests()
        assert len(recs) == 2 and all(r.signature_ok and not r.problems for r in recs), describe(recs) + adapter.tail()
        assert recs[0].raw_path == "/model/" + quote(ARN_MODEL_ID, safe="") + "/invoke"
        assert "%2F" in recs[0].raw_path and "%3A" in recs[0].raw_path
        assert all(r.header("x-amz-security-token") is None for r in recs)
        assert message.content[0].text == streamed.content[0].text
    finally:
        s.stop()


def test_wrong_secret_is_refused_by_the_verifier_and_surfaces_as_502(standin: BedrockStandIn, llm_adapter_factory):
    adapter = llm_adapter_factory(bedrock_env(standin, secret="this-is-not-the-secret-key"), name="bedrock-wrong-secret")
    with sdk(adapter) as client:
        before = len(standin.requests())
        with pytest.raises(anthropic.APIStatusError) as caught:
            client.messages.create(model="m", max_tokens=50, messages=[{"role": "user", "content": "hello"}])
        e = caught.value
        assert e.status_code == 502, (e.status_code, e.body)
        assert isinstance(e, anthropic.InternalServerError)
        assert e.body["type"] == "error" and e.body["error"]["type"] == "api_error", e.body
        assert "credentials" in e.body["error"]["message"], e.body
        assert "InvalidSignatureException" in e.body["error"]["message"], e.body
        recs = new_requests(standin, before)
        assert len(recs) == 1 and not recs[0].signature_ok, describe(recs)

        # Streamed: refused before the stream begins.
        with pytest.raises(anthropic.APIStatusError) as caught:
            with client.messages.stream(model="m", max_tokens=50, messages=[{"role": "user", "content": "hello"}]) as stream:
                stream.get_final_message()
        assert caught.value.status_code == 502 and "credentials" in caught.value.body["error"]["message"], caught.value.body
        recs = new_requests(standin, before)
        assert len(recs) == 2 and not recs[1].signature_ok and recs[1].raw_path.endswith("/invoke-with-response-stream"), describe(recs)
    assert "this-is-not-the-secret-key" not in adapter.log_text()


def test_endpoint_with_a_path_is_signed_with_that_path(llm_adapter_factory):
    """AWS_ENDPOINT_URL_BEDROCK_RUNTIME may carry a path (a proxy, a gateway): the adapter sends
    to endpoint + /model/…, so the canonical URI it signs must be that whole path, as botocore
    signs it for an endpoint_url with a path."""
    prefix = "/bedrock-proxy/v1"
    s = BedrockStandIn(ACCESS_KEY, SECRET_KEY, SESSION_TOKEN, REGION, (MODEL_ID,), prefix=prefix).start()
    try:
        adapter = llm_adapter_factory(bedrock_env(s, endpoint=s.url + prefix), name="bedrock-prefixed")
        with sdk(adapter) as client:
            try:
                message = client.messages.create(model="m", max_tokens=50, messages=[{"role": "user", "content": "through a proxy"}])
            except anthropic.APIStatusError as e:
                message = e
        recs = s.requests()
        assert len(recs) == 1, describe(recs)
        assert recs[0].raw_path == prefix + "/model/anthropic.claude-3-5-sonnet-20241022-v2%3A0/invoke"
        assert recs[0].signature_ok, (
            f"the adapter sent {recs[0].raw_path} but its signature does not cover that path "
            f"(answer: {getattr(message, 'status_code', 200)} {getattr(message, 'body', '')})\n" + describe(recs))
        assert isinstance(message, Message) and message.stop_reason == "end_turn"
    finally:
        s.stop()


@pytest.mark.parametrize("delivery", ["exception-written-later", "exception-in-the-same-write"])
def test_events_before_a_stream_exception_reach_the_client(llm_adapter_factory, delivery: str):
    """Bedrock can end a stream with an exception frame after some events (throttling, model
    stream errors). The events before it were generated and must reach the client, then the
    error as an SSE `error` event (the SDK raises it) — however the bytes are cut into reads:
    the events and the exception written 0.3 s apart, or all in one write (a short answer and
    its error often arrive together)."""
    s = BedrockStandIn(ACCESS_KEY, SECRET_KEY, SESSION_TOKEN, REGION, (MODEL_ID,)).start()
    s.stream_tail_exception = ("modelStreamErrorException", "the model stream broke")
    s.stream_chunk_size = 1 << 20  # the events in one write
    s.pause_before_exception = 0.3 if delivery == "exception-written-later" else 0.0
    try:
        adapter = llm_adapter_factory(bedrock_env(s), name="bedrock-stream-error")
        seen: list[str] = []
        texts: list[str] = []
        with sdk(adapter) as client:
            with pytest.raises(anthropic.APIStatusError) as caught:
                with client.messages.stream(model="m", max_tokens=300, messages=[{"role": "user", "content": "then break"}]) as stream:
                    for event in stream:
                        seen.append(event.type)
                        if event.type == "text":
                            texts.append(event.text)
        recs = s.requests()
        assert len(recs) == 1 and recs[0].signature_ok, describe(recs)
        assert "the model stream broke" in str(caught.value.body), caught.value.body
        expected = "Bedrock stand-in here: you said 'then break', and your signature checks out."
        assert "".join(texts) == expected, (
            f"events Bedrock sent before its exception frame were dropped: the client saw {seen} and the text "
            f"{''.join(texts)!r} instead of {expected!r}")
        assert seen.count("content_block_stop") == 1 and "message_delta" in seen, seen
    finally:
        s.stop()
