"""The development identity provider (`switchboard idp`) against code nobody here wrote.

    authlib OAuth2Session ── authorize (sign-in page driven with requests) ──> IdP
                          ── token (client_secret_basic / client_secret_post) ─┘
    PyJWT + jwcrypto      ── verify ID token, ID-JAG, access token, STS token against the JWKS
    PyJWT client assertions (private_key_jwt, the agent key from --init-agent, loaded with cryptography)
                          ── token exchange → ID-JAG → JWT-bearer grant at /oauth2/todo-mcp
                          ── OAuth STS: interaction_required → consent page → token → revoke

Wire reference: /work/shared/docs/PROTOCOLS.md sections A-D and G.
Run: python3 -m pytest Tests/interop/test_idp_interop.py -q
"""

from __future__ import annotations

import base64
import json
import time
from urllib.parse import parse_qs, urljoin, urlsplit

import jwt
import pytest
import requests
from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session
from jwcrypto import jwk as jwc_jwk
from jwcrypto import jwt as jwc_jwt

from idp_fixtures import (  # noqa: F401  (idp is a fixture)
    AGENT_ID,
    AGENT_KID,
    AS_ID,
    GITHUB_AUDIENCE,
    GITHUB_RESOURCE,
    ID_JAG_TYPE,
    ID_TOKEN_TYPE,
    JWT_BEARER,
    MCP_RESOURCE,
    REDIRECT_URI,
    STS_TYPE,
    TOKEN_EXCHANGE,
    USERS,
    WEB_CLIENT_ID,
    WEB_CLIENT_SECRET,
    IdP,
    idp,
    parse_forms,
    sign_in,
)

DEFAULT_SCOPES = "mcp:connect mcp:tools:read"
ALL_SCOPES = "mcp:connect mcp:tools:read mcp:tools:manage"


# --------------------------------------------------------------------------- helpers


def b64url_json(segment: str) -> dict:
    return json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))


def raw_claims(token: str) -> dict:
    """The payload exactly as sent (to tell a string `aud` from a one-element list)."""
    return b64url_json(token.split(".")[1])


def jwcrypto_verify(token: str, jwks_uri: str, check_claims: dict) -> tuple[dict, dict]:
    """Verify with jwcrypto against the JWK set at `jwks_uri`; returns (header, claims)."""
    keyset = jwc_jwk.JWKSet.from_json(requests.get(jwks_uri, timeout=5).text)
    t = jwc_jwt.JWT(jwt=token, key=keyset, algs=["RS256"], check_claims=check_claims, expected_type="JWS")
    return t.token.jose_header, json.loads(t.claims)


def pyjwt_verify(token: str, jwks_uri: str, *, audience: str, issuer: str, require: list[str]) -> dict:
    key = jwt.PyJWKClient(jwks_uri, cache_keys=False).get_signing_key_from_jwt(token)
    return jwt.decode(token, key.key, algorithms=["RS256"], audience=audience, issuer=issuer, options={"require": require}, leeway=60)


def authlib_login(idp: IdP, method: str, username: str = "alice") -> dict:
    """The authorization code flow with PKCE, authlib as the client, the sign-in page driven with
    requests. Returns the token, the nonce, the browser session and the token request authlib sent."""
    sent: list[requests.PreparedRequest] = []
    oauth = OAuth2Session(
        client_id=WEB_CLIENT_ID,
        client_secret=WEB_CLIENT_SECRET,
        scope="openid profile email",
        redirect_uri=REDIRECT_URI,
        code_challenge_method="S256",
        token_endpoint_auth_method=method,
    )
    oauth.hooks["response"].append(lambda r, *a, **k: sent.append(r.request))
    verifier = generate_token(64)
    nonce = generate_token(24)
    url, state = oauth.create_authorization_url(idp.authorization_endpoint, code_verifier=verifier, nonce=nonce)
    query = parse_qs(urlsplit(url).query)
    assert query["code_challenge_method"] == ["S256"] and query["code_challenge"], url

    browser = requests.Session()
    location = sign_in(browser, url, username, USERS[username]["password"])
    params = parse_qs(urlsplit(location).query)
    assert params["state"] == [state], location
    idp.remember(params["code"][0], browser.cookies.get("sb_idp_session"))

    token = oauth.fetch_token(idp.token_endpoint, authorization_response=location, code_verifier=verifier)
    idp.remember(token.get("access_token"), token.get("id_token"), token.get("refresh_token"))
    token_requests = [r for r in sent if r.url == idp.token_endpoint]
    assert len(token_requests) == 1
    return {"token": token, "nonce": nonce, "browser": browser, "location": location, "oauth": oauth,
            "verifier": verifier, "token_request": token_requests[0]}


