import Logging
import ServiceLifecycle
import UnixSignals

/// Reloads connections.yaml when it changes (polling its size, mtime and inode, which also
/// catches editors that save by rename) and on SIGHUP. Runs as a service of the application.
struct ConfigWatcher: Service {
    let holder: RegistryHolder
    let logger: Logger
    let handleSIGHUP: Bool

    func run() async throws {
        await withTaskGroup(of: Void.self) { group in
            if handleSIGHUP {
                group.addTask {
                    for await _ in await UnixSignalsSequence(trapping: .sighup) {
                        logger.info("SIGHUP: reloading the registry")
                        await holder.reload(force: true)
                    }
                }
            }
            group.addTask {
                while !Task.isCancelled {
                    let settings = holder.registry.settings
                    do { try await Task.sleep(for: settings.watchInterval) } catch { return }
                    if settings.watch { await holder.reload() }
                }
            }
            try? await gracefulShutdown()
            group.cancelAll()
        }
    }
}
