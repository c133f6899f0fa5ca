"""Fixtures and helpers for the identity-provider interop tests (test_idp_interop.py).

A real `switchboard idp` process on 127.0.0.1: `--init-agent` into a fresh data directory
(the agent's private key lands in a PEM file), then the server on a free port, waited for
with /healthz and proven to be ours (its JWKS publishes the org key stored in our data
directory). Its stdout and stderr go to files so the tests can prove no secret is logged.

Everything a test receives or sends that must never be logged (tokens, codes, client
assertions, session cookies) is recorded with `IdP.remember()`.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin

import jwt
import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from interop_helpers import HOST, free_port, stop_process, built_switchboard, wait_for_http_200

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parent.parent

# The embedded development configuration (Sources/IdentityProvider/IdPConfig.swift).
WEB_CLIENT_ID = "agent0"
WEB_CLIENT_SECRET = "agent0-dev-secret"
REDIRECT_URI = "http://127.0.0.1:3000/callback"
AGENT_ID = "wlp-dev-agent0"
AGENT_KID = "dev-agent0-key"
AS_ID = "todo-mcp"
MCP_RESOURCE = "http://127.0.0.1:5002/mcp"
GITHUB_RESOURCE = "orn:dev:idp:github"
GITHUB_AUDIENCE = "http://127.0.0.1:7000"
USERS = {
    "alice": {"password": "alice-dev-password", "id": "00u-alice", "name": "Alice Example", "email": "alice@example.test"},
    "bob": {"password": "bob-dev-password", "id": "00u-bob", "name": "Bob Example", "email": "bob@example.test"},
}

# Wire constants (PROTOCOLS.md A-D).
CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
ID_JAG_TYPE = "urn:ietf:params:oauth:token-type:id-jag"
ID_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:id_token"
STS_TYPE = "urn:okta:params:oauth:token-type:oauth-sts"


@dataclass
class IdP:
    port: int
    issuer: str
    data_dir: Path
    agent_key_file: Path
    stderr_log: Path
    stdout_log: Path
    proc: subprocess.Popen
    discovery: dict = field(default_factory=dict)
    secrets: list[str] = field(default_factory=list)

    # ------------------------------------------------------------------ endpoints

    @property
    def token_endpoint(self) -> str:
        return self.discovery["token_endpoint"]

    @property
    def authorization_endpoint(self) -> str:
        return self.discovery["authorization_endpoint"]

    @property
    def jwks_uri(self) -> str:
        return self.discovery["jwks_uri"]

    @property
    def revocation_endpoint(self) -> str:
        return self.issuer + "/oauth2/v1/revoke"

    @property
    def as_issuer(self) -> str:
        return f"{self.issuer}/oauth2/{AS_ID}"

    def as_metadata(self) -> dict:
        r = requests.get(self.as_issuer + "/.well-known/oauth-authorization-server", timeout=5)
        assert r.status_code == 200, f"AS metadata: HTTP {r.status_code} {r.text[:300]}"
        return r.json()

    # ------------------------------------------------------------------ secrets & logs

    def remember(self, *values: str | None) -> None:
        for v in values:
            if v:
                self.secrets.append(v)

    def log_text(self) -> str:
        return self.stderr_log.read_text(errors="replace") + self.stdout_log.read_text(errors="replace")

    def log_tail(self, chars: int = 4000) -> str:
        return f"\n--- IdP log (last {chars} chars) ---\n{self.log_text()[-chars:]}"

    # ------------------------------------------------------------------ the agent

    def agent_private_key(self) -> rsa.RSAPrivateKey:
        key = serialization.load_pem_private_key(self.agent_key_file.read_bytes(), password=None)
        assert isinstance(key, rsa.RSAPrivateKey)
        return key

    def client_assertion(self, aud: str, **overrides) -> str:
        """An RFC 7523 private_key_jwt assertion (PROTOCOLS.md A), built with PyJWT."""
        now = int(time.time())
        claims = {"iss": AGENT_ID, "sub": AGENT_ID, "aud": aud, "iat": now, "exp": now + 120, "jti": uuid.uuid4().hex}
        claims.update(overrides)
        token = jwt.encode(claims, self.agent_private_key(), algorithm="RS256", headers={"kid": AGENT_KID})
        self.remember(token)
        return token

    def agent_post(self, url: str, data: dict, assertion_aud: str | None = None) -> requests.Response:
        """POST a form as the agent (client assertion whose aud is `assertion_aud`, default `url`)."""
        form = dict(data)
        form["client_assertion_type"] = CLIENT_ASSERTION_TYPE
        form["client_assertion"] = self.client_assertion(assertion_aud or url)
        r = requests.post(url, data=form, timeout=10)
        if r.headers.get("content-type", "").startswith("application/json"):
            try:
                body = r.json()
            except ValueError:
                body = {}
            if isinstance(body, dict):
                self.remember(body.get("access_token"), body.get("id_token"), body.get("refresh_token"))
        return r


# --------------------------------------------------------------------------- HTML forms


class FormParser(HTMLParser):
    """The forms of a page: action, method, hidden inputs and submit buttons (name, value)."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict] = []
        self._current: dict | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form":
            self._current = {"action": a.get("action") or "", "method": (a.get("method") or "get").lower(), "hidden": {}, "inputs": [], "buttons": []}
            self.forms.append(self._current)
        elif self._current is not None and tag == "input":
            kind = (a.get("type") or "text").lower()
            if kind == "hidden" and a.get("name"):
                self._current["hidden"][a["name"]] = a.get("value") or ""
            elif a.get("name"):
                self._current["inputs"].append(a["name"])
        elif self._current is not None and tag == "button":
            self._current["buttons"].append((a.get("name"), a.get("value")))

    def handle_endtag(self, tag):
        if tag == "form":
            self._current = None


