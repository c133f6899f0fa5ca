"""OpenTelemetry traces across the system, received by an OTLP/HTTP receiver written with the
`opentelemetry-proto` package (otlp_receiver.py): every service exports to it because
OTEL_EXPORTER_OTLP_ENDPOINT is set, as an operator would set it for a collector.

One MCP `tools/call` through the gateway for a user with a cold credential cache and a scope
step-up (bob's `create-todo`: the default token lacks mcp:tools:manage) must be one trace: the
caller's traceparent → the gateway's server span (MCP and HTTP attributes) → its children
(authenticate, credential with the plugin's client spans → the IdP's server spans, upstream
requests → todo0's server spans), with the step-up and the replay on it, and no token in any
attribute.
"""

from __future__ import annotations

import os
import re
import secrets
import time

import pytest

from mcp_client import run, sdk_session, text_of
from otlp_receiver import Receiver, Span, start_receiver
from system_fixtures import System, login, system  # noqa: F401  (system is a fixture, requested below)

SERVER, CLIENT = 2, 3  # OTLP SpanKind
JWT = re.compile(r"eyJ[\w-]{8,}\.eyJ[\w-]{8,}\.[\w-]+")


@pytest.fixture(scope="module")
def traced(request):
    receiver = start_receiver()
    settings = {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint, "OTEL_TRACES_SAMPLER": "parentbased_always_on",
                "OTEL_BSP_SCHEDULE_DELAY": "100", "OTEL_METRIC_EXPORT_INTERVAL": "500"}
    saved = {k: os.environ.get(k) for k in settings}
    os.environ.update(settings)
    try:
        yield request.getfixturevalue("system"), receiver
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def trace_of(receiver: Receiver, trace_id: str, until, timeout: float = 20) -> list[Span]:
    """The spans of `trace_id` once `until(spans)` holds (exports come in batches)."""
    deadline = time.monotonic() + timeout
    while True:
        spans = [s for s in receiver.snapshot() if s.trace_id == trace_id]
        if until(spans) or time.monotonic() > deadline:
            return spans
        time.sleep(0.1)


def describe(spans: list[Span]) -> str:
    return "\n".join(f"{s.service} {s.name!r} kind={s.kind} id={s.span_id} parent={s.parent_span_id} {s.attributes}" for s in spans)


