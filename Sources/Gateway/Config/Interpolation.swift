import PluginAPI

/// `${VAR}` and `${VAR:-default}` in scalar values, resolved against an environment.
///
/// Applied after parsing, so a value with YAML-special characters cannot change the file's
/// structure, and errors keep their line and column. `$$` writes a literal `$`.
struct Interpolation {
    let environment: [String: String]
    let file: String

    func apply(_ node: ConfigNode) throws(ConfigError) -> ConfigNode {
        switch node {
        case .scalar(let text, let quoted, let at):
            guard text.contains("$") else { return node }
            let value = try expand(text, at: at)
            if !quoted, value.isEmpty { return .null(at: at) }
            return .scalar(value, quoted: quoted, at: at)
        case .null: return node
        case .sequence(let items, let at):
            var out: [ConfigNode] = []
            for item in items { out.append(try apply(item)) }
            return .sequence(out, at: at)
        case .mapping(let entries, let at):
            var out: [ConfigNode.Entry] = []
            for e in entries { out.append(.init(key: e.key, keyLocation: e.keyLocation, value: try apply(e.value))) }
            return .mapping(out, at: at)
        }
    }

    func expand(_ text: String, at: SourceLocation) throws(ConfigError) -> String {
        var out = ""
        var i = text.startIndex
        while i < text.endIndex {
            let c = text[i]
            guard c == "$" else {
                out.append(c)
                i = text.index(after: i)
                continue
            }
            let next = text.index(after: i)
            if next < text.endIndex, text[next] == "$" {
                out.append("$")
                i = text.index(after: next)
                continue
            }
            guard next < text.endIndex, text[next] == "{" else {
                out.append(c)
                i = next
                continue
            }
            guard let close = text[next...].firstIndex(of: "}") else {
                throw ConfigError(file: file, location: at, message: "unterminated '${' in '\(text)'", hint: "write ${NAME} or ${NAME:-default}")
            }
            let body = text[text.index(after: next)..<close]
            let name: Substring
            let fallback: Substring?
            if let sep = body.range(of: ":-") {
                name = body[..<sep.lowerBound]
                fallback = body[sep.upperBound...]
            } else {
                name = body
                fallback = nil
            }
            guard !name.isEmpty, name.allSatisfy({ $0 == "_" || ($0.isASCII && ($0.isLetter || $0.isNumber)) }) else {
                throw ConfigError(file: file, location: at, message: "'${\(body)}' is not a valid variable reference", hint: "variable names use A-Z, 0-9 and _")
            }
            if let value = environment[String(name)], !value.isEmpty {
                out += value
            } else if let fallback {
                out += fallback
            } else {
                throw ConfigError(
                    file: file, location: at, message: "environment variable \(name) is not set",
                    hint: "export \(name)=… or write ${\(name):-default}")
            }
            i = text.index(after: close)
        }
        return out
    }
}
