import Foundation
import SwitchboardJSON

/// Writes a short readable summary of tool results: the server's own text when it wrote
/// sentences, a compact list when it answered JSON, and the error when a call failed.
enum ResultSummarizer {
    struct Result: Sendable {
        var toolName: String
        var text: String
        var isError: Bool
    }

    static let maxLength = 2000

    static func summary(_ results: [Result]) -> String {
        let parts = results.map { result -> String in
            let body = render(result.text)
            if result.isError { return "`\(result.toolName)` didn't work: \(body.isEmpty ? "it reported an error without details." : body)" }
            if body.isEmpty { return "`\(result.toolName)` finished with nothing to show." }
            return body
        }
        let joined = parts.count == 1 ? parts[0] : parts.map { "• " + $0 }.joined(separator: "\n")
        return joined.count > maxLength ? String(joined.prefix(maxLength - 1)) + "…" : joined
    }

    static func render(_ text: String) -> String {
        let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard let first = trimmed.first, first == "{" || first == "[", let json = JSONValue.parse(Array(trimmed.utf8)) else { return trimmed }
        return render(json)
    }

    static func render(_ json: JSONValue) -> String {
        switch json {
        case .array(let items):
            if items.isEmpty { return "There's nothing there." }
            let lines = items.prefix(20).map { "- " + line(for: $0) }
            let more = items.count > 20 ? "\n… and \(items.count - 20) more" : ""
            return "\(items.count) item\(items.count == 1 ? "" : "s"):\n" + lines.joined(separator: "\n") + more
        case .object(let object):
            // {"todos": [...]} and similar: the list is the answer.
            let arrays = object.filter { $0.value.array != nil }
            if arrays.count == 1, let (key, value) = arrays.first {
                let inner = render(value)
                return key.replacingOccurrences(of: "_", with: " ").capitalizedFirst + ": " + inner
            }
            return line(for: json)
        default:
            return line(for: json)
        }
    }

    /// One item on one line: `#3 buy milk [done]`, or its scalar fields.
    static func line(for item: JSONValue) -> String {
        guard case .object(let o) = item else { return scalar(item) }
        var parts: [String] = []
        if let id = o["id"] ?? o["number"] { parts.append("#" + scalar(id)) }
        for key in ["title", "name", "full_name", "login", "text", "body", "summary", "message", "description"] {
            if let v = o[key]?.string, !v.isEmpty { parts.append(v); break }
        }
        for key in ["done", "completed", "closed", "resolved"] {
            if let b = o[key]?.bool { parts.append(b ? "[done]" : "[open]"); break }
        }
        if let url = o["html_url"]?.string ?? o["url"]?.string { parts.append(url) }
        if parts.isEmpty {
            parts = o.keys.sorted().prefix(6).compactMap { key in
                guard let v = o[key], v.object == nil, v.array == nil else { return nil }
                return "\(key): \(scalar(v))"
            }
        }
        return parts.joined(separator: " ")
    }

    static func scalar(_ value: JSONValue) -> String {
        switch value {
        case .string(let s): return s
        case .number(let d): return ArgumentFiller.format(d)
        case .bool(let b): return b ? "yes" : "no"
        case .null: return "none"
        default: return String(decoding: value.encoded().prefix(120), as: UTF8.self)
        }
    }
}

extension String {
    var capitalizedFirst: String { prefix(1).uppercased() + dropFirst() }
}
