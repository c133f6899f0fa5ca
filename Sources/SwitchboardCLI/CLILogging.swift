import Foundation
import Logging
import OTLPTracing

/// Logger set-up shared by the subcommands: stderr; level from LOG_LEVEL (default info); format
/// from LOG_FORMAT: `text` (the default, swift-log's stream handler) or `json` (one object per
/// line, ``JSONLogHandler``, with the current span's `trace_id` and `span_id`).
enum CLILogging {
    static func logger(_ label: String) -> Logger {
        let environment = ProcessInfo.processInfo.environment
        var logger: Logger
        switch environment["LOG_FORMAT"]?.lowercased() {
        case "json":
            // With `trace_id` and `span_id` while a span is current.
            logger = Logger(label: label) { JSONLogHandler(label: $0, metadataProvider: TraceLogMetadata.provider) }
        case nil, "", "text":
            logger = Logger(label: label) { StreamLogHandler.standardError(label: $0) }
        case let other?:
            logger = Logger(label: label) { StreamLogHandler.standardError(label: $0) }
            logger.warning("LOG_FORMAT is neither text nor json: logging as text", metadata: ["LOG_FORMAT": "\(other)"])
        }
        logger.logLevel = environment["LOG_LEVEL"].flatMap { Logger.Level(rawValue: $0.lowercased()) } ?? .info
        return logger
    }
}