def exchange_for_id_jag(idp: IdP, id_token: str, scope: str | None = DEFAULT_SCOPES, resource: str | None = MCP_RESOURCE) -> requests.Response:
    form = {
        "grant_type": TOKEN_EXCHANGE,
        "requested_token_type": ID_JAG_TYPE,
        "subject_token": id_token,
        "subject_token_type": ID_TOKEN_TYPE,
        "audience": idp.as_issuer,
    }
    if resource:
        form["resource"] = resource
    if scope:
        form["scope"] = scope
    return idp.agent_post(idp.token_endpoint, form)


def jwt_bearer_grant(idp: IdP, id_jag: str, token_endpoint: str) -> requests.Response:
    return idp.agent_post(token_endpoint, {"grant_type": JWT_BEARER, "assertion": id_jag})


def exchange_for_sts(idp: IdP, id_token: str) -> requests.Response:
    return idp.agent_post(idp.token_endpoint, {
        "grant_type": TOKEN_EXCHANGE,
        "requested_token_type": STS_TYPE,
        "subject_token": id_token,
        "subject_token_type": ID_TOKEN_TYPE,
        "resource": GITHUB_RESOURCE,
    })


def ok_json(r: requests.Response, what: str) -> dict:
    assert r.status_code == 200, f"{what}: HTTP {r.status_code} {r.text[:500]}"
    assert r.headers.get("content-type", "").startswith("application/json"), r.headers
    assert "no-store" in r.headers.get("cache-control", ""), f"{what}: Cache-Control {r.headers.get('cache-control')!r}"
    return r.json()


@pytest.fixture(scope="module")
def alice(idp: IdP) -> dict:
    """alice, signed in through the authorize flow (client_secret_basic); her browser session
    keeps the IdP's session cookie for the consent page."""
    return authlib_login(idp, "client_secret_basic")


# --------------------------------------------------------------------------- 1. OIDC with authlib


def test_discovery_document(idp: IdP):
    d = idp.discovery
    assert d["issuer"] == idp.issuer
    for name in ("authorization_endpoint", "token_endpoint", "jwks_uri", "revocation_endpoint"):
        assert d[name].startswith(idp.issuer + "/"), (name, d[name])
    assert "S256" in d["code_challenge_methods_supported"]
    assert {"client_secret_basic", "client_secret_post", "private_key_jwt"} <= set(d["token_endpoint_auth_methods_supported"])
    assert "RS256" in d["id_token_signing_alg_values_supported"]
    assert TOKEN_EXCHANGE in d["grant_types_supported"]


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post"])
def test_authorization_code_flow_with_authlib(idp: IdP, method: str):
    got = authlib_login(idp, method)
    token = got["token"]
    assert token["token_type"].lower() == "bearer"
    assert token["id_token"].count(".") == 2 and token["access_token"].count(".") == 2
    assert "openid" in token["scope"].split()

    # authlib really used the method under test.
    req = got["token_request"]
    body = parse_qs(req.body if isinstance(req.body, str) else req.body.decode())
    assert body["grant_type"] == ["authorization_code"] and body["code_verifier"] == [got["verifier"]]
    assert body["redirect_uri"] == [REDIRECT_URI]
    if method == "client_secret_basic":
        assert req.headers["Authorization"].startswith("Basic ")
        assert "client_secret" not in body
    else:
        assert "Authorization" not in req.headers
        assert body["client_id"] == [WEB_CLIENT_ID] and body["client_secret"] == [WEB_CLIENT_SECRET]

    # The org access token works at userinfo, sent by authlib's session (Authorization: Bearer).
    info = got["oauth"].get(idp.discovery["userinfo_endpoint"], timeout=5)
    assert info.status_code == 200, info.text
    assert info.json()["sub"] == USERS["alice"]["id"] and info.json()["email"] == USERS["alice"]["email"]

    # RFC 6749 §4.1.2: a code is single use.
    with pytest.raises(Exception) as e:
        got["oauth"].fetch_token(idp.token_endpoint, authorization_response=got["location"], code_verifier=got["verifier"])
    assert getattr(e.value, "error", None) == "invalid_grant", repr(e.value)


