"""The tracer's OpenTelemetry SDK configuration, black-box through the gateway: each case starts a
`switchboard gateway` with its OTEL_* variables, sends REST calls through a `none`-strategy
connection to a recording upstream (test_security_http's: it keeps every header the upstream
got, so the `traceparent` the gateway sent is read back), and reads what reached the OTLP/HTTP
receiver of otlp_receiver.py: its spans, and each export request's path, headers and size.

- samplers (`OTEL_TRACES_SAMPLER`, `OTEL_TRACES_SAMPLER_ARG`): which calls are exported, with
  which parent, and the flags and trace id the upstream's `traceparent` carries either way;
- the resource (`OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`), the export headers
  (`OTEL_EXPORTER_OTLP_HEADERS`, `…_TRACES_HEADERS`), the endpoints (the signal's own as-is, the
  base one with `/v1/traces`), an unsupported `OTEL_EXPORTER_OTLP_PROTOCOL`;
- the batch span processor: `OTEL_BSP_MAX_EXPORT_BATCH_SIZE` exports without the timer, and
  what is queued is exported at SIGTERM before the process exits;
- a collector that is down: calls are served, a warning now and then, not a line per span;
- `LOG_FORMAT=json`: the access log's `proxied` line names the exported span.

OTLP metrics export is off in every case (`OTEL_METRICS_EXPORTER=none`): only spans are looked at.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import time
from pathlib import Path

import pytest
import requests

from conftest import REPO_ROOT, Gateway, _start_gateway
from interop_helpers import AUDIENCE, HOST, free_port, stop_process, switchboard_binary, wait_until
from otlp_receiver import Receiver, Span, start_receiver
from test_security_http import RecordingUpstream
from test_tracing import SERVER, describe, trace_of

BASE = "/base"           # the connection's upstream base path
CONNECTION = "files"
DELAY_MS = "100"         # OTEL_BSP_SCHEDULE_DELAY of the cases that wait for the timer
QUIET = 1.0              # seconds within which a span would have been exported (10x the delay)


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def recorder():
    up = RecordingUpstream()
    yield up
    up.stop()


@pytest.fixture(scope="module")
def token(issuer) -> str:
    return issuer.mint(lifetime=3600)


@pytest.fixture
def receiver():
    r = start_receiver(traces_paths=("/custom/path", "/prefix/v1/traces"))
    yield r
    r.close()


class Gateways:
    """Starts gateways with the given environment (every other OTEL_* and LOG_FORMAT removed),
    stops them after the test. `stderr_log` is the last one's, for conftest's failure report."""

    def __init__(self, tmp_path: Path, issuer, recorder: RecordingUpstream, monkeypatch) -> None:
        self.tmp_path, self.issuer, self.recorder, self.monkeypatch = tmp_path, issuer, recorder, monkeypatch
        self.started: list[Gateway] = []

    @property
    def stderr_log(self) -> Path | None:
        return self.started[-1].stderr_log if self.started else None

    def start(self, **env: str) -> Gateway:
        binary = switchboard_binary(REPO_ROOT)
        if not binary.is_file() or not os.access(binary, os.X_OK):
            pytest.fail(f"switchboard binary not found or not executable at {binary}", pytrace=False)
        workdir = self.tmp_path / f"gateway-{len(self.started)}"
        workdir.mkdir()
        config = workdir / "connections.yaml"
        config.write_text(
            f'version: 1\n'
            f'users: {{issuer: "{self.issuer.url}", audience: {AUDIENCE}}}\n'
            f'connections:\n'
            f'  - {{name: {CONNECTION}, kind: application, upstream: "http://{HOST}:{self.recorder.port}{BASE}", auth: {{strategy: none}}}}\n')
        errors = []
        with self.monkeypatch.context() as m:
            for name in list(os.environ):
                if name.startswith("OTEL_") or name == "LOG_FORMAT":
                    m.delenv(name)
            m.setenv("OTEL_METRICS_EXPORTER", "none")
            for name, value in env.items():
                m.setenv(name, value)
            for attempt in range(3):  # a free port can be taken between the look-up and the bind
                try:
                    gw = _start_gateway(binary, workdir, config, attempt)
                    self.started.append(gw)
                    return gw
                except (RuntimeError, TimeoutError, requests.RequestException, ValueError) as e:
                    errors.append(str(e))
        pytest.fail("the gateway did not start:\n" + "\n".join(errors), pytrace=False)

    def stop_all(self) -> None:
        for gw in self.started:
            stop_process(gw.proc)


@pytest.fixture
def gateway(tmp_path, issuer, recorder, monkeypatch):
    """(Named as conftest's session gateway, whose log tail a failure report shows: here the
    last gateway the test started.)"""
    gateways = Gateways(tmp_path, issuer, recorder, monkeypatch)
    try:
        yield gateways
    finally:
        gateways.stop_all()


# --------------------------------------------------------------------------- helpers


def call(gw: Gateway, token: str, traceparent: str | None = None) -> str:
    """One REST call through the gateway, answered 200 by the upstream; its tag (the path's end)."""
    tag = "c-" + secrets.token_hex(6)
    headers = {"Authorization": f"Bearer {token}"}
    if traceparent is not None:
        headers["traceparent"] = traceparent
    r = requests.get(f"{gw.url}/rest/{CONNECTION}/{tag}", headers=headers, timeout=10)
    assert r.status_code == 200 and r.text == "ok", (r.status_code, r.text[:300])
    return tag


def sent_traceparent(recorder: RecordingUpstream, tag: str) -> tuple[str, str, str]:
    """(trace id, span id, flags) of the one `traceparent` the upstream got for the call `tag`."""
    with recorder.lock:
        seen = [r for r in recorder.requests if r.target == f"{BASE}/{tag}"]
    assert len(seen) == 1, f"the upstream got {len(seen)} requests for {tag}"
    values = seen[0].all("traceparent")
    assert len(values) == 1, f"the upstream got traceparent {values!r} (one expected, always)"
    parts = values[0].split("-")
    assert len(parts) == 4 and parts[0] == "00" and len(parts[1]) == 32 and len(parts[2]) == 16 and len(parts[3]) == 2, values[0]
    assert parts[1] != "0" * 32 and parts[2] != "0" * 16, values[0]
    return parts[1], parts[2], parts[3]


def caller() -> tuple[str, str]:
    return secrets.token_hex(16), secrets.token_hex(8)


def server_spans(receiver: Receiver, trace_id: str | None = None) -> list[Span]:
    return [s for s in receiver.snapshot() if s.kind == SERVER and s.attributes.get("switchboard.connection") == CONNECTION
            and (trace_id is None or s.trace_id == trace_id)]


def json_records(gw: Gateway) -> list[dict]:
    out = []
    for line in gw.stderr_log.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            out.append(json.loads(line))
    return out


def mentions(record: dict, word: str) -> bool:
    return word.lower() in json.dumps(record).lower()


# --------------------------------------------------------------------------- samplers

# sampler, OTEL_TRACES_SAMPLER_ARG (None: unset), and whether the gateway's span is sampled for
# a caller without traceparent, one whose traceparent is flagged 00, and one flagged 01.
SAMPLERS = [
    pytest.param(None, None, (True, False, True), id="default-is-parentbased_always_on"),
    pytest.param("parentbased_always_on", None, (True, False, True), id="parentbased_always_on"),
    pytest.param("always_on", None, (True, True, True), id="always_on"),
    pytest.param("always_off", None, (False, False, False), id="always_off"),
    pytest.param("traceidratio", "0", (False, False, False), id="traceidratio-0"),
    pytest.param("traceidratio", "1", (True, True, True), id="traceidratio-1"),
    pytest.param("traceidratio", None, (True, True, True), id="traceidratio-default-arg-is-1"),
    pytest.param("parentbased_always_off", None, (False, False, True), id="parentbased_always_off"),
    pytest.param("parentbased_traceidratio", "0", (False, False, True), id="parentbased_traceidratio-0"),
]


@pytest.mark.parametrize("sampler,arg,expected", SAMPLERS)
def test_sampler(gateway, receiver, recorder, token, sampler, arg, expected):
    """Each call's span is exported or not as the sampler decides (its parent the caller's span);
    the upstream gets a `traceparent` either way: the caller's trace id, the gateway's own span
    id, flags 01 exactly when the span was sampled."""
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint, "OTEL_BSP_SCHEDULE_DELAY": DELAY_MS}
    if sampler is not None:
        env["OTEL_TRACES_SAMPLER"] = sampler
    if arg is not None:
        env["OTEL_TRACES_SAMPLER_ARG"] = arg
    gw = gateway.start(**env)

    # (what, caller trace id or None, caller span id or None, tag, sampled?). In this order, the
    # last call is sampled whenever one is: once its span is here, one exported before would be too.
    calls = []
    for (what, flags), sampled in zip([("no traceparent", None), ("caller 00", "00"), ("caller 01", "01")], expected):
        if flags is None:
            calls.append((what, None, None, call(gw, token), sampled))
        else:
            trace_id, span_id = caller()
            calls.append((what, trace_id, span_id, call(gw, token, f"00-{trace_id}-{span_id}-{flags}"), sampled))
    assert not any(expected) or expected[-1], "the table's last call must be a sampled one"

    upstream = {}
    for what, trace_id, span_id, tag, sampled in calls:
        sent_trace, sent_span, sent_flags = sent_traceparent(recorder, tag)
        if trace_id is not None:
            assert sent_trace == trace_id, f"{what}: the upstream's traceparent must continue the caller's trace"
            assert sent_span != span_id, f"{what}: the upstream's parent is the gateway's span, not the caller's"
        assert sent_flags == ("01" if sampled else "00"), f"{what}: the upstream got flags {sent_flags}, sampled={sampled}"
        upstream[what] = (sent_trace, sent_span)

    if any(expected):
        for what, trace_id, span_id, tag, sampled in calls:
            if sampled:
                tid = upstream[what][0]
                spans = trace_of(receiver, tid, lambda spans: any(s.kind == SERVER for s in spans), timeout=10)
                mine = [s for s in spans if s.kind == SERVER]
                assert len(mine) == 1, f"{what}: the gateway's span is not exported:\n" + describe(receiver.snapshot())
                assert mine[0].service == "switchboard-gateway" and mine[0].attributes.get("switchboard.connection") == CONNECTION, describe(mine)
                assert mine[0].parent_span_id == (span_id or ""), f"{what}: parent {mine[0].parent_span_id!r}, caller {span_id!r}"
                # The upstream's parent is one of the call's exported spans (the server span's, or its upstream span's).
                assert upstream[what][1] in {s.span_id for s in spans}, f"{what}: " + describe(spans)
        time.sleep(0.3)  # three more schedule delays
    else:
        time.sleep(QUIET)
        assert receiver.snapshot() == [], "nothing is sampled, nothing may be exported:\n" + describe(receiver.snapshot())

    for what, trace_id, span_id, tag, sampled in calls:
        if not sampled:
            leaked = [s for s in receiver.snapshot() if s.trace_id == upstream[what][0]]
            assert not leaked, f"{what}: not sampled, yet exported:\n" + describe(leaked)


