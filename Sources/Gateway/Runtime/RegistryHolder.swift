import AsyncHTTPClient
import Foundation
import Logging
import OAuthCore
import PluginAPI
import Synchronization

/// Holds the current ``Registry`` and replaces it on reload, atomically.
///
/// A reload parses, validates and provisions a whole new generation before the swap; if any
/// step fails, the last good registry keeps serving and the error (with line and column)
/// is kept for the status endpoint and logged. Strategies of connections that changed or
/// left are shut down after a grace period, so requests already holding them finish.
final class RegistryHolder: Sendable {
    struct ReloadState: Sendable {
        var lastAttemptAt: Date?
        var lastError: ConfigErrors?
        var lastErrorAt: Date?
        var fingerprint: FileFingerprint?
    }

    let configPath: String
    private let loader: RegistryLoader
    private let httpClient: HTTPClient
    private let logger: Logger
    private let clock: any GatewayClock
    private let current: Mutex<Registry>
    private let reloadState: Mutex<ReloadState>
    private let reloading = Mutex(false)
    private let swapObservers = Mutex<[@Sendable (_ old: Registry, _ new: Registry) -> Void]>([])
    static let shutdownGrace: Duration = .seconds(60)

    var registry: Registry { current.withLock { $0 } }
    var state: ReloadState { reloadState.withLock { $0 } }

    /// Where connections' activity and reloads are counted for `/metrics` (nil: nowhere).
    let metrics: GatewayMetrics?
    /// The replicas' shared state (`gateway.state`, read at start), or nil.
    let shared: (any SharedStateStore)?

    private init(
        configPath: String, loader: RegistryLoader, httpClient: HTTPClient, logger: Logger, clock: any GatewayClock, metrics: GatewayMetrics?, registry: Registry,
        fingerprint: FileFingerprint?, shared: (any SharedStateStore)?
    ) {
        self.metrics = metrics
        self.shared = shared
        self.configPath = configPath
        self.loader = loader
        self.httpClient = httpClient
        self.logger = logger
        self.clock = clock
        self.current = Mutex(registry)
        self.reloadState = Mutex(ReloadState(lastAttemptAt: clock.now(), fingerprint: fingerprint))
    }

    /// Loads the first registry; throws (and the gateway refuses to start) if it is invalid.
    static func start(
        configPath: String, plan: RegistryPlan, fingerprint: FileFingerprint?, loader: RegistryLoader, httpClient: HTTPClient, logger: Logger,
        clock: any GatewayClock, metrics: GatewayMetrics? = nil, shared: (any SharedStateStore)? = nil
    ) async throws(ConfigErrors) -> RegistryHolder {
        let registry = try await Self.provision(
            plan, previous: nil, generation: 1, httpClient: httpClient, logger: logger, clock: clock, metrics: metrics, shared: shared)
        return RegistryHolder(
            configPath: configPath, loader: loader, httpClient: httpClient, logger: logger, clock: clock, metrics: metrics, registry: registry, fingerprint: fingerprint,
            shared: shared)
    }

    /// Calls `observer` after each swap, with the generation that left and the one now serving
    /// (the `/mcp` endpoint tells its clients that lists changed).
    func onSwap(_ observer: @escaping @Sendable (_ old: Registry, _ new: Registry) -> Void) {
        swapObservers.withLock { $0.append(observer) }
    }

    /// Reloads if the file changed since the last attempt (or always, with `force`).
    /// Returns true when a new generation is serving.
    @discardableResult
    func reload(force: Bool = false) async -> Bool {
        guard reloading.withLock({ busy in
            if busy { return false }
            busy = true
            return true
        }) else { return false }
        defer { reloading.withLock { $0 = false } }

        let fingerprint = FileFingerprint.of(configPath)
        if !force, fingerprint == reloadState.withLock({ $0.fingerprint }) { return false }
        let now = clock.now()
        reloadState.withLock {
            $0.fingerprint = fingerprint
            $0.lastAttemptAt = now
        }
        let old = registry
        do {
            let plan = try loader.load(path: configPath)
            let fresh = try await Self.provision(
                plan, previous: old, generation: old.generation + 1, httpClient: httpClient, logger: logger, clock: clock, metrics: metrics, shared: shared)
            current.withLock { $0 = fresh }
            metrics?.reloaded(applied: true)
            reloadState.withLock {
                $0.lastError = nil
                $0.lastErrorAt = nil
            }
            logger.info("registry reloaded", metadata: ["generation": "\(fresh.generation)", "connections": "\(fresh.connections.count)", "file": "\(configPath)"])
            for warning in plan.warnings { logger.warning("connections.yaml", metadata: ["warning": "\(warning)"]) }
            if Self.auditStorage(old.plan.settings.audit) != Self.auditStorage(plan.settings.audit) {
                // The writer and its file are the process's (a record is never split between two
                // files); the admin token and each connection's `audit:` do apply now.
                logger.warning("gateway.audit's storage settings changed: they are read at start, restart the gateway to apply them",
                               metadata: ["keys": "sqlite, jsonl, retention, max_records"])
            }
            for observer in swapObservers.withLock({ $0 }) { observer(old, fresh) }
            let retired = old.strategies(notIn: fresh)
            if !retired.isEmpty {
                Task {
                    try? await Task.sleep(for: Self.shutdownGrace)
                    for s in retired { await s.shutdown() }
                }
            }
            return true
        } catch {
            metrics?.reloaded(applied: false)
            reloadState.withLock {
                $0.lastError = error
                $0.lastErrorAt = now
            }
            for e in error.errors {
                logger.error("registry reload rejected; the previous registry keeps serving", metadata: ["problem": "\(e.description)"])
            }
            return false
        }
    }

