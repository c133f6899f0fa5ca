import Foundation
import PluginAPI

/// Reads an upstream's demand for more scopes: a `WWW-Authenticate: Bearer
/// error="insufficient_scope", scope="…"` header, or an MCP tool result whose text is the
/// `{"error":"insufficient_scope","required_scopes":[…]}` JSON of PROTOCOLS.md E.
enum ScopeChallengeParser {
    /// The auth-params of a Bearer challenge (`error`, `scope`, …), lowercased names.
    static func bearerParams(_ header: String) -> [String: String] {
        guard let range = header.range(of: "bearer", options: [.caseInsensitive, .anchored]) else { return [:] }
        var params: [String: String] = [:]
        var rest = header[range.upperBound...]
        while let eq = rest.firstIndex(of: "=") {
            let name = rest[..<eq].trimmingCharacters(in: CharacterSet(charactersIn: " ,")).lowercased()
            var after = rest[rest.index(after: eq)...].drop(while: { $0 == " " })
            var value = ""
            if after.first == "\"" {
                after = after.dropFirst()
                var escaped = false
                var end = after.endIndex
                for i in after.indices {
                    let c = after[i]
                    if escaped { value.append(c); escaped = false; continue }
                    if c == "\\" { escaped = true; continue }
                    if c == "\"" { end = i; break }
                    value.append(c)
                }
                rest = end < after.endIndex ? after[after.index(after: end)...] : after[after.endIndex...]
            } else {
                let end = after.firstIndex(of: ",") ?? after.endIndex
                value = String(after[..<end]).trimmingCharacters(in: .whitespaces)
                rest = after[end...]
            }
            params[name] = value
        }
        return params
    }

    /// From a 403's `WWW-Authenticate`.
    static func fromHeader(_ header: String?) -> ScopeChallenge? {
        guard let header else { return nil }
        let params = bearerParams(header)
        guard params["error"] == "insufficient_scope", let scope = params["scope"] else { return nil }
        let scopes = Set(scope.split(separator: " ").map(String.init))
        return scopes.isEmpty ? nil : ScopeChallenge(requiredScopes: scopes)
    }

    /// From a JSON-RPC response body carrying a tool result with the insufficient_scope JSON.
    static func fromToolResult(_ body: Data) -> ScopeChallenge? {
        guard let message = (try? JSONSerialization.jsonObject(with: body)) as? [String: Any],
              let result = message["result"] as? [String: Any], result["isError"] as? Bool == true,
              let content = result["content"] as? [[String: Any]]
        else { return nil }
        for item in content {
            guard let text = item["text"] as? String, text.contains("insufficient_scope"),
                  let inner = (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any],
                  inner["error"] as? String == "insufficient_scope"
            else { continue }
            if let list = inner["required_scopes"] as? [String], !list.isEmpty { return ScopeChallenge(requiredScopes: Set(list)) }
            if let header = inner["www_authenticate"] as? String { return fromHeader(header) }
        }
        return nil
    }
}
