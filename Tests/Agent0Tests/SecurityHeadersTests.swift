import Foundation
import Testing

/// The security headers on every kind of answer (the page, static files, JSON, errors,
/// redirects), and that nothing ever opens agent0 to other origins (no CORS).
@Suite("agent0 security headers")
struct SecurityHeadersTests {
    /// A `Content-Security-Policy` as directive → sources.
    static func directives(_ csp: String) -> [String: [String]] {
        var out: [String: [String]] = [:]
        for part in csp.split(separator: ";") {
            let words = part.split(separator: " ").map(String.init)
            guard let name = words.first else { continue }
            out[name.lowercased()] = Array(words.dropFirst())
        }
        return out
    }

    static func expectHeaders(_ answer: Answer, _ what: String, sourceLocation: SourceLocation = #_sourceLocation) {
        let csp = answer.header("Content-Security-Policy") ?? ""
        let d = directives(csp)
        #expect(d["default-src"] == ["'none'"], "\(what): \(csp)", sourceLocation: sourceLocation)
        #expect(d["script-src"] == ["'self'"], "\(what): \(csp)", sourceLocation: sourceLocation)
        #expect(d["style-src"] == ["'self'"], "\(what): \(csp)", sourceLocation: sourceLocation)
        #expect(d["connect-src"] == ["'self'"], "\(what): \(csp)", sourceLocation: sourceLocation)
        #expect(d["frame-ancestors"] == ["'none'"], "\(what): \(csp)", sourceLocation: sourceLocation)
        #expect(d["base-uri"] == ["'none'"], "\(what): \(csp)", sourceLocation: sourceLocation)
        #expect(d["form-action"] == ["'self'"], "\(what): \(csp)", sourceLocation: sourceLocation)
        for source in d.values.joined() {
            #expect(!source.contains("unsafe") && source != "*" && !source.hasPrefix("http"), "\(what): \(source) in \(csp)", sourceLocation: sourceLocation)
        }
        #expect(answer.header("X-Content-Type-Options") == "nosniff", "\(what)", sourceLocation: sourceLocation)
        #expect(answer.header("X-Frame-Options") == "DENY", "\(what)", sourceLocation: sourceLocation)
        #expect(answer.header("Referrer-Policy") == "no-referrer", "\(what)", sourceLocation: sourceLocation)
        #expect(answer.header("Cross-Origin-Opener-Policy") == "same-origin-allow-popups", "\(what)", sourceLocation: sourceLocation)
        #expect(answer.header("Permissions-Policy")?.contains("camera=()") == true, "\(what)", sourceLocation: sourceLocation)
        let cors = answer.headers.map(\.name).filter { $0.lowercased().hasPrefix("access-control-") }
        #expect(cors.isEmpty, "\(what) carries \(cors)", sourceLocation: sourceLocation)
        #expect(answer.headers["Content-Security-Policy"].count == 1, "\(what): one policy", sourceLocation: sourceLocation)
    }

    @Test("the page, static files, JSON answers, errors and redirects all carry the headers, never Access-Control-Allow-Origin, even when another Origin asks")
    func everyAnswer() async throws {
        try await withAgent0Stack { stack in
            let browser = stack.browser()
            let foreign = [("Origin", "http://evil.example")]

            let page = try await browser.get(stack.url("/"), headers: foreign)
            #expect(page.status == 200)
            #expect(page.header("Content-Type")?.hasPrefix("text/html") == true)
            Self.expectHeaders(page, "GET /")

            // What the CSP allows is what the page needs: scripts and styles from /static, nothing inline.
            let scripts = page.body.matches(of: /<script\b([^>]*)>/).map { String($0.1) }
            #expect(!scripts.isEmpty)
            for attributes in scripts {
                #expect(attributes.contains("src=\"/static/"), "an inline or foreign script: <script\(attributes)>")
            }
            #expect(!page.body.contains("<style"), "no inline <style>")
            #expect(page.body.firstMatch(of: /\sstyle="/) == nil, "no style attributes")
            #expect(page.body.firstMatch(of: /\son[a-z]+="/) == nil, "no inline event handlers")

            let sources = page.body.matches(of: /(?:src|href)="(\/static\/[^"]+)"/).map { String($0.1) }
            #expect(sources.contains("/static/app.js"))
            for path in sources {
                let file = try await browser.get(stack.url(path), headers: foreign)
                #expect(file.status == 200, "\(path): \(file.status)")
                #expect(file.header("Content-Type")?.hasPrefix(path.hasSuffix(".css") ? "text/css" : "text/javascript") == true, "\(path)")
                Self.expectHeaders(file, "GET \(path)")
            }

            // A static file revalidated (304) keeps them.
            let js = try await browser.get(stack.url("/static/app.js"))
            let etag = try #require(js.header("ETag"))
            let notModified = try await browser.get(stack.url("/static/app.js"), headers: [("If-None-Match", etag)])
            #expect(notModified.status == 304)
            Self.expectHeaders(notModified, "304 /static/app.js")

            // JSON answers, errors and redirects.
            Self.expectHeaders(try await browser.get(stack.url("/health"), headers: foreign), "GET /health")
            Self.expectHeaders(try await browser.get(stack.url("/auth/status"), headers: foreign), "GET /auth/status")
            let unauthorized = try await browser.get(stack.url("/api/history"), headers: foreign)
            #expect(unauthorized.status == 401)
            Self.expectHeaders(unauthorized, "401 /api/history")
            Self.expectHeaders(try await browser.get(stack.url("/nope"), headers: foreign), "404")
            let login = try await browser.get(stack.url("/login"), headers: foreign)
            #expect(login.status == 302)
            Self.expectHeaders(login, "302 /login")
            let refused = try await browser.get(stack.url("/callback?code=x&state=y"), headers: foreign)
            #expect(refused.status == 400)
            Self.expectHeaders(refused, "400 /callback")

            // Signed in: an API answer, a refused POST, a CORS preflight.
            let alice = try await stack.signIn(browser)
            let history = try await browser.get(stack.url("/api/history"), headers: foreign)
            #expect(history.status == 200)
            #expect(history.header("Cache-Control") == "no-store")
            Self.expectHeaders(history, "GET /api/history")
            let chat = try await stack.chat(browser, alice, "hello")
            #expect(chat.status == 200)
            #expect(chat.header("Cache-Control") == "no-store")
            Self.expectHeaders(chat, "POST /api/chat")
            let csrf = try await stack.post(browser, "/api/chat", json: #"{"message":"x"}"#, csrf: alice.csrf, origin: "http://evil.example")
            #expect(csrf.status == 403)
            Self.expectHeaders(csrf, "403 POST /api/chat")
            let preflight = try await browser.send(
                .OPTIONS, stack.url("/api/chat"),
                headers: foreign + [("Access-Control-Request-Method", "POST"), ("Access-Control-Request-Headers", "x-csrf-token, content-type")])
            #expect(!(200..<300).contains(preflight.status), "no preflight is granted: \(preflight)")
            Self.expectHeaders(preflight, "OPTIONS /api/chat")
        }
    }
}
