extension Duration {
    /// Nanoseconds, saturating at Int64.max (NIO and AsyncHTTPClient take Int64 nanoseconds).
    public var nanoseconds: Int64 {
        let (seconds, attoseconds) = components
        if seconds >= Int64.max / 1_000_000_000 - 1 { return Int64.max }
        return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }
}