def test_pkce_verifier_must_match(idp: IdP):
    oauth = OAuth2Session(client_id=WEB_CLIENT_ID, client_secret=WEB_CLIENT_SECRET, scope="openid", redirect_uri=REDIRECT_URI,
                          code_challenge_method="S256", token_endpoint_auth_method="client_secret_post")
    url, _ = oauth.create_authorization_url(idp.authorization_endpoint, code_verifier=generate_token(64))
    location = sign_in(requests.Session(), url, "bob", USERS["bob"]["password"])
    idp.remember(parse_qs(urlsplit(location).query)["code"][0])
    with pytest.raises(Exception) as e:
        oauth.fetch_token(idp.token_endpoint, authorization_response=location, code_verifier=generate_token(64))
    assert getattr(e.value, "error", None) == "invalid_grant", repr(e.value)


def test_wrong_client_secret_is_rejected(idp: IdP):
    r = requests.post(idp.token_endpoint, data={"grant_type": "authorization_code", "code": "x", "redirect_uri": REDIRECT_URI,
                                                "code_verifier": "v" * 43}, auth=(WEB_CLIENT_ID, "not-the-secret"), timeout=5)
    assert r.status_code == 401 and r.json()["error"] == "invalid_client", r.text


# --------------------------------------------------------------------------- 2. the ID token


def test_id_token_verifies_with_pyjwt(idp: IdP, alice: dict):
    id_token = alice["token"]["id_token"]
    claims = pyjwt_verify(id_token, idp.jwks_uri, audience=WEB_CLIENT_ID, issuer=idp.issuer,
                          require=["iss", "sub", "aud", "exp", "iat", "nonce"])
    header = jwt.get_unverified_header(id_token)
    assert header["alg"] == "RS256"
    assert claims["sub"] == USERS["alice"]["id"]
    assert claims["nonce"] == alice["nonce"]


def test_id_token_verifies_with_jwcrypto(idp: IdP, alice: dict):
    id_token = alice["token"]["id_token"]
    header, claims = jwcrypto_verify(id_token, idp.jwks_uri, {
        "iss": idp.issuer, "aud": WEB_CLIENT_ID, "exp": None, "iat": None, "sub": USERS["alice"]["id"], "nonce": alice["nonce"],
    })
    published = {k["kid"] for k in requests.get(idp.jwks_uri, timeout=5).json()["keys"]}
    assert header["kid"] in published
    assert header["alg"] == "RS256"
    assert header.get("typ") == "JWT"
    now = time.time()
    assert claims["iss"] == idp.issuer
    assert claims["sub"] == USERS["alice"]["id"]
    assert claims["aud"] == WEB_CLIENT_ID or claims["aud"] == [WEB_CLIENT_ID]
    assert claims["iat"] <= now + 60 < claims["exp"] + 60 and claims["exp"] > now
    assert claims["nonce"] == alice["nonce"]
    assert claims["email"] == USERS["alice"]["email"]
    assert claims["name"] == USERS["alice"]["name"]
    assert claims["uid"] == USERS["alice"]["id"]


# --------------------------------------------------------------------------- 3. ID-JAG and the JWT-bearer grant


