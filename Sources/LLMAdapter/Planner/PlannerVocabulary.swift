/// The words the offline planner knows: stop words, verb families and noun synonyms. They
/// are about how people ask for things, not about any one tool or server.
enum PlannerVocabulary {
    static let stopWords = Set<String>([
        "a", "an", "the", "my", "mine", "me", "i", "im", "ive", "id", "please", "pls", "can", "could", "would", "will", "you", "your", "to",
        "of", "for", "on", "in", "at", "as", "is", "are", "am", "be", "been", "it", "its", "this", "that", "these", "those", "and", "or",
        "with", "by", "from", "into", "onto", "what", "whats", "which", "all", "some", "any", "now", "then", "just", "also", "up", "out",
        "about", "there", "here", "do", "does", "did", "want", "wanna", "like", "need", "let", "lets", "us", "we", "our", "so", "too",
        "one", "ones", "thing", "things", "called", "named", "titled", "saying", "says", "with", "how", "many", "much", "again", "for",
        "hey", "ok", "okay", "thanks", "thank", "if", "yes", "number", "no", "item", "entry", "should", "say", "tell",
        "have", "has", "had", "got", "left", "anything", "everything", "something", "right", "currently", "today",
    ] as [String])

    /// Verb families: a user's verb and a tool's verb match when they share a family.
    static let verbFamilies: [String: String] = {
        let families: [String: [String]] = [
            "list": ["list", "show", "get", "view", "see", "display", "fetch", "read", "browse", "retrieve", "print", "give", "open"],
            "create": ["add", "create", "make", "insert", "remember", "remind", "append", "save", "put", "schedule", "new", "jot"],
            "complete": [
                "mark", "complete", "completed", "done", "finish", "finished", "tick", "toggle", "flip", "uncheck", "undo",
                "undone", "reopen", "close", "resolve", "resolved",
            ],
            "delete": ["delete", "remove", "drop", "erase", "trash", "forget", "discard", "destroy", "clear", "cancel", "rm", "del"],
            "update": ["update", "edit", "change", "rename", "modify", "set", "replace", "adjust"],
            "comment": ["comment", "reply", "respond", "review", "annotate", "post"],
            "search": ["search", "find", "look", "lookup", "query", "seek", "locate", "grep"],
            "send": ["send", "notify", "ping"],
            "identity": ["who", "whoami", "profile", "account", "identity", "login", "username"],
        ]
        var map: [String: String] = [:]
        for (family, words) in families { for w in words { map[w] = family } }
        return map
    }()

    /// Nouns that name the same thing.
    static let nounSynonyms: [String: String] = [
        "task": "todo", "todo": "todo", "reminder": "todo", "chore": "todo",
        "pr": "pull", "pull": "pull", "merge": "pull",
        "repository": "repo", "repo": "repo",
        "memo": "note", "notes": "note",
        "document": "doc", "doc": "doc", "file": "doc",
        "mail": "email", "e-mail": "email",
        "meeting": "event", "appointment": "event", "event": "event",
        "ticket": "issue", "bug": "issue", "issue": "issue",
        "forecast": "weather", "temperature": "weather", "weather": "weather",
    ]

    /// Words that say a thing is finished, or that it is not.
    static let doneWords: Set<String> = ["done", "complete", "completed", "finished", "finish", "checked", "closed", "resolved", "tick", "ticked"]
    static let notDoneWords: Set<String> = ["undone", "incomplete", "unfinished", "open", "reopen", "uncheck", "unchecked", "undo", "pending"]

    static let greetings: Set<String> = ["hi", "hello", "hey", "hiya", "yo", "help", "howdy", "morning"]

    /// A light stemmer: plural `s`/`ies`/`es`, possessive `'s`, and `-ing`.
    static func stem(_ word: String) -> String {
        var s = word.lowercased()
        if s.hasSuffix("'s") || s.hasSuffix("’s") { s.removeLast(2) }
        s.removeAll { $0 == "'" || $0 == "’" }
        if s.count > 4, s.hasSuffix("ies") { return String(s.dropLast(3)) + "y" }
        if s.count > 4, s.hasSuffix("sses") || s.hasSuffix("xes") || s.hasSuffix("ches") || s.hasSuffix("shes") { return String(s.dropLast(2)) }
        if s.count > 3, s.hasSuffix("s"), !s.hasSuffix("ss"), !s.hasSuffix("us"), !s.hasSuffix("is") { return String(s.dropLast()) }
        if s.count > 5, s.hasSuffix("ing") {
            let base = String(s.dropLast(3))
            // adding → add, listing → list
            if let last = base.last, base.count > 2, base.dropLast().last == last { return String(base.dropLast()) }
            return base
        }
        return s
    }

    /// What a word means to the matcher: `verb:<family>`, `noun:<canonical>`, or nil for a stop word.
    static func concept(_ word: String) -> String? {
        let lower = word.lowercased()
        let stemmed = stem(lower)
        if stopWords.contains(lower) || stopWords.contains(stemmed) { return nil }
        if let family = verbFamilies[lower] ?? verbFamilies[stemmed] { return "verb:" + family }
        if let noun = nounSynonyms[lower] ?? nounSynonyms[stemmed] { return "noun:" + noun }
        guard stemmed.count > 1, !stemmed.allSatisfy(\.isNumber) else { return nil }
        return "noun:" + stemmed
    }

    /// Everyday phrases that mean one verb ("get rid of" is delete, not get).
    static let phrases: [(String, String)] = [
        ("get rid of", "delete"), ("check off", "complete"), ("cross off", "complete"), ("tick off", "complete"),
        ("to do list", "todo list"), ("to-do list", "todo list"), ("remind me to", "add a reminder to"), ("remind me", "add a reminder"),
        ("who am i", "whoami"),
    ]

    /// Number words a user may type for a small id.
    static let numberWords: [String: Double] = [
        "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9, "ten": 10,
    ]

    /// Words in a tool's name that stand for the caller (`get_me`, `whoami`).
    static let selfWords: Set<String> = ["me", "self", "whoami", "myself", "current"]

    /// Splits an identifier into words: `add_pull_request_comment`, `getTodos`, `create-todo`.
    /// Prose (descriptions, what the user says) is not split at case changes: GitHub stays one word.
    static func words(_ text: String, splitCase: Bool = true) -> [String] {
        var words: [String] = []
        var current = ""
        var previous: Character?
        for ch in text {
            if ch.isLetter || ch.isNumber || ch == "'" || ch == "’" {
                if splitCase, let p = previous, p.isLowercase, ch.isUppercase, !current.isEmpty {
                    words.append(current)
                    current = ""
                }
                current.append(ch)
            } else if !current.isEmpty {
                words.append(current)
                current = ""
            }
            previous = ch
        }
        if !current.isEmpty { words.append(current) }
        return words.map { $0.trimmingApostrophes }.filter { !$0.isEmpty }
    }
}

extension String {
    var trimmingApostrophes: String {
        var s = Substring(self)
        while let f = s.first, f == "'" || f == "’" { s.removeFirst() }
        while let l = s.last, l == "'" || l == "’" { s.removeLast() }
        return String(s)
    }
}
