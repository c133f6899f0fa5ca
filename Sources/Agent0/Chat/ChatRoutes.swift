import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import OAuthCore
import SwitchboardJSON

/// `/api/chat`, `/api/chat/resume`, `/api/history`, `/api/connections`: the signed-in user's API.
struct ChatRoutes: Sendable {
    let agent: Agent0
    static let csrfHeader = HTTPField.Name("X-CSRF-Token")!
    static let maxMessage = 16_000

    func register(on router: Router<BasicRequestContext>) {
        router.post("/api/chat") { request, _ in
            await withSession(request, post: true) { session in
                let body = try await Self.readObject(request)
                guard let text = body["message"]?.string?.trimmingCharacters(in: .whitespacesAndNewlines), !text.isEmpty else {
                    throw AgentError.invalidRequest("send {\"message\": \"…\"} with a non-empty message")
                }
                guard text.count <= Self.maxMessage else { throw AgentError.invalidRequest("a message may have at most \(Self.maxMessage) characters") }
                return try await turn(session) { state throws(TurnRunner.Failure) in
                    try await agent.runner.say(text, user: session.user, state: &state)
                }
            }
        }
        router.post("/api/chat/resume") { request, _ in
            await withSession(request, post: true) { session in
                let body = try await Self.readObject(request)
                guard let id = body["consent_id"]?.string, !id.isEmpty else { throw AgentError.invalidRequest("send {\"consent_id\": \"…\"}") }
                return try await turn(session) { state throws(TurnRunner.Failure) in
                    try await agent.runner.resume(consentID: id, user: session.user, state: &state)
                }
            }
        }
        router.get("/api/history") { request, _ in
            await withSession(request, post: false) { session in
                jsonResponse(["entries": await session.conversation.history])
            }
        }
        router.get("/api/connections") { request, _ in
            await withSession(request, post: false) { session in
                // The gateway's status with this user's view; it holds no secret or token.
                let answer: GatewayAnswer
                do throws(GatewayCallFailure) {
                    answer = try await agent.gateway.send(.GET, "/api/connections/status", idToken: session.user.idToken)
                } catch {
                    throw AgentError(code: "gateway_unavailable", status: .badGateway, message: "the gateway could not be reached")
                }
                if answer.status == 401 { throw AgentError.sessionExpired }
                guard answer.status == 200, answer.json != nil else {
                    throw AgentError(code: "gateway_unavailable", status: .badGateway, message: "the gateway's status could not be read (status \(answer.status))")
                }
                return Response(status: .ok, headers: [.contentType: "application/json", .cacheControl: "no-store"], body: .init(byteBuffer: answer.body))
            }
        }
    }

    /// Runs one turn on the session's conversation (one at a time per session).
    private func turn(_ session: Session, _ run: (inout ConversationState) async throws(TurnRunner.Failure) -> TurnAnswer) async throws(AgentError) -> Response {
        guard var state = await session.conversation.begin() else {
            throw AgentError(code: "turn_in_progress", status: .conflict, message: "the previous message is still being answered")
        }
        do throws(TurnRunner.Failure) {
            let answer = try await run(&state)
            await session.conversation.end(state)
            return jsonResponse(answer)
        } catch {
            await session.conversation.end(nil)
            switch error {
            case .model(let why): throw AgentError(code: "model_unavailable", status: .badGateway, message: why)
            case .gateway(let code, let why):
                if code == "invalid_user_token" { throw AgentError.sessionExpired }
                throw AgentError(code: "gateway_unavailable", status: .badGateway, message: why)
            case .nothingWaiting: throw AgentError(code: "nothing_waiting", status: .conflict, message: "no tool call waits for that consent")
            }
        }
    }

    /// The session behind the cookie (401 otherwise) and, for a POST, the CSRF check.
    private func withSession(_ request: Request, post: Bool, _ body: (Session) async throws -> Response) async -> Response {
        let session: Session
        switch await agent.sessions.lookup(Cookies.value(Cookies.session, in: request.headers[.cookie])) {
        case .none: return AgentError.notSignedIn.response()
        case .expired: return AgentError.sessionExpired.response()
        case .valid(let s): session = s
        }
        if post, let problem = Self.csrfProblem(request, session: session, agent: agent) { return problem.response() }
        do {
            return try await body(session)
        } catch let error as AgentError {
            return error.response()
        } catch {
            return AgentError(code: "internal_error", status: .internalServerError, message: "agent0 failed to handle the request").response()
        }
    }

    /// Synchronizer token (the session's, sent in `X-CSRF-Token`) and, when the browser says
    /// where the request comes from, that it is agent0's own origin.
    static func csrfProblem(_ request: Request, session: Session, agent: Agent0) -> AgentError? {
        if let origin = request.headers[.origin], origin != agent.origin { return .csrfFailed }
        guard let token = request.headers[csrfHeader], constantTimeEquals(token, session.csrfToken) else { return .csrfFailed }
        return nil
    }

    /// A JSON object body of at most 64 KiB.
    static func readObject(_ request: Request) async throws -> JSONValue {
        let buffer: ByteBuffer
        do { buffer = try await request.body.collect(upTo: 64 * 1024) } catch {
            throw AgentError(code: "payload_too_large", status: .contentTooLarge, message: "the request body may have at most 64 KiB")
        }
        guard let value = JSONValue.parse(buffer.readableBytesView), value.object != nil else {
            throw AgentError.invalidRequest("the body must be a JSON object")
        }
        return value
    }
}