def _verify_id_jag(idp: IdP, id_jag: str, scope: str) -> dict:
    header = jwt.get_unverified_header(id_jag)
    assert header["typ"] == "oauth-id-jag+jwt" and header["alg"] == "RS256", header
    claims = pyjwt_verify(id_jag, idp.jwks_uri, audience=idp.as_issuer, issuer=idp.issuer,
                          require=["iss", "sub", "aud", "exp", "iat", "jti", "client_id"])
    jc_header, jc_claims = jwcrypto_verify(id_jag, idp.jwks_uri, {
        "iss": idp.issuer, "aud": idp.as_issuer, "exp": None, "jti": None, "client_id": AGENT_ID,
    })
    assert jc_header["typ"] == "oauth-id-jag+jwt"
    assert jc_claims == claims
    assert isinstance(raw_claims(id_jag)["aud"], str) and claims["aud"] == idp.as_issuer
    assert claims["sub"] == USERS["alice"]["id"]
    assert claims["client_id"] == AGENT_ID
    assert claims["jti"]
    assert claims["exp"] - claims["iat"] == 300
    assert claims.get("resource") == MCP_RESOURCE
    assert claims.get("scope") == scope
    return claims


def _verify_access_token(idp: IdP, access_token: str) -> dict:
    meta = idp.as_metadata()
    assert meta["issuer"] == idp.as_issuer
    header = jwt.get_unverified_header(access_token)
    assert header["typ"] == "at+jwt" and header["alg"] == "RS256", header
    claims = pyjwt_verify(access_token, meta["jwks_uri"], audience=MCP_RESOURCE, issuer=idp.as_issuer,
                          require=["iss", "sub", "aud", "exp", "iat", "jti", "client_id"])
    _, jc_claims = jwcrypto_verify(access_token, meta["jwks_uri"], {"iss": idp.as_issuer, "aud": MCP_RESOURCE, "exp": None})
    assert jc_claims == claims
    assert claims["sub"] == USERS["alice"]["id"]
    assert claims["act"] == {"sub": AGENT_ID}
    assert claims["client_id"] == AGENT_ID
    assert isinstance(claims["scp"], list)
    return claims


def test_id_jag_then_jwt_bearer_grant_default_scopes(idp: IdP, alice: dict):
    body = ok_json(exchange_for_id_jag(idp, alice["token"]["id_token"], DEFAULT_SCOPES), "token exchange (ID-JAG)")
    assert body["issued_token_type"] == ID_JAG_TYPE
    assert body["token_type"] in ("N_A", "Bearer")
    assert body["expires_in"] == 300
    id_jag = body["access_token"]
    _verify_id_jag(idp, id_jag, DEFAULT_SCOPES)

    meta = idp.as_metadata()
    assert meta["token_endpoint"] == f"{idp.issuer}/oauth2/{AS_ID}/v1/token"
    assert JWT_BEARER in meta["grant_types_supported"]
    at = ok_json(jwt_bearer_grant(idp, id_jag, meta["token_endpoint"]), "JWT-bearer grant")
    assert at["token_type"] == "Bearer" and "refresh_token" not in at
    claims = _verify_access_token(idp, at["access_token"])
    assert "mcp:connect" in claims["scp"] and "mcp:tools:read" in claims["scp"]
    assert "mcp:tools:manage" not in claims["scp"]
    assert set(at["scope"].split()) == set(claims["scp"])

    # Section C: the ID-JAG's jti is single use at the resource AS.
    replay = jwt_bearer_grant(idp, id_jag, meta["token_endpoint"])
    assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant", replay.text


def test_on_request_scope_is_granted_when_asked(idp: IdP, alice: dict):
    body = ok_json(exchange_for_id_jag(idp, alice["token"]["id_token"], ALL_SCOPES), "token exchange (ID-JAG, manage)")
    _verify_id_jag(idp, body["access_token"], ALL_SCOPES)
    at = ok_json(jwt_bearer_grant(idp, body["access_token"], idp.as_metadata()["token_endpoint"]), "JWT-bearer grant (manage)")
    claims = _verify_access_token(idp, at["access_token"])
    assert {"mcp:connect", "mcp:tools:read", "mcp:tools:manage"} <= set(claims["scp"])


def test_id_jag_is_not_an_id_token(idp: IdP, alice: dict):
    body = ok_json(exchange_for_id_jag(idp, alice["token"]["id_token"]), "token exchange (ID-JAG)")
    with pytest.raises(jwt.InvalidAudienceError):
        pyjwt_verify(body["access_token"], idp.jwks_uri, audience=WEB_CLIENT_ID, issuer=idp.issuer, require=["aud"])