def test_traceidratio_decides_by_the_trace_id_alone(gateway, receiver, recorder, token):
    """`traceidratio` 0.5: some traces are sampled, some not, whatever the caller's flag says
    (01 on every call here), and the same trace id always gets the same decision."""
    gw = gateway.start(OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint, OTEL_BSP_SCHEDULE_DELAY=DELAY_MS,
                       OTEL_TRACES_SAMPLER="traceidratio", OTEL_TRACES_SAMPLER_ARG="0.5")
    ids = [caller()[0] for _ in range(24)]
    decisions: dict[str, set[str]] = {t: set() for t in ids}
    for _ in range(2):
        for trace_id in ids:
            tag = call(gw, token, f"00-{trace_id}-{secrets.token_hex(8)}-01")
            sent_trace, _, flags = sent_traceparent(recorder, tag)
            assert sent_trace == trace_id
            decisions[trace_id].add(flags)
    assert all(len(d) == 1 for d in decisions.values()), f"one trace id, two decisions: {decisions}"
    sampled = {t for t, d in decisions.items() if d == {"01"}}
    assert 0 < len(sampled) < len(ids), f"ratio 0.5 sampled {len(sampled)} of {len(ids)} traces"
    wait_until(lambda: {s.trace_id for s in server_spans(receiver)} >= sampled, 10, "the sampled traces' spans")
    time.sleep(0.3)
    exported = server_spans(receiver)
    assert {s.trace_id for s in exported} == sampled, "exported exactly the traces flagged 01 upstream"
    assert all(sum(1 for s in exported if s.trace_id == t) == 2 for t in sampled), describe(exported)


