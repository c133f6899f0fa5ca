/// Runs `body`, then `cleanup` whether `body` returned or threw (its error is rethrown after
/// the cleanup): the `with…` helpers that start something for a test and stop it afterwards.
public func withCleanup<T>(_ body: () async throws -> T, cleanup: () async -> Void) async throws -> T {
    let result: T
    do { result = try await body() } catch {
        await cleanup()
        throw error
    }
    await cleanup()
    return result
}

/// A failed step on the way to the state a test examines.
public struct StepFailed: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
