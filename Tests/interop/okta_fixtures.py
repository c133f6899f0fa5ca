"""Shared fixtures and helpers of the Okta suites (test_okta_*.py: the tooling with `requests`,
the official Okta SDK's wire checks, the systems bootstrap sets up): a fresh `switchboard idp` per
test or one bootstrapped per module, its SSWS management token, a plain-HTTP `Mgmt` client of its
Management API, agents' client assertions, the `switchboard okta …` runners and the files
`okta bootstrap` writes (state, env file). Real processes on loopback ports, no mocks.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
import pytest
import requests
from cryptography.hazmat.primitives import serialization

from idp_fixtures import CLIENT_ASSERTION_TYPE, ID_JAG_TYPE, ID_TOKEN_TYPE, REDIRECT_URI, TOKEN_EXCHANGE, IdP, start_idp
from interop_helpers import HOST, built_switchboard, stop_process
from system_fixtures import TODO0_RESOURCE, RecordingRelay, _base_env

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parent.parent

AGENTS = "/workload-principals/api/v1/ai-agents"
OPERATIONS = "/workload-principals/api/v1/operations/"
ERROR_FIELDS = {"errorCode", "errorSummary", "errorLink", "errorId", "errorCauses"}
SCOPES = ["mcp:connect", "mcp:tools:read", "mcp:tools:manage"]
CLI_TIMEOUT = 120
STATE = Path(".switchboard/okta-state.json")
ENV_FILE = Path(".switchboard/okta.env")
KEY_FILE = Path(".switchboard/okta-agent-key.pem")
# Shipped connections.yaml also names the GitHub stand-in, which neither doctor nor these tests contact.
NOWHERE = {"GITHUB_API_URL": f"http://{HOST}:9", "GITHUB_MCP_SERVER_URL": f"http://{HOST}:9/mcp"}


# --------------------------------------------------------------------------- the Management API


def management_token(idp: IdP) -> str:
    return (idp.data_dir / "management-api-token").read_text().strip()


def is_json(r: requests.Response) -> bool:
    return r.headers.get("Content-Type", "").split(";")[0].strip() == "application/json"


def answer(r: requests.Response, status: int) -> Any:
    """The body of an answer with this status (None when empty); a JSON body must say so."""
    assert r.status_code == status, f"{r.request.method} {r.url}: HTTP {r.status_code} (expected {status}) {r.text[:500]}"
    if not r.content:
        return None
    assert is_json(r), f"{r.request.method} {r.url}: Content-Type {r.headers.get('Content-Type')!r} for {r.text[:200]}"
    return r.json()


def okta_error(r: requests.Response, status: int, code: str) -> dict:
    """Okta's error body: exactly errorCode, errorSummary, errorLink, errorId, errorCauses[{errorSummary}]."""
    body = answer(r, status)
    assert isinstance(body, dict) and set(body) == ERROR_FIELDS, f"not Okta's error body: {body}"
    assert body["errorCode"] == code, body
    assert isinstance(body["errorSummary"], str) and body["errorSummary"], body
    assert body["errorLink"] == code, body  # Okta's errorLink repeats the code
    assert isinstance(body["errorId"], str) and body["errorId"], body
    assert isinstance(body["errorCauses"], list), body
    for cause in body["errorCauses"]:
        assert set(cause) == {"errorSummary"} and isinstance(cause["errorSummary"], str), body
    return body


class Mgmt:
    """Plain HTTP to the IdP's Management API with `Authorization: SSWS {token}`."""

    DEFAULT = object()

    def __init__(self, idp: IdP) -> None:
        self.base = idp.issuer
        self.token = management_token(idp)

    def request(self, method: str, path: str, body: Any = None, auth: Any = DEFAULT) -> requests.Response:
        headers = {"Accept": "application/json"}
        if auth is Mgmt.DEFAULT:
            headers["Authorization"] = "SSWS " + self.token
        elif auth is not None:
            headers["Authorization"] = auth
        url = path if path.startswith("http") else self.base + path
        return requests.request(method, url, json=body, headers=headers, timeout=10, allow_redirects=False)

    def get(self, path: str, status: int = 200) -> Any:
        return answer(self.request("GET", path), status)

    def post(self, path: str, body: Any = None, status: int = 200) -> Any:
        return answer(self.request("POST", path, {} if body is None else body), status)

    def delete(self, path: str, status: int = 204) -> Any:
        return answer(self.request("DELETE", path), status)

    def accepted(self, r: requests.Response) -> dict:
        """A 202 + absolute Location of an operation: IN_PROGRESS on the first poll, COMPLETED after."""
        assert r.status_code == 202, f"{r.request.method} {r.url}: HTTP {r.status_code} {r.text[:300]}"
        location = r.headers.get("Location", "")
        assert location.startswith(self.base + OPERATIONS), f"Location {location!r} is not an absolute operation URL"
        first = self.get(location)
        assert first["status"] == "IN_PROGRESS", first
        assert first["id"] == location.rsplit("/", 1)[-1], first
        second = self.get(location)
        assert second["status"] == "COMPLETED", second
        assert second["id"] == first["id"] and second["resource"]["id"], second
        return second

    def count(self, path: str) -> int:
        body = self.get(path)
        return len(body["data"] if isinstance(body, dict) else body)

    def ids(self, path: str) -> set[str]:
        body = self.get(path)
        return {o["id"] for o in (body["data"] if isinstance(body, dict) else body)}

    def counts(self) -> dict[str, int]:
        return {p: self.count(p) for p in ("/api/v1/authorizationServers", "/api/v1/apps", "/api/v1/trustedOrigins", AGENTS)}

    # A few objects, made the way a client of the API would.
    def make_app(self, label: str, redirect: str = REDIRECT_URI) -> dict:
        return self.post("/api/v1/apps", {
            "name": "oidc_client", "label": label, "signOnMode": "OPENID_CONNECT",
            "credentials": {"oauthClient": {"token_endpoint_auth_method": "client_secret_basic"}},
            "settings": {"oauthClient": {"redirect_uris": [redirect], "response_types": ["code"],
                                         "grant_types": ["authorization_code"], "application_type": "web"}},
        })

    def make_server(self, name: str, audience: str = TODO0_RESOURCE) -> dict:
        return self.post("/api/v1/authorizationServers", {"name": name, "description": "test", "audiences": [audience]}, status=201)

    def register_agent(self, name: str, app_id: str) -> str:
        op = self.accepted(self.request("POST", AGENTS, {"profile": {"name": name}, "appId": app_id}))
        return op["resource"]["id"]