def test_id_token_does_not_verify_with_the_as_keys(idp: IdP, alice: dict):
    id_token = alice["token"]["id_token"]
    as_jwks = idp.as_metadata()["jwks_uri"]
    with pytest.raises(jwt.PyJWKClientError):  # its kid is not in the AS's JWKS
        jwt.PyJWKClient(as_jwks, cache_keys=False).get_signing_key_from_jwt(id_token)
    keys = jwt.PyJWKSet.from_dict(requests.get(as_jwks, timeout=5).json()).keys
    assert keys
    for key in keys:  # and no AS key verifies its signature either
        with pytest.raises(jwt.InvalidSignatureError):
            jwt.decode(id_token, key.key, algorithms=["RS256"], audience=WEB_CLIENT_ID, issuer=idp.issuer)


def test_client_assertion_rules(idp: IdP, alice: dict):
    """Section A: wrong aud, and a replayed jti, are 401 invalid_client."""
    form = {"grant_type": TOKEN_EXCHANGE, "requested_token_type": ID_JAG_TYPE, "subject_token": alice["token"]["id_token"],
            "subject_token_type": ID_TOKEN_TYPE, "audience": idp.as_issuer}
    wrong_aud = idp.agent_post(idp.token_endpoint, form, assertion_aud=idp.issuer)
    assert wrong_aud.status_code == 401 and wrong_aud.json()["error"] == "invalid_client", wrong_aud.text

    assertion = idp.client_assertion(idp.token_endpoint)
    signed = dict(form, client_assertion_type="urn:ietf:params:oauth:client-assertion-type:jwt-bearer", client_assertion=assertion)
    first = requests.post(idp.token_endpoint, data=signed, timeout=5)
    assert first.status_code == 200, first.text
    idp.remember(first.json().get("access_token"))
    again = requests.post(idp.token_endpoint, data=signed, timeout=5)
    assert again.status_code == 401 and again.json()["error"] == "invalid_client", again.text


def _forge(header: dict, claims: dict, signer=None) -> str:
    def enc(obj: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj, separators=(",", ":")).encode()).rstrip(b"=").decode()

    signing_input = f"{enc(header)}.{enc(claims)}"
    sig = signer(signing_input.encode()) if signer else b""
    return signing_input + "." + base64.urlsafe_b64encode(sig).rstrip(b"=").decode()


def _public_pem(idp: IdP) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return idp.agent_private_key().public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def _hs256_with(secret: bytes):
    import hashlib
    import hmac

    return lambda data: hmac.new(secret, data, hashlib.sha256).digest()


