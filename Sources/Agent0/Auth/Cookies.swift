/// agent0's two cookies. Names differ from the IdP's (`sb_idp_session`): cookies do not
/// separate ports, and in development both run on 127.0.0.1.
enum Cookies {
    static let session = "agent0_session"
    /// The sign-in in progress (state, nonce and verifier stay on the server).
    static let login = "agent0_login"

    /// The value of `name` in a `Cookie` header.
    static func value(_ name: String, in header: String?) -> String? {
        guard let header else { return nil }
        for pair in header.split(separator: ";") {
            let trimmed = pair.drop { $0 == " " }
            guard let eq = trimmed.firstIndex(of: "="), trimmed[..<eq] == name else { continue }
            let value = trimmed[trimmed.index(after: eq)...]
            return value.isEmpty ? nil : String(value)
        }
        return nil
    }

    /// A `Set-Cookie` value: HttpOnly, SameSite=Lax, Path=/, Secure over https.
    static func set(_ name: String, _ value: String, maxAge: Int, secure: Bool) -> String {
        "\(name)=\(value); Path=/; HttpOnly; SameSite=Lax; Max-Age=\(max(0, maxAge))" + (secure ? "; Secure" : "")
    }

    static func clear(_ name: String, secure: Bool) -> String { set(name, "", maxAge: 0, secure: secure) }
}
