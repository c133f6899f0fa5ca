import CoreMetrics
import Foundation
import Prometheus
import Upstream

/// `/metrics`: swift-prometheus' registry, fed by ``GatewayMetrics`` through swift-metrics; each
/// connection's counters (kept by ``ConnectionMetrics``, written here); and a few gauges read
/// when scraped (what is, rather than what happened: the registry generation, which
/// connections are LIVE, the upstream connection pool).
final class PrometheusExposition: Sendable {
    let registry = PrometheusCollectorRegistry()
    let metrics: GatewayMetrics
    private let generation: Prometheus.Gauge
    private let poolOpen: Prometheus.Gauge
    private let poolIdle: Prometheus.Gauge
    private let poolWaiting: Prometheus.Gauge
    private let pool: HTTP1ConnectionPool?

    /// `alsoTo`: a second backend the same series go to (OTLP), besides this registry.
    init(pool: HTTP1ConnectionPool?, alsoTo other: (any MetricsFactory)? = nil) {
        let prometheus = PrometheusMetricsFactory(registry: registry)
        metrics = GatewayMetrics(factory: other.map { MultiplexMetricsHandler(factories: [prometheus, $0]) } ?? prometheus, alsoTo: other)
        self.pool = pool
        generation = Self.gauge(in: registry, "switchboard_registry_generation", labels: [], help: "The registry generation serving now.")
        let help = "Connections of the event-loop driver's upstream pool, by state."
        poolOpen = Self.gauge(in: registry, "switchboard_upstream_connections", labels: [("state", "open")], help: help)
        poolIdle = Self.gauge(in: registry, "switchboard_upstream_connections", labels: [("state", "idle")], help: help)
        poolWaiting = Self.gauge(in: registry, "switchboard_upstream_pool_waiters", labels: [], help: "Calls waiting for an upstream connection.")
    }

    /// The exposition (text format 0.0.4), with the gauges read now. `connections`: the
    /// registry's connections (a removed one's series go), whether each is LIVE, its counters.
    func render(generation value: Int, connections: [(name: String, live: Bool, metrics: ConnectionMetrics?)]) -> [UInt8] {
        generation.set(Int64(value))
        if let usage = pool?.usage() {
            poolOpen.set(Int64(usage.open))
            poolIdle.set(Int64(usage.idle))
            poolWaiting.set(Int64(usage.waiting))
        }
        var text = registry.emitToBuffer()
        // Label values as they are: connection names are a-z, 0-9, '-' and '_' (ConnectionName),
        // nothing the text format escapes.
        var family = ""
        func line(_ name: String, help: String, type: String, connection: String, _ label: (String, String)?, _ value: Int) {
            if family != name {
                family = name
                text.append(contentsOf: "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n".utf8)
            }
            let more = label.map { ",\($0.0)=\"\($0.1)\"" } ?? ""
            text.append(contentsOf: "\(name){connection=\"\(connection)\"\(more)} \(value)\n".utf8)
        }
        for c in connections {
            line("switchboard_connection_live", help: "1 when the connection is LIVE.", type: "gauge", connection: c.name, nil, c.live ? 1 : 0)
        }
        // A family's lines come together, as the format asks (Kind lists hit, then miss).
        for kind in ConnectionCounter.Kind.allCases {
            for c in connections {
                guard let m = c.metrics else { continue }
                line(kind.family, help: kind.help, type: "counter", connection: c.name, kind.label, m[kind].value)
            }
        }
        return text
    }

    /// A gauge by its whole name (the descriptor's parts are not how these names were chosen).
    private static func gauge(in registry: PrometheusCollectorRegistry, _ name: String, labels: [(String, String)], help: String) -> Prometheus.Gauge {
        registry.makeGauge(descriptor: MetricNameDescriptor(metricName: name, unitName: "", helpText: help), labels: labels)
    }
}
