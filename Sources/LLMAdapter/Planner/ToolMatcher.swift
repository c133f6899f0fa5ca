import SwitchboardJSON

/// Scores the offered tools against what the user said. Generic: it knows verb families and
/// synonyms, never a tool by name. A word in the tool's name counts 3, in its description 1;
/// a tool qualifies when a noun matches (what to act on), or when it alone matches the verb.
struct ToolMatcher: Sendable {
    struct Candidate: Sendable {
        var tool: MessagesRequest.Tool
        var score: Int
        var nounMatched: Bool
        var verbMatched: Bool
        /// Concepts of the tool (name and description), used to drop matched words from free text.
        var concepts: Set<String>
    }

    let tools: [MessagesRequest.Tool]

    func candidates(for utterance: Utterance) -> [Candidate] {
        let said = utterance.concepts
        let lower = utterance.lowercased
        // The first verb says what to do; later ones ("…to my todo list") only hint.
        let firstVerb = utterance.words.first { $0.concept?.hasPrefix("verb:") == true }?.concept
        var scored: [Candidate] = []
        for tool in tools where tool.inputSchema["x-server-tool"] == nil {
            let nameConcepts = Set(PlannerVocabulary.words(tool.name).map { word -> String? in
                PlannerVocabulary.selfWords.contains(word.lowercased()) ? "verb:identity" : PlannerVocabulary.concept(word)
            }.compactMap { $0 })
            let descriptionConcepts = Set(PlannerVocabulary.words(tool.description, splitCase: false).compactMap(PlannerVocabulary.concept))
            var score = 0
            var noun = false
            var verb = false
            for concept in said {
                var weight = nameConcepts.contains(concept) ? 3 : descriptionConcepts.contains(concept) ? 1 : 0
                guard weight > 0 else { continue }
                if concept.hasPrefix("verb:") {
                    if let firstVerb, concept != firstVerb { weight = 1 }
                    verb = true
                } else {
                    noun = true
                }
                score += weight
            }
            // Naming the tool outright wins.
            if lower.contains(tool.name.lowercased()) { score += 10; noun = true }
            scored.append(Candidate(tool: tool, score: score, nounMatched: noun, verbMatched: verb, concepts: nameConcepts.union(descriptionConcepts)))
        }
        // Without a noun match, a verb alone decides only when one tool holds the best verb score.
        let verbOnly = scored.filter { $0.verbMatched && !$0.nounMatched }
        let bestVerbOnly = verbOnly.map(\.score).max() ?? 0
        let verbWinner = scored.contains { $0.nounMatched } ? nil : verbOnly.filter { $0.score == bestVerbOnly }.count == 1 ? verbOnly.first { $0.score == bestVerbOnly } : nil
        return scored.filter { $0.score > 0 && ($0.nounMatched || $0.tool.name == verbWinner?.tool.name) }
            .sorted { $0.score > $1.score }
    }
}