@pytest.mark.parametrize("case", ["exp_past", "exp_far_future", "unknown_kid", "sub_not_iss", "alg_none", "alg_hs256_public_key"])
def test_client_assertion_rejections(idp: IdP, alice: dict, case: str):
    """Sections A and G: each bad client assertion is 401 invalid_client."""
    now = int(time.time())
    claims = {"iss": AGENT_ID, "sub": AGENT_ID, "aud": idp.token_endpoint, "iat": now, "exp": now + 120, "jti": generate_token(16)}
    key = idp.agent_private_key()
    if case == "exp_past":
        assertion = jwt.encode(dict(claims, iat=now - 600, exp=now - 300), key, algorithm="RS256", headers={"kid": AGENT_KID})
    elif case == "exp_far_future":
        assertion = jwt.encode(dict(claims, exp=now + 3 * 3600), key, algorithm="RS256", headers={"kid": AGENT_KID})
    elif case == "unknown_kid":
        assertion = jwt.encode(claims, key, algorithm="RS256", headers={"kid": "not-registered"})
    elif case == "sub_not_iss":
        assertion = jwt.encode(dict(claims, sub="someone-else"), key, algorithm="RS256", headers={"kid": AGENT_KID})
    elif case == "alg_none":
        assertion = _forge({"alg": "none", "kid": AGENT_KID, "typ": "JWT"}, claims)
    else:
        assertion = _forge({"alg": "HS256", "kid": AGENT_KID, "typ": "JWT"}, claims, _hs256_with(_public_pem(idp)))
    idp.remember(assertion)
    form = {"grant_type": TOKEN_EXCHANGE, "requested_token_type": ID_JAG_TYPE, "subject_token": alice["token"]["id_token"],
            "subject_token_type": ID_TOKEN_TYPE, "audience": idp.as_issuer,
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer", "client_assertion": assertion}
    r = requests.post(idp.token_endpoint, data=form, timeout=5)
    assert r.status_code == 401 and r.json()["error"] == "invalid_client", f"{case}: HTTP {r.status_code} {r.text}"


@pytest.mark.parametrize("case,field,value,error", [
    ("unknown_audience", "audience", "http://127.0.0.1:1/oauth2/nope", "invalid_target"),
    ("unknown_resource", "resource", "http://127.0.0.1:5999/mcp", "invalid_target"),
    ("unknown_scope", "scope", "mcp:connect mcp:tools:everything", "invalid_scope"),
    ("missing_audience", "audience", None, "invalid_request"),
    ("wrong_subject_token_type", "subject_token_type", "urn:ietf:params:oauth:token-type:access_token", "invalid_request"),
    ("garbage_subject_token", "subject_token", "not-a-jwt", "invalid_grant"),
])
def test_token_exchange_errors(idp: IdP, alice: dict, case: str, field: str, value: str | None, error: str):
    """Section B: error codes (400) of the ID-JAG exchange."""
    form = {"grant_type": TOKEN_EXCHANGE, "requested_token_type": ID_JAG_TYPE, "subject_token": alice["token"]["id_token"],
            "subject_token_type": ID_TOKEN_TYPE, "audience": idp.as_issuer, "resource": MCP_RESOURCE, "scope": DEFAULT_SCOPES}
    if value is None:
        del form[field]
    else:
        form[field] = value
    r = idp.agent_post(idp.token_endpoint, form)
    assert r.status_code == 400, f"{case}: HTTP {r.status_code} {r.text}"
    assert r.json()["error"] == error, f"{case}: {r.text}"
    assert "no-store" in r.headers.get("cache-control", "")


def test_exchange_accepts_only_id_tokens_as_subject(idp: IdP, alice: dict):
    """Section G: the org access token (typ at+jwt) and an ID-JAG are not ID tokens."""
    jag = ok_json(exchange_for_id_jag(idp, alice["token"]["id_token"]), "token exchange (ID-JAG)")["access_token"]
    for name, subject in {"org access token": alice["token"]["access_token"], "ID-JAG": jag}.items():
        r = exchange_for_id_jag(idp, subject)
        assert r.status_code == 400 and r.json()["error"] == "invalid_grant", f"{name}: HTTP {r.status_code} {r.text}"


def test_web_client_cannot_exchange(idp: IdP, alice: dict):
    form = {"grant_type": TOKEN_EXCHANGE, "requested_token_type": ID_JAG_TYPE, "subject_token": alice["token"]["id_token"],
            "subject_token_type": ID_TOKEN_TYPE, "audience": idp.as_issuer}
    r = requests.post(idp.token_endpoint, data=form, auth=(WEB_CLIENT_ID, WEB_CLIENT_SECRET), timeout=5)
    assert r.status_code in (400, 401) and r.json()["error"] in ("unauthorized_client", "invalid_client"), r.text


def test_jwt_bearer_grant_rejects_non_id_jags(idp: IdP, alice: dict):
    """Sections C and G: the resource AS accepts only a genuine ID-JAG (typ, signer, alg)."""
    as_token_endpoint = idp.as_metadata()["token_endpoint"]
    jag = ok_json(exchange_for_id_jag(idp, alice["token"]["id_token"]), "token exchange (ID-JAG)")["access_token"]
    jag_header, jag_claims = jwt.get_unverified_header(jag), raw_claims(jag)
    now = int(time.time())
    fresh = dict(jag_claims, jti=generate_token(16), iat=now, exp=now + 300)
    candidates = {
        # an ID token is not an ID-JAG (typ JWT, aud agent0)
        "id_token": alice["token"]["id_token"],
        # same claims, signed by the agent's key under the org's kid: not in the org JWKS signature
        "agent_signed": jwt.encode(fresh, idp.agent_private_key(), algorithm="RS256", headers={"kid": jag_header["kid"], "typ": "oauth-id-jag+jwt"}),
        "alg_none": _forge({"alg": "none", "kid": jag_header["kid"], "typ": "oauth-id-jag+jwt"}, fresh),
        # typ JWT instead of oauth-id-jag+jwt (re-signed, as only the org key could keep the signature valid)
        "typ_jwt": jwt.encode(fresh, idp.agent_private_key(), algorithm="RS256", headers={"kid": jag_header["kid"], "typ": "JWT"}),
        # the genuine ID-JAG with its payload edited (scope widened), original signature kept
        "tampered_payload": jag.split(".")[0] + "." + base64.urlsafe_b64encode(json.dumps(dict(jag_claims, scope=ALL_SCOPES)).encode()).rstrip(b"=").decode() + "." + jag.split(".")[2],
    }
    for name, assertion in candidates.items():
        idp.remember(assertion)
        r = jwt_bearer_grant(idp, assertion, as_token_endpoint)
        assert r.status_code == 400 and r.json()["error"] == "invalid_grant", f"{name}: HTTP {r.status_code} {r.text}"
    # the genuine one still works (none of the above consumed its jti)
    ok_json(jwt_bearer_grant(idp, jag, as_token_endpoint), "JWT-bearer grant with the genuine ID-JAG")


def test_jwt_bearer_client_assertion_aud_is_the_as_token_endpoint(idp: IdP, alice: dict):
    """Section C: the client assertion's aud is the resource AS's token endpoint, not the org's."""
    as_token_endpoint = idp.as_metadata()["token_endpoint"]
    jag = ok_json(exchange_for_id_jag(idp, alice["token"]["id_token"]), "token exchange (ID-JAG)")["access_token"]
    r = idp.agent_post(as_token_endpoint, {"grant_type": JWT_BEARER, "assertion": jag}, assertion_aud=idp.token_endpoint)
    assert r.status_code == 401 and r.json()["error"] == "invalid_client", r.text


# --------------------------------------------------------------------------- 4. OAuth STS


def test_oauth_sts_consent_token_and_revoke(idp: IdP, alice: dict):
    id_token = alice["token"]["id_token"]

    first = exchange_for_sts(idp, id_token)
    assert first.status_code == 400, first.text
    err = first.json()
    assert err["error"] == "interaction_required", err
    interaction_uri = err["interaction_uri"]
    assert interaction_uri.startswith(idp.issuer + "/"), interaction_uri

    # The consent page, in alice's signed-in browser session.
    browser: requests.Session = alice["browser"]
    assert browser.cookies.get("sb_idp_session"), "the sign-in set no session cookie"
    page = browser.get(interaction_uri, allow_redirects=False, timeout=5)
    assert page.status_code == 200, f"consent page: HTTP {page.status_code} {page.text[:300]}"
    forms = [f for f in parse_forms(page.text) if f["method"] == "post"]
    assert len(forms) == 1, forms
    form = forms[0]
    assert "csrf" in form["hidden"] and ("decision", "approve") in form["buttons"], form
    # Without the session cookie the consent POST is refused.
    anonymous = requests.post(urljoin(page.url, form["action"]), data=dict(form["hidden"], decision="approve"), allow_redirects=False, timeout=5)
    assert anonymous.status_code in (401, 403), anonymous.status_code
    decided = browser.post(urljoin(page.url, form["action"]), data=dict(form["hidden"], decision="approve"), allow_redirects=False, timeout=5)
    assert decided.status_code == 200, f"consent POST: HTTP {decided.status_code} {decided.text[:300]}"

    body = ok_json(exchange_for_sts(idp, id_token), "STS exchange after consent")
    assert body["issued_token_type"] == STS_TYPE and body["token_type"] == "Bearer"
    sts = body["access_token"]
    header = jwt.get_unverified_header(sts)
    assert header["typ"] == "at+jwt" and header["alg"] == "RS256", header
    app_meta = requests.get(idp.issuer + "/apps/github/.well-known/oauth-authorization-server", timeout=5).json()
    assert app_meta["jwks_uri"] == idp.issuer + "/apps/github/keys"
    claims = pyjwt_verify(sts, idp.issuer + "/apps/github/keys", audience=GITHUB_AUDIENCE, issuer=idp.issuer + "/apps/github",
                          require=["iss", "sub", "aud", "exp", "iat", "jti"])
    assert claims["sub"] == USERS["alice"]["id"] and claims["client_id"] == AGENT_ID
    # An app token is not signed by the org.
    with pytest.raises(jwt.PyJWKClientError):
        jwt.PyJWKClient(idp.jwks_uri, cache_keys=False).get_signing_key_from_jwt(sts)

    assert idp.discovery["revocation_endpoint"] == idp.issuer + "/oauth2/v1/revoke"
    revoked = idp.agent_post(idp.revocation_endpoint, {"token": sts, "token_type_hint": "oauth_sts"})
    assert revoked.status_code == 200, revoked.text

    after = exchange_for_sts(idp, id_token)
    assert after.status_code == 400 and after.json()["error"] == "interaction_required", after.text


def test_consent_page_is_bound_to_its_user_and_session(idp: IdP, alice: dict):
    """Another user's session cannot see or approve alice's consent request, a forged csrf is
    refused, and deny grants nothing."""
    err = exchange_for_sts(idp, alice["token"]["id_token"]).json()
    assert err["error"] == "interaction_required", err
    uri = err["interaction_uri"]

    bob = authlib_login(idp, "client_secret_post", "bob")["browser"]
    assert bob.get(uri, allow_redirects=False, timeout=5).status_code == 403
    page = alice["browser"].get(uri, allow_redirects=False, timeout=5)
    assert page.status_code == 200, page.text[:300]
    form = [f for f in parse_forms(page.text) if f["method"] == "post"][0]
    action = urljoin(page.url, form["action"])
    assert bob.post(action, data=dict(form["hidden"], decision="approve"), allow_redirects=False, timeout=5).status_code == 403
    forged = alice["browser"].post(action, data={"csrf": "0" * 64, "decision": "approve"}, allow_redirects=False, timeout=5)
    assert forged.status_code == 403
    denied = alice["browser"].post(action, data=dict(form["hidden"], decision="deny"), allow_redirects=False, timeout=5)
    assert denied.status_code == 200
    again = exchange_for_sts(idp, alice["token"]["id_token"])
    assert again.status_code == 400 and again.json()["error"] == "interaction_required", again.text
    # the used link is gone
    assert alice["browser"].get(uri, allow_redirects=False, timeout=5).status_code == 404


# --------------------------------------------------------------------------- 5. nothing secret in the log


def test_log_contains_no_secrets(idp: IdP, alice: dict):
    """Runs last in this module: every token, code, assertion and cookie the tests saw, the
    client secret and the agent's private key must be absent from the IdP's stdout/stderr."""
    # Make sure there is something to look for even when this test runs alone.
    body = ok_json(exchange_for_id_jag(idp, alice["token"]["id_token"]), "token exchange (ID-JAG)")
    ok_json(jwt_bearer_grant(idp, body["access_token"], idp.as_metadata()["token_endpoint"]), "JWT-bearer grant")

    log = idp.log_text()
    assert log.strip(), "the IdP logged nothing at all (is LOG_LEVEL honoured?)"
    assert WEB_CLIENT_SECRET in idp.secrets and len(idp.secrets) >= 5
    leaked = [s[:12] + "…" for s in set(idp.secrets) if s in log]
    assert not leaked, f"secrets in the IdP log: {leaked}"
    signatures = {s.rsplit(".", 1)[1] for s in idp.secrets if s.count(".") == 2 and len(s.rsplit(".", 1)[1]) >= 32}
    assert not [sig[:12] + "…" for sig in signatures if sig in log], "a token's signature part is in the IdP log"

    pem = idp.agent_key_file.read_text()
    body_lines = [line for line in pem.splitlines() if line and not line.startswith("-----")]
    assert body_lines
    assert "".join(body_lines) not in log
    assert not [line for line in body_lines if len(line) >= 32 and line in log], "a line of the agent's private key is in the log"
