"""A small OTLP/HTTP receiver (what a collector's `otlp` receiver does for `POST /v1/traces`
and `POST /v1/metrics`), built on the `opentelemetry-proto` messages: the services under test
export to it as they would to a real collector, and tests read the spans and points back.
Every POST is also kept as an ``Export`` (its path, headers and item count), and
``start_receiver(traces_paths=...)`` accepts spans on further paths (a signal's own endpoint).
"""

from __future__ import annotations

import gzip
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest, ExportMetricsServiceResponse
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest, ExportTraceServiceResponse
from opentelemetry.proto.common.v1.common_pb2 import AnyValue


def _value(v: AnyValue):
    kind = v.WhichOneof("value")
    if kind == "array_value":
        return [_value(x) for x in v.array_value.values]
    if kind == "kvlist_value":
        return _attributes(v.kvlist_value.values)
    return getattr(v, kind) if kind else None


@dataclass
class Span:
    service: str
    name: str
    kind: int
    trace_id: str
    span_id: str
    parent_span_id: str
    attributes: dict
    events: list[tuple[str, dict]]
    status_code: int
    start_ns: int
    end_ns: int
    resource: dict = field(default_factory=dict)  # the attributes of the span's resource


@dataclass
class Export:
    """One POST the receiver got: its path, its headers (names lowercased), how many spans or
    points it carried (None when refused: unknown path or content type) and the status sent."""
    path: str
    headers: dict
    items: int | None
    status: int


@dataclass
class Point:
    """One data point of a metric: a sum's or gauge's value, a histogram's count."""
    service: str
    metric: str
    kind: str
    attributes: dict
    value: float


@dataclass
class Receiver:
    server: ThreadingHTTPServer
    spans: list[Span] = field(default_factory=list)
    points: list[Point] = field(default_factory=list)
    exports: list[Export] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def snapshot(self) -> list[Span]:
        with self.lock:
            return list(self.spans)

    def metric_points(self) -> list[Point]:
        with self.lock:
            return list(self.points)

    def requests(self) -> list[Export]:
        """Every POST so far, oldest first."""
        with self.lock:
            return list(self.exports)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _attributes(kvs) -> dict:
    """OTLP KeyValues (a resource's, a span's, an event's, a data point's) as a dict."""
    return {kv.key: _value(kv.value) for kv in kvs}


def _spans(body: bytes) -> list[Span]:
    request = ExportTraceServiceRequest()
    request.ParseFromString(body)
    got = []
    for rs in request.resource_spans:
        resource = _attributes(rs.resource.attributes)
        for ss in rs.scope_spans:
            for s in ss.spans:
                got.append(Span(
                    service=str(resource.get("service.name", "")), name=s.name, kind=s.kind, trace_id=s.trace_id.hex(),
                    span_id=s.span_id.hex(), parent_span_id=s.parent_span_id.hex(),
                    attributes=_attributes(s.attributes),
                    events=[(e.name, _attributes(e.attributes)) for e in s.events],
                    status_code=s.status.code, start_ns=s.start_time_unix_nano, end_ns=s.end_time_unix_nano,
                    resource=resource))
    return got


def _points(body: bytes) -> list[Point]:
    request = ExportMetricsServiceRequest()
    request.ParseFromString(body)
    got = []
    for rm in request.resource_metrics:
        resource = _attributes(rm.resource.attributes)
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                kind = m.WhichOneof("data")
                for dp in getattr(m, kind).data_points:
                    if kind in ("histogram", "exponential_histogram"):
                        value = float(dp.count)
                    else:
                        value = float(dp.as_int if dp.WhichOneof("value") == "as_int" else dp.as_double)
                    got.append(Point(service=str(resource.get("service.name", "")), metric=m.name, kind=kind,
                                     attributes=_attributes(dp.attributes), value=value))
    return got


# Per OTLP/HTTP path: how its request is read, where its items go, its (empty) response.
_SIGNALS = {
    "/v1/traces": (_spans, "spans", ExportTraceServiceResponse),
    "/v1/metrics": (_points, "points", ExportMetricsServiceResponse),
}


def start_receiver(traces_paths: tuple[str, ...] = ()) -> Receiver:
    """A receiver on 127.0.0.1 (a free port): `/v1/traces`, `/v1/metrics`, and spans on each of
    `traces_paths` too."""
    receiver: Receiver
    signals = dict(_SIGNALS) | {path: _SIGNALS["/v1/traces"] for path in traces_paths}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            if self.headers.get("Content-Encoding", "").lower() == "gzip":
                body = gzip.decompress(body)
            signal = signals.get(self.path)
            headers = {k.lower(): v for k, v in self.headers.items()}
            if signal is None or not self.headers.get("Content-Type", "").startswith("application/x-protobuf"):
                status = 404 if signal is None else 415
                with receiver.lock:
                    receiver.exports.append(Export(self.path, headers, None, status))
                self.send_response(status)
                self.end_headers()
                return
            decode, into, response = signal
            got = decode(body)
            with receiver.lock:
                getattr(receiver, into).extend(got)
                receiver.exports.append(Export(self.path, headers, len(got), 200))
            answer = response().SerializeToString()
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver = Receiver(server=server)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return receiver