# --------------------------------------------------------------------------- agents' client assertions (PyJWT), OAuth errors


def client_assertion(agent_id: str, kid: str, key_file: Path, aud: str) -> str:
    key = serialization.load_pem_private_key(Path(key_file).read_bytes(), password=None)
    now = int(time.time())
    claims = {"iss": agent_id, "sub": agent_id, "aud": aud, "iat": now, "exp": now + 120, "jti": uuid.uuid4().hex}
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": kid})


def agent_post(url: str, agent: tuple[str, str, Path], form: dict) -> requests.Response:
    """POST a token request as `agent` (id, kid, key file): private_key_jwt with aud = url."""
    agent_id, kid, key_file = agent
    data = dict(form, client_assertion_type=CLIENT_ASSERTION_TYPE, client_assertion=client_assertion(agent_id, kid, key_file, url))
    return requests.post(url, data=data, timeout=10)


def id_jag_request(idp: IdP, agent: tuple[str, str, Path], id_token: str, audience: str, resource: str | None,
                   scope: str = "mcp:connect mcp:tools:read") -> requests.Response:
    form = {"grant_type": TOKEN_EXCHANGE, "requested_token_type": ID_JAG_TYPE, "subject_token": id_token,
            "subject_token_type": ID_TOKEN_TYPE, "audience": audience, "scope": scope}
    if resource is not None:
        form["resource"] = resource
    return agent_post(idp.token_endpoint, agent, form)


def oauth_error(r: requests.Response, code: str) -> dict:
    assert 400 <= r.status_code < 500, f"HTTP {r.status_code}: {r.text[:300]}"
    body = r.json()
    assert body.get("error") == code, f"expected {code}, got HTTP {r.status_code} {body}"
    return body


# --------------------------------------------------------------------------- the CLI and its files


def okta(binary: Path, idp: IdP, cwd: Path, command: str, *args: str, token_file: Path | None = None,
         env: dict[str, str] | None = None, org: str | None = None) -> subprocess.CompletedProcess:
    """`switchboard okta COMMAND --org … --token-file …` with `idp`'s management token; `org`:
    another --org than the IdP's issuer (a relay in front of it)."""
    full = _base_env()
    full.update(env or {})
    cmd = [str(binary), "okta", command, "--org", org or idp.issuer, "--token-file", str(token_file or idp.data_dir / "management-api-token"), *args]
    return subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=CLI_TIMEOUT, env=full, cwd=str(cwd))


def bootstrap(binary: Path, idp: IdP, cwd: Path, *args: str, **kw) -> subprocess.CompletedProcess:
    return okta(binary, idp, cwd, "bootstrap", "--resource", TODO0_RESOURCE, *args, **kw)


def explain(r: subprocess.CompletedProcess) -> str:
    return f"exit {r.returncode}\n--- stdout ---\n{r.stdout}\n--- stderr ---\n{r.stderr}"


STEP = re.compile(r"^(created|exists) +(.+?) {2}(\S+)$")


def steps(r: subprocess.CompletedProcess) -> list[tuple[str, str, str]]:
    """bootstrap's report: (created|exists, object, id) per line."""
    return [m.groups() for line in r.stdout.splitlines() if (m := STEP.match(line))]


def no_todo0(idp: IdP) -> dict[str, str]:
    """Doctor's environment without a todo0: its upstream is the IdP, which publishes no
    protected-resource metadata (answered at once; a closed port costs the HTTP client's retries)."""
    return {**NOWHERE, "TODO0_MCP_URL": idp.issuer + "/mcp"}


