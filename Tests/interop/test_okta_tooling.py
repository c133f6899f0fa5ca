"""Okta tenant tooling against the development IdP: its Management API subset
(Sources/IdentityProvider/ManagementAPI.swift, TenantObjects.swift) and `switchboard okta
bootstrap | validate | rollback` (Sources/TenantTools/Okta*.swift, SwitchboardCLI/OktaCommand.swift).

    switchboard okta bootstrap|validate|rollback ── SSWS ──> switchboard idp (free port, fresh data dir)
                                                                │  objects it creates take effect:
    todo0 (trusts the bootstrapped AS) <── JWKS ── /oauth2/{aus…}  ├─ AS: metadata, keys, JWT-bearer + access policy
    gateway (shipped connections.yaml + the env file's values)    ├─ app: an OIDC web client (alice signs in)
        └── /mcp/todo0 ── ID-JAG (managed connection) ──────────── └─ agent: private_key_jwt with its registered JWK

1. End to end: bootstrap → todo0 + doctor + validate all ✓ → the gateway serves todo0's tools to
   alice signed in with the bootstrapped client → a re-run creates nothing → rollback removes
   everything (the API lists none of it, doctor fails agent-key and the authorization server).
2. The Management API's wire format, against the shapes of Okta's API reference.
3. Enforcement of what bootstrap created: the access policy (JWT-bearer) and the managed
   connection (ID-JAG), with client assertions signed here (PyJWT).
4. Failures: a wrong token; a bootstrap that fails part-way, then rollback.
5. Secrets: key and env files are mode 600; no PEM, client secret or SSWS token is printed.

Every CLI run is a subprocess with its cwd in a temporary directory (the state, env and key
files land under its `.switchboard/`).
"""

from __future__ import annotations

import json
import re
import shutil
import stat
import subprocess
import uuid
from pathlib import Path
from urllib.parse import urlencode

import jwt
import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from idp_fixtures import (
    AGENT_ID as DEV_AGENT_ID,
    AGENT_KID as DEV_AGENT_KID,
    AS_ID as EMBEDDED_AS_ID,
    ID_JAG_TYPE,
    ID_TOKEN_TYPE,
    JWT_BEARER,
    REDIRECT_URI,
    TOKEN_EXCHANGE,
    USERS,
    IdP,
)
from interop_helpers import HOST, new_rsa_key, public_jwk, stop_process
from mcp_client import call_tools, list_tools
from okta_fixtures import (  # noqa: F401 (binary, fresh_idp, tenant, api: fixtures)
    AGENTS, CLI_TIMEOUT, ENV_FILE, KEY_FILE, NOWHERE, OPERATIONS, SCOPES, STATE, Mgmt, Tenant, agent_post, api, binary,
    bootstrap, bootstrapped, explain, fresh_idp, id_jag_request, is_json, management_token, no_todo0, oauth_error, okta,
    okta_error, read_env_file, read_state, steps, tenant,
)
from system_fixtures import SHIPPED_CONFIG, TODO0_RESOURCE, _base_env, login, start_gateway, start_todo0

ENV_KEYS = {"OKTA_ISSUER", "AGENT0_CLIENT_ID", "AGENT0_CLIENT_SECRET", "AGENT_ID", "AGENT_KEY_ID", "AGENT_KEY_FILE",
            "MCP_AUTHORIZATION_SERVER", "TODO0_RESOURCE"}
DOCTOR_IDS = ["config", "issuer", "agent-key", "as:todo-mcp-as", "scopes:todo0", "resource:todo0", "resource-as:todo0"]
TODO_TOOLS = {"get-todos", "create-todo", "toggle-todo", "delete-todo"}


# --------------------------------------------------------------------------- the CLI