def test_one_tool_call_is_one_trace_across_gateway_idp_and_todo0(traced):
    system, receiver = traced
    bob, _ = login(system.idp, "bob")  # his first call: nothing cached for him
    token = bob["id_token"]
    system.secrets.append(token)
    trace_id, caller_span = secrets.token_hex(16), secrets.token_hex(8)
    results = []

    async def body(session) -> None:
        results.append(await session.call_tool("create-todo", {"title": "traced"}))

    run(sdk_session, system.mcp_url("todo0"), token, body, None, {"traceparent": f"00-{trace_id}-{caller_span}-01"})
    assert not results[0].is_error, text_of(results[0])

    def gateway_call(spans: list[Span]) -> Span | None:
        return next((s for s in spans if s.service == "switchboard-gateway" and s.attributes.get("gen_ai.tool.name") == "create-todo"), None)

    def complete(spans: list[Span]) -> bool:
        call = gateway_call(spans)
        return call is not None and sum(1 for s in spans if s.service == "switchboard-todo0" and s.kind == SERVER) >= 3 \
            and any(s.name == "INSERT todo" for s in spans) \
            and any(s.service == "switchboard-idp" for s in spans)

    spans = trace_of(receiver, trace_id, complete)
    assert complete(spans), "the trace is not complete:\n" + describe(spans) + "\n" + system.tails(3000)
    by_id = {s.span_id: s for s in spans}

    def ancestors(s: Span) -> list[Span]:
        out = []
        while s.parent_span_id in by_id:
            s = by_id[s.parent_span_id]
            out.append(s)
        return out

    # The gateway's server span for the tools/call: a child of the caller's span, MCP attributes.
    call = gateway_call(spans)
    assert call.kind == SERVER and call.parent_span_id == caller_span, describe([call])
    a = call.attributes
    assert a["mcp.method.name"] == "tools/call" and a["switchboard.connection"] == "todo0" and a["switchboard.strategy"] == "idjag", a
    assert a["http.request.method"] == "POST" and a["http.route"] == "/mcp/{name}" and a["http.response.status_code"] == 200, a
    assert "jsonrpc.request.id" in a and a.get("mcp.session.id"), a
    assert call.name == "tools/call create-todo", call.name
    assert a.get("switchboard.step_ups") == 1 and any(name == "step-up" for name, _ in call.events), (a, call.events)

    # Its children where there was work: the first attempt went from the event-loop driver
    # (the server span's own context to todo0), todo0's 403 handed the call to the async driver,
    # which fetched the wider credential (a cache miss, the plugin's exchanges under it) and
    # replayed the call in an `upstream` client span.
    children = [s for s in spans if s.parent_span_id == call.span_id]
    assert any(s.name == "authenticate" for s in spans), "bob's first request verified his token: " + describe(spans)
    credentials = [s for s in children if s.name == "credential"]
    upstreams = [s for s in children if s.name == "upstream"]
    assert upstreams and all(s.kind == CLIENT for s in upstreams), describe(children)
    replays = [s for s in upstreams if s.attributes.get("switchboard.replay") == "step_up"]
    assert len(replays) == 1 and replays[0].attributes.get("http.response.status_code") == 200, describe(upstreams)
    stepped = [s for s in credentials if s.attributes.get("switchboard.credential.reason") == "stepUp"]
    assert len(stepped) == 1 and stepped[0].attributes.get("switchboard.cache") == "miss", describe(credentials)
    stepped = stepped[0]

    # The plugin's token exchanges: the HTTP client's spans under the credential span, continued by the IdP.
    exchanges = [s for s in spans if s.kind == CLIENT and stepped in ancestors(s)]
    assert exchanges, "no client span under the step-up's credential span:\n" + describe(spans)
    idp_servers = [s for s in spans if s.service == "switchboard-idp" and s.kind == SERVER and stepped in ancestors(s)]
    assert len(idp_servers) >= 1 and all(s.parent_span_id in {e.span_id for e in exchanges} for s in idp_servers), describe(spans)

    # todo0 continues the trace of both attempts (the 403 and the replay).
    todo0 = [s for s in spans if s.service == "switchboard-todo0" and s.kind == SERVER
             and s.parent_span_id in {call.span_id} | {u.span_id for u in upstreams}]
    assert sorted(s.attributes.get("http.response.status_code") for s in todo0) == [200, 403], describe(spans)
    # …down to the database write.
    inserts = [s for s in spans if s.service == "switchboard-todo0" and s.name == "INSERT todo"]
    assert len(inserts) == 1 and inserts[0].parent_span_id in {s.span_id for s in todo0} \
        and inserts[0].attributes.get("db.system.name") == "sqlite", describe(spans)
    # …and the MCP conventions' carrier: the same context in params._meta of what todo0 received.
    sent = system.todo0_relay.sent_text()
    for parent in [call] + upstreams:
        assert f'"_meta":{{"traceparent":"00-{trace_id}-{parent.span_id}-01"}}' in sent, "no trace context in params._meta"

    # Every span of the session is in this one trace (initialize, notifications, the call).
    gateway = [s for s in spans if s.service == "switchboard-gateway" and s.kind == SERVER]
    assert len(gateway) >= 3 and all(s.parent_span_id == caller_span for s in gateway), describe(gateway)

    # The gateway's access log line for the call carries the trace (LOG_FORMAT=json makes them fields).
    lines = [line for line in system.gateway.log_text().splitlines() if line.endswith("proxied") and f"span_id={call.span_id}" in line]
    assert len(lines) == 1 and f"trace_id={trace_id}" in lines[0], "no trace_id and span_id on the call's log line"

    # No token, key or secret in any attribute or event.
    for s in spans:
        for value in list(s.attributes.values()) + [v for _, attrs in s.events for v in attrs.values()]:
            text = str(value)
            assert not JWT.search(text), (s.name, text)
            for secret in system.secrets:
                assert secret not in text, (s.name, "a secret")


