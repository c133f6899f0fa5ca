import Foundation
import CoreMetrics
import Logging
import OTLPTracing
import OTel
import ServiceLifecycle
import Tracing

/// Traces for every subcommand, from the standard OpenTelemetry variables: off unless
/// `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set, then exported
/// by OTLPTracing over OTLP/HTTP (protobuf); `OTEL_TRACES_SAMPLER`, `OTEL_SERVICE_NAME`,
/// `OTEL_RESOURCE_ATTRIBUTES` and the rest apply as the specification says. (swift-otel exports
/// the gateway's OTLP metrics; its tracer cost half the gateway's throughput: OTLPTracing/README.md.)
///
/// Must run before any HTTP client is made: AsyncHTTPClient takes the process's tracer when its
/// configuration is built (its client spans and `traceparent` come from there).
enum CLITracing {
    enum Signal: String { case metrics = "METRICS" }

    /// swift-otel's configuration for the metrics, the other signals off (logs go to stderr,
    /// traces to OTLPTracing), and the endpoint it goes to; nil when metrics export is off:
    /// no `OTEL_EXPORTER_OTLP_{METRICS_}ENDPOINT`, `OTEL_METRICS_EXPORTER=none` or `OTEL_SDK_DISABLED`.
    private static func configuration(_ signal: Signal, service name: String, logger: Logger) -> (OTel.Configuration, endpoint: String)? {
        let env = ProcessInfo.processInfo.environment
        let endpoint = env["OTEL_EXPORTER_OTLP_\(signal.rawValue)_ENDPOINT"] ?? env["OTEL_EXPORTER_OTLP_ENDPOINT"]
        guard let endpoint, !endpoint.isEmpty, env["OTEL_\(signal.rawValue)_EXPORTER"]?.lowercased() != "none",
              env["OTEL_SDK_DISABLED"]?.lowercased() != "true"
        else { return nil }
        var configuration = OTel.Configuration.default
        configuration.serviceName = name  // OTEL_SERVICE_NAME, when set, wins
        configuration.traces.enabled = false
        configuration.metrics.enabled = signal == .metrics
        configuration.logs.enabled = false
        // OTLP/HTTP with protobuf: the only exporter built in (the OTLPHTTP trait).
        configuration.metrics.otlpExporter.protocol = .httpProtobuf
        configuration.diagnosticLogger = .custom(logger)
        configuration.diagnosticLogLevel = .warning
        return (configuration, endpoint)
    }

    /// Bootstraps the process's tracer (once per process) and returns the exporter's service, to
    /// run beside the application; nil when tracing is off.
    static func start(service name: String, logger: Logger) -> (any Service)? {
        do {
            guard let settings = try TracingSettings.fromEnvironment(ProcessInfo.processInfo.environment, serviceName: name) else { return nil }
            let (tracer, exporter) = OTLPTracer.make(settings: settings, logger: logger)
            InstrumentationSystem.bootstrap(tracer)
            logger.info("tracing on: spans exported over OTLP/HTTP", metadata: ["endpoint": "\(settings.endpoint)", "service": "\(name)"])
            return exporter
        } catch {
            logger.error("tracing could not start; running without it", metadata: ["error": "\(error)"])
            return nil
        }
    }

    /// The gateway's metrics over OTLP/HTTP too (they are always on `/metrics`): a factory to
    /// hand the gateway and the exporter's service, when metrics export is on (as tracing, with
    /// `METRICS` for the signal). Every `OTEL_METRIC_EXPORT_INTERVAL` (default 60 s).
    static func metrics(service name: String, logger: Logger) -> (factory: any MetricsFactory, service: any Service)? {
        guard let (configuration, endpoint) = configuration(.metrics, service: name, logger: logger) else { return nil }
        do {
            let backend = try OTel.makeMetricsBackend(configuration: configuration)
            logger.info("metrics also exported over OTLP/HTTP", metadata: ["endpoint": "\(endpoint)"])
            return (backend.factory, backend.service)
        } catch {
            logger.error("OTLP metrics could not start; /metrics only", metadata: ["error": "\(error)"])
            return nil
        }
    }

    /// Runs `app` (and the exporter, when tracing is on) until SIGTERM or SIGINT; the exporter
    /// stops last, so the spans of the calls that were draining are sent.
    static func run(_ app: any Service, tracing: (any Service)?, metrics: (any Service)? = nil, logger: Logger) async throws {
        let exporters = [tracing, metrics].compactMap { $0 }
        let services: [ServiceGroupConfiguration.ServiceConfiguration] = (exporters + [app]).map { .init(service: $0) }
        let group = ServiceGroup(configuration: .init(services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
    }
}