def parse_forms(html: str) -> list[dict]:
    p = FormParser()
    p.feed(html)
    p.close()
    return p.forms


def sign_in(session: requests.Session, authorization_url: str, username: str, password: str) -> str:
    """Drive the IdP's sign-in page like a browser (without following the final redirect);
    returns the `Location` the IdP sends the browser to (the client's redirect URI + code)."""
    page = session.get(authorization_url, allow_redirects=False, timeout=10)
    assert page.status_code == 200, f"GET authorize: HTTP {page.status_code} {page.headers.get('location')} {page.text[:300]}"
    assert page.headers.get("content-type", "").startswith("text/html"), page.headers
    forms = [f for f in parse_forms(page.text) if f["method"] == "post"]
    assert len(forms) == 1, f"expected one POST form on the sign-in page, got {forms}"
    form = forms[0]
    assert {"username", "password"} <= set(form["inputs"]), form
    data = dict(form["hidden"])
    data.update(username=username, password=password)
    r = session.post(urljoin(page.url, form["action"]), data=data, allow_redirects=False, timeout=10)
    assert r.status_code in (302, 303), f"POST sign-in: HTTP {r.status_code} {r.text[:300]}"
    location = r.headers["Location"]
    assert location.startswith(REDIRECT_URI + "?"), location
    return location


# --------------------------------------------------------------------------- the process


def _org_kids(db: Path) -> set[str]:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return {row[0] for row in con.execute("SELECT kid FROM signing_key WHERE owner = 'org'")}
    finally:
        con.close()


def _start_idp(binary: Path, base: Path, attempt: int) -> IdP:
    data_dir = base / f"idp-data-{attempt}"
    key_file = base / f"agent-{attempt}" / "agent0-private-key.pem"
    env = dict(os.environ)
    env["LOG_LEVEL"] = os.environ.get("INTEROP_LOG_LEVEL", "trace")
    for var in ("IDP_HOST", "IDP_PORT", "IDP_ISSUER", "SWITCHBOARD_DATA_DIR"):
        env.pop(var, None)

    init = subprocess.run(
        [str(binary), "idp", "--init-agent", "--data-dir", str(data_dir), "--agent-key-file", str(key_file)],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, env=env, cwd=str(base), timeout=120,
    )
    if init.returncode != 0:
        raise RuntimeError(f"idp --init-agent exited {init.returncode}:\n{init.stdout}\n{init.stderr}")
    if not key_file.is_file():
        raise RuntimeError(f"idp --init-agent wrote no key file at {key_file}")

    port = free_port()
    stderr_log = base / f"idp-{attempt}.stderr.log"
    stdout_log = base / f"idp-{attempt}.stdout.log"
    with open(stderr_log, "wb") as err, open(stdout_log, "wb") as out:
        proc = subprocess.Popen(
            [str(binary), "idp", "--host", HOST, "--port", str(port), "--data-dir", str(data_dir)],
            stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env, cwd=str(base),
        )
    issuer = f"http://{HOST}:{port}"
    idp = IdP(port=port, issuer=issuer, data_dir=data_dir, agent_key_file=key_file, stderr_log=stderr_log, stdout_log=stdout_log, proc=proc)
    try:
        wait_for_http_200(issuer + "/healthz", proc, timeout=60, what="switchboard idp", log=stderr_log)
        idp.discovery = requests.get(issuer + "/.well-known/openid-configuration", timeout=5).json()
        # Whoever answers must be *our* IdP: its JWKS publishes the org key in our database.
        published = {k.get("kid") for k in requests.get(idp.jwks_uri, timeout=5).json().get("keys", [])}
        if proc.poll() is not None or idp.discovery.get("issuer") != issuer or not (_org_kids(data_dir / "idp.sqlite") & published):
            raise RuntimeError(f"{issuer} is not our IdP (exit code {proc.poll()}, discovery {idp.discovery})")
        idp.secrets.append(WEB_CLIENT_SECRET)
        return idp
    except BaseException:
        stop_process(proc)
        raise


def start_idp(binary: Path, base: Path) -> IdP:
    """`_start_idp` with up to three attempts (a port can be taken between look-up and bind; the
    binary may be mid-rebuild); fails the test when none starts."""
    errors = []
    for attempt in range(3):
        try:
            return _start_idp(binary, base, attempt)
        except (RuntimeError, TimeoutError, OSError, ValueError, requests.RequestException, subprocess.TimeoutExpired) as e:
            errors.append(repr(e))
            time.sleep(1)
    pytest.fail("the IdP did not start:\n" + "\n".join(errors), pytrace=False)


@pytest.fixture(scope="module")
def idp(tmp_path_factory):
    binary = built_switchboard(REPO_ROOT)
    base = tmp_path_factory.mktemp("idp")
    server = start_idp(binary, base)
    try:
        yield server
    finally:
        stop_process(server.proc)
