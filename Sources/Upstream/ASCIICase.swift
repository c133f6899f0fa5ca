/// Header names and media types compared as HTTP compares them (ASCII, any case), on their
/// bytes: no lowercased copy per header on the hot path.
public enum ASCIICase {
    /// `name` starts with `lower` (lowercase ASCII letters, digits, `-`, `/`) ignoring ASCII case.
    @inlinable
    public static func hasPrefix(_ name: String, _ lower: String) -> Bool {
        var it = name.utf8.makeIterator()
        for expected in lower.utf8 {
            guard let byte = it.next() else { return false }
            // Setting bit 0x20 lowercases ASCII letters and leaves digits, `-` and `/` as they are.
            if byte | 0x20 != expected { return false }
        }
        return true
    }

    /// `name` equals `lower` ignoring ASCII case.
    @inlinable
    public static func equals(_ name: String, _ lower: String) -> Bool {
        name.utf8.count == lower.utf8.count && hasPrefix(name, lower)
    }
}
