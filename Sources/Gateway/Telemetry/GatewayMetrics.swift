import CoreMetrics
import Foundation
import Synchronization

/// The gateway's metrics, through swift-metrics (a `MetricsFactory` given at start: Prometheus
/// for `/metrics`, see ``PrometheusExposition``). Each series is created once and kept, so a
/// call pays an atomic add and a histogram bucket, never a lookup by name.
///
/// Names and labels follow Prometheus' conventions (`_total` counters, `_seconds` histograms);
/// no label carries a user, a token or anything a caller chooses freely — the HTTP method is
/// folded to a known verb and the status to its number, so the series stay few.
final class GatewayMetrics: Sendable {
    let factory: any MetricsFactory
    private let reloadsApplied: Counter
    private let reloadsRejected: Counter
    /// Callers' connections open now, and those closed at accept (`max_inbound_connections`).
    let inboundOpen: Gauge
    let inboundRefused: Counter

    init(factory: any MetricsFactory) {
        self.factory = factory
        reloadsApplied = Counter(label: "switchboard_registry_reloads_total", dimensions: [("outcome", "applied")], factory: factory)
        reloadsRejected = Counter(label: "switchboard_registry_reloads_total", dimensions: [("outcome", "rejected")], factory: factory)
        inboundOpen = Gauge(label: "switchboard_inbound_connections", dimensions: [], factory: factory)
        inboundRefused = Counter(label: "switchboard_inbound_connections_refused_total", dimensions: [], factory: factory)
    }

    /// One connection's series (kept across reloads with its ``ConnectionActivity``).
    func connection(_ name: String) -> ConnectionMetrics { ConnectionMetrics(name: name, factory: factory) }

    func reloaded(applied: Bool) { (applied ? reloadsApplied : reloadsRejected).increment() }
}

/// One connection's series. Per-call series (method × status) are made on first use and kept.
final class ConnectionMetrics: Sendable {
    let name: String
    private let factory: any MetricsFactory
    let failures: Counter
    let upstreamErrors: Counter
    let stepUps: Counter
    let consentPrompts: Counter
    let policyDenials: Counter
    let rateLimited: Counter
    let cacheHits: Counter
    let cacheMisses: Counter

    /// A count and a duration histogram with the same labels.
    private struct Timed: Sendable {
        let count: Counter
        let duration: CoreMetrics.Timer

        init(count: String, duration: String, _ dimensions: [(String, String)], factory: any MetricsFactory) {
            self.count = Counter(label: count, dimensions: dimensions, factory: factory)
            self.duration = CoreMetrics.Timer(label: duration, dimensions: dimensions, factory: factory)
        }

        func record(_ d: Duration) {
            count.increment()
            duration.recordNanoseconds(d.components.seconds &* 1_000_000_000 &+ d.components.attoseconds / 1_000_000_000)
        }
    }

    private let calls = Mutex<[Int: Timed]>([:])
    private let exchanges = Mutex<[String: Timed]>([:])

    /// The series under `key`, made on first use.
    private static func series<Key: Hashable & Sendable>(_ table: borrowing Mutex<[Key: Timed]>, _ key: sending Key, make: @Sendable () -> Timed) -> Timed {
        table.withLock { t in
            if let found = t[key] { return found }
            let made = make()
            t[key] = made
            return made
        }
    }

    init(name: String, factory: any MetricsFactory) {
        self.name = name
        self.factory = factory
        func counter(_ label: String, _ more: [(String, String)] = []) -> Counter {
            Counter(label: label, dimensions: [("connection", name)] + more, factory: factory)
        }
        failures = counter("switchboard_failures_total")
        upstreamErrors = counter("switchboard_upstream_errors_total")
        stepUps = counter("switchboard_step_ups_total")
        consentPrompts = counter("switchboard_consent_prompts_total")
        policyDenials = counter("switchboard_policy_denials_total")
        rateLimited = counter("switchboard_rate_limited_total")
        cacheHits = counter("switchboard_credential_cache_lookups_total", [("result", "hit")])
        cacheMisses = counter("switchboard_credential_cache_lookups_total", [("result", "miss")])
    }

    /// The HTTP methods a label may name; anything else is `other` (a caller chooses the method).
    static let methods = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]

    /// A proxied call ended with `status` after `duration` (both drivers, via ``CallRecorder``).
    func call(method: String, status: Int, duration: Duration) {
        let verb = Self.methods.firstIndex(of: method) ?? Self.methods.count
        let status = (100...599).contains(status) ? status : 0
        Self.series(calls, verb * 1000 + status) {
            let method = verb < Self.methods.count ? Self.methods[verb] : "other"
            return Timed(count: "switchboard_requests_total", duration: "switchboard_request_duration_seconds",
                         [("connection", name), ("method", method), ("status", String(status))], factory: factory)
        }.record(duration)
    }

    /// The plugin was asked for a credential (a cache miss, or an uncached plugin): its
    /// strategy, how it ended (`issued`, `interaction_required`, `failed`) and how long it took.
    func exchange(strategy: String, outcome: String, duration: Duration) {
        Self.series(exchanges, strategy + "\u{1F}" + outcome) {
            Timed(count: "switchboard_token_exchanges_total", duration: "switchboard_token_exchange_duration_seconds",
                  [("connection", name), ("strategy", strategy), ("outcome", outcome)], factory: factory)
        }.record(duration)
    }
}
