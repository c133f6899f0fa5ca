"""`switchboard okta bootstrap --github-app NAME`: the AI agent's managed connection through OAuth
STS (brokered consent) to an app's resource server connector — GitHub's, for the `oauth-sts`
connections — against the development IdP (Sources/TenantTools/OktaBootstrap.swift step 5b,
Sources/IdentityProvider/ManagementAPI.swift: potential connections and `STS_ACCESS_TOKEN`
connections from idp.yaml's `third_party_apps`; TokenExchange.swift enforces them).

    okta bootstrap --github-app GitHub ── GET potential-connections?filter=connectionType eq "STS_ACCESS_TOKEN"
                                       └─ POST ai-agents/{id}/connections {STS_ACCESS_TOKEN, resource:{appInstanceId, clientAuthSettings}}
    gateway /rest/github ── STS exchange as the bootstrapped agent ──> IdP (connection checked, then consent) ──> GitHub stand-in

Okta's published OpenAPI spec has no such connection type yet (docs/okta-management-api-notes.md §8):
the shape is the one public clients of live orgs use; these tests pin what the development IdP and
the command do with it.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import jwt
import pytest
import requests

from idp_fixtures import ID_TOKEN_TYPE, TOKEN_EXCHANGE
from okta_fixtures import (  # noqa: F401 (binary, fresh_idp, tenant: fixtures)
    AGENTS,
    ENV_FILE,
    STATE,
    Mgmt,
    agent_post,
    binary,
    explain,
    fresh_idp,
    no_todo0,
    oauth_error,
    okta,
    okta_error,
    read_env_file,
    read_state,
    steps,
    tenant,
)
from system_fixtures import SHIPPED_CONFIG, TODO0_RESOURCE, consent, login, start_gateway, start_isv
from interop_helpers import HOST, stop_process

STS_TYPE = "urn:okta:params:oauth:token-type:oauth-sts"
POTENTIAL = "/workload-principals/api/v1/potential-connections"
GITHUB_RESOURCE = "orn:dev:idp:github"
GITHUB_MCP_RESOURCE = "orn:dev:idp:github-mcp"
STS_STEP = "managed connection to GitHub (STS)"


def bootstrap_github(binary: Path, idp, cwd: Path, app: str = "GitHub"):
    cwd.mkdir(parents=True, exist_ok=True)
    return okta(binary, idp, cwd, "bootstrap", "--resource", TODO0_RESOURCE, "--github-app", app)


def sts_request(idp, agent: tuple[str, str, Path], id_token: str, resource: str) -> requests.Response:
    """The token exchange the `oauth-sts` plugin makes: the user's ID token for a third-party app's token."""
    return agent_post(idp.token_endpoint, agent, {
        "grant_type": TOKEN_EXCHANGE, "requested_token_type": STS_TYPE, "subject_token": id_token,
        "subject_token_type": ID_TOKEN_TYPE, "resource": resource})


def agent_of(env: dict[str, str]) -> tuple[str, str, Path]:
    return env["AGENT_ID"], env["AGENT_KEY_ID"], Path(env["AGENT_KEY_FILE"])


def validate_checks(binary: Path, idp, cwd: Path) -> dict[str, dict]:
    r = okta(binary, idp, cwd, "validate", "--config", str(SHIPPED_CONFIG), "--json", env=no_todo0(idp))
    return {c["id"]: c for c in json.loads(r.stdout)["checks"]}


def test_github_app_connects_the_agent_through_sts_and_the_gateway_uses_it(binary, fresh_idp, tmp_path):
    idp, mgmt, cwd = fresh_idp, Mgmt(fresh_idp), tmp_path / "cli"
    r = bootstrap_github(binary, idp, cwd)
    assert r.returncode == 0, explain(r) + idp.log_tail()
    made = [s for s in steps(r) if s[1] == STS_STEP]
    assert len(made) == 1 and made[0][0] == "created", explain(r)
    connection_id = made[0][2]
    state, env = read_state(cwd), read_env_file(cwd / ENV_FILE)
    assert state["github_connection_id"] == connection_id, state
    assert env["OAUTH_STS_RESOURCE"] == GITHUB_RESOURCE, env

    # The connection as the API shows it: STS, active, to the `github` app instance.
    agent_id = env["AGENT_ID"]
    shown = mgmt.get(f"{AGENTS}/{agent_id}/connections/{connection_id}")
    assert shown["connectionType"] == "STS_ACCESS_TOKEN" and shown["status"] == "ACTIVE", shown
    assert shown["resource"]["appInstanceId"] == "github" and shown["resource"]["appInstanceName"] == "GitHub", shown
    assert shown["resourceIndicator"] == GITHUB_RESOURCE and shown["orn"].startswith("orn:okta:idp:"), shown
    listed = mgmt.get(f"{AGENTS}/{agent_id}/connections")["data"]
    assert sorted(c["connectionType"] for c in listed) == ["IDENTITY_ASSERTION_CUSTOM_AS", "STS_ACCESS_TOKEN"], listed

    # It takes effect: the bootstrapped agent passes the connection check for GitHub (consent is
    # next), and has none for the GitHub MCP app.
    token, browser = login(idp, "alice", client_id=env["AGENT0_CLIENT_ID"], client_secret=env["AGENT0_CLIENT_SECRET"], scope="openid")
    id_token = token["id_token"]
    oauth_error(sts_request(idp, agent_of(env), id_token, GITHUB_RESOURCE), "interaction_required")
    refused = oauth_error(sts_request(idp, agent_of(env), id_token, GITHUB_MCP_RESOURCE), "invalid_target")
    assert "managed connection" in refused.get("error_description", ""), refused

    # Through the gateway on the env file's values: consent once, then GitHub answers.
    started = []
    try:
        isv = start_isv(binary, tmp_path, idp.issuer)
        started.append(isv.proc)
        config = tmp_path / "connections.yaml"
        shutil.copyfile(SHIPPED_CONFIG, config)
        gateway_env = {**env, "GITHUB_API_URL": isv.url, "GITHUB_MCP_SERVER_URL": isv.url + "/mcp", "TODO0_MCP_URL": idp.issuer + "/mcp"}
        gateway = start_gateway(binary, tmp_path, gateway_env, config)
        started.append(gateway.proc)
        url = f"{gateway.url}/rest/github/repos/acme/app/issues/2/comments"
        auth = {"Authorization": f"Bearer {id_token}"}
        first = requests.get(url, headers=auth, timeout=30)
        assert first.status_code == 401 and first.json()["error"] == "interaction_required", first.text[:300]
        consent(browser, first.json()["interaction_uri"])
        listed = requests.get(url, headers=auth, timeout=30)
        assert listed.status_code == 200 and isinstance(listed.json(), list), f"HTTP {listed.status_code} {listed.text[:300]}"
        issued = [line for line in idp.log_text().splitlines() if "issued STS token" in line]
        assert any(agent_id in line and "github" in line for line in issued), issued[-5:] or idp.log_tail()
        assert env["AGENT0_CLIENT_SECRET"] not in gateway.log_text() + idp.log_text()
    finally:
        for proc in reversed(started):
            stop_process(proc)

    # Again: the connection is reused, nothing changes.
    again = bootstrap_github(binary, idp, cwd)
    assert again.returncode == 0, explain(again)
    assert ("exists", STS_STEP, connection_id) in steps(again), explain(again)
    assert all(kind == "exists" for kind, _, _ in steps(again)), explain(again)
    assert read_state(cwd) == state and read_env_file(cwd / ENV_FILE) == env

    # validate checks it; deactivated, validate says so and the exchange is refused; bootstrap repairs it.
    assert validate_checks(binary, idp, cwd)["okta:sts-connection"]["status"] == "pass"
    mgmt.post(f"{AGENTS}/{agent_id}/connections/{connection_id}/lifecycle/deactivate", {})
    check = validate_checks(binary, idp, cwd)["okta:sts-connection"]
    assert check["status"] == "fail" and "INACTIVE" in check["title"], check
    oauth_error(sts_request(idp, agent_of(env), id_token, GITHUB_RESOURCE), "invalid_target")
    repaired = bootstrap_github(binary, idp, cwd)
    assert repaired.returncode == 0 and ("exists", STS_STEP, connection_id) in steps(repaired), explain(repaired)
    assert mgmt.get(f"{AGENTS}/{agent_id}/connections/{connection_id}")["status"] == "ACTIVE"
    assert validate_checks(binary, idp, cwd)["okta:sts-connection"]["status"] == "pass"

    # Rollback removes it first, with the rest.
    rollback = okta(binary, idp, cwd, "rollback", "--yes")
    assert rollback.returncode == 0, explain(rollback)
    lines = [line for line in rollback.stdout.splitlines() if line.strip()]
    assert lines[2].startswith("deleted ") and "managed connection (STS)" in lines[2], explain(rollback)
    assert all(line.startswith("deleted ") for line in lines), explain(rollback)
    okta_error(mgmt.request("GET", f"{AGENTS}/{agent_id}/connections/{connection_id}"), 404, "E0000007")
    assert not (cwd / STATE).exists()


def test_without_github_app_there_is_no_sts_connection(tenant):
    assert "OAUTH_STS_RESOURCE" not in tenant.env and "github_connection_id" not in tenant.state
    listed = Mgmt(tenant.idp).get(f"{AGENTS}/{tenant.env['AGENT_ID']}/connections")["data"]
    assert [c["connectionType"] for c in listed] == ["IDENTITY_ASSERTION_CUSTOM_AS"], listed
    token, _ = login(tenant.idp, "alice", client_id=tenant.env["AGENT0_CLIENT_ID"], client_secret=tenant.env["AGENT0_CLIENT_SECRET"], scope="openid")
    oauth_error(sts_request(tenant.idp, agent_of(tenant.env), token["id_token"], GITHUB_RESOURCE), "invalid_target")


def test_an_app_without_an_sts_connector_stops_bootstrap_with_the_fix(binary, fresh_idp, tmp_path):
    cwd = tmp_path / "cli"
    r = bootstrap_github(binary, fresh_idp, cwd, app="Jira")
    assert r.returncode == 1, explain(r)
    assert "app 'Jira'" in r.stderr and "offered: GitHub, GitHub MCP" in r.stderr, explain(r)
    assert "Resource server" in r.stderr and "Admin Console" in r.stderr, explain(r)
    # What was made before the failure is recorded, and rollback removes it.
    state = read_state(cwd)
    assert state.get("agent_id") and state.get("connection_id") and "github_connection_id" not in state, state
    rollback = okta(binary, fresh_idp, cwd, "rollback", "--yes")
    assert rollback.returncode == 0, explain(rollback)
    assert Mgmt(fresh_idp).counts()[AGENTS] == 0


def test_the_app_is_found_by_id_too(binary, fresh_idp, tmp_path):
    cwd = tmp_path / "cli"
    r = bootstrap_github(binary, fresh_idp, cwd, app="github-mcp")
    assert r.returncode == 0, explain(r)
    assert read_env_file(cwd / ENV_FILE)["OAUTH_STS_RESOURCE"] == GITHUB_MCP_RESOURCE
    assert any(obj == "managed connection to github-mcp (STS)" for _, obj, _ in steps(r)), explain(r)


# --------------------------------------------------------------------------- the wire format


def test_potential_connections_need_a_filter_and_list_by_type(tenant):
    mgmt = Mgmt(tenant.idp)
    okta_error(mgmt.request("GET", POTENTIAL), 400, "E0000001")
    okta_error(mgmt.request("GET", POTENTIAL + "?filter=name eq \"GitHub\""), 400, "E0000001")
    okta_error(mgmt.request("GET", POTENTIAL + '?filter=connectionType eq "STS_ACCESS_TOKEN"', auth=None), 401, "E0000011")

    sts = mgmt.get(POTENTIAL + '?filter=connectionType eq "STS_ACCESS_TOKEN"')
    assert set(sts) == {"data", "_links"}, sts
    by_name = {c["resource"]["appInstanceName"]: c for c in sts["data"]}
    assert set(by_name) == {"GitHub", "GitHub MCP"}, sts
    github = by_name["GitHub"]
    assert github["connectionType"] == "STS_ACCESS_TOKEN" and github["resourceIndicator"] == GITHUB_RESOURCE, github
    assert github["resource"]["appInstanceId"] == "github" and github["resource"]["orn"] == GITHUB_RESOURCE, github
    assert github["resource"]["clientAuthSettings"]["orn"].startswith("orn:okta:idp:"), github

    custom = mgmt.get(POTENTIAL + '?filter=connectionType eq "IDENTITY_ASSERTION_CUSTOM_AS"')["data"]
    server_id = tenant.state["authorization_server_id"]
    assert [c["authorizationServer"]["orn"].rsplit(":", 1)[-1] for c in custom] == [server_id], custom
    assert custom[0]["authorizationServer"]["issuerUrl"] == tenant.as_issuer and custom[0]["resourceIndicator"] == TODO0_RESOURCE, custom
    assert mgmt.get(POTENTIAL + '?filter=connectionType eq "STS_VAULT_SECRET"')["data"] == []


def test_sts_connection_create_validation_read_and_delete(tenant):
    mgmt = Mgmt(tenant.idp)
    agent = tenant.env["AGENT_ID"]
    path = f"{AGENTS}/{agent}/connections"
    github = next(c for c in mgmt.get(POTENTIAL + '?filter=connectionType eq "STS_ACCESS_TOKEN"')["data"]
                  if c["resource"]["appInstanceId"] == "github-mcp")
    settings = github["resource"]["clientAuthSettings"]["orn"]
    for body, cause in (
        ({"connectionType": "STS_ACCESS_TOKEN", "resource": {"clientAuthSettings": {"orn": settings}}}, "resource.appInstanceId"),
        ({"connectionType": "STS_ACCESS_TOKEN", "resource": {"appInstanceId": "jira", "clientAuthSettings": {"orn": settings}}}, "resource.appInstanceId"),
        ({"connectionType": "STS_ACCESS_TOKEN", "resource": {"appInstanceId": "github-mcp", "clientAuthSettings": {"orn": settings + "x"}}}, "clientAuthSettings"),
        ({"connectionType": "STS_VAULT_SECRET", "secret": {"orn": "orn:okta:pam:x:secrets:y"}}, "connectionType"),
    ):
        err = okta_error(mgmt.request("POST", path, body), 400, "E0000001")
        assert cause in err["errorSummary"], (body, err)
    made = mgmt.post(path, {"connectionType": "STS_ACCESS_TOKEN", "resource": {"appInstanceId": "github-mcp", "clientAuthSettings": {"orn": settings}}},
                     status=201)
    assert made["id"].startswith("mcn") and made["status"] == "ACTIVE" and made["resourceIndicator"] == GITHUB_MCP_RESOURCE, made
    assert made["resource"] == github["resource"], made
    try:
        assert mgmt.get(f"{path}/{made['id']}") == made
        # Now the bootstrapped agent reaches the GitHub MCP app too (consent next).
        token, _ = login(tenant.idp, "alice", client_id=tenant.env["AGENT0_CLIENT_ID"], client_secret=tenant.env["AGENT0_CLIENT_SECRET"], scope="openid")
        oauth_error(sts_request(tenant.idp, agent_of(tenant.env), token["id_token"], GITHUB_MCP_RESOURCE), "interaction_required")
    finally:
        mgmt.delete(f"{path}/{made['id']}")
    okta_error(mgmt.request("GET", f"{path}/{made['id']}"), 404, "E0000007")
    okta_error(mgmt.request("GET", f"{AGENTS}/wlpNoSuchAgent0000000/connections/{made['id']}"), 404, "E0000007")


def test_sts_token_claims_for_the_bootstrapped_agent_after_consent(binary, fresh_idp, tmp_path):
    r = bootstrap_github(binary, fresh_idp, tmp_path / "cli")
    assert r.returncode == 0, explain(r)
    env = read_env_file(tmp_path / "cli" / ENV_FILE)
    token, browser = login(fresh_idp, "alice", client_id=env["AGENT0_CLIENT_ID"], client_secret=env["AGENT0_CLIENT_SECRET"], scope="openid")
    first = oauth_error(sts_request(fresh_idp, agent_of(env), token["id_token"], env["OAUTH_STS_RESOURCE"]), "interaction_required")
    consent(browser, first["interaction_uri"])
    granted = sts_request(fresh_idp, agent_of(env), token["id_token"], env["OAUTH_STS_RESOURCE"])
    assert granted.status_code == 200, granted.text
    body = granted.json()
    assert body["issued_token_type"] == STS_TYPE and body["token_type"] == "Bearer", body
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert claims["client_id"] == env["AGENT_ID"] and claims["resource"] == GITHUB_RESOURCE, claims
    assert claims["aud"] == f"http://{HOST}:7000", claims
