import Foundation
import CoreMetrics
import Logging
import OTel
import ServiceLifecycle
import Tracing

/// Traces for every subcommand, from the standard OpenTelemetry variables: off unless
/// `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set, then exported
/// by swift-otel over OTLP/HTTP (protobuf); `OTEL_TRACES_SAMPLER`, `OTEL_SERVICE_NAME`,
/// `OTEL_RESOURCE_ATTRIBUTES` and the rest apply as the specification says.
///
/// Must run before any HTTP client is made: AsyncHTTPClient takes the process's tracer when its
/// configuration is built (its client spans and `traceparent` come from there).
enum CLITracing {
    /// Bootstraps the process's tracer (once per process) and returns the exporter's service, to
    /// run beside the application; nil when tracing is off.
    static func start(service name: String, logger: Logger) -> (any Service)? {
        let env = ProcessInfo.processInfo.environment
        let endpoint = env["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"] ?? env["OTEL_EXPORTER_OTLP_ENDPOINT"]
        guard let endpoint, !endpoint.isEmpty, env["OTEL_TRACES_EXPORTER"]?.lowercased() != "none",
              env["OTEL_SDK_DISABLED"]?.lowercased() != "true"
        else { return nil }
        var configuration = OTel.Configuration.default
        configuration.serviceName = name  // OTEL_SERVICE_NAME, when set, wins
        configuration.traces.otlpExporter.protocol = .httpProtobuf  // the only exporter built in
        configuration.metrics.enabled = false  // /metrics is Prometheus (swift-prometheus)
        configuration.logs.enabled = false  // logs go to stderr (LOG_FORMAT)
        configuration.diagnosticLogger = .custom(logger)
        configuration.diagnosticLogLevel = .warning
        do {
            let backend = try OTel.makeTracingBackend(configuration: configuration)
            InstrumentationSystem.bootstrap(backend.factory)
            logger.info("tracing on: spans exported over OTLP/HTTP", metadata: ["endpoint": "\(endpoint)", "service": "\(name)"])
            return backend.service
        } catch {
            logger.error("tracing could not start; running without it", metadata: ["error": "\(error)"])
            return nil
        }
    }

    /// The gateway's metrics over OTLP/HTTP too (they are always on `/metrics`): a factory to
    /// hand the gateway and the exporter's service, when an OTLP endpoint is set and
    /// `OTEL_METRICS_EXPORTER` is not `none`. Every `OTEL_METRIC_EXPORT_INTERVAL` (default 60 s).
    static func metrics(service name: String, logger: Logger) -> (factory: any MetricsFactory, service: any Service)? {
        let env = ProcessInfo.processInfo.environment
        let endpoint = env["OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"] ?? env["OTEL_EXPORTER_OTLP_ENDPOINT"]
        guard let endpoint, !endpoint.isEmpty, env["OTEL_METRICS_EXPORTER"]?.lowercased() != "none",
              env["OTEL_SDK_DISABLED"]?.lowercased() != "true"
        else { return nil }
        var configuration = OTel.Configuration.default
        configuration.serviceName = name
        configuration.metrics.otlpExporter.protocol = .httpProtobuf
        configuration.traces.enabled = false
        configuration.logs.enabled = false
        configuration.diagnosticLogger = .custom(logger)
        configuration.diagnosticLogLevel = .warning
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