def doctor(binary: Path, env_vars: dict[str, str], cwd: Path, as_json: bool) -> subprocess.CompletedProcess:
    full = _base_env()
    full.update(env_vars)
    cmd = [str(binary), "doctor", str(SHIPPED_CONFIG)] + (["--json"] if as_json else [])
    return subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=CLI_TIMEOUT, env=full, cwd=str(cwd))


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def private_material(pem: bytes) -> list[str]:
    """What would betray the private key if printed: the PEM's armour and body lines, the private
    exponent and primes (decimal and base64url)."""
    lines = [line.strip() for line in pem.decode().splitlines() if line.strip() and not line.startswith("-----")]
    key = serialization.load_pem_private_key(pem, password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    numbers = key.private_numbers()
    out = ["PRIVATE KEY", *lines]
    for n in (numbers.d, numbers.p, numbers.q):
        out.append(str(n))
        out.append(jwt.utils.base64url_encode(n.to_bytes((n.bit_length() + 7) // 8, "big")).decode())
    return out


# =========================================================================== 1. end to end


def test_end_to_end_bootstrap_doctor_gateway_rerun_rollback(binary, fresh_idp, tmp_path):
    idp = fresh_idp
    mgmt = Mgmt(idp)
    assert mgmt.counts() == {"/api/v1/authorizationServers": 0, "/api/v1/apps": 0, "/api/v1/trustedOrigins": 0, AGENTS: 0}
    started = []
    try:
        # --- bootstrap, into an empty tenant: everything created.
        t = bootstrapped(binary, idp, tmp_path / "cli")
        first = steps(t.run)
        assert first and all(kind == "created" for kind, _, _ in first), explain(t.run)
        assert re.search(rf"^{len(first)} objects created, 0 already there\.", t.run.stdout, re.M), explain(t.run)
        state, env = t.state, t.env
        assert set(env) == ENV_KEYS, env.keys()
        server_id = state["authorization_server_id"]
        assert env["OKTA_ISSUER"] == idp.issuer
        assert env["MCP_AUTHORIZATION_SERVER"] == f"{idp.issuer}/oauth2/{server_id}"
        assert env["AGENT_ID"] == state["agent_id"] and env["AGENT_KEY_ID"] == state["agent_key_id"]
        assert env["AGENT0_CLIENT_ID"] == state["agent0_client_id"] and env["AGENT0_CLIENT_SECRET"]
        assert env["TODO0_RESOURCE"] == TODO0_RESOURCE
        assert Path(env["AGENT_KEY_FILE"]) == (t.cwd / KEY_FILE).resolve()
        created_ids = {i for _, _, i in first}
        for key in ("authorization_server_id", "agent0_app_id", "agent_id", "connection_id", "policy_id", "rule_id"):
            assert state[key] in created_ids, (key, state)
        assert set(state["scope_ids"]) == set(SCOPES)
        assert set(state["trusted_origins"]) == {"switchboard-agent0", "switchboard-todo0"}

        # The created authorization server is served like the embedded one.
        meta = requests.get(env["MCP_AUTHORIZATION_SERVER"] + "/.well-known/oauth-authorization-server", timeout=5).json()
        assert meta["issuer"] == env["MCP_AUTHORIZATION_SERVER"] and set(SCOPES) <= set(meta["scopes_supported"]), meta
        assert JWT_BEARER in meta["grant_types_supported"], meta

        # --- todo0 trusting the bootstrapped AS; doctor on the shipped connections.yaml: all ✓.
        todo0 = start_todo0(binary, tmp_path, idp.issuer, authorization_server=env["MCP_AUTHORIZATION_SERVER"])
        started.append(todo0.proc)
        system_env = {**env, **NOWHERE, "TODO0_MCP_URL": todo0.mcp_url}
        report_run = doctor(binary, system_env, t.cwd, as_json=True)
        report = json.loads(report_run.stdout)
        assert [c["id"] for c in report["checks"]] == DOCTOR_IDS, report
        assert all(c["status"] == "pass" for c in report["checks"]) and report["ok"] is True, json.dumps(report, indent=2)
        assert report_run.returncode == 0, explain(report_run)
        as_check = next(c for c in report["checks"] if c["id"] == "as:todo-mcp-as")
        assert env["MCP_AUTHORIZATION_SERVER"] in as_check["title"], as_check
        agent_check = next(c for c in report["checks"] if c["id"] == "agent-key")
        assert env["AGENT_ID"] in agent_check["title"], agent_check
        text = doctor(binary, system_env, t.cwd, as_json=False)
        assert text.returncode == 0 and "✗" not in text.stdout and f"all {len(DOCTOR_IDS)} checks passed" in text.stdout, explain(text)

        # okta validate: the objects exist and are ACTIVE, then the same doctor checks.
        validate = okta(binary, idp, t.cwd, "validate", "--config", str(SHIPPED_CONFIG), env={**NOWHERE, "TODO0_MCP_URL": todo0.mcp_url})
        assert validate.returncode == 0 and "✗" not in validate.stdout, explain(validate)
        assert "checks passed" in validate.stdout, explain(validate)

        # --- the gateway with that environment; alice signs in with the bootstrapped client.
        config = tmp_path / "connections.yaml"
        shutil.copyfile(SHIPPED_CONFIG, config)
        gateway = start_gateway(binary, tmp_path, system_env, config)
        started.append(gateway.proc)
        token, _ = login(idp, "alice", client_id=env["AGENT0_CLIENT_ID"], client_secret=env["AGENT0_CLIENT_SECRET"], scope="openid")
        id_token = token["id_token"]
        claims = jwt.decode(id_token, options={"verify_signature": False})
        assert claims["iss"] == idp.issuer and claims["aud"] in (env["AGENT0_CLIENT_ID"], [env["AGENT0_CLIENT_ID"]]), claims
        assert claims["sub"] == USERS["alice"]["id"], claims

        url = gateway.url + "/mcp/todo0"
        tools = list_tools(url, id_token)
        assert {tool.name for tool in tools.tools} == TODO_TOOLS, tools
        title = f"okta e2e {uuid.uuid4().hex[:8]}"
        before, created, after = call_tools(url, id_token, [("get-todos", {}), ("create-todo", {"title": title}), ("get-todos", {})])
        for result in (before, created, after):
            assert not result.is_error and isinstance(result.structured_content, dict), result
        todo = created.structured_content["todo"]
        assert todo["title"] == title and todo["done"] is False, created
        assert todo["id"] not in {x["id"] for x in before.structured_content["todos"]}
        assert title in {x["title"] for x in after.structured_content["todos"]}, after
        # The access tokens came from the bootstrapped AS, for the bootstrapped agent.
        issued = [line for line in idp.log_text().splitlines() if "issued access token" in line]
        assert any(server_id in line and env["AGENT_ID"] in line for line in issued), issued[-5:] or idp.log_tail()
        # The gateway was given the env file's values, the client secret included: it must not log it.
        assert env["AGENT0_CLIENT_SECRET"] not in gateway.log_text() + todo0.log_text() + idp.log_text()

        # --- bootstrap again: nothing new.
        counts = mgmt.counts()
        assert counts == {"/api/v1/authorizationServers": 1, "/api/v1/apps": 1, "/api/v1/trustedOrigins": 2, AGENTS: 1}, counts
        again = bootstrap(binary, idp, t.cwd)
        assert again.returncode == 0, explain(again)
        second = steps(again)
        assert second and all(kind == "exists" for kind, _, _ in second), explain(again)
        assert {i for _, _, i in second} <= created_ids, explain(again)
        assert re.search(rf"^0 objects created, {len(second)} already there\.", again.stdout, re.M), explain(again)
        assert read_state(t.cwd) == state
        assert read_env_file(t.cwd / ENV_FILE) == env
        assert mgmt.counts() == counts

        # --- rollback: none of it is left.
        rollback = okta(binary, idp, t.cwd, "rollback", "--yes")
        assert rollback.returncode == 0, explain(rollback)
        lines = [line for line in rollback.stdout.splitlines() if line.strip()]
        assert lines and all(line.startswith("deleted  ") for line in lines), explain(rollback)
        assert mgmt.counts() == {"/api/v1/authorizationServers": 0, "/api/v1/apps": 0, "/api/v1/trustedOrigins": 0, AGENTS: 0}
        for path in (f"/api/v1/authorizationServers/{server_id}", f"/api/v1/apps/{state['agent0_app_id']}", f"{AGENTS}/{state['agent_id']}"):
            okta_error(mgmt.request("GET", path), 404, "E0000007")
        assert not (t.cwd / STATE).exists(), "the state file outlived a complete rollback"
        # ... and none of it takes effect any more.
        assert requests.get(env["MCP_AUTHORIZATION_SERVER"] + "/.well-known/oauth-authorization-server", timeout=5).status_code == 404
        gone = requests.get(idp.authorization_endpoint + "?" + urlencode({
            "client_id": env["AGENT0_CLIENT_ID"], "redirect_uri": REDIRECT_URI, "response_type": "code", "scope": "openid",
            "code_challenge": "x" * 43, "code_challenge_method": "S256"}), allow_redirects=False, timeout=5)
        assert gone.status_code == 400 and "Unknown client_id" in gone.text, gone.text[:300]

        failing = doctor(binary, system_env, t.cwd, as_json=True)
        assert failing.returncode == 1, explain(failing)
        checks = {c["id"]: c for c in json.loads(failing.stdout)["checks"]}
        assert checks["agent-key"]["status"] == "fail" and checks["as:todo-mcp-as"]["status"] == "fail", json.dumps(checks, indent=2)
        text = doctor(binary, system_env, t.cwd, as_json=False)
        assert text.returncode == 1, explain(text)
        assert "✗ " + checks["agent-key"]["title"] in text.stdout and "✗ " + checks["as:todo-mcp-as"]["title"] in text.stdout, explain(text)
    finally:
        for proc in reversed(started):
            stop_process(proc)


# =========================================================================== 2. the Management API's wire format


def test_management_token_file_is_private(tenant):
    path = tenant.idp.data_dir / "management-api-token"
    assert mode(path) == 0o600, oct(mode(path))
    assert len(management_token(tenant.idp)) >= 20


@pytest.mark.parametrize("auth", [None, "SSWS", "SSWS wrong-token", "Bearer {token}", "ssws {token}", "SSWS {token}x"])
@pytest.mark.parametrize("method,path", [("GET", "/api/v1/users/me"), ("GET", "/api/v1/apps"), ("POST", "/api/v1/authorizationServers"),
                                          ("GET", AGENTS), ("POST", AGENTS), ("DELETE", "/api/v1/trustedOrigins/tos123")])
def test_missing_or_wrong_ssws_is_401_e0000011(api: Mgmt, auth, method, path):
    header = auth.format(token=api.token) if auth else None
    r = api.request(method, path, {"name": "x", "audiences": ["y"]} if method == "POST" else None, auth=header)
    body = okta_error(r, 401, "E0000011")
    assert body["errorSummary"] == "Invalid token provided", body
    assert api.token not in r.text


@pytest.mark.parametrize("path,unknown,type_name", [
    ("/api/v1/apps/0oaNOPE", "0oaNOPE", "App"),
    ("/api/v1/authorizationServers/ausNOPE", "ausNOPE", "AuthorizationServer"),
    ("/api/v1/authorizationServers/ausNOPE/scopes", "ausNOPE", "AuthorizationServer"),
    ("/api/v1/apps/0oaNOPE/users", "0oaNOPE", "App"),
    (AGENTS + "/wlpNOPE", "wlpNOPE", "AIAgent"),
    (AGENTS + "/wlpNOPE/credentials/jwks", "wlpNOPE", "AIAgent"),
    (OPERATIONS + "op-NOPE", "op-NOPE", "Operation"),
])
def test_unknown_object_is_404_e0000007(api: Mgmt, path, unknown, type_name):
    body = okta_error(api.request("GET", path), 404, "E0000007")
    assert body["errorSummary"] == f"Not found: Resource not found: {unknown} ({type_name})", body


def test_unknown_object_delete_is_404_e0000007(api: Mgmt):
    body = okta_error(api.request("DELETE", "/api/v1/trustedOrigins/tosNOPE"), 404, "E0000007")
    assert body["errorSummary"] == "Not found: Resource not found: tosNOPE (TrustedOrigin)", body
    body = okta_error(api.request("DELETE", "/api/v1/apps/0oaNOPE"), 404, "E0000007")
    assert body["errorSummary"] == "Not found: Resource not found: 0oaNOPE (App)", body


def test_users_me_and_org(api: Mgmt, tenant):
    me = api.get("/api/v1/users/me")
    assert me["id"] == USERS["alice"]["id"] and me["status"] == "ACTIVE", me
    assert me["profile"]["login"] == USERS["alice"]["email"] and me["profile"]["email"] == USERS["alice"]["email"], me
    org = api.get("/api/v1/org")
    assert org["id"].startswith("00o") and org["status"] == "ACTIVE", org
    assert api.get("/api/v1/org")["id"] == org["id"], "the org id must be stable"


def test_authorization_server_create_duplicate_lifecycle_delete(api: Mgmt, tenant):
    name = f"wire-as-{uuid.uuid4().hex[:8]}"
    audience = f"http://{HOST}:5999/{name}"
    server = api.make_server(name, audience)
    sid = server["id"]
    assert sid.startswith("aus") and len(sid) == 20, server
    assert server["name"] == name and server["audiences"] == [audience] and server["status"] == "ACTIVE", server
    assert server["issuer"] == f"{tenant.idp.issuer}/oauth2/{sid}" and server["issuerMode"] == "ORG_URL", server
    assert server["_links"]["self"]["href"] == f"{tenant.idp.issuer}/api/v1/authorizationServers/{sid}", server
    assert api.get(f"/api/v1/authorizationServers/{sid}") == server
    assert sid in api.ids("/api/v1/authorizationServers")

    # It takes effect: metadata, keys and a token endpoint at /oauth2/{id}.
    meta = requests.get(server["issuer"] + "/.well-known/oauth-authorization-server", timeout=5)
    assert meta.status_code == 200 and meta.json()["issuer"] == server["issuer"], meta.text
    keys = requests.get(meta.json()["jwks_uri"], timeout=5).json()["keys"]
    assert keys and all("d" not in k for k in keys), keys
    assert meta.json()["token_endpoint"] == server["issuer"] + "/v1/token"

    # Same name again: Okta's conflict error.
    body = okta_error(api.request("POST", "/api/v1/authorizationServers", {"name": name, "audiences": [audience]}), 400, "E0000195")
    assert body["errorCauses"], body
    assert api.count("/api/v1/authorizationServers") == len(api.ids("/api/v1/authorizationServers"))
    assert sum(1 for s in api.get("/api/v1/authorizationServers") if s["name"] == name) == 1
    # A missing field: validation error, with a cause.
    body = okta_error(api.request("POST", "/api/v1/authorizationServers", {"name": name + "-2"}), 400, "E0000001")
    assert body["errorCauses"] and "audiences" in body["errorCauses"][0]["errorSummary"], body

    # Scopes: 201 each, listed as an array.
    scope = api.post(f"/api/v1/authorizationServers/{sid}/scopes", {"name": "wire:read"}, status=201)
    assert scope["name"] == "wire:read" and scope["id"].startswith("scp") and scope["system"] is False, scope
    scopes = api.get(f"/api/v1/authorizationServers/{sid}/scopes")
    assert isinstance(scopes, list) and [s["id"] for s in scopes] == [scope["id"]], scopes

    # Lifecycle: deactivate → 204 (no body), no longer served; delete → 204; gone.
    r = api.request("POST", f"/api/v1/authorizationServers/{sid}/lifecycle/deactivate")
    assert r.status_code == 204 and not r.content, (r.status_code, r.text)
    assert api.get(f"/api/v1/authorizationServers/{sid}")["status"] == "INACTIVE"
    assert requests.get(server["issuer"] + "/.well-known/oauth-authorization-server", timeout=5).status_code == 404
    r = api.request("DELETE", f"/api/v1/authorizationServers/{sid}")
    assert r.status_code == 204 and not r.content, (r.status_code, r.text)
    okta_error(api.request("GET", f"/api/v1/authorizationServers/{sid}"), 404, "E0000007")
    okta_error(api.request("GET", f"/api/v1/authorizationServers/{sid}/scopes"), 404, "E0000007")
    assert sid not in api.ids("/api/v1/authorizationServers")


def test_app_create_sign_in_delete(api: Mgmt, tenant):
    label = f"wire-app-{uuid.uuid4().hex[:8]}"
    app = api.make_app(label)  # Okta answers 200, not 201
    client = app["credentials"]["oauthClient"]
    assert app["id"].startswith("0oa") and app["label"] == label and app["status"] == "ACTIVE", app
    assert app["name"] == "oidc_client" and app["signOnMode"] == "OPENID_CONNECT", app
    assert client["client_id"] and client["client_secret"] and client["token_endpoint_auth_method"] == "client_secret_basic", client
    assert api.get(f"/api/v1/apps/{app['id']}")["credentials"]["oauthClient"]["client_id"] == client["client_id"]

    # It is an OIDC web client: alice signs in with it and gets an ID token for it.
    token, _ = login(tenant.idp, "alice", client_id=client["client_id"], client_secret=client["client_secret"], scope="openid")
    claims = jwt.decode(token["id_token"], options={"verify_signature": False})
    assert claims["aud"] in (client["client_id"], [client["client_id"]]) and claims["sub"] == USERS["alice"]["id"], claims

    # User assignment: 200, listed as an array.
    assigned = api.post(f"/api/v1/apps/{app['id']}/users", {"id": USERS["bob"]["id"]})
    assert assigned["id"] == USERS["bob"]["id"] and assigned["scope"] == "USER", assigned
    assert [u["id"] for u in api.get(f"/api/v1/apps/{app['id']}/users")] == [USERS["bob"]["id"]]
    okta_error(api.request("POST", f"/api/v1/apps/{app['id']}/users", {"id": "00u-nobody"}), 404, "E0000007")

    # Deleting an ACTIVE app: 403 E0000056. Deactivate: 200 with no body. Then delete: 204.
    body = okta_error(api.request("DELETE", f"/api/v1/apps/{app['id']}"), 403, "E0000056")
    assert body["errorSummary"] == "Delete application forbidden.", body
    r = api.request("POST", f"/api/v1/apps/{app['id']}/lifecycle/deactivate")
    assert r.status_code == 200 and not r.content, (r.status_code, r.text)
    assert api.get(f"/api/v1/apps/{app['id']}")["status"] == "INACTIVE"
    r = api.request("DELETE", f"/api/v1/apps/{app['id']}")
    assert r.status_code == 204 and not r.content, (r.status_code, r.text)
    okta_error(api.request("GET", f"/api/v1/apps/{app['id']}"), 404, "E0000007")
    # ... and it no longer signs anyone in.
    page = requests.get(tenant.idp.authorization_endpoint + "?" + urlencode({
        "client_id": client["client_id"], "redirect_uri": REDIRECT_URI, "response_type": "code", "scope": "openid",
        "code_challenge": "x" * 43, "code_challenge_method": "S256"}), allow_redirects=False, timeout=5)
    assert page.status_code == 400 and "Unknown client_id" in page.text, page.text[:300]


def test_app_create_validation(api: Mgmt):
    body = okta_error(api.request("POST", "/api/v1/apps", {"name": "bookmark", "label": "x", "signOnMode": "BOOKMARK"}), 400, "E0000001")
    assert body["errorCauses"], body
    body = okta_error(api.request("POST", "/api/v1/apps", {"name": "oidc_client", "label": "x", "signOnMode": "OPENID_CONNECT",
                                                          "settings": {"oauthClient": {"redirect_uris": []}}}), 400, "E0000001")
    assert "redirect_uris" in body["errorSummary"], body
    for text in ("{not json", "[1, 2]"):
        r = requests.post(api.base + "/api/v1/apps", data=text, headers={"Authorization": "SSWS " + api.token, "Content-Type": "application/json"}, timeout=5)
        okta_error(r, 400, "E0000003")


def test_list_endpoints_are_json_arrays_and_q_filters_apps_by_prefix(api: Mgmt, tenant):
    tag = uuid.uuid4().hex[:8]
    made = [api.make_app(label)["id"] for label in (f"qa-{tag}-one", f"QA-{tag}-two", f"other-{tag}")]
    for path in ("/api/v1/authorizationServers", "/api/v1/apps", "/api/v1/trustedOrigins",
                 f"/api/v1/authorizationServers/{tenant.state['authorization_server_id']}/scopes",
                 f"/api/v1/authorizationServers/{tenant.state['authorization_server_id']}/policies",
                 f"/api/v1/authorizationServers/{tenant.state['authorization_server_id']}/policies/{tenant.state['policy_id']}/rules",
                 f"/api/v1/apps/{tenant.state['agent0_app_id']}/users"):
        body = api.get(path)
        assert isinstance(body, list) and body and all(isinstance(o, dict) and o.get("id") for o in body), (path, body)
    # The AI-agent collections (Workload Principals API) wrap their array in "data".
    for path in (AGENTS, f"{AGENTS}/{tenant.state['agent_id']}/connections", f"{AGENTS}/{tenant.state['agent_id']}/credentials/jwks"):
        body = api.get(path)
        assert isinstance(body, dict) and isinstance(body["data"], list) and body["data"], (path, body)

    filtered = api.get("/api/v1/apps?q=" + f"qa-{tag}")
    assert {a["id"] for a in filtered} == set(made[:2]), [a["label"] for a in filtered]  # prefix, case-insensitive
    assert {a["id"] for a in api.get("/api/v1/apps?q=" + f"QA-{tag}-T")} == {made[1]}
    assert api.get("/api/v1/apps?q=" + f"{tag}") == [], "q matches the start of a name, not any part"
    assert set(made) <= {a["id"] for a in api.get("/api/v1/apps?q=")}
    for app in made:
        api.post(f"/api/v1/apps/{app}/lifecycle/deactivate")
        api.delete(f"/api/v1/apps/{app}")


def test_trusted_origins(api: Mgmt):
    tag = uuid.uuid4().hex[:8]
    origin = f"http://wire-{tag}.test:8443"
    made = api.post("/api/v1/trustedOrigins", {"name": f"wire-{tag}", "origin": origin, "scopes": [{"type": "CORS"}, {"type": "REDIRECT"}]})
    assert made["id"].startswith("tos") and made["origin"] == origin and made["status"] == "ACTIVE", made
    assert made["id"] in api.ids("/api/v1/trustedOrigins")
    okta_error(api.request("POST", "/api/v1/trustedOrigins", {"name": f"wire-{tag}-b", "origin": origin}), 400, "E0000001")
    okta_error(api.request("POST", "/api/v1/trustedOrigins", {"name": f"wire-{tag}", "origin": f"http://wire-{tag}-b.test:8443"}), 400, "E0000001")
    okta_error(api.request("POST", "/api/v1/trustedOrigins", {"name": f"wire-{tag}-c", "origin": origin + "/path"}), 400, "E0000001")
    assert api.delete(f"/api/v1/trustedOrigins/{made['id']}") is None
    assert made["id"] not in api.ids("/api/v1/trustedOrigins")
    okta_error(api.request("DELETE", f"/api/v1/trustedOrigins/{made['id']}"), 404, "E0000007")


def test_trusted_origin_can_be_read_back(api: Mgmt):
    tag = uuid.uuid4().hex[:8]
    made = api.post("/api/v1/trustedOrigins", {"name": f"read-{tag}", "origin": f"http://read-{tag}.test:8080",
                                               "scopes": [{"type": "CORS"}]})
    try:
        assert api.get(f"/api/v1/trustedOrigins/{made['id']}") == made
        body = okta_error(api.request("GET", "/api/v1/trustedOrigins/tosNOPE"), 404, "E0000007")
        assert body["errorSummary"] == "Not found: Resource not found: tosNOPE (TrustedOrigin)", body
    finally:
        api.delete(f"/api/v1/trustedOrigins/{made['id']}")


def test_ai_agent_register_key_activate_connect_and_delete(api: Mgmt, tenant, tmp_path):
    idp = tenant.idp
    app = api.make_app(f"wire-agent-app-{uuid.uuid4().hex[:8]}")
    # Registration: 202 + absolute Location; the operation is IN_PROGRESS, then COMPLETED with the agent's id.
    r = api.request("POST", AGENTS, {"profile": {"name": "wire agent"}, "appId": app["id"]})
    assert not r.content or is_json(r)
    agent_id = api.accepted(r)["resource"]["id"]
    agent = api.get(f"{AGENTS}/{agent_id}")
    assert agent_id.startswith("wlp") and agent["status"] == "STAGED" and agent["appId"] == app["id"], agent
    assert agent["profile"]["name"] == "wire agent", agent
    assert agent_id in {a["id"] for a in api.get(AGENTS)["data"]}
    okta_error(api.request("POST", AGENTS, {"profile": {"name": "x"}, "appId": "0oaNOPE"}), 404, "E0000007")
    okta_error(api.request("POST", AGENTS, {"appId": app["id"]}), 400, "E0000001")

    # Without a key it cannot be activated; a STAGED agent can have no connection.
    body = okta_error(api.request("POST", f"{AGENTS}/{agent_id}/lifecycle/activate"), 400, "E0000001")
    assert body["errorCauses"], body
    server = tenant.state["authorization_server_id"]
    org = api.get("/api/v1/org")["id"]
    connection = {"connectionType": "IDENTITY_ASSERTION_CUSTOM_AS", "authorizationServer": {"orn": f"orn:okta:idp:{org}:authorization_servers:{server}"},
                  "resourceIndicator": TODO0_RESOURCE, "scopeCondition": "INCLUDE_ONLY", "scopes": ["mcp:connect"]}
    okta_error(api.request("POST", f"{AGENTS}/{agent_id}/connections", connection), 400, "E0000001")

    # Its public key (201), then activation (202 → operation): ACTIVE.
    key = new_rsa_key()
    key_file = tmp_path / "wire-agent.pem"
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    kid = "wire-" + uuid.uuid4().hex[:6]
    jwk = public_jwk(key, kid)
    registered = api.post(f"{AGENTS}/{agent_id}/credentials/jwks", jwk, status=201)
    assert registered["kid"] == kid and registered["n"] == jwk["n"] and "d" not in registered, registered
    assert [k["kid"] for k in api.get(f"{AGENTS}/{agent_id}/credentials/jwks")["data"]] == [kid]
    # Not yet ACTIVE: the agent cannot authenticate.
    probe = {"grant_type": TOKEN_EXCHANGE, "requested_token_type": ID_JAG_TYPE, "subject_token": "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.eA",
             "subject_token_type": ID_TOKEN_TYPE, "audience": tenant.as_issuer}
    oauth_error(agent_post(idp.token_endpoint, (agent_id, kid, key_file), probe), "invalid_client")
    activated = api.accepted(api.request("POST", f"{AGENTS}/{agent_id}/lifecycle/activate"))
    assert activated["resource"]["id"] == agent_id, activated
    assert api.get(f"{AGENTS}/{agent_id}")["status"] == "ACTIVE"
    # ACTIVE: it authenticates with its registered JWK (the grant, not the client, is refused).
    oauth_error(agent_post(idp.token_endpoint, (agent_id, kid, key_file), probe), "invalid_grant")

    # A managed connection from the ACTIVE agent: 201, listed; deactivate: 200 with the object; delete: 204.
    made = api.post(f"{AGENTS}/{agent_id}/connections", connection, status=201)
    assert made["id"].startswith("mcn") and made["status"] == "ACTIVE" and made["orn"].startswith(f"orn:okta:idp:{org}:connections:"), made
    assert made["authorizationServer"]["issuerUrl"] == tenant.as_issuer, made
    assert [c["id"] for c in api.get(f"{AGENTS}/{agent_id}/connections")["data"]] == [made["id"]]
    okta_error(api.request("POST", f"{AGENTS}/{agent_id}/connections", dict(connection, resourceIndicator="http://elsewhere.test/mcp")), 400, "E0000001")
    off = api.post(f"{AGENTS}/{agent_id}/connections/{made['id']}/lifecycle/deactivate")
    assert off["id"] == made["id"] and off["status"] == "INACTIVE", off
    api.delete(f"{AGENTS}/{agent_id}/connections/{made['id']}")
    assert api.get(f"{AGENTS}/{agent_id}/connections")["data"] == []

    # An ACTIVE agent cannot be deleted; deactivate (202), then delete (202): gone.
    okta_error(api.request("DELETE", f"{AGENTS}/{agent_id}"), 400, "E0000001")
    api.accepted(api.request("POST", f"{AGENTS}/{agent_id}/lifecycle/deactivate"))
    assert api.get(f"{AGENTS}/{agent_id}")["status"] == "INACTIVE"
    deleted = api.accepted(api.request("DELETE", f"{AGENTS}/{agent_id}"))
    assert deleted["resource"]["id"] == agent_id, deleted
    okta_error(api.request("GET", f"{AGENTS}/{agent_id}"), 404, "E0000007")
    okta_error(api.request("GET", f"{AGENTS}/{agent_id}/credentials/jwks"), 404, "E0000007")
    oauth_error(agent_post(idp.token_endpoint, (agent_id, kid, key_file), probe), "invalid_client")
    api.post(f"/api/v1/apps/{app['id']}/lifecycle/deactivate")
    api.delete(f"/api/v1/apps/{app['id']}")


# =========================================================================== 3. enforcement of what bootstrap created


def _dev_agent(idp: IdP) -> tuple[str, str, Path]:
    return DEV_AGENT_ID, DEV_AGENT_KID, idp.agent_key_file


def _bootstrapped_id_token(t: Tenant) -> str:
    token, _ = login(t.idp, "alice", client_id=t.env["AGENT0_CLIENT_ID"], client_secret=t.env["AGENT0_CLIENT_SECRET"], scope="openid")
    return token["id_token"]


def test_jwt_bearer_at_the_created_server_is_only_for_the_agent_in_its_policy(tenant):
    idp = tenant.idp
    as_token = tenant.as_issuer + "/v1/token"
    # The file's development agent (key from `idp --init-agent`) gets an ID-JAG for the created
    # server (an agent of the file has no managed-connection limit)...
    dev_id_token = login(idp, "alice")[0]["id_token"]
    r = id_jag_request(idp, _dev_agent(idp), dev_id_token, tenant.as_issuer, TODO0_RESOURCE)
    assert r.status_code == 200, r.text
    jag = r.json()["access_token"]
    # ... but the server's access policy names only the bootstrapped agent.
    refused = agent_post(as_token, _dev_agent(idp), {"grant_type": JWT_BEARER, "assertion": jag})
    body = oauth_error(refused, "access_denied")
    assert "access_token" not in body, body

    # The bootstrapped agent, the same way: an access token of the created server for todo0.
    r = id_jag_request(idp, tenant.agent, _bootstrapped_id_token(tenant), tenant.as_issuer, TODO0_RESOURCE)
    assert r.status_code == 200, r.text
    granted = agent_post(as_token, tenant.agent, {"grant_type": JWT_BEARER, "assertion": r.json()["access_token"]})
    assert granted.status_code == 200, granted.text
    access = granted.json()["access_token"]
    signing = jwt.PyJWKClient(tenant.as_issuer + "/v1/keys").get_signing_key_from_jwt(access)
    claims = jwt.decode(access, signing.key, algorithms=["RS256"], audience=TODO0_RESOURCE, issuer=tenant.as_issuer)
    assert claims["client_id"] == tenant.env["AGENT_ID"] and claims["sub"] == USERS["alice"]["id"], claims
    assert set(claims["scp"]) == {"mcp:connect", "mcp:tools:read"}, claims
    assert jwt.get_unverified_header(access)["typ"] == "at+jwt"


def test_id_jag_needs_a_managed_connection(tenant):
    idp = tenant.idp
    embedded = f"{idp.issuer}/oauth2/{EMBEDDED_AS_ID}"
    id_token = _bootstrapped_id_token(tenant)
    # The bootstrapped agent has a managed connection to its own server only: not to todo-mcp.
    for resource in (TODO0_RESOURCE, None):
        body = oauth_error(id_jag_request(idp, tenant.agent, id_token, embedded, resource), "invalid_target")
        assert "managed connection" in body.get("error_description", ""), body
    # Its connection is limited to the bootstrapped server and resource...
    r = id_jag_request(idp, tenant.agent, id_token, tenant.as_issuer, TODO0_RESOURCE, scope=" ".join(SCOPES))
    assert r.status_code == 200, r.text
    claims = jwt.decode(r.json()["access_token"], options={"verify_signature": False})
    assert claims["aud"] == tenant.as_issuer and claims["client_id"] == tenant.env["AGENT_ID"], claims
    oauth_error(id_jag_request(idp, tenant.agent, id_token, tenant.as_issuer, "http://127.0.0.1:5999/other"), "invalid_target")
    # ... while the file's agent (no managed connections) still reaches todo-mcp.
    r = id_jag_request(idp, _dev_agent(idp), login(idp, "alice")[0]["id_token"], embedded, TODO0_RESOURCE)
    assert r.status_code == 200, r.text


def validate_checks(binary: Path, idp: IdP, cwd: Path) -> dict[str, dict]:
    r = okta(binary, idp, cwd, "validate", "--config", str(SHIPPED_CONFIG), "--json", env=no_todo0(idp))
    return {c["id"]: c for c in json.loads(r.stdout)["checks"]}


def test_bootstrap_again_repairs_what_validate_finds_inactive(binary, fresh_idp, tmp_path):
    t = bootstrapped(binary, fresh_idp, tmp_path / "cli")
    mgmt = Mgmt(fresh_idp)
    server, app = t.state["authorization_server_id"], t.state["agent0_app_id"]
    assert mgmt.request("POST", f"/api/v1/authorizationServers/{server}/lifecycle/deactivate").status_code == 204
    assert mgmt.request("POST", f"/api/v1/apps/{app}/lifecycle/deactivate").status_code == 200
    checks = validate_checks(binary, fresh_idp, t.cwd)
    for id_ in ("okta:authorization-server", "okta:app-agent0"):
        assert checks[id_]["status"] == "fail" and "INACTIVE" in checks[id_]["title"], checks[id_]
        assert "okta bootstrap" in checks[id_]["fix"], checks[id_]

    again = bootstrap(binary, fresh_idp, t.cwd)
    assert again.returncode == 0, explain(again)
    checks = validate_checks(binary, fresh_idp, t.cwd)
    status = {id_: (checks[id_]["status"], checks[id_]["title"]) for id_ in ("okta:authorization-server", "okta:app-agent0")}
    served = requests.get(t.as_issuer + "/.well-known/oauth-authorization-server", timeout=5).status_code
    assert served == 200 and all(s == "pass" for s, _ in status.values()), \
        f"after `okta bootstrap` again: {status}; {t.as_issuer} metadata HTTP {served}"


# =========================================================================== 4. failures


def test_bootstrap_with_a_wrong_token(binary, fresh_idp, tmp_path):
    wrong = "00" + uuid.uuid4().hex + uuid.uuid4().hex[:8]
    token_file = tmp_path / "wrong-token"
    token_file.write_text(wrong + "\n")
    cwd = tmp_path / "cli"
    cwd.mkdir()
    r = bootstrap(binary, fresh_idp, cwd, token_file=token_file)
    assert r.returncode == 1, explain(r)
    assert "authorization server 'todo-mcp'" in r.stderr and "E0000011" in r.stderr and "401" in r.stderr, explain(r)
    output = r.stdout + r.stderr
    assert wrong not in output and management_token(fresh_idp) not in output, explain(r)
    assert "PRIVATE KEY" not in output
    assert not (cwd / ENV_FILE).exists() and not (cwd / KEY_FILE).exists()
    state = cwd / STATE
    assert not state.exists() or set(json.loads(state.read_text())) <= {"org", "scope_ids", "assignments", "trusted_origins"}, state.read_text()
    assert Mgmt(fresh_idp).counts() == {"/api/v1/authorizationServers": 0, "/api/v1/apps": 0, "/api/v1/trustedOrigins": 0, AGENTS: 0}


def test_bootstrap_failing_part_way_leaves_a_state_file_rollback_can_use(binary, fresh_idp, tmp_path):
    mgmt = Mgmt(fresh_idp)
    # Someone already has a trusted origin named as bootstrap names agent0's, for another origin.
    theirs = mgmt.post("/api/v1/trustedOrigins", {"name": "switchboard-agent0", "origin": "http://127.0.0.1:3999", "scopes": [{"type": "CORS"}]})
    cwd = tmp_path / "cli"
    cwd.mkdir()
    r = bootstrap(binary, fresh_idp, cwd)
    assert r.returncode == 1, explain(r)
    assert "trusted origin http://127.0.0.1:3000" in r.stderr, explain(r)
    assert "HTTP 400" in r.stderr and "E0000001" in r.stderr and "already exists" in r.stderr, explain(r)
    assert "rollback" in r.stderr, explain(r)
    assert not (cwd / ENV_FILE).exists(), "the env file was written by a failed bootstrap"

    # The state file lists everything made before the failing step, and it all exists.
    state = read_state(cwd)
    assert state["org"] == fresh_idp.issuer
    assert state["trusted_origins"] == {}, state
    paths = {
        "authorization_server_id": f"/api/v1/authorizationServers/{state['authorization_server_id']}",
        "agent0_app_id": f"/api/v1/apps/{state['agent0_app_id']}",
        "agent_id": f"{AGENTS}/{state['agent_id']}",
        "policy_id": f"/api/v1/authorizationServers/{state['authorization_server_id']}/policies/{state['policy_id']}",
    }
    for key, path in paths.items():
        assert mgmt.get(path)["status"] == "ACTIVE", key
    assert state["connection_id"] in {c["id"] for c in mgmt.get(f"{AGENTS}/{state['agent_id']}/connections")["data"]}
    assert state["rule_id"] in mgmt.ids(f"{paths['policy_id']}/rules")
    assert set(state["scope_ids"].values()) == mgmt.ids(f"{paths['authorization_server_id']}/scopes")
    assert state["assignments"] == {state["agent0_app_id"]: USERS["alice"]["id"]}

    # A rollback that cannot authenticate reports every object as failed, deletes nothing and
    # keeps the state file as it was.
    wrong = tmp_path / "wrong-token"
    wrong.write_text("00" + uuid.uuid4().hex + "\n")
    before = (cwd / STATE).read_text()
    refused = okta(binary, fresh_idp, cwd, "rollback", "--yes", token_file=wrong)
    assert refused.returncode == 1, explain(refused)
    reported = [line for line in refused.stdout.splitlines() if line.strip()]
    assert reported and all(line.startswith("failed  ") and "E0000011" in line for line in reported), explain(refused)
    assert (cwd / STATE).read_text() == before
    assert wrong.read_text().strip() not in refused.stdout + refused.stderr
    for path in paths.values():
        assert mgmt.get(path)["status"] == "ACTIVE", path

    rollback = okta(binary, fresh_idp, cwd, "rollback", "--yes")
    assert rollback.returncode == 0, explain(rollback)
    assert all(line.startswith("deleted  ") for line in rollback.stdout.splitlines() if line.strip()), explain(rollback)
    for path in paths.values():
        okta_error(mgmt.request("GET", path), 404, "E0000007")
    assert mgmt.counts() == {"/api/v1/authorizationServers": 0, "/api/v1/apps": 0, "/api/v1/trustedOrigins": 1, AGENTS: 0}
    # The trusted origin bootstrap did not create is left alone.
    assert mgmt.get("/api/v1/trustedOrigins") == [theirs]
    assert not (cwd / STATE).exists()


# =========================================================================== 5. secrets


def test_files_are_private_and_no_secret_is_printed(binary, fresh_idp, tmp_path):
    idp = fresh_idp
    cwd = tmp_path / "cli"
    runs = []
    t = bootstrapped(binary, idp, cwd)
    runs.append(t.run)
    for path in (cwd / KEY_FILE, cwd / ENV_FILE, cwd / STATE):
        assert mode(path) == 0o600, f"{path}: {oct(mode(path))}"
    pem = (cwd / KEY_FILE).read_bytes()
    assert b"PRIVATE KEY" in pem
    secrets = {"the client secret": t.env["AGENT0_CLIENT_SECRET"], "the SSWS token": management_token(idp)}
    secrets.update({f"the private key ({s[:8]}…)": s for s in private_material(pem)})

    # validate: passing parts and failing parts (todo0 is not running), text and JSON.
    nowhere = no_todo0(idp)
    for extra in ((), ("--json",)):
        v = okta(binary, idp, cwd, "validate", "--config", str(SHIPPED_CONFIG), *extra, env=nowhere)
        assert v.returncode == 1 and ("✗" in v.stdout or '"fail"' in v.stdout), explain(v)
        runs.append(v)
    runs.append(bootstrap(binary, idp, cwd))
    assert runs[-1].returncode == 0, explain(runs[-1])
    assert mode(cwd / ENV_FILE) == 0o600 and mode(cwd / KEY_FILE) == 0o600
    runs.append(okta(binary, idp, cwd, "rollback", "--yes"))
    assert runs[-1].returncode == 0, explain(runs[-1])
    # After the rollback: validate fails on every object, and says so without secrets.
    runs.append(okta(binary, idp, cwd, "validate", "--config", str(SHIPPED_CONFIG), env=nowhere))

    for r in runs:
        output = r.stdout + r.stderr
        for what, secret in secrets.items():
            assert secret not in output, f"{' '.join(r.args[1:3])} printed {what}:\n{explain(r)}"
    # Nor does the IdP's own log (at the trace level the interop suite runs it at).
    log = idp.log_text()
    assert "issued" in log or "Management API" in log, "the IdP logged nothing: is its log being read?"
    for what, secret in secrets.items():
        assert secret not in log, f"the IdP's log carries {what}"


# =========================================================================== 6. assignments


def test_both_apps_are_assigned_to_the_user_and_rollback_unassigns_both(binary, fresh_idp, tmp_path):
    """With todo0's app too, the token's user is assigned to both apps (an assignment is kept per
    app: a second one must not replace the first), and rollback removes both."""
    cwd = tmp_path / "cli"
    cwd.mkdir()
    r = okta(binary, fresh_idp, cwd, "bootstrap", "--resource", TODO0_RESOURCE, "--todo0-url", "http://127.0.0.1:5001")
    assert r.returncode == 0, explain(r)
    state = read_state(cwd)
    mgmt = Mgmt(fresh_idp)
    me = mgmt.get("/api/v1/users/me")["id"]
    apps = [state["agent0_app_id"], state["todo0_app_id"]]
    assert state["assignments"] == {app: me for app in apps}, state
    for app in apps:
        assert [u["id"] for u in mgmt.get(f"/api/v1/apps/{app}/users")] == [me], app
    r = okta(binary, fresh_idp, cwd, "rollback", "--yes")
    assert r.returncode == 0, explain(r)
    assert sum("assignment of" in line and line.startswith("deleted") for line in r.stdout.splitlines()) == 2, r.stdout
    assert mgmt.get("/api/v1/apps") == []


def test_group_assignment_instead_of_the_user(binary, fresh_idp, tmp_path):
    """--group NAME assigns the apps to that group (found by name through /api/v1/groups), not to
    users/me; an unknown group is an error naming it; rollback removes the group assignments."""
    mgmt = Mgmt(fresh_idp)
    groups = mgmt.get("/api/v1/groups?q=adm")
    assert [g["profile"]["name"] for g in groups] == ["admins"], groups
    admins = groups[0]["id"]

    missing = tmp_path / "missing"
    missing.mkdir()
    r = okta(binary, fresh_idp, missing, "bootstrap", "--resource", TODO0_RESOURCE, "--group", "no-such-group")
    assert r.returncode == 1 and "no-such-group" in r.stderr, explain(r)

    cwd = tmp_path / "cli"
    cwd.mkdir()
    r = okta(binary, fresh_idp, cwd, "bootstrap", "--resource", TODO0_RESOURCE, "--group", "admins")
    assert r.returncode == 0, explain(r)
    state = read_state(cwd)
    app = state["agent0_app_id"]
    assert state["group_assignments"] == {app: admins} and state["assignments"] == {}, state
    assigned = mgmt.get(f"/api/v1/apps/{app}/groups")
    assert [g["id"] for g in assigned] == [admins], assigned
    assert mgmt.get(f"/api/v1/apps/{app}/users") == []
    okta_error(mgmt.request("PUT", f"/api/v1/apps/{app}/groups/00gNOPE"), 404, "E0000007")
    r = okta(binary, fresh_idp, cwd, "rollback", "--yes")
    assert r.returncode == 0, explain(r)
    assert any(line.startswith("deleted") and "group" in line for line in r.stdout.splitlines()), r.stdout
    assert mgmt.get("/api/v1/apps") == []