# --------------------------------------------------------------------------- resource


def test_service_name_and_resource_attributes(gateway, receiver, token):
    """`OTEL_SERVICE_NAME` names the service (over a `service.name` in `OTEL_RESOURCE_ATTRIBUTES`);
    the other resource attributes are on the resource, percent-decoded."""
    gw = gateway.start(OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint, OTEL_BSP_SCHEDULE_DELAY=DELAY_MS,
                       OTEL_SERVICE_NAME="sdk-test-gateway",
                       OTEL_RESOURCE_ATTRIBUTES="service.name=from-attributes,deployment.environment=test,team=a%20b")
    trace_id, span_id = caller()
    call(gw, token, f"00-{trace_id}-{span_id}-01")
    spans = trace_of(receiver, trace_id, lambda spans: any(s.kind == SERVER for s in spans), timeout=10)
    assert spans, "no span exported"
    for s in spans:
        assert s.service == "sdk-test-gateway", (s.service, s.resource)
        assert s.resource.get("deployment.environment") == "test", s.resource
        assert s.resource.get("team") == "a b", s.resource


# --------------------------------------------------------------------------- export requests


def test_export_headers_are_sent_and_never_logged(gateway, receiver, token):
    """`OTEL_EXPORTER_OTLP_HEADERS` on every export request, `OTEL_EXPORTER_OTLP_TRACES_HEADERS`
    winning per key; their values never in the gateway's log (LOG_LEVEL trace)."""
    key = "secret1-" + secrets.token_hex(8)
    gw = gateway.start(OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint, OTEL_BSP_SCHEDULE_DELAY=DELAY_MS,
                       OTEL_EXPORTER_OTLP_HEADERS=f"x-api-key={key},x-team=a",
                       OTEL_EXPORTER_OTLP_TRACES_HEADERS="x-team=b")
    trace_id, span_id = caller()
    for _ in range(3):
        call(gw, token, f"00-{trace_id}-{span_id}-01")
    wait_until(lambda: len(server_spans(receiver, trace_id)) == 3, 10, "the three calls' spans")
    exports = [e for e in receiver.requests() if e.path == "/v1/traces"]
    assert exports and all(e.status == 200 for e in exports), exports
    for e in exports:
        assert e.headers.get("x-api-key") == key, e.headers
        assert e.headers.get("x-team") == "b", f"the traces' own header wins: {e.headers}"
    stop_process(gw.proc)  # its whole log, shutdown included
    assert key not in gw.log_text(), "an OTLP header's value reached the gateway's log"


