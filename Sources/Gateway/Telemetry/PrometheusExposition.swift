import CoreMetrics
import Foundation
import Prometheus
import Synchronization
import Upstream

/// `/metrics`: swift-prometheus' registry, fed by ``GatewayMetrics`` through swift-metrics, and a
/// few gauges read when scraped (what is, rather than what happened: the registry generation,
/// which connections are LIVE, the upstream connection pool).
final class PrometheusExposition: Sendable {
    let registry = PrometheusCollectorRegistry()
    let metrics: GatewayMetrics
    private let generation: Prometheus.Gauge
    private let poolOpen: Prometheus.Gauge
    private let poolIdle: Prometheus.Gauge
    private let poolWaiting: Prometheus.Gauge
    private let pool: HTTP1ConnectionPool?
    /// `switchboard_connection_live` per connection now in the registry (a removed one's series goes).
    private let live = Mutex<[String: Prometheus.Gauge]>([:])

    /// `alsoTo`: a second backend the same series go to (OTLP), besides this registry.
    init(pool: HTTP1ConnectionPool?, alsoTo other: (any MetricsFactory)? = nil) {
        let prometheus = PrometheusMetricsFactory(registry: registry)
        metrics = GatewayMetrics(factory: other.map { MultiplexMetricsHandler(factories: [prometheus, $0]) } ?? prometheus)
        self.pool = pool
        generation = Self.gauge(in: registry, "switchboard_registry_generation", labels: [], help: "The registry generation serving now.")
        let help = "Connections of the event-loop driver's upstream pool, by state."
        poolOpen = Self.gauge(in: registry, "switchboard_upstream_connections", labels: [("state", "open")], help: help)
        poolIdle = Self.gauge(in: registry, "switchboard_upstream_connections", labels: [("state", "idle")], help: help)
        poolWaiting = Self.gauge(in: registry, "switchboard_upstream_pool_waiters", labels: [], help: "Calls waiting for an upstream connection.")
    }

    /// The exposition (text format 0.0.4), with the gauges read now. `connections`: each
    /// connection's name and whether it is LIVE.
    func render(generation value: Int, connections: [(name: String, live: Bool)]) -> [UInt8] {
        generation.set(Int64(value))
        if let usage = pool?.usage() {
            poolOpen.set(Int64(usage.open))
            poolIdle.set(Int64(usage.idle))
            poolWaiting.set(Int64(usage.waiting))
        }
        live.withLock { gauges in
            let names = Set(connections.map(\.name))
            for (name, gauge) in gauges where !names.contains(name) {
                registry.unregisterGauge(gauge)
                gauges[name] = nil
            }
            for c in connections {
                let gauge = gauges[c.name] ?? Self.gauge(in: registry, "switchboard_connection_live", labels: [("connection", c.name)], help: "1 when the connection is LIVE.")
                gauges[c.name] = gauge
                gauge.set(Int64(c.live ? 1 : 0))
            }
        }
        return registry.emitToBuffer()
    }

    /// A gauge by its whole name (the descriptor's parts are not how these names were chosen).
    private static func gauge(in registry: PrometheusCollectorRegistry, _ name: String, labels: [(String, String)], help: String) -> Prometheus.Gauge {
        registry.makeGauge(descriptor: MetricNameDescriptor(metricName: name, unitName: "", helpText: help), labels: labels)
    }
}
