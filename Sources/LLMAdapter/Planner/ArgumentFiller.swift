import SwitchboardJSON

/// Fills a tool's arguments from the user's words, by the JSON Schema of each property: text
/// from quotes, numbers from the sentence, owner/repo/number from a URL, URLs for URL-ish
/// names, enums and booleans when the words say them. Required arguments it cannot fill are
/// reported, so the planner asks instead of calling with garbage.
struct ArgumentFiller: Sendable {
    struct Property: Sendable, Equatable {
        var name: String
        var type: String
        var description: String
        var required: Bool
        var schema: [String: JSONValue]
    }

    struct Result: Sendable, Equatable {
        var input: [String: JSONValue] = [:]
        var missing: [Property] = []
        /// Values found but refused by the schema (`id` 0 when `minimum` is 1…), as sentences.
        var problems: [String] = []
        var complete: Bool { missing.isEmpty && problems.isEmpty }
    }

    static func properties(of schema: [String: JSONValue]) -> [Property] {
        let required = schema["required"]?.array?.compactMap(\.string) ?? []
        let props = schema["properties"]?.object ?? [:]
        let ordered = required.filter { props[$0] != nil } + props.keys.filter { !required.contains($0) }.sorted()
        return ordered.map { name in
            let s = props[name]?.object ?? [:]
            var type = s["type"]?.string ?? s["type"]?.array?.compactMap(\.string).first { $0 != "null" } ?? ""
            if type.isEmpty, s["enum"] != nil { type = "string" }
            return Property(name: name, type: type, description: s["description"]?.string ?? "", required: required.contains(name), schema: s)
        }
    }

    /// `freeText`: the words left once intent words are gone; used for one required text
    /// argument when the user quoted nothing ("add a todo buy milk").
    func fill(schema: [String: JSONValue], utterance: Utterance, freeText: String?) -> Result {
        var result = Result()
        var quotes = utterance.quoted[...]
        var numbers = utterance.numbers[...]
        var urls = utterance.urls[...]
        let reference = utterance.references.first
        let said = Set(utterance.words.map { PlannerVocabulary.stem($0.text) })
        let properties = Self.properties(of: schema)

        for property in properties {
            let nameWords = Set(PlannerVocabulary.words(property.name).map { PlannerVocabulary.stem($0) })
            // Optional properties are filled only from specific evidence: their name said, or a URL part.
            let mentioned = !nameWords.isDisjoint(with: said)
            var value: JSONValue?
            switch property.type {
            case "string":
                if let options = property.schema["enum"]?.array?.compactMap(\.string) {
                    let lower = utterance.lowercased
                    value = options.first { lower.contains($0.lowercased()) }.map(JSONValue.string)
                } else if !nameWords.isDisjoint(with: ["url", "uri", "link", "href", "website", "site"]) {
                    value = urls.popFirst().map(JSONValue.string)
                } else if !nameWords.isDisjoint(with: ["owner", "org", "organization", "organisation", "namespace", "account"]) {
                    // Only ever from a URL or owner/repo: a quoted comment is never an owner.
                    value = reference.map { JSONValue.string($0.owner) }
                } else if !nameWords.isDisjoint(with: ["repo", "repository", "project"]) {
                    let full = property.description.lowercased().contains("owner/") || nameWords.contains("full")
                    value = reference.map { JSONValue.string(full ? "\($0.owner)/\($0.repo)" : $0.repo) }
                } else if property.required || mentioned {
                    value = quotes.popFirst().map(JSONValue.string)
                }
            case "integer", "number":
                if let number = reference?.number, !nameWords.isDisjoint(with: ["number", "pull", "pr", "issue", "num", "iid"]) {
                    value = .number(Double(number))
                } else if property.required || mentioned, let number = numbers.popFirst() {
                    if property.type == "integer", number.rounded() != number {
                        result.problems.append("\(property.name) must be a whole number, not \(number)")
                        continue
                    }
                    value = .number(number)
                }
                if case .number(let n)? = value {
                    if let min = property.schema["minimum"]?.double, n < min { result.problems.append("\(property.name) must be at least \(Self.format(min)), not \(Self.format(n))"); continue }
                    if let max = property.schema["maximum"]?.double, n > max { result.problems.append("\(property.name) must be at most \(Self.format(max)), not \(Self.format(n))"); continue }
                }
            case "boolean":
                value = Self.boolean(for: nameWords, utterance: utterance)
            case "array":
                let itemType = property.schema["items"]?["type"]?.string ?? "string"
                if itemType == "string", property.required || mentioned, !quotes.isEmpty {
                    value = .array(quotes.map(JSONValue.string))
                    quotes = []
                }
            default:
                break
            }
            if let value {
                result.input[property.name] = value
            } else if property.required {
                result.missing.append(property)
            }
        }
        // One required text argument and nothing quoted: the rest of the sentence is the text.
        if result.missing.count == 1, let only = result.missing.first, only.type == "string", only.schema["enum"] == nil,
           utterance.quoted.isEmpty, let freeText, !freeText.isEmpty
        {
            result.input[only.name] = .string(freeText)
            result.missing = []
        }
        for property in properties where result.input[property.name] != nil {
            if case .string(let s)? = result.input[property.name], let min = property.schema["minLength"]?.integer, s.count < min {
                result.problems.append("\(property.name) must be at least \(min) characters long")
            }
        }
        return result
    }

    /// True/false from the words for a done-like property (`done`, `completed`…) or one whose
    /// name is said with or without a "not".
    private static func boolean(for nameWords: Set<String>, utterance: Utterance) -> JSONValue? {
        let words = utterance.words.map { $0.text.lowercased() }
        let doneLike = !nameWords.isDisjoint(with: ["done", "complete", "completed", "finished", "checked", "closed", "resolved"])
        if doneLike {
            for (i, w) in words.enumerated() {
                let negated = i > 0 && ["not", "un", "isnt", "isn't", "no"].contains(words[i - 1])
                if PlannerVocabulary.notDoneWords.contains(w) { return false }
                if PlannerVocabulary.doneWords.contains(w) { return .bool(!negated) }
            }
            return nil
        }
        for (i, w) in words.enumerated() where nameWords.contains(PlannerVocabulary.stem(w)) {
            let negated = i > 0 && ["not", "no", "without", "dont", "don't", "never"].contains(words[i - 1])
            return .bool(!negated)
        }
        return nil
    }

    static func format(_ d: Double) -> String { d.rounded() == d ? String(Int(d)) : String(d) }
}
