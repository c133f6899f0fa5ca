import Foundation

/// Tracing as the OpenTelemetry environment variables configure it (the SDK specification's
/// names and defaults). Built once per process by ``fromEnvironment(_:serviceName:)``.
public struct TracingSettings: Sendable {
    /// Where export requests go: `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` as given, else
    /// `OTEL_EXPORTER_OTLP_ENDPOINT` with `/v1/traces` appended.
    public var endpoint: String
    /// `OTEL_EXPORTER_OTLP_HEADERS`, then `OTEL_EXPORTER_OTLP_TRACES_HEADERS` (which wins per name).
    public var headers: [(name: String, value: String)]
    public var timeout: Duration = .seconds(10)
    public var sampler: TraceSampler = .parentBased(root: .alwaysOn)
    /// `service.name` (from `OTEL_SERVICE_NAME`, else `OTEL_RESOURCE_ATTRIBUTES`, else the
    /// service's own) and the other resource attributes.
    public var resource: [(key: String, value: String)]
    public var scheduleDelay: Duration = .milliseconds(5000)
    public var maxQueueSize = 2048
    public var maxExportBatchSize = 512

    /// A setting the process cannot honour: tracing stays off and the message says why.
    public struct Invalid: Error, CustomStringConvertible {
        public let description: String
    }

    /// The settings from `environment`; nil when tracing is off (no endpoint,
    /// `OTEL_TRACES_EXPORTER=none`, `OTEL_SDK_DISABLED=true`).
    public static func fromEnvironment(_ environment: [String: String], serviceName: String) throws(Invalid) -> TracingSettings? {
        func value(_ name: String) -> String? {
            environment[name].map { $0.trimmingCharacters(in: .whitespaces) }.flatMap { $0.isEmpty ? nil : $0 }
        }
        if value("OTEL_SDK_DISABLED")?.lowercased() == "true" { return nil }
        if let exporter = value("OTEL_TRACES_EXPORTER")?.lowercased() {
            if exporter == "none" { return nil }
            guard exporter == "otlp" else { throw Invalid(description: "OTEL_TRACES_EXPORTER=\(exporter) is not supported (otlp or none)") }
        }
        let endpoint: String
        if let traces = value("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") {
            endpoint = traces
        } else if let base = value("OTEL_EXPORTER_OTLP_ENDPOINT") {
            endpoint = (base.hasSuffix("/") ? String(base.dropLast()) : base) + "/v1/traces"
        } else {
            return nil
        }
        guard let url = URL(string: endpoint), url.scheme == "http" || url.scheme == "https", url.host != nil else {
            throw Invalid(description: "the OTLP traces endpoint is not an http(s) URL: \(endpoint)")
        }
        if let proto = value("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") ?? value("OTEL_EXPORTER_OTLP_PROTOCOL"), proto != "http/protobuf" {
            throw Invalid(description: "OTEL_EXPORTER_OTLP_PROTOCOL=\(proto) is not supported: only http/protobuf")
        }
        if let compression = value("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION") ?? value("OTEL_EXPORTER_OTLP_COMPRESSION"), compression != "none" {
            throw Invalid(description: "OTEL_EXPORTER_OTLP_COMPRESSION=\(compression) is not supported: only none")
        }

        var settings = TracingSettings(endpoint: endpoint, headers: [], resource: [])
        var headers: [(name: String, value: String)] = []
        for list in [value("OTEL_EXPORTER_OTLP_HEADERS"), value("OTEL_EXPORTER_OTLP_TRACES_HEADERS")] {
            for (name, v) in try pairs(list ?? "", "OTEL_EXPORTER_OTLP_HEADERS") {
                headers.removeAll { $0.name.lowercased() == name.lowercased() }
                headers.append((name, v))
            }
        }
        settings.headers = headers
        if let ms = try milliseconds(value("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT") ?? value("OTEL_EXPORTER_OTLP_TIMEOUT"), "OTEL_EXPORTER_OTLP_TIMEOUT") {
            settings.timeout = .milliseconds(ms)
        }
        if let ms = try milliseconds(value("OTEL_BSP_SCHEDULE_DELAY"), "OTEL_BSP_SCHEDULE_DELAY") { settings.scheduleDelay = .milliseconds(max(ms, 1)) }
        if let n = try count(value("OTEL_BSP_MAX_QUEUE_SIZE"), "OTEL_BSP_MAX_QUEUE_SIZE") { settings.maxQueueSize = n }
        if let n = try count(value("OTEL_BSP_MAX_EXPORT_BATCH_SIZE"), "OTEL_BSP_MAX_EXPORT_BATCH_SIZE") { settings.maxExportBatchSize = n }
        settings.maxExportBatchSize = min(settings.maxExportBatchSize, settings.maxQueueSize)
        settings.sampler = try TraceSampler(name: value("OTEL_TRACES_SAMPLER"), argument: value("OTEL_TRACES_SAMPLER_ARG"))

        var resource: [(key: String, value: String)] = [("service.name", serviceName)]
        for (key, v) in try pairs(value("OTEL_RESOURCE_ATTRIBUTES") ?? "", "OTEL_RESOURCE_ATTRIBUTES") {
            resource.removeAll { $0.key == key }
            resource.append((key, v))
        }
        if let name = value("OTEL_SERVICE_NAME") {
            resource.removeAll { $0.key == "service.name" }
            resource.append(("service.name", name))
        }
        resource += [("telemetry.sdk.name", "switchboard"), ("telemetry.sdk.language", "swift")]
        settings.resource = resource
        return settings
    }

    /// `k=v,k2=v2` (W3C baggage-like lists): names trimmed, values percent-decoded.
    static func pairs(_ text: String, _ variable: String) throws(Invalid) -> [(String, String)] {
        var out: [(String, String)] = []
        for item in text.split(separator: ",") where !item.trimmingCharacters(in: .whitespaces).isEmpty {
            guard let eq = item.firstIndex(of: "=") else { throw Invalid(description: "\(variable): an entry has no '=' (\(item.prefix(40)))") }
            let name = item[..<eq].trimmingCharacters(in: .whitespaces)
            let raw = item[item.index(after: eq)...].trimmingCharacters(in: .whitespaces)
            guard !name.isEmpty, let decoded = raw.removingPercentEncoding else { throw Invalid(description: "\(variable): an entry is malformed") }
            out.append((name, decoded))
        }
        return out
    }

    private static func milliseconds(_ text: String?, _ variable: String) throws(Invalid) -> Int64? {
        guard let text else { return nil }
        guard let ms = Int64(text), ms >= 0, ms <= 86_400_000 else { throw Invalid(description: "\(variable) is not a number of milliseconds: \(text)") }
        return ms
    }

    private static func count(_ text: String?, _ variable: String) throws(Invalid) -> Int? {
        guard let text else { return nil }
        guard let n = Int(text), n > 0, n <= 1_000_000 else { throw Invalid(description: "\(variable) is not a positive count: \(text)") }
        return n
    }
}
