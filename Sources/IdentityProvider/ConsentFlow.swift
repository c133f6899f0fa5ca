import Foundation
import Hummingbird
import OAuthCore

/// The brokered-consent pages behind `interaction_uri`, and revocation.
extension IdPRoutes {
    func csrfToken(sessionID: String, interactionID: String) -> String {
        SHA256Hex.of("csrf:" + sessionID + ":" + interactionID)
    }

    func interactionPage(_ request: Request, id: String) async -> Response {
        guard let pending = try? idp.store.interaction(id, now: idp.now()), let app = idp.config.app(resource: pending.resource) else {
            return html(HTMLPages.message("Link expired", "This consent request is unknown or has expired. Ask the agent again."), status: .notFound)
        }
        guard let (user, _, sessionID) = currentUser(request) else {
            return html(HTMLPages.page("Sign in first", "<p>Sign in as the user the agent acts for, then open this link again.</p>"), status: .unauthorized)
        }
        guard user.id == pending.userID else {
            return html(HTMLPages.message("Wrong user", "This request belongs to another user. Sign out and sign in as them."), status: .forbidden)
        }
        return html(HTMLPages.consent(appName: app.name, agentID: pending.agentID, scopes: app.scopes, interactionID: id,
                                      csrf: csrfToken(sessionID: sessionID, interactionID: id), userName: user.name))
    }

    func interactionDecision(_ request: Request, id: String) async -> Response {
        guard let pending = try? idp.store.interaction(id, now: idp.now()), let app = idp.config.app(resource: pending.resource) else {
            return html(HTMLPages.message("Link expired", "This consent request is unknown or has expired."), status: .notFound)
        }
        guard let (user, _, sessionID) = currentUser(request), user.id == pending.userID else {
            return html(HTMLPages.message("Not allowed", "Sign in as the user this request belongs to."), status: .forbidden)
        }
        guard let form = try? await FormFields.read(request), let csrf = form["csrf"],
              constantTimeEquals(csrf, csrfToken(sessionID: sessionID, interactionID: id))
        else {
            return html(HTMLPages.message("Not allowed", "The form is stale; open the link again."), status: .forbidden)
        }
        try? idp.store.deleteInteraction(id)
        if form["decision"] == "approve" {
            do { try idp.store.grantConsent(userID: user.id, resource: pending.resource, agentID: pending.agentID) } catch {
                return html(HTMLPages.message("Error", "Try again."), status: .internalServerError)
            }
            idp.logger.info("consent granted", metadata: ["user": "\(user.username)", "app": "\(app.id)", "agent": "\(pending.agentID)"])
            return html(HTMLPages.message("\(app.name) connected", "You can close this window and return to the agent."))
        }
        idp.logger.info("consent denied", metadata: ["user": "\(user.username)", "app": "\(app.id)"])
        return html(HTMLPages.message("Not connected", "\(app.name) was not connected."))
    }

    /// RFC 7009. For an STS token (`token_type_hint=oauth_sts`, or any token one of our apps
    /// signed) the user's consent for that app is removed too.
    func revoke(_ request: Request) async -> Response {
        do throws(OAuthError) {
            let form = try await FormFields.read(request)
            let client = try await idp.authenticateClient(form, headers: request.headers, tokenEndpoint: idp.issuer + "/oauth2/v1/revoke")
            let token = try form.required("token")
            for app in idp.config.thirdPartyApps {
                guard let ring = idp.appRings[app.id] else { continue }
                let policy = TokenPolicy(issuer: idp.appIssuer(app.id), audiences: [app.audience], types: ["at+jwt"], maxLifetime: .seconds(86_400))
                guard let claims = try? await JWTVerifier(policy: policy, keySet: ring.keySet).verify(token) else { continue }
                guard claims.clientID == client.id else { throw OAuthError(error: "unauthorized_client", description: "the token was issued to another client") }
                if let jti = claims.jwtID { try? idp.store.revoke(jti: jti, expiresAt: claims.expiresAt) }
                if let sub = claims.subject { try? idp.store.revokeConsent(userID: sub, resource: app.resource, agentID: client.id) }
                idp.logger.info("STS grant revoked", metadata: ["app": "\(app.id)", "agent": "\(client.id)"])
                return Response(status: .ok, headers: [.cacheControl: "no-store"])
            }
            if let claims = JWTPeek.unverifiedClaims(token), let jti = claims["jti"] as? String, claims["iss"] as? String == idp.issuer {
                let verifier = JWTVerifier(policy: .accessToken(issuer: idp.issuer, resource: idp.issuer), keySet: idp.org.keySet)
                if let verified = try? await verifier.verify(token), verified.clientID == client.id {
                    try? idp.store.revoke(jti: jti, expiresAt: verified.expiresAt)
                }
            }
            return Response(status: .ok, headers: [.cacheControl: "no-store"])  // RFC 7009: unknown tokens are not an error
        } catch {
            return error.response()
        }
    }
}
