import Foundation

/// A user's sentence taken apart for the planner: quoted text, URLs, repository references
/// and free numbers come out first (so `add "delete the file"` is about adding), and the
/// words that remain carry the intent.
struct Utterance: Sendable, Equatable {
    struct Word: Sendable, Equatable {
        var text: String
        /// `verb:…` / `noun:…`, or nil for stop words and numbers.
        var concept: String?
        var isNumber = false
    }

    /// `owner/repo` and an optional number, from a URL (`…/acme/app/pull/1`) or `acme/app#1`.
    struct Reference: Sendable, Equatable {
        var owner: String
        var repo: String
        var number: Int?
        var kind: String?
    }

    let text: String
    var quoted: [String] = []
    var urls: [String] = []
    var references: [Reference] = []
    var numbers: [Double] = []
    var words: [Word] = []

    init(_ text: String) {
        self.text = text
        var rest = ""
        var normalized = text
        for (phrase, meaning) in PlannerVocabulary.phrases {
            normalized = normalized.replacingOccurrences(of: phrase, with: meaning, options: .caseInsensitive)
        }
        // "to-do" is one word here.
        let chars = Array(normalized.replacingOccurrences(of: "to-do", with: "todo", options: .caseInsensitive))
        var i = 0
        let pairs: [Character: Character] = ["\"": "\"", "“": "”", "„": "“", "`": "`", "‘": "’", "'": "'", "«": "»"]
        while i < chars.count {
            let ch = chars[i]
            if let close = pairs[ch], Self.opensQuote(chars, at: i) {
                if let end = Self.closing(chars, from: i + 1, close: close, straightSingle: ch == "'") {
                    let inner = String(chars[(i + 1)..<end]).trimmingCharacters(in: .whitespacesAndNewlines)
                    if !inner.isEmpty { quoted.append(inner) }
                    rest.append(" ")
                    i = end + 1
                    continue
                }
            }
            rest.append(ch)
            i += 1
        }
        var remaining: [String] = []
        for token in rest.split(whereSeparator: { $0.isWhitespace }) {
            let raw = String(token)
            let lower = raw.lowercased()
            if lower.hasPrefix("http://") || lower.hasPrefix("https://") {
                let url = Self.trimTrailingPunctuation(raw)
                urls.append(url)
                if let reference = Self.reference(fromURL: url) { references.append(reference) }
                continue
            }
            let bare = Self.trimTrailingPunctuation(raw)
            // github.com/acme/app/pull/1 without a scheme.
            if let slash = bare.firstIndex(of: "/"), bare[..<slash].contains("."), bare[..<slash].allSatisfy({ $0.isLetter || $0.isNumber || $0 == "." || $0 == "-" }) {
                urls.append("https://" + bare)
                if let reference = Self.reference(fromURL: "https://" + bare) { references.append(reference) }
                continue
            }
            if let reference = Self.shorthandReference(bare) {
                references.append(reference)
                continue
            }
            remaining.append(raw)
        }
        for token in remaining {
            // 2.5 is one number (and not the id 2 followed by 5).
            let bare = Self.trimTrailingPunctuation(token)
            if bare.contains("."), bare.first?.isNumber == true, let decimal = Double(bare) {
                numbers.append(decimal)
                words.append(Word(text: bare, concept: nil, isNumber: true))
                continue
            }
            for word in PlannerVocabulary.words(token, splitCase: false) {
                if let number = Self.number(word) ?? PlannerVocabulary.numberWords[word.lowercased()] {
                    numbers.append(number)
                    words.append(Word(text: word, concept: nil, isNumber: true))
                } else {
                    var concept = PlannerVocabulary.concept(word)
                    // A capitalised word inside the sentence is a name (New York), not a verb.
                    if !words.isEmpty, word.first?.isUppercase == true, word != "I", concept?.hasPrefix("verb:") == true {
                        concept = "noun:" + PlannerVocabulary.stem(word)
                    }
                    words.append(Word(text: word, concept: concept))
                }
            }
        }
    }

    var lowercased: String { text.lowercased() }

    /// Concepts mentioned (URLs add what they point at: a pull request is `pull`, `request`).
    var concepts: Set<String> {
        var set = Set(words.compactMap(\.concept))
        for reference in references {
            if let kind = reference.kind { set.insert("noun:" + kind) }
            if reference.kind == "pull" { set.insert("noun:request") }
        }
        for url in urls {
            if let host = URL(string: url)?.host?.lowercased() {
                for part in host.split(separator: ".") where part.count > 2 && !["www", "com", "org", "net", "api"].contains(String(part)) {
                    set.insert("noun:" + String(part))
                }
            }
        }
        return set
    }

    // MARK: - Pieces

    private static func opensQuote(_ chars: [Character], at i: Int) -> Bool {
        guard chars[i] == "'" || chars[i] == "‘" else { return true }
        // An apostrophe inside a word (what's, don't) does not open a quote.
        return i == 0 || chars[i - 1].isWhitespace || "([{:".contains(chars[i - 1])
    }

    private static func closing(_ chars: [Character], from start: Int, close: Character, straightSingle: Bool) -> Int? {
        var j = start
        while j < chars.count {
            if chars[j] == close {
                if !straightSingle { return j }
                let next = j + 1 < chars.count ? chars[j + 1] : " "
                if next.isWhitespace || next.isPunctuation { return j }
            }
            j += 1
        }
        return nil
    }

    private static func trimTrailingPunctuation(_ s: String) -> String {
        var t = Substring(s)
        while let last = t.last, ".,;:!?)]}>\"'".contains(last) { t.removeLast() }
        return String(t)
    }

    private static func number(_ word: String) -> Double? {
        guard word.first?.isNumber == true else { return nil }
        return Double(word)
    }

    /// `https://host/{owner}/{repo}/(pull|pulls|issues)/{n}` and `https://host/{owner}/{repo}`.
    static func reference(fromURL url: String) -> Reference? {
        guard let parsed = URL(string: url) else { return nil }
        var parts = parsed.path.split(separator: "/").map(String.init)
        if parts.first == "repos" { parts.removeFirst() }  // API URLs: /repos/{owner}/{repo}/…
        guard parts.count >= 2 else { return nil }
        var reference = Reference(owner: parts[0], repo: parts[1], number: nil, kind: nil)
        if parts.count >= 4, let n = Int(parts[3]) {
            reference.number = n
            reference.kind = ["pull", "pulls", "merge_requests"].contains(parts[2]) ? "pull" : parts[2] == "issues" ? "issue" : nil
        }
        return reference
    }

    /// `acme/app#12` and `acme/app`.
    static func shorthandReference(_ token: String) -> Reference? {
        let pieces = token.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false)
        guard let head = pieces.first else { return nil }
        let path = head.split(separator: "/", omittingEmptySubsequences: false)
        guard path.count == 2,
              path.allSatisfy({ !$0.isEmpty && $0.first!.isLetter && $0.allSatisfy { $0.isLetter || $0.isNumber || "-_.".contains($0) } })
        else { return nil }
        var number: Int?
        if pieces.count == 2 {
            guard let n = Int(pieces[1]) else { return nil }
            number = n
        }
        return Reference(owner: String(path[0]), repo: String(path[1]), number: number, kind: nil)
    }
}
