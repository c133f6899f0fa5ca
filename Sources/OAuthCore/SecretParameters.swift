/// OAuth 2.0 and OpenID Connect parameters whose values are secrets or single-use credentials
/// (an authorization code, a token, a CSRF `state`): what a service must not record when it
/// records a request's query, as its tracing middleware does (`url.query`).
public enum SecretParameters {
    public static let query: Set<String> = [
        "code", "state", "nonce", "code_verifier", "code_challenge", "id_token_hint", "id_token", "access_token", "refresh_token",
        "token", "client_secret", "assertion", "client_assertion", "subject_token", "actor_token", "login_hint", "session_state",
    ]
}