def test_an_untraced_caller_starts_a_trace_at_the_gateway(traced):
    system, receiver = traced
    results = []

    async def body(session) -> None:
        results.append(await session.call_tool("get-todos", {}))

    before = {s.span_id for s in receiver.snapshot()}
    run(sdk_session, system.mcp_url("todo0"), system.alice_id_token, body)
    assert not results[0].is_error, text_of(results[0])

    def found(spans):
        return [s for s in spans if s.span_id not in before and s.service == "switchboard-gateway" and s.attributes.get("gen_ai.tool.name") == "get-todos"]

    deadline = time.monotonic() + 20
    while not found(receiver.snapshot()) and time.monotonic() < deadline:
        time.sleep(0.1)
    call = found(receiver.snapshot())
    assert call, "no gateway span for get-todos"
    assert call[0].parent_span_id == "", "a call without traceparent starts its own trace"
    todo0 = trace_of(receiver, call[0].trace_id, lambda spans: any(s.service == "switchboard-todo0" for s in spans))
    assert any(s.service == "switchboard-todo0" for s in todo0), describe(todo0)


def test_a_call_through_the_gateways_own_endpoint_is_one_trace(traced):
    """`/mcp` (the aggregated endpoint): its server span, under it the call it sends todo0
    (a client span with the tool's name, as the gateway sends it), todo0's span under that."""
    system, receiver = traced
    trace_id, caller_span = secrets.token_hex(16), secrets.token_hex(8)
    results = []

    async def body(session) -> None:
        results.append(await session.call_tool("todo0__get-todos", {}))

    run(sdk_session, system.gateway.url + "/mcp", system.alice_id_token, body, None, {"traceparent": f"00-{trace_id}-{caller_span}-01"})
    assert not results[0].is_error, text_of(results[0])

    def sent(spans):
        return [s for s in spans if s.service == "switchboard-gateway" and s.kind == CLIENT and s.attributes.get("gen_ai.tool.name") == "get-todos"]

    spans = trace_of(receiver, trace_id, lambda spans: bool(sent(spans)) and any(s.service == "switchboard-todo0" and s.kind == SERVER for s in spans))
    calls = sent(spans)
    assert len(calls) == 1, describe(spans)
    endpoint = {s.span_id: s for s in spans}.get(calls[0].parent_span_id)
    assert endpoint is not None and endpoint.kind == SERVER and endpoint.attributes.get("http.route") == "/mcp" \
        and endpoint.parent_span_id == caller_span, describe(spans)
    upstream = [s for s in spans if s.name == "upstream" and s.parent_span_id == calls[0].span_id]
    assert len(upstream) == 1 and any(s.service == "switchboard-todo0" and s.parent_span_id == upstream[0].span_id for s in spans), describe(spans)


def test_the_gateways_metrics_also_go_over_otlp(traced):
    """With an OTLP endpoint set, the series of /metrics are exported as OTLP metrics too: the
    request count per connection, method and status, and the duration histogram."""
    system, receiver = traced
    run(sdk_session, system.mcp_url("todo0"), system.alice_id_token, lambda session: session.list_tools())

    def requests_total():
        return [p for p in receiver.metric_points() if p.service == "switchboard-gateway" and p.metric == "switchboard_requests_total"
                and p.attributes.get("connection") == "todo0" and p.attributes.get("method") == "POST"]

    deadline = time.monotonic() + 20
    while not requests_total() and time.monotonic() < deadline:
        time.sleep(0.2)
    points = requests_total()
    assert points and points[-1].kind == "sum" and points[-1].value >= 1, points[-3:]
    assert any(p.metric == "switchboard_request_duration_seconds" and p.kind == "histogram" for p in receiver.metric_points())

    # A connection's counters too (made for OTLP on their first increment, not at start).
    def lookups():
        return [p for p in receiver.metric_points() if p.service == "switchboard-gateway"
                and p.metric == "switchboard_credential_cache_lookups_total" and p.attributes.get("connection") == "todo0"]

    while not lookups() and time.monotonic() < deadline + 10:
        time.sleep(0.2)
    assert lookups() and lookups()[-1].kind == "sum" and lookups()[-1].value >= 1, lookups()[-3:]
    for p in receiver.metric_points():
        assert set(p.attributes) <= {"connection", "method", "status", "strategy", "outcome", "result"}, (p.metric, p.attributes)
