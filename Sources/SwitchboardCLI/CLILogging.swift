import Foundation
import Logging

/// Logger set-up shared by the subcommands: stderr, level from LOG_LEVEL (default info).
enum CLILogging {
    static func logger(_ label: String) -> Logger {
        var logger = Logger(label: label)
        logger.logLevel = ProcessInfo.processInfo.environment["LOG_LEVEL"].flatMap { Logger.Level(rawValue: $0.lowercased()) } ?? .info
        return logger
    }
}
