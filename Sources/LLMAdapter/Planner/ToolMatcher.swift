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
        var scored: [Candidate] = []
        for tool in tools where tool.inputSchema["x-server-tool"] == nil {
            let nameConcepts = Set(PlannerVocabulary.words(tool.name).compactMap(PlannerVocabulary.concept))
            let descriptionConcepts = Set(PlannerVocabulary.words(tool.description).compactMap(PlannerVocabulary.concept))
            var score = 0
            var noun = false
            var verb = false
            for concept in said {
                let weight = nameConcepts.contains(concept) ? 3 : descriptionConcepts.contains(concept) ? 1 : 0
                guard weight > 0 else { continue }
                score += weight
                if concept.hasPrefix("noun:") { noun = true } else { verb = true }
            }
            // Naming the tool outright wins.
            if lower.contains(tool.name.lowercased()) { score += 10; noun = true }
            scored.append(Candidate(tool: tool, score: score, nounMatched: noun, verbMatched: verb, concepts: nameConcepts.union(descriptionConcepts)))
        }
        let verbOnly = scored.filter { $0.verbMatched && !$0.nounMatched }
        return scored.filter { $0.score > 0 && ($0.nounMatched || (verbOnly.count == 1 && !scored.contains { $0.nounMatched })) }
            .sorted { $0.score > $1.score }
    }
}
