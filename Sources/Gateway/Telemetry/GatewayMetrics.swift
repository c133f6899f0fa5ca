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

    /// Where per-connection counters go besides `/metrics` (OTLP), if anywhere.
    private let other: (any MetricsFactory)?

    /// `factory`: every series' backend (Prometheus, multiplexed with OTLP when configured);
    /// `alsoTo`: the OTLP backend alone (see ``ConnectionMetrics``).
    init(factory: any MetricsFactory, alsoTo other: (any MetricsFactory)? = nil) {
        self.factory = factory
        self.other = other
        reloadsApplied = Counter(label: "switchboard_registry_reloads_total", dimensions: [("outcome", "applied")], factory: factory)
        reloadsRejected = Counter(label: "switchboard_registry_reloads_total", dimensions: [("outcome", "rejected")], factory: factory)
        inboundOpen = Gauge(label: "switchboard_inbound_connections", dimensions: [], factory: factory)
        inboundRefused = Counter(label: "switchboard_inbound_connections_refused_total", dimensions: [], factory: factory)
    }

    /// One connection's series (kept across reloads with its ``ConnectionActivity``).
    func connection(_ name: String) -> ConnectionMetrics { ConnectionMetrics(name: name, factory: factory, alsoTo: other) }

    func reloaded(applied: Bool) { (applied ? reloadsApplied : reloadsRejected).increment() }
}

/// One connection's series. Per-call series (method × status) are made on first use and kept.
///
/// The counters every connection has from the start are kept here, not in swift-prometheus'
/// registry, and ``PrometheusExposition`` writes them out: that registry copies a metric's whole
/// table of label sets for each new one, so eight series per connection made at start cost
/// O(n²) — 34 s to start 10,000 connections. Here making them costs nothing and a call pays
/// one relaxed atomic add, as before.
final class ConnectionMetrics: Sendable {
    let name: String
    private let factory: any MetricsFactory
    /// The counters, in ``ConnectionCounter/Kind``'s order.
    private let counters: [ConnectionCounter]
    subscript(_ kind: ConnectionCounter.Kind) -> ConnectionCounter { counters[kind.rawValue] }

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

    /// `factory`: where per-call series go (Prometheus, and OTLP when configured); `alsoTo`: the
    /// OTLP backend alone, which gets the counters too, each from its first increment
    /// (Prometheus gets them from here, zero included).
    init(name: String, factory: any MetricsFactory, alsoTo other: (any MetricsFactory)? = nil) {
        self.name = name
        self.factory = factory
        counters = ConnectionCounter.Kind.allCases.map { kind in
            guard let other else { return ConnectionCounter() }
            let dimensions = [("connection", name)] + (kind.label.map { [$0] } ?? [])
            return ConnectionCounter { Counter(label: kind.family, dimensions: dimensions, factory: other) }
        }
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

/// One of a connection's counters: an atomic that `/metrics` reads, and the same count sent to
/// a second backend (OTLP) when one is configured — that series made on the first increment:
/// made at start, 80,000 of them for 10,000 connections held the start back 22 s.
final class ConnectionCounter: Sendable {
    /// Each counter a connection has: its family's name and help in the exposition, and a
    /// further label (the cache lookups' result).
    enum Kind: Int, CaseIterable {
        case failures, upstreamErrors, stepUps, consentPrompts, policyDenials, rateLimited, cacheHits, cacheMisses

        var family: String {
            switch self {
            case .failures: "switchboard_failures_total"
            case .upstreamErrors: "switchboard_upstream_errors_total"
            case .stepUps: "switchboard_step_ups_total"
            case .consentPrompts: "switchboard_consent_prompts_total"
            case .policyDenials: "switchboard_policy_denials_total"
            case .rateLimited: "switchboard_rate_limited_total"
            case .cacheHits, .cacheMisses: "switchboard_credential_cache_lookups_total"
            }
        }

        var help: String {
            switch self {
            case .failures: "Calls that failed (5xx and authorization errors)."
            case .upstreamErrors: "Failed calls the upstream caused."
            case .stepUps: "Scope step-ups."
            case .consentPrompts: "Calls answered interaction_required."
            case .policyDenials: "Calls refused by a policy rule."
            case .rateLimited: "Calls refused by a rate limit."
            case .cacheHits, .cacheMisses: "Credential cache lookups."
            }
        }

        var label: (String, String)? {
            switch self {
            case .cacheHits: ("result", "hit")
            case .cacheMisses: ("result", "miss")
            default: nil
            }
        }
    }

    private let count = Atomic<Int>(0)
    private let other = Mutex<Counter?>(nil)
    private let make: (@Sendable () -> Counter)?

    init(_ make: (@Sendable () -> Counter)? = nil) { self.make = make }

    func increment() {
        count.add(1, ordering: .relaxed)
        guard let make else { return }  // no second backend: no lock
        other.withLock { made in
            if made == nil { made = make() }
            return made!
        }.increment()
    }

    var value: Int { count.load(ordering: .relaxed) }
}
