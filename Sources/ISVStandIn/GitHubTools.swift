import Foundation
import SwitchboardJSON
import MCPServerKit

/// The MCP tools of the stand-in (a GitHub MCP server subset).
struct GitHubTools: MCPToolbox {
    let store: CommentStore
    let base: String

    var serverInfo: JSONValue { ["name": "isv-github", "title": "GitHub (offline stand-in)", "version": "1.0.0"] }
    var instructions: String { "Comment on pull requests of the offline GitHub stand-in." }

    var listing: JSONValue {
        [
            ["name": "add_pull_request_comment", "title": "Comment on a pull request",
             "description": "Add a comment to a GitHub pull request.",
             "inputSchema": ["type": "object", "properties": [
                 "owner": ["type": "string", "description": "Repository owner, e.g. acme"],
                 "repo": ["type": "string", "description": "Repository name, e.g. app"],
                 "pull_number": ["type": "integer", "minimum": 1, "description": "Pull request number"],
                 "body": ["type": "string", "minLength": 1, "description": "The comment text"],
             ], "required": ["owner", "repo", "pull_number", "body"]]],
            ["name": "get_me", "title": "Who am I", "description": "The GitHub user the token acts for.",
             "inputSchema": ["type": "object", "properties": [:]]],
        ]
    }

    func requiredScopes(for tool: String) -> Set<String>? {
        ["add_pull_request_comment", "get_me"].contains(tool) ? [] : nil
    }

    func call(_ name: String, arguments: [String: JSONValue], owner: String) async throws -> JSONValue {
        switch name {
        case "get_me":
            return result("You are \(owner).", structured: ["login": .string(owner)])
        default:
            guard let repoOwner = arguments["owner"]?.string, !repoOwner.isEmpty, let repo = arguments["repo"]?.string, !repo.isEmpty else {
                return error("add_pull_request_comment needs 'owner' and 'repo'.")
            }
            guard let number = arguments["pull_number"]?.positiveInteger else { return error("'pull_number' must be a whole number ≥ 1.") }
            guard let body = arguments["body"]?.string?.trimmingCharacters(in: .whitespacesAndNewlines), !body.isEmpty, body.count <= 65_536 else {
                return error("'body' must be non-empty text (at most 65536 characters).")
            }
            let comment = try await store.add(owner: repoOwner, repo: repo, number: number, body: body, author: owner)
            let json = CommentStore.json(comment, base: base)
            return result("Commented on \(repoOwner)/\(repo)#\(number): \(json["html_url"]?.string ?? "")", structured: json)
        }
    }

    func result(_ text: String, structured: JSONValue) -> JSONValue {
        ["content": [["type": "text", "text": .string(text)]], "structuredContent": structured, "isError": false]
    }

    func error(_ text: String) -> JSONValue {
        ["content": [["type": "text", "text": .string(text)]], "isError": true]
    }
}
