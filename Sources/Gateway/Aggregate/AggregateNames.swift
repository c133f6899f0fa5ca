import Foundation

/// How the `/mcp` endpoint names what it merges from several servers so that every name stays
/// unique and routes back to its server: tools and prompts `{connection}__{name}`, resources
/// `{connection}__{name}` with their URI rewritten to `switchboard://{connection}/{uri, percent-encoded}`
/// (a URI a client's parser accepts, whatever the upstream's scheme).
enum AggregateNames {
    static let separator = "__"

    static func prefixed(_ name: String, connection: String) -> String { connection + separator + name }

    /// The connection and the upstream's own name; nil when `name` has no known prefix.
    /// Split at the first `__` whose left side is a known connection (names may contain `__`).
    static func split(_ name: String, known: (String) -> Bool) -> (connection: String, name: String)? {
        // (On the UTF-8 bytes: this runs for every call through /mcp, Foundation's search showed in profiles.)
        let utf8 = name.utf8
        var i = utf8.startIndex
        while i != utf8.endIndex {
            let next = utf8.index(after: i)
            if utf8[i] == UInt8(ascii: "_"), next != utf8.endIndex, utf8[next] == UInt8(ascii: "_") {
                let connection = String(name[..<i])
                if known(connection) { return (connection, String(name[utf8.index(after: next)...])) }
            }
            i = next
        }
        return nil
    }

    static let uriScheme = "switchboard://"

    /// The merged list's URI for an upstream resource URI (or URI template).
    /// A template's `{…}` expressions stay as they are, so a client can still fill them.
    static func resourceURI(_ uri: String, connection: String, template: Bool = false) -> String {
        uriScheme + connection + "/" + (uri.addingPercentEncoding(withAllowedCharacters: template ? unreservedAndBraces : unreserved) ?? uri)
    }

    /// The connection and the upstream's URI of a merged URI; nil when it is not one.
    static func splitResourceURI(_ uri: String) -> (connection: String, uri: String)? {
        guard uri.hasPrefix(uriScheme) else { return nil }
        let rest = uri.dropFirst(uriScheme.count)
        guard let slash = rest.firstIndex(of: "/") else { return nil }
        let connection = String(rest[..<slash])
        guard !connection.isEmpty, let original = String(rest[rest.index(after: slash)...]).removingPercentEncoding else { return nil }
        return (connection, original)
    }

    /// RFC 3986 unreserved characters: everything else is escaped.
    private static let unreserved = CharacterSet(charactersIn: "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
    private static let unreservedAndBraces = unreserved.union(CharacterSet(charactersIn: "{}"))
}