ENDPOINTS = [
    pytest.param({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "{e}/custom/path"}, "/custom/path", id="traces-endpoint-as-is"),
    pytest.param({"OTEL_EXPORTER_OTLP_ENDPOINT": "{e}"}, "/v1/traces", id="base"),
    pytest.param({"OTEL_EXPORTER_OTLP_ENDPOINT": "{e}/"}, "/v1/traces", id="base-trailing-slash"),
    pytest.param({"OTEL_EXPORTER_OTLP_ENDPOINT": "{e}/prefix"}, "/prefix/v1/traces", id="base-with-a-path"),
    pytest.param({"OTEL_EXPORTER_OTLP_ENDPOINT": "{e}/general", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "{e}/custom/path",
                  "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}, "/custom/path", id="traces-endpoint-wins"),
]


@pytest.mark.parametrize("settings,path", ENDPOINTS)
def test_export_endpoint(gateway, receiver, token, settings, path):
    """The signal's own endpoint is used as it is; the base one gets `/v1/traces` appended."""
    gw = gateway.start(OTEL_BSP_SCHEDULE_DELAY=DELAY_MS, **{k: v.format(e=receiver.endpoint) for k, v in settings.items()})
    trace_id, span_id = caller()
    call(gw, token, f"00-{trace_id}-{span_id}-01")
    wait_until(lambda: receiver.requests(), 10, "an export request")
    time.sleep(0.3)
    paths = {e.path for e in receiver.requests()}
    assert paths == {path}, f"exported to {paths}, expected {path}"
    assert server_spans(receiver, trace_id), describe(receiver.snapshot())


def test_an_unsupported_protocol_is_an_error_and_nothing_is_exported(gateway, receiver, recorder, token):
    """`OTEL_EXPORTER_OTLP_PROTOCOL=grpc` (OTLP/HTTP protobuf is the only exporter): the gateway
    starts and serves, says so in an error naming the protocol, and sends no export request."""
    gw = gateway.start(OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint, OTEL_BSP_SCHEDULE_DELAY=DELAY_MS,
                       OTEL_EXPORTER_OTLP_PROTOCOL="grpc", LOG_FORMAT="json")
    for _ in range(3):
        call(gw, token, "00-%s-%s-01" % caller())
    time.sleep(QUIET)
    assert receiver.requests() == [], receiver.requests()
    errors = [r for r in json_records(gw) if r.get("level") in ("error", "critical") and mentions(r, "grpc")]
    assert errors, "no error naming the unsupported protocol:\n" + gw.stderr_log.read_text(errors="replace")[-3000:]
    assert gw.proc.poll() is None


# --------------------------------------------------------------------------- the batch span processor


def test_a_full_batch_is_exported_without_waiting_for_the_timer(gateway, receiver, token):
    """`OTEL_BSP_MAX_EXPORT_BATCH_SIZE=2`, a minute's schedule delay: six calls' spans arrive
    at once, in export requests of at most two spans."""
    gw = gateway.start(OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint, OTEL_BSP_SCHEDULE_DELAY="60000",
                       OTEL_BSP_MAX_EXPORT_BATCH_SIZE="2")
    trace_id, span_id = caller()
    for _ in range(6):
        call(gw, token, f"00-{trace_id}-{span_id}-01")
    # Six server spans and more (a cold call also has its token check's spans) queued: in full
    # batches of two, all but at most the last one, the sixth call's, go without the timer.
    wait_until(lambda: len(server_spans(receiver, trace_id)) >= 5, 10, "the spans of full batches (the timer is a minute)")
    exports = [e for e in receiver.requests() if e.path == "/v1/traces"]
    assert all(e.items is not None and 1 <= e.items <= 2 for e in exports), [e.items for e in exports]
    assert len(exports) >= 3, [e.items for e in exports]


def test_queued_spans_are_exported_at_sigterm(gateway, receiver, token):
    """A minute's schedule delay: nothing is exported while the gateway runs; SIGTERM, and the
    calls' spans reach the receiver before the process is gone."""
    gw = gateway.start(OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint, OTEL_BSP_SCHEDULE_DELAY="60000")
    trace_id, span_id = caller()
    for _ in range(3):
        call(gw, token, f"00-{trace_id}-{span_id}-01")
    time.sleep(0.5)
    assert receiver.requests() == [], "exported before the schedule delay (60 s) or a full batch (512)"
    gw.proc.send_signal(signal.SIGTERM)  # our own process, by its pid
    try:
        code = gw.proc.wait(timeout=20)
    except Exception:
        stop_process(gw.proc)
        raise
    # The receiver stores a request before it answers it; a moment for its thread to finish.
    deadline = time.monotonic() + 1
    while len(server_spans(receiver, trace_id)) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    got = server_spans(receiver, trace_id)
    assert len(got) == 3, f"{len(got)} of the 3 calls' spans exported at shutdown (exit code {code}):\n" + describe(receiver.snapshot())


# --------------------------------------------------------------------------- a collector that is down


def test_a_collector_that_is_down_neither_stops_calls_nor_floods_the_log(gateway, token):
    """Exports to a closed port: every call is served, the gateway stays up, the failures are
    said in a warning now and then — not a line per span — and never with a token."""
    port = free_port()  # nothing listens there
    gw = gateway.start(OTEL_EXPORTER_OTLP_ENDPOINT=f"http://{HOST}:{port}", OTEL_BSP_SCHEDULE_DELAY=DELAY_MS, LOG_FORMAT="json")
    started = time.monotonic()
    for i in range(30):
        call(gw, token, "00-%s-%s-01" % caller())
        time.sleep(0.07)
    assert time.monotonic() - started < 15, "calls slowed down by the failing exports"

    def warnings() -> list[dict]:
        return [r for r in json_records(gw) if r.get("level") in ("warning", "error", "critical") and mentions(r, "export")]

    wait_until(warnings, 10, "a warning about the failed exports")
    time.sleep(1.0)  # ten more schedule delays of failing exports
    said = warnings()
    assert 1 <= len(said) <= 5, f"{len(said)} warnings for ~30 failed spans:\n" + "\n".join(json.dumps(r) for r in said[:10])
    assert gw.proc.poll() is None, "the gateway exited"
    assert requests.get(gw.url + "/healthz", timeout=5).status_code == 200
    text = gw.log_text()
    assert token not in text and token.rsplit(".", 1)[-1] not in text, "a token reached the log"


# --------------------------------------------------------------------------- logs


def test_json_access_log_names_the_exported_span(gateway, receiver, recorder, token):
    """`LOG_FORMAT=json`: the `proxied` line of a call has `trace_id` and `span_id`, those of the
    gateway's exported server span (for a traced caller and for one that starts the trace)."""
    gw = gateway.start(OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint, OTEL_BSP_SCHEDULE_DELAY=DELAY_MS, LOG_FORMAT="json")
    trace_id, span_id = caller()
    call(gw, token, f"00-{trace_id}-{span_id}-01")
    untraced = sent_traceparent(recorder, call(gw, token))[0]
    for tid, parent in ((trace_id, span_id), (untraced, "")):
        wait_until(lambda: server_spans(receiver, tid), 10, f"the server span of trace {tid}")
        span = server_spans(receiver, tid)
        assert len(span) == 1 and span[0].parent_span_id == parent, describe(span)
        lines = wait_until(lambda: [r for r in json_records(gw) if r.get("message") == "proxied" and r.get("trace_id") == tid],
                           5, f"the proxied line of trace {tid}")
        assert len(lines) == 1 and lines[0].get("span_id") == span[0].span_id, (lines, span[0].span_id)
        assert lines[0].get("connection") == CONNECTION and lines[0].get("status") == "200", lines[0]