def read_env_file(path: Path) -> dict[str, str]:
    """NAME=value lines as a shell reads them (single-quoted values unquoted, # comments)."""
    out = {}
    for line in path.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        name, _, value = line.partition("=")
        if len(value) >= 2 and value[0] == value[-1] == "'":
            value = value[1:-1].replace("'\\''", "'")
        out[name] = value
    return out


def read_state(cwd: Path) -> dict:
    return json.loads((cwd / STATE).read_text())


# --------------------------------------------------------------------------- HTTP a RecordingRelay saw


@dataclass
class HTTPMessage:
    """One HTTP/1.1 request or answer: its start line's parts, headers (names lower-cased), body."""
    start: tuple[str, ...]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


@dataclass
class Exchange:
    """A request a client sent through the relay and the answer it got."""
    request: HTTPMessage
    answer: HTTPMessage

    @property
    def method(self) -> str:
        return self.request.start[0]

    @property
    def path(self) -> str:
        return self.request.start[1].split("?", 1)[0]

    @property
    def status(self) -> int:
        return int(self.answer.start[1])


def http_messages(data: bytes, answers: bool) -> list[HTTPMessage]:
    """The HTTP/1.1 messages of one direction of a connection, in order (bodies framed by
    Content-Length or chunked; an answer to a request without a body says so)."""
    out = []
    i = 0
    while i < len(data):
        end = data.find(b"\r\n\r\n", i)
        assert end >= 0, f"an incomplete HTTP message: {data[i:i + 200]!r}"
        lines = data[i:end].decode("latin-1").split("\r\n")
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        start = tuple(lines[0].split(" ", 2))
        i = end + 4
        body = bytearray()
        if "chunked" in headers.get("transfer-encoding", "").lower():
            while True:
                eol = data.index(b"\r\n", i)
                size = int(data[i:eol].split(b";")[0], 16)
                i = eol + 2
                if size == 0:
                    i = data.index(b"\r\n\r\n", i - 2) + 4  # (no trailers are sent)
                    break
                body += data[i:i + size]
                i += size + 2
        elif not (answers and (start[1] in ("204", "304") or start[1].startswith("1"))):
            n = int(headers.get("content-length", "0"))
            body += data[i:i + n]
            i += n
        out.append(HTTPMessage(start, headers, bytes(body)))
    return out


def relay_exchanges(relay: RecordingRelay) -> list[Exchange]:
    """Every request that passed `relay` with the answer it got, in order per connection (read
    once the client is done: a connection still in use may hold half a message)."""
    exchanges = []
    for sent, received in relay.connections():
        requests_, answers = http_messages(sent, answers=False), http_messages(received, answers=True)
        assert len(requests_) == len(answers), f"{len(requests_)} requests, {len(answers)} answers on one connection"
        exchanges += [Exchange(q, a) for q, a in zip(requests_, answers)]
    return exchanges


# --------------------------------------------------------------------------- fixtures


@dataclass
class Tenant:
    """An IdP on which `okta bootstrap` ran (in `cwd`)."""
    idp: IdP
    cwd: Path
    run: subprocess.CompletedProcess
    env: dict[str, str]
    state: dict

    @property
    def agent(self) -> tuple[str, str, Path]:
        return self.env["AGENT_ID"], self.env["AGENT_KEY_ID"], Path(self.env["AGENT_KEY_FILE"])

    @property
    def as_issuer(self) -> str:
        return self.env["MCP_AUTHORIZATION_SERVER"]


def bootstrapped(binary: Path, idp: IdP, cwd: Path, *args: str, org: str | None = None) -> Tenant:
    """`okta bootstrap` (with `args`) into `idp` (through `org` when given), run in `cwd`; it must succeed."""
    cwd.mkdir(parents=True, exist_ok=True)
    r = bootstrap(binary, idp, cwd, *args, org=org)
    assert r.returncode == 0, explain(r) + idp.log_tail()
    return Tenant(idp=idp, cwd=cwd, run=r, env=read_env_file(cwd / ENV_FILE), state=read_state(cwd))


@pytest.fixture(scope="module")
def binary() -> Path:
    return built_switchboard(REPO_ROOT)


@pytest.fixture
def fresh_idp(binary, tmp_path):
    """An IdP with an empty tenant, for one test."""
    idp = start_idp(binary, tmp_path)
    try:
        yield idp
    finally:
        stop_process(idp.proc)


@pytest.fixture(scope="module")
def tenant(binary, tmp_path_factory):
    """One IdP, bootstrapped once, for the wire-format and enforcement tests."""
    base = tmp_path_factory.mktemp("okta-tenant")
    idp = start_idp(binary, base)
    try:
        yield bootstrapped(binary, idp, base / "cli")
    finally:
        stop_process(idp.proc)


@pytest.fixture(scope="module")
def api(tenant) -> Mgmt:
    return Mgmt(tenant.idp)
