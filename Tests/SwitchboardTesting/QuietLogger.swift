import Foundation
public import Logging

extension Logger {
    /// A logger for a service under test: critical messages only, or the level named by the
    /// environment variable `variable` when one is given and set (e.g. `E2E_LOG=debug`).
    public static func quiet(_ label: String, levelFrom variable: String? = nil) -> Logger {
        var logger = Logger(label: label)
        logger.logLevel = variable.flatMap { ProcessInfo.processInfo.environment[$0] }.flatMap(Logger.Level.init(rawValue:)) ?? .critical
        return logger
    }
}