    /// `gateway.audit` without what a reload applies (the admin token).
    static func auditStorage(_ config: AuditConfig?) -> AuditConfig? {
        var storage = config
        storage?.adminToken = nil
        return storage
    }

    /// Shuts down every strategy of the current registry.
    func shutdown() async {
        for s in registry.strategies(notIn: nil) { await s.shutdown() }
    }

    /// Builds a runtime registry from a plan, reusing unchanged connections of `previous`.
    static func provision(
        _ plan: RegistryPlan, previous: Registry?, generation: Int, httpClient: HTTPClient, logger: Logger, clock: any GatewayClock,
        metrics: GatewayMetrics? = nil, shared: (any SharedStateStore)? = nil
    ) async throws(ConfigErrors) -> Registry {
        let sameAgent = previous?.plan.agent == plan.agent
        // Strategies capture facts about the connections they reference (an AS issuer): keep
        // them only while no existing connection changed (additions and removals are fine).
        let unchangedOthers = plan.connections.allSatisfy { p in
            previous?.byName[p.descriptor.name].map { $0.descriptor == p.descriptor } ?? true
        }
        // Activities survive reloads by name; plugins report use of other connections through them.
        var activities: [String: ConnectionActivity] = [:]
        for p in plan.connections {
            activities[p.descriptor.name] = previous?.byName[p.descriptor.name]?.activity
                ?? ConnectionActivity(metrics: metrics?.connection(p.descriptor.name), shared: shared != nil)
        }
        let directory = activities
        let reportUse: @Sendable (String, Date?) -> Void = { name, until in directory[name]?.recordUse(at: clock.now(), validUntil: until) }
        let descriptors = Dictionary(plan.connections.map { ($0.descriptor.name, $0.descriptor) }, uniquingKeysWith: { a, _ in a })
        let lookup: @Sendable (String) -> ConnectionDescriptor? = { descriptors[$0] }
        var built: [Connection] = []
        var created: [any AuthStrategy] = []
        for planned in plan.connections {
            let name = planned.descriptor.name
            if sameAgent, unchangedOthers, let old = previous?.byName[name], old.plan.sameContent(as: planned),
                old.maxRequestBody == (planned.maxRequestBody ?? plan.settings.maxRequestBody),
                old.responseTimeout == (planned.responseTimeout ?? plan.settings.responseTimeout)
            {
                built.append(old)
                continue
            }
            let activity = activities[name] ?? ConnectionActivity(metrics: metrics?.connection(name), shared: shared != nil)
            var strategy: (any AuthStrategy)?
            var context: StrategyContext?
            if planned.enabled, let prepared = planned.strategy, let factory = planned.factory {
                var pluginLogger = logger
                pluginLogger[metadataKey: "connection"] = "\(name)"
                pluginLogger[metadataKey: "plugin"] = "\(prepared.pluginID)"
                let ctx = StrategyContext(
                    connection: planned.descriptor, agent: plan.agent, httpClient: httpClient, logger: pluginLogger, clock: clock,
                    cache: PluginCache(capacity: 10_000, clock: clock), lookup: lookup, reportUse: reportUse)
                do {
                    let s = try await factory.makeStrategy(prepared, context: ctx)
                    created.append(s)
                    strategy = s
                    context = ctx
                } catch {
                    for s in created { await s.shutdown() }
                    throw ConfigErrors([ConfigError(
                        file: plan.file, location: nil,
                        message: "connection '\(name)', strategy '\(prepared.pluginID)': could not be set up: \(error)")])
                }
            }
            built.append(Connection(plan: planned, settings: plan.settings, strategy: strategy, strategyContext: context, activity: activity, shared: shared))
        }
        let authenticator: InboundAuthenticator
        if let old = previous?.authenticator, old.serves(plan.users) {
            authenticator = old
        } else {
            let keySet = JWKSKeySet(issuer: plan.users.issuer, jwksURI: plan.users.jwksURI, httpClient: httpClient, logger: logger)
            authenticator = InboundAuthenticator(users: plan.users, keySet: keySet, clock: clock)
        }
        return Registry(generation: generation, loadedAt: clock.now(), plan: plan, authenticator: authenticator, connections: built)
    }
}

/// What identifies a version of the config file without reading it: size, mtime, inode.
struct FileFingerprint: Equatable, Sendable {
    var size: UInt64
    var modified: Double
    var inode: UInt64

    /// The file's, through symlinks: Kubernetes mounts a ConfigMap's file as a symlink through
    /// `..data` and updates it by swapping that link, so the link itself never changes.
    static func of(_ path: String) -> FileFingerprint? {
        let target = URL(fileURLWithPath: path).resolvingSymlinksInPath().path
        guard let attrs = try? FileManager.default.attributesOfItem(atPath: target) else { return nil }
        return FileFingerprint(
            size: (attrs[.size] as? NSNumber)?.uint64Value ?? 0,
            modified: (attrs[.modificationDate] as? Date)?.timeIntervalSince1970 ?? 0,
            inode: (attrs[.systemFileNumber] as? NSNumber)?.uint64Value ?? 0)
    }
}
