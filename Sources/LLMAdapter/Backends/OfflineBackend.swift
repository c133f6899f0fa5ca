import Foundation
import NIOCore
import SwitchboardJSON

/// The default backend: the deterministic offline planner, answering in the Messages shape,
/// as one JSON message or as proper Messages SSE events. Needs no key and no network.
struct OfflineBackend: LLMBackend {
    static let modelName = "switchboard-offline-planner"
    var name: String { "offline" }
    var model: String? { Self.modelName }
    let planner = OfflinePlanner()

    func respond(to request: MessagesRequest, requestID: String) async throws(LLMError) -> BackendReply {
        let plan = Self.fitted(planner.plan(request), maxTokens: request.maxTokens)
        let message = MessageEncoder(id: "msg_" + requestID, model: Self.modelName, inputTokens: Self.estimateTokens(JSONValue.object(request.body.filter { $0.key != "stream" }).encoded().count), plan: plan)
        if request.stream {
            let events = message.events()
            return .events(AsyncThrowingStream { continuation in
                for event in events { continuation.yield(event) }
                continuation.finish()
            })
        }
        return .message(ByteBuffer(bytes: message.json.encoded()))
    }

    /// About four bytes a token: good enough for `usage`, which nobody bills here.
    static func estimateTokens(_ bytes: Int) -> Int { max(1, (bytes + 3) / 4) }

    /// Cuts the answer at `max_tokens`, as a model would (`stop_reason: "max_tokens"`).
    static func fitted(_ plan: OfflinePlanner.Plan, maxTokens: Int) -> OfflinePlanner.Plan {
        var budget = maxTokens * 4
        var blocks: [OfflinePlanner.Block] = []
        for block in plan.blocks {
            switch block {
            case .text(let text):
                if text.utf8.count <= budget {
                    blocks.append(block)
                    budget -= text.utf8.count
                } else {
                    // Whole characters only: never half of a multi-byte one.
                    var cut = ""
                    var used = 0
                    for ch in text {
                        let size = ch.utf8.count
                        guard used + size <= budget else { break }
                        cut.append(ch)
                        used += size
                    }
                    blocks.append(.text(cut))
                    return OfflinePlanner.Plan(blocks: blocks, stopReason: "max_tokens")
                }
            case .toolUse(_, _, let input):
                let size = input.encoded().count + 16
                guard size <= budget else { return OfflinePlanner.Plan(blocks: blocks, stopReason: "max_tokens") }
                blocks.append(block)
                budget -= size
            }
        }
        return OfflinePlanner.Plan(blocks: blocks, stopReason: plan.stopReason)
    }
}

/// One planned answer as a Messages API message and as its SSE events.
struct MessageEncoder: Sendable {
    let id: String
    let model: String
    let inputTokens: Int
    let plan: OfflinePlanner.Plan

    var outputTokens: Int {
        OfflineBackend.estimateTokens(plan.blocks.reduce(0) { total, block in
            switch block {
            case .text(let t): return total + t.utf8.count
            case .toolUse(_, let name, let input): return total + name.utf8.count + input.encoded().count
            }
        })
    }

    func blockJSON(_ block: OfflinePlanner.Block) -> JSONValue {
        switch block {
        case .text(let t): return ["type": "text", "text": .string(t)]
        case .toolUse(let id, let name, let input): return ["type": "tool_use", "id": .string(id), "name": .string(name), "input": input]
        }
    }

    var json: JSONValue {
        [
            "id": .string(id), "type": "message", "role": "assistant", "model": .string(model),
            "content": .array(plan.blocks.map(blockJSON)), "stop_reason": .string(plan.stopReason), "stop_sequence": .null,
            "usage": ["input_tokens": .number(Double(inputTokens)), "output_tokens": .number(Double(outputTokens))],
        ]
    }

    /// `message_start`, `ping`, per block `content_block_start` / `…_delta`s / `…_stop`,
    /// `message_delta` (stop reason, usage), `message_stop`.
    func events() -> [ByteBuffer] {
        var events: [ByteBuffer] = []
        events.append(SSE.event("message_start", [
            "type": "message_start",
            "message": [
                "id": .string(id), "type": "message", "role": "assistant", "model": .string(model), "content": [],
                "stop_reason": .null, "stop_sequence": .null, "usage": ["input_tokens": .number(Double(inputTokens)), "output_tokens": 1],
            ],
        ]))
        events.append(SSE.event("ping", ["type": "ping"]))
        for (index, block) in plan.blocks.enumerated() {
            let i = JSONValue.number(Double(index))
            switch block {
            case .text(let text):
                events.append(SSE.event("content_block_start", ["type": "content_block_start", "index": i, "content_block": ["type": "text", "text": ""]]))
                for piece in Self.pieces(of: text, size: 24) {
                    events.append(SSE.event("content_block_delta", ["type": "content_block_delta", "index": i, "delta": ["type": "text_delta", "text": .string(piece)]]))
                }
            case .toolUse(let id, let name, let input):
                events.append(SSE.event("content_block_start", [
                    "type": "content_block_start", "index": i, "content_block": ["type": "tool_use", "id": .string(id), "name": .string(name), "input": [:]],
                ]))
                let json = String(decoding: input.encoded(), as: UTF8.self)
                for piece in Self.pieces(of: json, size: 32) {
                    events.append(SSE.event("content_block_delta", ["type": "content_block_delta", "index": i, "delta": ["type": "input_json_delta", "partial_json": .string(piece)]]))
                }
            }
            events.append(SSE.event("content_block_stop", ["type": "content_block_stop", "index": i]))
        }
        events.append(SSE.event("message_delta", [
            "type": "message_delta", "delta": ["stop_reason": .string(plan.stopReason), "stop_sequence": .null],
            "usage": ["output_tokens": .number(Double(outputTokens))],
        ]))
        events.append(SSE.event("message_stop", ["type": "message_stop"]))
        return events
    }

    /// Splits text into pieces of about `size` characters, after a space where there is one.
    static func pieces(of text: String, size: Int) -> [String] {
        var out: [String] = []
        var current = ""
        for ch in text {
            current.append(ch)
            if current.count >= size, ch == " " || current.count >= size * 2 {
                out.append(current)
                current = ""
            }
        }
        if !current.isEmpty || out.isEmpty { out.append(current) }
        return out
    }
}
