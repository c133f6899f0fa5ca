import Testing
@testable import LLMAdapter
import SwitchboardJSON

private let probeTools: JSONValue = [
    ["name": "get-todos", "description": "List the signed-in user's todos with their ids and whether each is done.",
     "input_schema": ["type": "object", "properties": [:], "additionalProperties": false]],
    ["name": "create-todo", "description": "Add a todo for the signed-in user.",
     "input_schema": ["type": "object", "properties": ["title": ["type": "string", "minLength": 1, "maxLength": 500, "description": "What to do"]],
                      "required": ["title"], "additionalProperties": false]],
    ["name": "toggle-todo", "description": "Flip a todo between done and not done, by id.",
     "input_schema": ["type": "object", "properties": ["id": ["type": "integer", "minimum": 1, "description": "The todo's id"]],
                      "required": ["id"], "additionalProperties": false]],
    ["name": "delete-todo", "description": "Delete a todo, by id.",
     "input_schema": ["type": "object", "properties": ["id": ["type": "integer", "minimum": 1, "description": "The todo's id"]],
                      "required": ["id"], "additionalProperties": false]],
    ["name": "add_pull_request_comment", "description": "Add a comment to a GitHub pull request.",
     "input_schema": ["type": "object", "properties": [
         "owner": ["type": "string", "description": "Repository owner, e.g. acme"],
         "repo": ["type": "string", "description": "Repository name, e.g. app"],
         "pull_number": ["type": "integer", "minimum": 1, "description": "Pull request number"],
         "body": ["type": "string", "minLength": 1, "description": "The comment text"],
     ], "required": ["owner", "repo", "pull_number", "body"]]],
    ["name": "get_me", "description": "The GitHub user the token acts for.", "input_schema": ["type": "object", "properties": [:]]],
]

@Test func probePlanner() throws {
    let prompts = (try? String(contentsOfFile: "/tmp/probe/prompts.txt", encoding: .utf8))?.split(separator: "\n").map(String.init) ?? []
    var out = ""
    for p in prompts {
        let req = try MessagesRequest(json: ["model": "m", "max_tokens": 100, "messages": [["role": "user", "content": .string(p)]], "tools": probeTools])
        let plan = OfflinePlanner().plan(req)
        var line = "\(p)  =>  "
        for b in plan.blocks {
            switch b {
            case .text(let t): line += "[text: \(t.replacingOccurrences(of: "\n", with: " | ").prefix(160))] "
            case .toolUse(_, let n, let i): line += "[TOOL \(n) \(String(decoding: i.encoded(), as: UTF8.self))] "
            }
        }
        out += line + "\n"
    }
    try out.write(toFile: "/tmp/probe/out.txt", atomically: true, encoding: .utf8)
}
