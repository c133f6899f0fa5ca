"""Token attack matrix: every token validator of the system, attacked with forged tokens.

Real processes on 127.0.0.1, real keys. The IdP's own signing keys (org, the todo-mcp AS, the
two STS apps) are read from its SQLite store, so a forged token differs from a genuine one only
in the one property under attack; an attacker has keys of its own (RSA and EC) and a web server
(for `jku` / `x5u`) whose every hit is counted: no validator may ever fetch from it.

    validator                              where the check lives (Sources/)                    refusal
    gateway inbound ID token                Gateway/Runtime/InboundAuthenticator + OAuthCore  401 invalid_user_token
      /rest/{name} on both drivers (event-loop, SWITCHBOARD_FAST_PATH=off), /mcp/{name}, /mcp;
      a `none`-strategy upstream records every request: a refused call must never reach it
    IdP client assertion (private_key_jwt)  IdentityProvider/ClientAuthentication            401 invalid_client
    IdP token exchange subject_token        IdentityProvider/IdentityProvider.verifyIDToken  400 invalid_grant
    AS JWT-bearer grant (assertion=ID-JAG)  IdentityProvider/JWTBearerGrant                  400 invalid_grant
    IdP authorization codes                 IdentityProvider/AuthorizationCodeFlow           400 invalid_grant
    todo0 /mcp access token                 MCPServerKit/AccessTokenGuard                     401 invalid_token
    ISV stand-in REST and /mcp              ISVStandIn/ISVApplication + AccessTokenGuard      401 invalid_token
    agent0 sign-in callback (ID token)      Agent0/Auth/OIDCClient.redeem                     400 invalid_id_token / invalid_nonce

The ISV stand-in runs on a free port, not 7000: it derives the audience it accepts from its own
port (`http://127.0.0.1:{port}`), and the tokens here are minted with the STS apps' real keys
for that audience, so nothing depends on 7000 being free. agent0 signs in against a small OIDC
provider of this module (its token endpoint answers whatever ID token the case forged), because
the development IdP only ever hands out genuine tokens.

Each case is one parameter `validator/case`; a positive control per validator proves the
harness can succeed. A case a validator wrongly accepts is a defect: it stays in the matrix,
marked xfail(strict=True) in DEFECTS (the mark absorbs only ForgedTokenAccepted, so a fix makes
it XPASS and fail until the mark goes). The table of every case lands in
Tests/interop/artifacts/token-matrix.md, with the count of tokens accepted that should not be.
Run: cd Tests/interop && python3 -m pytest -q test_security_tokens.py
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import json
import os
import socket
import sqlite3
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable
from urllib.parse import parse_qs, quote, urlencode, urlsplit

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

from idp_fixtures import (
    AGENT_ID,
    AGENT_KID,
    AS_ID,
    CLIENT_ASSERTION_TYPE,
    ID_JAG_TYPE,
    ID_TOKEN_TYPE,
    JWT_BEARER,
    MCP_RESOURCE,
    REDIRECT_URI,
    TOKEN_EXCHANGE,
    USERS,
    WEB_CLIENT_ID,
    WEB_CLIENT_SECRET,
    IdP,
    sign_in,
)
from interop_helpers import HOST, free_port, new_rsa_key, public_jwk, stop_process, switchboard_binary, wait_for_http_200
from todo0_fixtures import stateless_body, stateless_headers

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parent.parent
ARTIFACT = HERE / "artifacts" / "token-matrix.md"

OTHER_WEB_ID, OTHER_WEB_SECRET, OTHER_WEB_REDIRECT = "other-web", "other-web-secret", "http://127.0.0.1:3999/callback"
OTHER_AGENT_ID, OTHER_AGENT_KID = "other-agent", "other-agent-key"
DEFAULT_SCOPES = "mcp:connect mcp:tools:read"
ALICE = USERS["alice"]
DROP = object()  # a claim / header value that removes the member


# =========================================================================== forging


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _segment(part: dict | bytes | str) -> str:
    if isinstance(part, dict):
        part = json.dumps(part, separators=(",", ":")).encode()
    elif isinstance(part, str):
        part = part.encode()
    return b64u(part)


def forge(header: dict | bytes, payload: dict | bytes | str, signer: Callable[[bytes], bytes] | None) -> str:
    """A compact JWS built by hand: any header, any payload bytes, any signature."""
    signing_input = f"{_segment(header)}.{_segment(payload)}"
    return signing_input + "." + b64u(signer(signing_input.encode()) if signer else b"")


def rsa_signer(key: rsa.RSAPrivateKey, alg: str = "RS256") -> Callable[[bytes], bytes]:
    digest = {"256": hashes.SHA256, "384": hashes.SHA384, "512": hashes.SHA512}[alg[2:]]()
    pad = padding.PSS(mgf=padding.MGF1(digest), salt_length=digest.digest_size) if alg.startswith("PS") else padding.PKCS1v15()
    return lambda data: key.sign(data, pad, digest)


def es256_signer(key: ec.EllipticCurvePrivateKey) -> Callable[[bytes], bytes]:
    def sign(data: bytes) -> bytes:
        r, s = decode_dss_signature(key.sign(data, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")
    return sign


def hmac_signer(secret: bytes) -> Callable[[bytes], bytes]:
    return lambda data: hmac.new(secret, data, hashlib.sha256).digest()


def public_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def _apply(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        if v is DROP:
            out.pop(k, None)
        else:
            out[k] = v
    return out


def duplicate_member(claims: dict, name: str, last: Any) -> bytes:
    """The claims as JSON with `name` a second time (value `last`) after the first."""
    body = json.dumps(claims, separators=(",", ":"))
    return (body[:-1] + "," + json.dumps(name) + ":" + json.dumps(last) + "}").encode()


@dataclass
class Kit:
    """What a good token for one validator looks like: issuer, real key and kid, typ, claims."""
    iss: str
    key: rsa.RSAPrivateKey
    kid: str
    typ: str | None
    base: Callable[[], dict]          # fresh good claims (new jti, current time), without iss
    max_lifetime: int

    def claims(self, **over) -> dict:
        return _apply({"iss": self.iss, **self.base()}, over)

    def header(self, alg: str = "RS256", **over) -> dict:
        h = {"alg": alg, "kid": self.kid}
        if self.typ:
            h["typ"] = self.typ
        return _apply(h, over)

    def token(self, *, alg: str = "RS256", key: rsa.RSAPrivateKey | None = None, header: dict | None = None,
              payload: dict | bytes | str | None = None, **claims) -> str:
        return forge(self.header(alg, **(header or {})), payload if payload is not None else self.claims(**claims),
                     rsa_signer(key or self.key, alg))


# =========================================================================== small HTTP pieces


@dataclass
class Req:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class TinyServer:
    """A threaded HTTP server on 127.0.0.1 answering with `handler(req) -> (status, headers, body)`;
    every request it got is kept in `requests`."""

    def __init__(self, handler: Callable[[Req], tuple[int, dict, bytes]], name: str) -> None:
        self.requests: list[Req] = []
        server = self

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _any(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                req = Req(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                server.requests.append(req)
                status, headers, data = handler(req)
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_DELETE = do_PUT = _any

            def log_message(self, *args) -> None:
                pass

        self._httpd = ThreadingHTTPServer((HOST, 0), H)
        self._httpd.daemon_threads = True
        threading.Thread(target=self._httpd.serve_forever, name=name, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self._httpd.server_address[1]}"

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


def json_answer(obj: Any, status: int = 200) -> tuple[int, dict, bytes]:
    return status, {"Content-Type": "application/json"}, json.dumps(obj).encode()


@dataclass
class RawResponse:
    status: int            # 0: the connection was closed without an answer
    headers: dict[str, str]
    body: bytes

    def json(self) -> dict:
        try:
            value = json.loads(self.body)
        except ValueError:
            return {}
        return value if isinstance(value, dict) else {}


def raw_http(port: int, method: str, target: str, headers: list[tuple[str, str]], body: bytes = b"", timeout: float = 20) -> RawResponse:
    """One request on its own socket, headers exactly as given (a name may repeat)."""
    lines = [f"{method} {target} HTTP/1.1", f"Host: {HOST}:{port}", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in headers]
    if body or method in ("POST", "PUT"):
        lines.append(f"Content-Length: {len(body)}")
    data = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
    received = b""
    with socket.create_connection((HOST, port), timeout=timeout) as s:
        try:
            s.sendall(data)
        except OSError:
            pass  # refused mid-send (a huge header): read what it answered
        try:
            while chunk := s.recv(65536):
                received += chunk
        except OSError:
            pass
    if not received.startswith(b"HTTP/"):
        return RawResponse(0, {}, received)
    head, _, rest = received.partition(b"\r\n\r\n")
    head_lines = head.decode("latin-1").split("\r\n")
    out: dict[str, str] = {}
    for line in head_lines[1:]:
        k, _, v = line.partition(":")
        k = k.strip().lower()
        out[k] = (out[k] + ", " if k in out else "") + v.strip()
    if out.get("transfer-encoding", "").lower() == "chunked":
        decoded, buf = b"", rest
        while buf:
            size_line, _, buf = buf.partition(b"\r\n")
            size = int(size_line.split(b";")[0] or b"0", 16)
            if size == 0:
                break
            decoded, buf = decoded + buf[:size], buf[size + 2:]
        rest = decoded
    elif "content-length" in out:
        rest = rest[: int(out["content-length"])]
    return RawResponse(int(head_lines[0].split()[1]), out, rest)


def challenge_error(www_authenticate: str | None) -> str | None:
    if not www_authenticate or 'error="' not in www_authenticate:
        return None
    return www_authenticate.split('error="', 1)[1].split('"', 1)[0]


# =========================================================================== processes


def binary() -> Path:
    """The switchboard binary; another engineer may be rebuilding it: wait for it a while."""
    path = switchboard_binary(REPO_ROOT)
    deadline = time.monotonic() + 180
    while not (path.is_file() and os.access(path, os.X_OK)):
        if time.monotonic() > deadline:
            pytest.fail(f"switchboard binary not found at {path} (build it, or set SWITCHBOARD_BIN)", pytrace=False)
        time.sleep(2)
    return path


def clean_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    for var in ("SWITCHBOARD_CONFIG", "GATEWAY_HOST", "GATEWAY_PORT", "DISABLED_CONNECTIONS", "SWITCHBOARD_DATA_DIR",
                "IDP_HOST", "IDP_PORT", "IDP_ISSUER", "ISV_HOST", "ISV_PORT", "TODO0_HOST", "TODO0_PORT", "TODO0_REST_PORT",
                "MCP_AUTHORIZATION_SERVER", "TODO0_RESOURCE", "OKTA_ISSUER", "AGENT0_HOST", "AGENT0_PORT", "AGENT0_PUBLIC_URL",
                "AGENT0_CLIENT_ID", "AGENT0_CLIENT_SECRET", "GATEWAY_URL", "LLM_URL", "SWITCHBOARD_FAST_PATH"):
        env.pop(var, None)
    env["LOG_LEVEL"] = os.environ.get("INTEROP_LOG_LEVEL", "info")
    env.update(extra)
    return env


@dataclass
class Proc:
    name: str
    url: str
    port: int
    proc: subprocess.Popen
    log: Path


def spawn(name: str, args: Callable[[int], list[str]], health: str, base: Path, env: dict[str, str], attempts: int = 3,
          port: int | None = None) -> Proc:
    """Starts `switchboard <args(port)>` on a free port and waits for `health` to answer 200."""
    errors = []
    for attempt in range(attempts):
        p = port or free_port()
        log = base / f"{name}-{attempt}.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen([str(binary()), *args(p)], stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                    env=env, cwd=str(base))
        try:
            wait_for_http_200(f"http://{HOST}:{p}{health}", proc, timeout=60, what=f"switchboard {name}", log=log)
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited")
            return Proc(name, f"http://{HOST}:{p}", p, proc, log)
        except (RuntimeError, TimeoutError, OSError) as e:
            stop_process(proc)
            errors.append(str(e)[-1500:])
            time.sleep(1)
    pytest.fail(f"switchboard {name} did not start:\n" + "\n".join(errors), pytrace=False)


def idp_config(other_agent_jwk: dict) -> str:
    """The development directory plus a second web client and a second agent (JSON is YAML)."""
    return json.dumps({
        "users": [{"username": u, "password": v["password"], "id": v["id"], "name": v["name"], "email": v["email"],
                   "groups": ["everyone"]} for u, v in USERS.items()],
        "web_clients": [
            {"client_id": WEB_CLIENT_ID, "client_secret": WEB_CLIENT_SECRET, "redirect_uris": [REDIRECT_URI]},
            {"client_id": OTHER_WEB_ID, "client_secret": OTHER_WEB_SECRET, "redirect_uris": [OTHER_WEB_REDIRECT]},
        ],
        "agents": [
            {"client_id": AGENT_ID, "acts_for": [WEB_CLIENT_ID]},
            {"client_id": OTHER_AGENT_ID, "acts_for": [WEB_CLIENT_ID], "jwks": [other_agent_jwk]},
        ],
        "authorization_servers": [{"id": AS_ID, "resources": [MCP_RESOURCE], "scopes": ["mcp:connect", "mcp:tools:read", "mcp:tools:manage"],
                                   "default_scopes": ["mcp:connect", "mcp:tools:read"], "on_request_scopes": ["mcp:tools:manage"],
                                   "token_lifetime": 3600}],
        "third_party_apps": [
            {"id": "github", "name": "GitHub", "resource": "orn:dev:idp:github", "audience": "http://127.0.0.1:7000", "scopes": ["repo"]},
            {"id": "github-mcp", "name": "GitHub MCP", "resource": "orn:dev:idp:github-mcp", "audience": "http://127.0.0.1:7000/mcp", "scopes": ["repo"]},
        ],
    }, indent=1)


def stored_key(db: Path, owner: str) -> tuple[str, rsa.RSAPrivateKey]:
    """The IdP's current signing key of `owner` ('org', 'as:todo-mcp', 'app:github', …)."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        kid, pem = con.execute("SELECT kid, pem FROM signing_key WHERE owner = ? AND retired_at IS NULL ORDER BY created_at DESC LIMIT 1",
                               (owner,)).fetchone()
    finally:
        con.close()
    key = serialization.load_pem_private_key(pem.encode(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey), owner
    return kid, key


def pkce_pair() -> tuple[str, str]:
    verifier = b64u(os.urandom(48))
    return verifier, b64u(hashlib.sha256(verifier.encode()).digest())


# =========================================================================== the lab


class Lab:
    """Every validator's process, started on first use; the keys; the attacker."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self._started: list[Proc] = []
        self._servers: list[TinyServer] = []
        self._cache: dict[str, Any] = {}
        self._failed: dict[str, str] = {}
        # the attacker: own RSA and EC keys, a certificate, and a web server for jku / x5u
        self.attacker_rsa = new_rsa_key()
        self.attacker_kid = "attacker-key"
        self.attacker_ec = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "attacker")])
        now = datetime.datetime.now(datetime.timezone.utc)
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(self.attacker_rsa.public_key())
                .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
                .not_valid_after(now + datetime.timedelta(days=30)).sign(self.attacker_rsa, hashes.SHA256()))
        self.attacker_x5c = base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()
        cert_pem = cert.public_bytes(serialization.Encoding.PEM)
        jwks = {"keys": [public_jwk(self.attacker_rsa, self.attacker_kid)]}
        self.attacker = self.server(lambda r: json_answer(jwks) if r.path.startswith("/jwks") else (200, {"Content-Type": "application/x-pem-file"}, cert_pem),
                                    "attacker")
        self.other_agent_key = new_rsa_key()

    # ------------------------------------------------------------------ bookkeeping

    def server(self, handler, name: str) -> TinyServer:
        s = TinyServer(handler, name)
        self._servers.append(s)
        return s

    def attacker_hits(self) -> int:
        return len(self.attacker.requests)

    def once(self, name: str, make: Callable[[], Any]) -> Any:
        if name in self._failed:
            pytest.fail(f"{name} could not be set up earlier: {self._failed[name]}", pytrace=False)
        if name not in self._cache:
            try:
                self._cache[name] = make()
            except BaseException as e:  # noqa: BLE001 (remembered, then re-raised)
                self._failed[name] = repr(e)[:500]
                raise
        return self._cache[name]

    def close(self) -> None:
        for p in reversed(self._started):
            stop_process(p.proc)
        for s in self._servers:
            s.stop()

    # ------------------------------------------------------------------ the IdP

    @property
    def idp(self) -> IdP:
        return self.once("idp", self._start_idp)

    def _start_idp(self) -> IdP:
        base = self.base / "idp"
        base.mkdir()
        config = base / "idp.json"
        config.write_text(idp_config(public_jwk(self.other_agent_key, OTHER_AGENT_KID)))
        data_dir, key_file = base / "data", base / "agent" / "agent0-private-key.pem"
        init = subprocess.run([str(binary()), "idp", "--init-agent", "--config", str(config), "--data-dir", str(data_dir),
                               "--agent-key-file", str(key_file)], capture_output=True, text=True, env=clean_env(), cwd=str(base), timeout=120)
        assert init.returncode == 0 and key_file.is_file(), f"idp --init-agent: {init.returncode}\n{init.stdout}\n{init.stderr}"
        p = spawn("idp", lambda port: ["idp", "--host", HOST, "--port", str(port), "--data-dir", str(data_dir), "--config", str(config)],
                  "/healthz", base, clean_env())
        self._started.append(p)
        idp = IdP(port=p.port, issuer=p.url, data_dir=data_dir, agent_key_file=key_file, stderr_log=p.log, stdout_log=p.log, proc=p.proc)
        idp.discovery = requests.get(p.url + "/.well-known/openid-configuration", timeout=5).json()
        published = {k["kid"] for k in requests.get(idp.jwks_uri, timeout=5).json()["keys"]}
        self.org_kid, self.org_key = stored_key(data_dir / "idp.sqlite", "org")
        assert idp.discovery["issuer"] == p.url and self.org_kid in published, "the IdP answering is not ours"
        self.as_kid, self.as_key = stored_key(data_dir / "idp.sqlite", f"as:{AS_ID}")
        self.app_keys = {app: stored_key(data_dir / "idp.sqlite", f"app:{app}") for app in ("github", "github-mcp")}
        return idp

    @property
    def as_issuer(self) -> str:
        return self.idp.as_issuer

    @property
    def as_token_endpoint(self) -> str:
        return self.as_issuer + "/v1/token"

    def assertion(self, aud: str, client: str = AGENT_ID) -> str:
        now = int(time.time())
        claims = {"iss": client, "sub": client, "aud": aud, "iat": now, "exp": now + 120, "jti": uuid.uuid4().hex}
        if client == AGENT_ID:
            return forge({"alg": "RS256", "kid": AGENT_KID, "typ": "JWT"}, claims, rsa_signer(self.idp.agent_private_key()))
        return forge({"alg": "RS256", "kid": OTHER_AGENT_KID, "typ": "JWT"}, claims, rsa_signer(self.other_agent_key))

    def code(self, username: str = "alice") -> tuple[str, str]:
        """A fresh authorization code of agent0 (and its PKCE verifier), `username` signed in at the IdP's page."""
        verifier, challenge = pkce_pair()
        query = urlencode({"client_id": WEB_CLIENT_ID, "redirect_uri": REDIRECT_URI, "response_type": "code", "scope": "openid profile email",
                           "state": uuid.uuid4().hex, "nonce": uuid.uuid4().hex, "code_challenge": challenge, "code_challenge_method": "S256"})
        location = sign_in(requests.Session(), self.idp.authorization_endpoint + "?" + query, username, USERS[username]["password"])
        return parse_qs(urlsplit(location).query)["code"][0], verifier

    def redeem(self, code: str, verifier: str, client: tuple[str, str] = (WEB_CLIENT_ID, WEB_CLIENT_SECRET),
               redirect_uri: str | None = REDIRECT_URI) -> requests.Response:
        form = {"grant_type": "authorization_code", "code": code, "code_verifier": verifier}
        if redirect_uri is not None:
            form["redirect_uri"] = redirect_uri
        return requests.post(self.idp.token_endpoint, data=form, auth=client, timeout=10)

    @property
    def alice(self) -> dict:
        """alice's genuine token response (ID token, org access token) from the code flow."""
        def make() -> dict:
            code, verifier = self.code()
            r = self.redeem(code, verifier)
            assert r.status_code == 200, r.text
            return r.json()
        return self.once("alice", make)

    def exchange(self, subject_token: str, client: str = AGENT_ID, scope: str = DEFAULT_SCOPES, assertion: str | None = None) -> requests.Response:
        form = {"grant_type": TOKEN_EXCHANGE, "requested_token_type": ID_JAG_TYPE, "subject_token": subject_token,
                "subject_token_type": ID_TOKEN_TYPE, "audience": self.as_issuer, "resource": MCP_RESOURCE, "scope": scope,
                "client_assertion_type": CLIENT_ASSERTION_TYPE,
                "client_assertion": assertion or self.assertion(self.idp.token_endpoint, client)}
        return requests.post(self.idp.token_endpoint, data=form, timeout=10)

    def real_jag(self, client: str = AGENT_ID) -> str:
        """A genuine ID-JAG for alice (single use: a new one per call)."""
        r = self.exchange(self.alice["id_token"], client)
        assert r.status_code == 200, r.text
        return r.json()["access_token"]

    def jwt_bearer(self, jag: str, client: str = AGENT_ID, scope: str | None = None) -> requests.Response:
        form = {"grant_type": JWT_BEARER, "assertion": jag, "client_assertion_type": CLIENT_ASSERTION_TYPE,
                "client_assertion": self.assertion(self.as_token_endpoint, client)}
        if scope:
            form["scope"] = scope
        return requests.post(self.as_token_endpoint, data=form, timeout=10)

    @property
    def real_access_token(self) -> str:
        """A genuine todo-mcp access token for alice (JWT-bearer grant with a genuine ID-JAG)."""
        def make() -> str:
            r = self.jwt_bearer(self.real_jag())
            assert r.status_code == 200, r.text
            return r.json()["access_token"]
        return self.once("real_at", make)

    # ------------------------------------------------------------------ kits (good tokens)

    def id_token_kit(self) -> Kit:
        self.idp  # noqa: B018 (starts it: the keys come from its store)
        def base() -> dict:
            now = int(time.time())
            return {"sub": ALICE["id"], "aud": WEB_CLIENT_ID, "iat": now, "exp": now + 600, "email": ALICE["email"], "uid": ALICE["id"],
                    "name": ALICE["name"], "jti": uuid.uuid4().hex}
        return Kit(self.idp.issuer, self.org_key, self.org_kid, "JWT", base, 86_400)

    def jag_kit(self, client: str = AGENT_ID) -> Kit:
        def base() -> dict:
            now = int(time.time())
            return {"sub": ALICE["id"], "aud": self.as_issuer, "client_id": client, "jti": uuid.uuid4().hex, "iat": now, "exp": now + 300,
                    "resource": MCP_RESOURCE, "scope": DEFAULT_SCOPES, "uid": ALICE["id"], "email": ALICE["email"]}
        return Kit(self.idp.issuer, self.org_key, self.org_kid, "oauth-id-jag+jwt", base, 600)

    def assertion_kit(self) -> Kit:
        def base() -> dict:
            now = int(time.time())
            return {"sub": AGENT_ID, "aud": self.idp.token_endpoint, "iat": now, "exp": now + 120, "jti": uuid.uuid4().hex}
        return Kit(AGENT_ID, self.idp.agent_private_key(), AGENT_KID, "JWT", base, 3600)

    def access_token_kit(self) -> Kit:
        self.idp  # noqa: B018
        def base() -> dict:
            now = int(time.time())
            return {"sub": ALICE["id"], "uid": ALICE["id"], "aud": MCP_RESOURCE, "iat": now, "exp": now + 900, "jti": uuid.uuid4().hex,
                    "client_id": AGENT_ID, "scp": ["mcp:connect", "mcp:tools:read"], "act": {"sub": AGENT_ID}}
        return Kit(self.as_issuer, self.as_key, self.as_kid, "at+jwt", base, 86_400)

    def sts_kit(self, app: str) -> Kit:
        kid, key = self.idp_app_key(app)
        audience = self.isv.url + ("/mcp" if app == "github-mcp" else "")
        def base() -> dict:
            now = int(time.time())
            return {"sub": ALICE["id"], "aud": audience, "client_id": AGENT_ID, "scope": "repo", "jti": uuid.uuid4().hex, "iat": now,
                    "exp": now + 900, "resource": f"orn:dev:idp:{app}", "uid": ALICE["id"]}
        return Kit(f"{self.idp.issuer}/apps/{app}", key, kid, "at+jwt", base, 86_400)

    def idp_app_key(self, app: str) -> tuple[str, rsa.RSAPrivateKey]:
        self.idp  # noqa: B018
        return self.app_keys[app]

    def op_kit(self) -> Kit:
        op = self.op
        def base() -> dict:
            now = int(time.time())
            return {"sub": "00u-eve", "aud": "agent0", "iat": now, "exp": now + 600, "nonce": op.nonce, "email": "eve@example.test",
                    "name": "Eve Example"}
        return Kit(op.server.url, op.key, op.kid, "JWT", base, 86_400)

    # ------------------------------------------------------------------ the gateway

    @property
    def upstream(self) -> TinyServer:
        def handler(r: Req) -> tuple[int, dict, bytes]:
            if r.method == "POST" and r.path.startswith("/mcp"):
                rpc_id = json.loads(r.body or b"{}").get("id", 1)
                return json_answer({"jsonrpc": "2.0", "id": rpc_id, "result": {"tools": []}})
            return json_answer({"ok": True, "path": r.path})
        return self.once("upstream", lambda: self.server(handler, "upstream"))

    def gateway(self, driver: str) -> Proc:
        def make() -> Proc:
            base = self.base / f"gateway-{driver}"
            base.mkdir()
            config = base / "connections.yaml"
            config.write_text(
                "version: 1\n"
                f'users: {{issuer: "{self.idp.issuer}", audience: {WEB_CLIENT_ID}}}\n'
                "connections:\n"
                f'  - {{name: files, kind: application, upstream: "{self.upstream.url}", auth: {{strategy: none}}}}\n'
                f'  - {{name: mcpup, kind: mcp_server, upstream: "{self.upstream.url}/mcp", auth: {{strategy: none}}}}\n')
            env = clean_env(SWITCHBOARD_FAST_PATH="on" if driver == "event-loop" else "off")
            p = spawn(f"gateway-{driver}", lambda port: ["gateway", "--config", str(config), "--host", HOST, "--port", str(port)], "/readyz", base, env)
            self._started.append(p)
            status = requests.get(p.url + "/api/connections/status", timeout=5).json()
            assert Path(status["config"]["path"]).resolve() == config.resolve() and not status["config"].get("last_error"), status["config"]
            return p
        return self.once(f"gateway-{driver}", make)

    # ------------------------------------------------------------------ todo0, the ISV stand-in

    @property
    def todo0(self) -> Proc:
        def make() -> Proc:
            base = self.base / "todo0"
            base.mkdir()
            rest = free_port()
            p = spawn("todo0", lambda port: ["todo0", "--host", HOST, "--port", str(port), "--rest-port", str(rest), "--data-dir", str(base / "data"),
                                             "--authorization-server", self.as_issuer, "--resource", MCP_RESOURCE], "/healthz", base, clean_env())
            self._started.append(p)
            doc = requests.get(p.url + "/.well-known/oauth-protected-resource/mcp", timeout=5).json()
            assert doc.get("resource") == MCP_RESOURCE, doc
            return p
        return self.once("todo0", make)

    @property
    def isv(self) -> Proc:
        def make() -> Proc:
            base = self.base / "isv"
            base.mkdir()
            p = spawn("isv", lambda port: ["isv", "--host", HOST, "--port", str(port), "--data-dir", str(base / "data"),
                                           "--identity-provider", self.idp.issuer], "/healthz", base, clean_env())
            self._started.append(p)
            assert (base / "data" / "isv.sqlite").exists(), "the ISV answering is not ours"
            return p
        return self.once("isv", make)

    # ------------------------------------------------------------------ agent0 and its OIDC provider

    @property
    def op(self) -> "FakeOP":
        return self.once("op", lambda: FakeOP(self))

    @property
    def agent0(self) -> Proc:
        def make() -> Proc:
            base = self.base / "agent0"
            base.mkdir()
            dead = f"http://{HOST}:9"  # never reached: only sign-in is exercised
            p = spawn("agent0", lambda port: ["agent", "--host", HOST, "--port", str(port), "--issuer", self.op.server.url, "--gateway", dead, "--llm", dead],
                      "/health", base, clean_env())
            self._started.append(p)
            # Ours: it sends a browser to *our* provider.
            login = requests.get(p.url + "/login", allow_redirects=False, timeout=10)
            assert login.headers.get("Location", "").startswith(self.op.server.url + "/authorize?"), "the agent0 answering is not ours"
            return p
        return self.once("agent0", make)


class FakeOP:
    """An OIDC provider for agent0: discovery, JWKS (its own real key) and a token endpoint
    that answers with `next_token`, whatever the code was."""

    def __init__(self, lab: Lab) -> None:
        self.key = new_rsa_key()
        self.kid = "op-" + uuid.uuid4().hex[:8]
        self.nonce = ""
        self.next_token = ""
        self.token_requests = 0

        def handler(r: Req) -> tuple[int, dict, bytes]:
            url = self.server.url
            if r.path == "/.well-known/openid-configuration":
                return json_answer({"issuer": url, "authorization_endpoint": url + "/authorize", "token_endpoint": url + "/token",
                                    "jwks_uri": url + "/keys", "response_types_supported": ["code"], "subject_types_supported": ["public"],
                                    "id_token_signing_alg_values_supported": ["RS256"]})
            if r.path == "/keys":
                return json_answer({"keys": [public_jwk(self.key, self.kid)]})
            if r.path == "/token" and r.method == "POST":
                self.token_requests += 1
                return json_answer({"access_token": "opaque-" + uuid.uuid4().hex, "token_type": "Bearer", "expires_in": 600, "id_token": self.next_token})
            return json_answer({"error": "not_found"}, 404)

        self.server = lab.server(handler, "fake-op")


# =========================================================================== cases


@dataclass
class Shot:
    """How a case delivers its token(s)."""
    tokens: list[str]                 # Authorization: Bearer values, in order (IdP: the form field)
    in_query: bool = False            # ?access_token= instead of a header
    replay: bool = False              # sent twice: the first must pass, the second is judged
    replay_with: str | None = None    # the second time, this spelling of the same token
    client: str = AGENT_ID            # IdP: the agent that authenticates the request
    scope: str | None = None          # JWT-bearer: the scope asked for


@dataclass(frozen=True)
class Expect:
    statuses: tuple[int, ...]
    errors: tuple[str | None, ...]
    label: str


@dataclass(frozen=True)
class Case:
    id: str
    why: str
    build: Callable[["Target"], Shot | str]
    positive: bool = False


@dataclass
class Target:
    spec: "Spec"
    lab: Lab
    kit: Kit
    foreign: Kit                      # another issuer's real key and claims


def shot(value: Shot | str) -> Shot:
    return value if isinstance(value, Shot) else Shot([value])


def _std_alphabet(t: Target) -> str:
    for _ in range(50):
        tok = t.kit.token()
        h, p, s = tok.split(".")
        if "-" in s or "_" in s:
            return f"{h}.{p}." + s.replace("-", "+").replace("_", "/")
    raise AssertionError("no signature with - or _ in 50 tries")


def _insert(tok: str, part: int, char: str) -> str:
    parts = tok.split(".")
    parts[part] = parts[part][:20] + char + parts[part][20:]
    return ".".join(parts)


def _keep_sig_alg_none(t: Target) -> str:
    h, p, s = t.kit.token().split(".")
    return f"{_segment(t.kit.header('none'))}.{p}.{s}"


def _dup(t: Target, name: str, first: Any, last: Any) -> str:
    return forge(t.kit.header(), duplicate_member(t.kit.claims(**{name: first}), name, last), rsa_signer(t.kit.key))


def _dup_header_alg(t: Target) -> str:
    """RS256-signed, but the header says alg twice: RS256, then none."""
    return forge(duplicate_member(t.kit.header(), "alg", "none"), t.kit.claims(), rsa_signer(t.kit.key))


def _foreign_token(t: Target) -> str:
    """A genuinely signed token of another issuer, with this validator's audience."""
    return t.foreign.token(aud=t.kit.claims()["aud"])


def _now() -> int:
    return int(time.time())


C = Case
POSITIVE = [C("positive-forged-good", "control: a well-formed token signed with the real key", lambda t: t.kit.token(), positive=True)]

COMMON = [
    # algorithm
    C("alg-none", "alg none, empty signature", lambda t: forge(t.kit.header("none"), t.kit.claims(), None)),
    C("alg-NONE-uppercase", "alg NONE, empty signature", lambda t: forge(t.kit.header("NONE"), t.kit.claims(), None)),
    C("alg-none-keeps-signature", "genuine token with its header changed to alg none", _keep_sig_alg_none),
    C("hs256-public-key-as-secret", "HS256 with the issuer's public key PEM as the HMAC secret",
      lambda t: forge(t.kit.header("HS256"), t.kit.claims(), hmac_signer(public_pem(t.kit.key)))),
    C("rs512-off-allow-list", "RS512 with the real key (allow-list RS256, ES256)", lambda t: t.kit.token(alg="RS512")),
    C("ps256-off-allow-list", "PS256 with the real key", lambda t: t.kit.token(alg="PS256")),
    C("es256-on-rsa-kid", "ES256 (allowed) signed by an attacker EC key under the RSA kid",
      lambda t: forge(t.kit.header("ES256"), t.kit.claims(), es256_signer(t.lab.attacker_ec))),
    # kid
    C("kid-unknown", "kid not in the JWKS", lambda t: t.kit.token(header={"kid": "no-such-key"})),
    C("kid-empty", 'kid ""', lambda t: t.kit.token(header={"kid": ""})),
    C("kid-missing", "no kid", lambda t: t.kit.token(header={"kid": DROP})),
    C("kid-path-traversal", "kid ../../../../etc/passwd", lambda t: t.kit.token(header={"kid": "../../../../etc/passwd"})),
    C("kid-sql-injection", "kid ' OR 1=1 --", lambda t: t.kit.token(header={"kid": "' OR 1=1 --"})),
    C("kid-10kb", "kid of 10 KiB", lambda t: t.kit.token(header={"kid": "k" * 10_240})),
    # keys named by the token itself
    C("jwk-embedded", "jwk header with the attacker's key, real kid, signed by the attacker",
      lambda t: t.kit.token(key=t.lab.attacker_rsa, header={"jwk": public_jwk(t.lab.attacker_rsa, t.kit.kid)})),
    C("jwk-embedded-own-kid", "jwk header with the attacker's key and kid",
      lambda t: t.kit.token(key=t.lab.attacker_rsa, header={"kid": t.lab.attacker_kid, "jwk": public_jwk(t.lab.attacker_rsa, t.lab.attacker_kid)})),
    C("jku-attacker", "jku pointing at the attacker's JWKS (never fetched)",
      lambda t: t.kit.token(key=t.lab.attacker_rsa, header={"kid": t.lab.attacker_kid, "jku": t.lab.attacker.url + "/jwks.json"})),
    C("x5u-attacker", "x5u pointing at the attacker's certificate (never fetched)",
      lambda t: t.kit.token(key=t.lab.attacker_rsa, header={"kid": t.lab.attacker_kid, "x5u": t.lab.attacker.url + "/cert.pem"})),
    C("x5c-attacker", "x5c with the attacker's self-signed certificate, real kid",
      lambda t: t.kit.token(key=t.lab.attacker_rsa, header={"x5c": [t.lab.attacker_x5c]})),
    C("crit-unknown-extension", "crit naming an unknown extension", lambda t: t.kit.token(header={"crit": ["urn:evil:ext"], "urn:evil:ext": True})),
    # time
    C("expired", "exp an hour ago", lambda t: t.kit.token(iat=_now() - 7200, exp=_now() - 3600)),
    C("nbf-future", "nbf an hour ahead", lambda t: t.kit.token(nbf=_now() + 3600)),
    C("iat-future", "iat an hour ahead (beyond the skew)", lambda t: t.kit.token(iat=_now() + 3600, exp=_now() + 3900)),
    C("lifetime-too-long", "exp - iat beyond the validator's maximum", lambda t: t.kit.token(iat=_now(), exp=_now() + t.kit.max_lifetime + 3600)),
    C("exp-missing", "no exp", lambda t: t.kit.token(exp=DROP)),
    # issuer, audience, signer
    C("wrong-iss", "iss https://evil.example, real key", lambda t: t.kit.token(iss="https://evil.example")),
    C("iss-missing", "no iss", lambda t: t.kit.token(iss=DROP)),
    C("wrong-aud", "aud evil-client", lambda t: t.kit.token(aud="evil-client")),
    C("aud-missing", "no aud", lambda t: t.kit.token(aud=DROP)),
    C("aud-extra-untrusted", "aud [expected, evil-client]", lambda t: t.kit.token(aud=[t.kit.claims()["aud"], "evil-client"])),
    C("foreign-key-real-kid", "signed by another real issuer's key under this issuer's kid", lambda t: t.kit.token(key=t.foreign.key)),
    C("foreign-issuer-token", "a valid token of another issuer (its own key, kid, iss)", _foreign_token),
    C("attacker-key-real-kid", "signed by the attacker's key under the real kid", lambda t: t.kit.token(key=t.lab.attacker_rsa)),
    # duplicate members (RFC 7519 §4: reject, or take the last one)
    C("dup-aud-last-untrusted", 'two "aud": the expected one, then evil-client', lambda t: _dup(t, "aud", t.kit.claims()["aud"], "evil-client")),
    C("dup-iss-last-untrusted", 'two "iss": the real one, then https://evil.example', lambda t: _dup(t, "iss", t.kit.iss, "https://evil.example")),
    C("dup-exp-last-expired", 'two "exp": valid, then an hour ago', lambda t: _dup(t, "exp", _now() + 300, _now() - 3600)),
    C("dup-sub-last-empty", 'two "sub": the user, then ""', lambda t: _dup(t, "sub", t.kit.claims()["sub"], "")),
    C("dup-alg-header-last-none", 'header with two "alg": RS256, then none', _dup_header_alg),
    # encoding and shape
    C("signature-truncated", "last 8 characters of the signature cut", lambda t: t.kit.token()[:-8]),
    C("signature-stripped", "header.payload. (signature removed)", lambda t: t.kit.token().rsplit(".", 1)[0] + "."),
    C("two-segments", "header.payload only", lambda t: t.kit.token().rsplit(".", 1)[0]),
    C("extra-dot", "a fourth, empty segment", lambda t: t.kit.token() + "."),
    C("padded-signature", "signature with base64 '=' padding", lambda t: t.kit.token() + "=="),
    C("padded-header", "header segment padded with '='", lambda t: t.kit.token().replace(".", "=.", 1)),
    C("non-base64-in-payload", "'!' inside the payload segment", lambda t: _insert(t.kit.token(), 1, "!")),
    C("non-base64-in-signature", "'*' inside the signature segment", lambda t: _insert(t.kit.token(), 2, "*")),
    C("std-base64-signature", "signature in the +/ alphabet instead of -_", _std_alphabet),
    C("payload-not-json", "payload bytes that are not JSON, real signature", lambda t: t.kit.token(payload=b"not json at all")),
    C("nested-jwt", "cty JWT: the payload is another (valid) JWT, real signature",
      lambda t: t.kit.token(header={"cty": "JWT"}, payload=t.kit.token())),
    C("token-17kb", "17 KiB signed token (over the 16 KiB cap)", lambda t: t.kit.token(junk="A" * 12_800)),
    C("token-200kb", "200 KiB signed token", lambda t: t.kit.token(junk="A" * 150_000)),
]

BEARER_DELIVERY = [
    C("two-authz-forged-first", "two Authorization headers: alg-none forgery, then a valid token",
      lambda t: Shot([forge(t.kit.header("none"), t.kit.claims(), None), t.kit.token()])),
    C("two-authz-valid-first", "two Authorization headers: a valid token, then an alg-none forgery",
      lambda t: Shot([t.kit.token(), forge(t.kit.header("none"), t.kit.claims(), None)])),
    C("query-string-token", "?access_token=<valid token>, no Authorization header", lambda t: Shot([t.kit.token()], in_query=True)),
]


def without(cases: list[Case], *ids: str) -> list[Case]:
    missing = set(ids) - {c.id for c in cases}
    assert not missing, missing
    return [c for c in cases if c.id not in ids]


# --------------------------------------------------------------------------- validator-specific cases

ID_TOKEN_TYPES = [
    C("typ-at+jwt", "ID-token claims with typ at+jwt", lambda t: t.kit.token(header={"typ": "at+jwt"})),
    C("typ-id-jag", "ID-token claims with typ oauth-id-jag+jwt", lambda t: t.kit.token(header={"typ": "oauth-id-jag+jwt"})),
    C("real-access-token-as-id-token", "alice's genuine org access token (typ at+jwt)", lambda t: t.lab.alice["access_token"]),
    C("real-id-jag-as-id-token", "a genuine ID-JAG", lambda t: t.lab.real_jag()),
    C("sub-missing", "no sub", lambda t: t.kit.token(sub=DROP)),
]
AZP = [
    C("azp-other-client", "aud agent0 but azp evil-client", lambda t: t.kit.token(azp="evil-client")),
    C("aud-extra-with-azp", "aud [agent0, evil-client], azp agent0", lambda t: t.kit.token(aud=[t.kit.claims()["aud"], "evil-client"], azp=t.kit.claims()["aud"])),
]
GATEWAY_CASES = POSITIVE + [C("positive-real-id-token", "control: alice's genuine ID token from the IdP", lambda t: t.lab.alice["id_token"], positive=True)] \
    + COMMON + ID_TOKEN_TYPES + AZP + BEARER_DELIVERY
GATEWAY_MCP_CASES = POSITIVE + [c for c in COMMON + ID_TOKEN_TYPES + BEARER_DELIVERY if c.id in {
    "alg-none", "hs256-public-key-as-secret", "kid-unknown", "jwk-embedded", "jku-attacker", "crit-unknown-extension", "expired", "wrong-iss",
    "wrong-aud", "aud-extra-untrusted", "foreign-issuer-token", "dup-aud-last-untrusted", "nested-jwt", "typ-at+jwt", "real-id-jag-as-id-token",
    "two-authz-forged-first", "two-authz-valid-first", "query-string-token"}]

GATEWAY_AGGREGATE_CASES = POSITIVE + [c for c in COMMON + ID_TOKEN_TYPES + BEARER_DELIVERY if c.id in {
    "alg-none", "hs256-public-key-as-secret", "kid-unknown", "jwk-embedded", "expired", "wrong-aud", "foreign-issuer-token",
    "typ-at+jwt", "two-authz-forged-first", "two-authz-valid-first", "query-string-token"}]

SUBJECT_TOKEN_CASES = POSITIVE + [C("positive-real-id-token", "control: alice's genuine ID token", lambda t: t.lab.alice["id_token"], positive=True)] \
    + COMMON + ID_TOKEN_TYPES

ASSERTION_CASES = POSITIVE + without(COMMON, "aud-extra-untrusted") + [  # RFC 7523 §3: aud must *contain* the token endpoint
    C("jti-replay", "the same client assertion twice (jti is single use)", lambda t: Shot([t.kit.token()], replay=True)),
    C("jti-replay-respelled", "replayed with '==' padding on the signature (same jti, new string)",
      lambda t: (lambda tok: Shot([tok], replay=True, replay_with=tok + "=="))(t.kit.token())),
    C("jti-missing", "no jti", lambda t: t.kit.token(jti=DROP)),
    C("jti-empty", 'jti ""', lambda t: t.kit.token(jti="")),
    C("exp-beyond-1h", "exp two hours away (iat absent)", lambda t: t.kit.token(iat=DROP, exp=_now() + 7200)),
    C("sub-not-iss", "sub someone-else", lambda t: t.kit.token(sub="someone-else")),
    C("other-clients-key", "iss/sub wlp-dev-agent0 signed by other-agent's registered key and kid",
      lambda t: t.kit.token(key=t.lab.other_agent_key, header={"kid": OTHER_AGENT_KID})),
    C("typ-at+jwt", "typ at+jwt", lambda t: t.kit.token(header={"typ": "at+jwt"})),
    C("typ-id-jag", "typ oauth-id-jag+jwt", lambda t: t.kit.token(header={"typ": "oauth-id-jag+jwt"})),
    C("aud-issuer-not-token-endpoint", "aud = the IdP issuer, not its token endpoint", lambda t: t.kit.token(aud=t.lab.idp.issuer)),
    C("real-id-token-as-assertion", "alice's genuine ID token as client assertion", lambda t: t.lab.alice["id_token"]),
]

JAG_CASES = POSITIVE + [C("positive-real-id-jag", "control: a genuine ID-JAG from the token exchange", lambda t: t.lab.real_jag(), positive=True)] \
    + COMMON + [
    C("jti-replay", "a genuine ID-JAG used twice (jti is single use)", lambda t: Shot([t.lab.real_jag()], replay=True)),
    C("jti-replay-forged", "a forged-good ID-JAG used twice", lambda t: Shot([t.kit.token()], replay=True)),
    C("jti-replay-respelled", "a genuine ID-JAG replayed with '==' padding on the signature",
      lambda t: (lambda tok: Shot([tok], replay=True, replay_with=tok + "=="))(t.lab.real_jag())),
    C("jti-missing", "no jti", lambda t: t.kit.token(jti=DROP)),
    C("client-id-other-agent", "client_id other-agent, presented by wlp-dev-agent0", lambda t: t.kit.token(client_id=OTHER_AGENT_ID)),
    C("stolen-by-other-agent", "a genuine ID-JAG of wlp-dev-agent0 presented by other-agent", lambda t: Shot([t.lab.real_jag()], client=OTHER_AGENT_ID)),
    C("aud-single-element-extra", "aud [the AS, the AS token endpoint]", lambda t: t.kit.token(aud=[t.lab.as_issuer, t.lab.as_token_endpoint])),
    C("aud-org-issuer", "aud = the org issuer", lambda t: t.kit.token(aud=t.lab.idp.issuer)),
    C("typ-jwt", "ID-JAG claims with typ JWT", lambda t: t.kit.token(header={"typ": "JWT"})),
    C("typ-missing", "ID-JAG claims without typ", lambda t: t.kit.token(header={"typ": DROP})),
    C("typ-at+jwt", "ID-JAG claims with typ at+jwt", lambda t: t.kit.token(header={"typ": "at+jwt"})),
    C("real-id-token-as-jag", "alice's genuine ID token", lambda t: t.lab.alice["id_token"]),
    C("real-access-token-as-jag", "alice's genuine org access token", lambda t: t.lab.alice["access_token"]),
    C("scope-widening", "ID-JAG for the default scopes, token request asks mcp:tools:manage",
      lambda t: Shot([t.kit.token()], scope="mcp:connect mcp:tools:read mcp:tools:manage")),
]

ACCESS_TOKEN_CASES = POSITIVE + [C("positive-real-access-token", "control: a genuine access token from the JWT-bearer grant",
                                   lambda t: t.lab.real_access_token, positive=True)] \
    + without(COMMON, "aud-extra-untrusted") + [  # RFC 9068 §4: aud must *contain* the resource
    C("typ-jwt", "access-token claims with typ JWT", lambda t: t.kit.token(header={"typ": "JWT"})),
    C("typ-missing", "access-token claims without typ", lambda t: t.kit.token(header={"typ": DROP})),
    C("real-id-token-as-access-token", "alice's genuine ID token", lambda t: t.lab.alice["id_token"]),
    C("real-id-jag-as-access-token", "a genuine ID-JAG", lambda t: t.lab.real_jag()),
    C("org-access-token", "alice's genuine org access token (iss org, aud org)", lambda t: t.lab.alice["access_token"]),
    C("sts-token-as-access-token", "an STS token signed by the github app's key", lambda t: t.lab.sts_kit("github").token(aud=MCP_RESOURCE)),
    C("sub-and-uid-missing", "no sub, no uid", lambda t: t.kit.token(sub=DROP, uid=DROP)),
] + BEARER_DELIVERY

ISV_REST_CASES = POSITIVE + without(COMMON, "aud-extra-untrusted") + [
    C("typ-jwt", "STS claims with typ JWT", lambda t: t.kit.token(header={"typ": "JWT"})),
    C("cross-app-mcp-token", "a github-mcp token (its issuer, its audience) at the REST API", lambda t: t.lab.sts_kit("github-mcp").token()),
    C("aud-port-7000", "the audience the IdP mints for (port 7000), not this server's", lambda t: t.kit.token(aud="http://127.0.0.1:7000")),
    C("todo0-access-token", "a genuine todo-mcp access token", lambda t: t.lab.real_access_token),
    C("real-id-token", "alice's genuine ID token", lambda t: t.lab.alice["id_token"]),
] + BEARER_DELIVERY
ISV_MCP_CASES = POSITIVE + [c for c in COMMON + BEARER_DELIVERY if c.id in {
    "alg-none", "hs256-public-key-as-secret", "kid-unknown", "jwk-embedded", "expired", "wrong-iss", "wrong-aud", "foreign-key-real-kid",
    "dup-aud-last-untrusted", "two-authz-valid-first", "query-string-token"}] + [
    C("cross-app-rest-token", "a github REST token at /mcp", lambda t: t.lab.sts_kit("github").token()),
]

AGENT0_CASES = POSITIVE + without(COMMON, "token-200kb") + ID_TOKEN_TYPES[:2] + AZP + [
    C("token-200kb", "200 KiB signed ID token", lambda t: t.kit.token(junk="A" * 150_000)),
    C("nonce-mismatch", "nonce of another sign-in", lambda t: t.kit.token(nonce="not-this-browsers-nonce")),
    C("nonce-missing", "no nonce", lambda t: t.kit.token(nonce=DROP)),
    C("real-idp-id-token", "a genuine ID token of the development IdP (another issuer)", lambda t: t.lab.alice["id_token"]),
]


@dataclass
class Spec:
    name: str
    validator: str
    expect: Expect
    cases: list[Case]
    overrides: dict[str, Expect] = field(default_factory=dict)


GW = Expect((401,), ("invalid_user_token",), "401 invalid_user_token, upstream untouched")
GW_HUGE = Expect((431,), ("headers_too_large",), "431 headers_too_large, upstream untouched")
BEARER = Expect((401,), ("invalid_token",), "401 invalid_token")
BEARER_HUGE = Expect((0, 400, 431), (None, "invalid_token", "headers_too_large", "bad_request"), "refused by the HTTP parser (431/400/closed)")
FORM_HUGE = Expect((400,), ("invalid_request",), "400 invalid_request (form over 64 KiB)")

SPECS: dict[str, Spec] = {s.name: s for s in [
    Spec("gateway-rest-event-loop", "gateway inbound ID token, /rest/{name}, event-loop driver", GW, GATEWAY_CASES, {"token-200kb": GW_HUGE}),
    Spec("gateway-rest-async", "gateway inbound ID token, /rest/{name}, SWITCHBOARD_FAST_PATH=off", GW, GATEWAY_CASES, {"token-200kb": GW_HUGE}),
    Spec("gateway-mcp", "gateway inbound ID token, POST /mcp/{name}, event-loop driver", GW, GATEWAY_MCP_CASES),
    Spec("gateway-aggregate", "gateway inbound ID token, POST /mcp (the gateway's own MCP server, initialize)",
         Expect((401,), ("invalid_user_token",), "401 invalid_user_token"), GATEWAY_AGGREGATE_CASES),
    Spec("idp-client-assertion", "IdP token endpoint, private_key_jwt client assertion", Expect((401,), ("invalid_client",), "401 invalid_client"),
         ASSERTION_CASES, {"token-200kb": FORM_HUGE}),
    Spec("idp-subject-token", "IdP token exchange, subject_token (ID token)", Expect((400,), ("invalid_grant",), "400 invalid_grant"),
         SUBJECT_TOKEN_CASES, {"token-200kb": FORM_HUGE}),
    Spec("as-jwt-bearer", "todo-mcp AS JWT-bearer grant, assertion (ID-JAG)", Expect((400,), ("invalid_grant",), "400 invalid_grant"), JAG_CASES,
         {"token-200kb": FORM_HUGE, "scope-widening": Expect((400,), ("invalid_scope",), "400 invalid_scope")}),
    Spec("todo0", "todo0 /mcp access token", BEARER, ACCESS_TOKEN_CASES,
         {"token-200kb": BEARER_HUGE, "query-string-token": Expect((401,), ("invalid_token",), "401, challenge without error (no credentials)")}),
    Spec("isv-rest", "ISV stand-in REST (GET /user) STS token", BEARER, ISV_REST_CASES,
         {"token-200kb": BEARER_HUGE, "query-string-token": Expect((401,), (None,), "401 Bad credentials, challenge without error")}),
    Spec("isv-mcp", "ISV stand-in /mcp STS token", BEARER, ISV_MCP_CASES, {"query-string-token": Expect((401,), ("invalid_token",), "401 invalid_token")}),
    Spec("agent0-callback", "agent0 sign-in callback, ID token from the token endpoint", Expect((400,), ("invalid_id_token",), "400 invalid_id_token, no session"),
         AGENT0_CASES, {"nonce-mismatch": Expect((400,), ("invalid_nonce",), "400 invalid_nonce, no session"),
                        "nonce-missing": Expect((400,), ("invalid_nonce",), "400 invalid_nonce, no session")}),
]}

# Cases a validator accepts although it should not: each one a reported defect, marked
# xfail(strict=True) so that a fix turns it into an XPASS failure and the mark must then go.
# Empty: the four found when this matrix was first run (duplicate JSON member names read
# first-wins; a padded signature verifying; the gateway serving two Authorization headers on
# the first; the IdP's token exchange without OIDC's audience rules) are fixed, and their
# cases now assert the refusal.
DEFECTS: dict[tuple[str, str], str] = {}


# =========================================================================== attempts


@dataclass
class Outcome:
    status: int
    error: str | None
    accepted: bool
    detail: str = ""


def build_target(lab: Lab, name: str) -> Target:
    if name.startswith("gateway"):
        return Target(SPECS[name], lab, lab.id_token_kit(), Kit(lab.as_issuer, lab.as_key, lab.as_kid, "JWT", lab.id_token_kit().base, 86_400))
    if name == "idp-subject-token":
        return Target(SPECS[name], lab, lab.id_token_kit(), Kit(lab.as_issuer, lab.as_key, lab.as_kid, "JWT", lab.id_token_kit().base, 86_400))
    if name == "idp-client-assertion":
        kit = lab.assertion_kit()
        return Target(SPECS[name], lab, kit, Kit(OTHER_AGENT_ID, lab.other_agent_key, OTHER_AGENT_KID, "JWT", kit.base, 3600))
    if name == "as-jwt-bearer":
        kit = lab.jag_kit()
        return Target(SPECS[name], lab, kit, Kit(lab.as_issuer, lab.as_key, lab.as_kid, "oauth-id-jag+jwt", kit.base, 600))
    if name == "todo0":
        kit = lab.access_token_kit()
        return Target(SPECS[name], lab, kit, Kit(lab.idp.issuer, lab.org_key, lab.org_kid, "at+jwt", kit.base, 86_400))
    if name == "isv-rest":
        return Target(SPECS[name], lab, lab.sts_kit("github"), lab.sts_kit("github-mcp"))
    if name == "isv-mcp":
        return Target(SPECS[name], lab, lab.sts_kit("github-mcp"), lab.sts_kit("github"))
    if name == "agent0-callback":
        kit = lab.op_kit()
        other = new_rsa_key()
        return Target(SPECS[name], lab, kit, Kit(f"http://{HOST}:1/evil-issuer", other, "evil-" + uuid.uuid4().hex[:6], "JWT", kit.base, 86_400))
    raise KeyError(name)


def attempt(t: Target, case: Case) -> Outcome:
    name = t.spec.name
    if name.startswith("gateway"):
        return _gateway(t, case)
    if name in ("todo0", "isv-rest", "isv-mcp"):
        return _bearer_service(t, case)
    if name.startswith("idp") or name == "as-jwt-bearer":
        return _idp(t, case)
    if name == "agent0-callback":
        return _agent0(t, case)
    raise KeyError(name)


def _bearer_request(port: int, method: str, path: str, s: Shot, headers: list[tuple[str, str]], body: bytes = b"") -> RawResponse:
    if s.in_query:
        path += ("&" if "?" in path else "?") + "access_token=" + quote(s.tokens[0], safe="")
    else:
        headers = headers + [("Authorization", "Bearer " + tok) for tok in s.tokens]
    return raw_http(port, method, path, headers, body)


def _gateway(t: Target, case: Case) -> Outcome:
    lab = t.lab
    driver = "async" if t.spec.name.endswith("async") else "event-loop"
    gw = lab.gateway(driver)
    s = shot(case.build(t))
    test_id = uuid.uuid4().hex
    if t.spec.name in ("gateway-mcp", "gateway-aggregate"):
        if t.spec.name == "gateway-mcp":
            path, body = "/mcp/mcpup", json.dumps({"jsonrpc": "2.0", "id": 7, "method": "tools/list", "params": {}}).encode()
        else:
            path, body = "/mcp", json.dumps({"jsonrpc": "2.0", "id": 7, "method": "initialize", "params": {
                "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "token-matrix", "version": "0"}}}).encode()
        r = _bearer_request(gw.port, "POST", path, s, [("X-Test-Id", test_id), ("Content-Type", "application/json"),
                                                       ("Accept", "application/json, text/event-stream")], body)
    else:
        r = _bearer_request(gw.port, "GET", f"/rest/files/probe/{case.id}", s, [("X-Test-Id", test_id)])
    seen = [q for q in lab.upstream.requests if q.headers.get("x-test-id") == test_id]
    if r.status == 401:
        assert (r.headers.get("www-authenticate") or "").startswith("Bearer"), r.headers
    if seen:
        assert "authorization" not in seen[0].headers, "the caller's Authorization reached the upstream"
    return Outcome(r.status, r.json().get("error"), accepted=(r.status < 400 or bool(seen)),
                   detail=("upstream reached; " if seen else "") + r.json().get("message", r.body[:120].decode("latin-1")))


def _bearer_service(t: Target, case: Case) -> Outcome:
    s = shot(case.build(t))
    if t.spec.name == "todo0":
        svc = t.lab.todo0
        headers = [(k, v) for k, v in stateless_headers(None, "tools/call", "get-todos").items()]
        r = _bearer_request(svc.port, "POST", "/mcp", s, headers, json.dumps(stateless_body("tools/call", {"name": "get-todos", "arguments": {}})).encode())
    elif t.spec.name == "isv-mcp":
        svc = t.lab.isv
        headers = [(k, v) for k, v in stateless_headers(None, "tools/list").items()]
        r = _bearer_request(svc.port, "POST", "/mcp", s, headers, json.dumps(stateless_body("tools/list")).encode())
    else:
        r = _bearer_request(t.lab.isv.port, "GET", "/user", s, [("Accept", "application/json")])
    challenge = r.headers.get("www-authenticate")
    error = r.json().get("error") if t.spec.name != "isv-rest" else challenge_error(challenge)
    if r.status == 401:
        assert challenge and challenge.startswith("Bearer"), r.headers
    return Outcome(r.status, error, accepted=r.status == 200, detail=r.json().get("error_description") or r.json().get("message") or r.body[:120].decode("latin-1"))


def _idp(t: Target, case: Case) -> Outcome:
    lab = t.lab
    s = shot(case.build(t))
    token = s.tokens[0]

    def send() -> requests.Response:
        if t.spec.name == "idp-client-assertion":
            return lab.exchange(lab.alice["id_token"], assertion=token)
        if t.spec.name == "idp-subject-token":
            return lab.exchange(token, client=s.client)
        return lab.jwt_bearer(token, client=s.client, scope=s.scope)

    r = send()
    if s.replay:
        assert r.status_code == 200, f"harness: the first use must pass: HTTP {r.status_code} {r.text[:300]}"
        token = s.replay_with or token
        r = send()
    body = r.json() if r.headers.get("content-type", "").startswith("application/json") else {}
    return Outcome(r.status_code, body.get("error"), accepted=r.status_code == 200, detail=body.get("error_description", r.text[:120]))


def _agent0(t: Target, case: Case) -> Outcome:
    lab = t.lab
    agent, op = lab.agent0, lab.op
    browser = requests.Session()
    login = browser.get(agent.url + "/login", allow_redirects=False, timeout=10)
    assert login.status_code == 302, f"harness: /login answered {login.status_code} {login.text[:300]}"
    query = parse_qs(urlsplit(login.headers["Location"]).query)
    op.nonce = query["nonce"][0]
    op.next_token = shot(case.build(t)).tokens[0]
    asked = op.token_requests
    cb = browser.get(agent.url + "/callback", params={"code": "code-" + uuid.uuid4().hex, "state": query["state"][0]}, allow_redirects=False, timeout=20)
    assert op.token_requests == asked + 1, "harness: agent0 did not redeem the code at the token endpoint"
    status = browser.get(agent.url + "/auth/status", timeout=10).json()
    signed_in = bool(status.get("authenticated"))
    body = cb.json() if cb.headers.get("content-type", "").startswith("application/json") else {}
    return Outcome(cb.status_code, body.get("error"), accepted=signed_in or cb.status_code == 302,
                   detail=(f"signed in as {status.get('subject')}; " if signed_in else "") + body.get("message", ""))


# =========================================================================== the matrix


RESULTS: list[dict] = []


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    the_lab = Lab(tmp_path_factory.mktemp("token-matrix"))
    try:
        yield the_lab
    finally:
        the_lab.close()
        write_report()


@pytest.fixture(scope="module")
def targets(lab):
    built: dict[str, Target] = {}

    def get(name: str) -> Target:
        if name not in built:
            built[name] = build_target(lab, name)
        return built[name]
    return get


class ForgedTokenAccepted(AssertionError):
    """A validator accepted what it must refuse (the only failure a known defect's xfail absorbs)."""


def _param(spec: Spec, case: Case):
    reason = DEFECTS.get((spec.name, case.id))
    marks = [pytest.mark.xfail(strict=True, raises=ForgedTokenAccepted, reason="DEFECT: " + reason)] if reason else []
    return pytest.param(spec.name, case, id=f"{spec.name}/{case.id}", marks=marks)


@pytest.mark.parametrize("target_name,case", [_param(spec, c) for spec in SPECS.values() for c in spec.cases])
def test_token_matrix(lab, targets, target_name: str, case: Case):
    t = targets(target_name)
    expect = Expect((200,), (None,), "accepted") if case.positive else t.spec.overrides.get(case.id, t.spec.expect)
    hits = lab.attacker_hits()
    try:
        out = attempt(t, case)
    except BaseException as e:
        RESULTS.append({"case": case.id, "why": case.why, "validator": target_name, "expected": expect.label, "result": f"ERROR {e!r}"[:160],
                        "positive": case.positive, "accepted": False})
        raise
    fetched = lab.attacker_hits() - hits
    result = (f"ACCEPTED {out.status}" if out.accepted else f"refused {out.status} {out.error or ''}".rstrip())
    RESULTS.append({"case": case.id, "why": case.why, "validator": target_name, "expected": expect.label, "result": result,
                    "positive": case.positive, "accepted": out.accepted, "defect": (target_name, case.id) in DEFECTS})
    assert fetched == 0, f"the validator fetched the attacker's URL ({fetched} requests): jku/x5u must never be followed"
    if case.positive:
        assert out.accepted and out.status in (200, 302), f"control refused: HTTP {out.status} {out.error} {out.detail}"
        return
    if out.accepted:
        raise ForgedTokenAccepted(f"FORGED TOKEN ACCEPTED by {target_name}: HTTP {out.status} ({out.detail})")
    assert out.status in expect.statuses and out.error in expect.errors, \
        f"refused, but not as documented: HTTP {out.status} error={out.error!r} ({out.detail}); expected {expect.label}"


# --------------------------------------------------------------------------- authorization codes

CODE_CASES = {
    "positive-fresh-code": ("control: a fresh code, right client, redirect_uri and verifier", (200, None)),
    "code-replay": ("the same code redeemed twice", (400, "invalid_grant")),
    "code-wrong-client": ("agent0's code redeemed by other-web (with its own valid secret)", (400, "invalid_grant")),
    "code-wrong-redirect-uri": ("redirect_uri differs from the authorization request", (400, "invalid_grant")),
    "code-missing-redirect-uri": ("no redirect_uri at the token endpoint", (400, "invalid_grant")),
    "code-wrong-verifier": ("PKCE verifier of another request", (400, "invalid_grant")),
    "code-forged": ("a random code", (400, "invalid_grant")),
    "code-wrong-secret": ("agent0's code with a wrong client secret", (401, "invalid_client")),
    "code-by-agent": ("agent0's code redeemed by the agent (private_key_jwt)", (400, "unauthorized_client")),
}


@pytest.mark.parametrize("case_id", [pytest.param(k, id=f"idp-code/{k}") for k in CODE_CASES])
def test_authorization_codes(lab, case_id: str):
    why, (status, error) = CODE_CASES[case_id]
    code, verifier = lab.code()
    if case_id == "code-replay":
        first = lab.redeem(code, verifier)
        assert first.status_code == 200, f"harness: first redemption: {first.text[:300]}"
        r = lab.redeem(code, verifier)
    elif case_id == "code-wrong-client":
        r = lab.redeem(code, verifier, client=(OTHER_WEB_ID, OTHER_WEB_SECRET), redirect_uri=REDIRECT_URI)
    elif case_id == "code-wrong-redirect-uri":
        r = lab.redeem(code, verifier, redirect_uri=REDIRECT_URI + "-evil")
    elif case_id == "code-missing-redirect-uri":
        r = lab.redeem(code, verifier, redirect_uri=None)
    elif case_id == "code-wrong-verifier":
        r = lab.redeem(code, pkce_pair()[0])
    elif case_id == "code-forged":
        r = lab.redeem(b64u(os.urandom(32)), verifier)
    elif case_id == "code-wrong-secret":
        r = lab.redeem(code, verifier, client=(WEB_CLIENT_ID, "not-the-secret"))
    elif case_id == "code-by-agent":
        r = requests.post(lab.idp.token_endpoint, data={"grant_type": "authorization_code", "code": code, "code_verifier": verifier,
                                                         "redirect_uri": REDIRECT_URI, "client_assertion_type": CLIENT_ASSERTION_TYPE,
                                                         "client_assertion": lab.assertion(lab.idp.token_endpoint)}, timeout=10)
    else:
        r = lab.redeem(code, verifier)
    body = r.json() if r.headers.get("content-type", "").startswith("application/json") else {}
    accepted = r.status_code == 200 and bool(body.get("id_token"))
    positive = case_id.startswith("positive")
    RESULTS.append({"case": case_id, "why": why, "validator": "idp-code", "expected": "accepted" if positive else f"{status} {error}",
                    "result": f"ACCEPTED {r.status_code}" if accepted else f"refused {r.status_code} {body.get('error', '')}".rstrip(),
                    "positive": positive, "accepted": accepted})
    if positive:
        assert accepted, r.text[:300]
        return
    assert not accepted, f"CODE ACCEPTED: {case_id}"
    assert (r.status_code, body.get("error")) == (status, error), f"{r.status_code} {r.text[:300]}"


# --------------------------------------------------------------------------- the report


VALIDATOR_TEXT = {s.name: s.validator for s in SPECS.values()} | {"idp-code": "IdP token endpoint, authorization_code grant"}


def write_report() -> None:
    if not RESULTS:
        return
    wrongly = [r for r in RESULTS if not r["positive"] and r["accepted"]]
    unexpected = [r for r in wrongly if not r.get("defect")]
    controls_failed = [r for r in RESULTS if r["positive"] and not r["accepted"]]
    used = [k for k in VALIDATOR_TEXT if any(r["validator"] == k for r in RESULTS)]
    lines = [
        "# Token attack matrix",
        "",
        f"Generated by `Tests/interop/test_security_tokens.py`, {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC.",
        "",
        f"- cases run: {len(RESULTS)}, of which {sum(r['positive'] for r in RESULTS)} positive controls "
        f"({len(controls_failed)} refused)",
        f"- **tokens accepted that should not be: {len(wrongly)}** "
        f"({len(wrongly) - len(unexpected)} known defects marked xfail, {len(unexpected)} unexpected)",
        "",
        "Validators:",
        "",
        *[f"- `{k}`: {VALIDATOR_TEXT[k]}" for k in used],
        "",
        "| case | validator | expected | result |",
        "|---|---|---|---|",
    ]
    for r in RESULTS:
        result = r["result"] + (" — DEFECT" if r["accepted"] and not r["positive"] else "")
        lines.append(f"| `{r['case']}`: {r['why'].replace('|', '/')} | `{r['validator']}` | {r['expected']} | {result.replace('|', '/')} |")
    ARTIFACT.parent.mkdir(parents=True, exist_ok=True)
    ARTIFACT.write_text("\n".join(lines) + "\n")
