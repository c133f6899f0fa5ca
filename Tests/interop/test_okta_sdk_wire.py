"""The official Okta Python SDK (`okta` 3.x, whose models are generated from Okta's published
Management API OpenAPI spec and validated by pydantic: required fields, enums, types) as the
client of the development IdP's Management API (Sources/IdentityProvider/ManagementAPI.swift).

1. After a real `switchboard okta bootstrap` on a fresh IdP the SDK lists and gets every kind of
   object bootstrap created; each parses into the SDK's model, and the parsed values equal what
   `.switchboard/okta-state.json` and the env file record.
2. The SDK creates objects itself (an authorization server with a scope, policy and rule; an OIDC
   app with a user assignment; a trusted origin; an AI agent with a JWK), reads them back and
   deletes them (deactivating first where Okta requires it).
3. Errors arrive as the SDK's `OktaAPIError` carrying Okta's errorCode and errorSummary.

Configuring the SDK for an http://127.0.0.1 org: `Client()` refuses an orgUrl that is not https
unless `OKTA_TESTING_TESTINGDISABLEHTTPSCHECK` is set (the SDK's documented testing switch; a
`testing` key in the user config is merged under `client` and ignored). SSWS is the SDK's default
authorizationMode.

okta 3.4.6 generates no API class for AI agents (its spec lists the /workload-principals paths
without operations) but does ship their models: those calls take the path every generated
operation takes (ApiClient.param_serialize, then the RequestExecutor) and the answers are
validated with the SDK's models.

The suite found eleven places where the development IdP's answers did not fit the SDK (the SDK's
`SSWS<token>` header without a space; five GET-by-id paths not served; the agent's JWKS list not
in the `{data, _links}` envelope; `_links` missing on a connection's authorization server, the
connection list and an operation's resource; `resourceIndicator` required where the spec has it
optional); each was fixed and its test turned from xfail to pass.
"""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from cryptography.hazmat.primitives import serialization
from okta import models
from okta.client import Client
from okta.errors.okta_api_error import OktaAPIError
from pydantic import ValidationError

from idp_fixtures import JWT_BEARER, REDIRECT_URI, USERS, IdP, start_idp
from interop_helpers import HOST, new_rsa_key, public_jwk, stop_process
from okta_fixtures import (  # noqa: F401 (binary, tenant: fixtures)
    AGENTS, OPERATIONS, SCOPES, Mgmt, Tenant, binary, bootstrapped, management_token, tenant,
)
from system_fixtures import TODO0_RESOURCE

ALICE = USERS["alice"]
AGENT_NAME = "Switchboard agent0"  # `okta bootstrap`'s default --agent-name
SERVER_NAME = "todo-mcp"           # and its authorization server's name

# --------------------------------------------------------------------------- the SDK as a client


class SDKCallFailed(Exception):
    """An SDK call answered an error (the SDK returns its errors; it does not raise them)."""

    def __init__(self, error: Any) -> None:
        self.error = error
        super().__init__(f"{type(error).__name__}: {getattr(error, 'message', error)}")


@contextmanager
def _sdk_environment():
    """The SDK reads OKTA_* variables and HTTP(S)_PROXY when a Client is made: only the testing
    switch for an http orgUrl, nothing from whoever runs the suite."""
    saved = {k: v for k, v in os.environ.items() if k.startswith("OKTA_") or k in ("HTTP_PROXY", "HTTPS_PROXY")}
    for k in saved:
        del os.environ[k]
    os.environ["OKTA_TESTING_TESTINGDISABLEHTTPSCHECK"] = "true"
    try:
        yield
    finally:
        del os.environ["OKTA_TESTING_TESTINGDISABLEHTTPSCHECK"]
        os.environ.update(saved)


def sdk_client(idp: IdP, token: str | None = None) -> Client:
    """The SDK's Client for the IdP's org, configured as documented (orgUrl, token, SSWS), with the
    management token (or `token`). The SDK sends `Authorization: SSWS<token>` (no space:
    okta/configuration.py's auth_settings()); Okta accepts that, and so must the IdP."""
    token = token if token is not None else management_token(idp)
    with _sdk_environment():
        return Client({"orgUrl": idp.issuer, "token": token, "authorizationMode": "SSWS"})


def run(coro) -> tuple[Any, Any]:
    """An SDK call's (model, ApiResponse); SDKCallFailed when it answered an error. Its models are
    built while it reads the answer: a ValidationError means the answer does not fit the spec."""
    result = asyncio.run(coro)
    if len(result) == 2:  # (response, error): the SDK's shape for a failed call without a response model
        (resp, err), data = result, None
    else:
        data, resp, err = result
    if err is not None:
        raise SDKCallFailed(err)
    return data, resp


def api_error(coro) -> OktaAPIError:
    """The OktaAPIError an SDK call must answer."""
    result = asyncio.run(coro)
    err = result[-1]
    assert isinstance(err, OktaAPIError), f"expected the SDK's OktaAPIError, got {result!r}"
    return err


def agents_call(client: Client, method: str, path: str, body: Any = None) -> tuple[int, Any, Any]:
    """A Workload Principals call made as the SDK's generated operations make theirs
    (param_serialize: its auth header and body serialization; then its RequestExecutor):
    (status, headers, JSON body or None); SDKCallFailed for an error answer."""
    async def call():
        executor = client.get_request_executor()
        method_, url, headers, data, _ = client.param_serialize(
            method=method, resource_path=path, header_params={"Accept": "application/json"}, body=body,
            auth_settings=["apiToken", "oauth2"])
        request, err = await executor.create_request(method_, url, data, headers, None)
        if err is not None:
            return None, None, err
        return await executor.execute(request)

    response, text, err = asyncio.run(call())
    if err is not None:
        raise SDKCallFailed(err)
    return response.status, response.headers, json.loads(text) if text else None


def agents_error(client: Client, method: str, path: str) -> Any:
    """The error a Workload Principals call must answer."""
    with pytest.raises(SDKCallFailed) as failed:
        agents_call(client, method, path)
    return failed.value.error


def okta_api_error(err: Any, status: int, code: str) -> OktaAPIError:
    """The SDK's OktaAPIError with Okta's fields: errorCode, errorSummary, errorLink (the code), errorId."""
    assert isinstance(err, OktaAPIError), f"expected OktaAPIError, got {type(err).__name__}: {err!r}"
    assert err.status == status and err.error_code == code, (err.status, err.error_code, err.error_summary)
    assert err.error_summary and err.error_link == code and err.error_id, vars(err)
    assert isinstance(err.error_causes, list), vars(err)
    return err


def operation(client: Client, idp: IdP, status: int, headers: Any) -> tuple[str, dict, dict]:
    """A 202 + absolute Location of an operation: (its path, first poll, second poll) — IN_PROGRESS,
    then COMPLETED with the resource's id."""
    assert status == 202, status
    location = headers.get("Location", "")
    assert location.startswith(idp.issuer + OPERATIONS), f"Location {location!r}"
    path = location[len(idp.issuer):]
    first = agents_call(client, "GET", path)[2]
    second = agents_call(client, "GET", path)[2]
    assert first["status"] == "IN_PROGRESS" and second["status"] == "COMPLETED", (first, second)
    assert first["id"] == second["id"] == path.rsplit("/", 1)[-1] and second["resource"]["id"], second
    return path, first, second


def jwk_items(body: Any) -> list:
    """An agent's JWKS answer's keys (the `{data, _links}` envelope is
    test_agent_jwks_list_is_the_spec_envelope's business)."""
    return body["data"]


def agent_key(body: dict) -> models.AgentJsonWebKeyRsaResponse:
    """An agent's RSA JWK validated by the SDK's model. pydantic's model_validate, not the model's
    from_dict: okta 3.4.6's AgentJsonWebKeyRsaResponse.from_dict drops kty, n and e before
    validating, so it refuses every RSA key, the spec's own example included."""
    return models.AgentJsonWebKeyRsaResponse.model_validate(body)


def new_app(label: str) -> models.OpenIdConnectApplication:
    return models.OpenIdConnectApplication(
        label=label, name="oidc_client", sign_on_mode="OPENID_CONNECT",
        credentials=models.OAuthApplicationCredentials(
            oauth_client=models.ApplicationCredentialsOAuthClient(token_endpoint_auth_method="client_secret_basic")),
        settings=models.OpenIdConnectApplicationSettings(oauth_client=models.OpenIdConnectApplicationSettingsClient(
            redirect_uris=[REDIRECT_URI], response_types=["code"], grant_types=["authorization_code"], application_type="web")),
    )


def registered_agent(client: Client, idp: IdP, app_id: str, name: str) -> str:
    """An AI agent registered by the SDK's CreateAIAgentRequest: its id."""
    body = models.CreateAIAgentRequest(app_id=app_id, profile=models.AIAgentProfile(name=name, description="registered by the Okta SDK"))
    status, headers, answer = agents_call(client, "POST", AGENTS, body)
    assert answer is None, answer
    return operation(client, idp, status, headers)[2]["resource"]["id"]


def with_key(client: Client, agent_id: str, kid: str) -> tuple[dict, models.AgentJsonWebKeyRsaResponse]:
    """An RSA public key registered for the agent by the SDK's AgentJsonWebKeyRsaRequest."""
    jwk = public_jwk(new_rsa_key(), kid)
    request = models.AgentJsonWebKeyRsaRequest(kty="RSA", kid=kid, alg="RS256", use="sig", e=jwk["e"], n=jwk["n"])
    status, _, answer = agents_call(client, "POST", f"{AGENTS}/{agent_id}/credentials/jwks", request)
    assert status == 201, status
    return jwk, agent_key(answer)


def server_orn(client: Client, server_id: str) -> str:
    org, _ = run(client.get_org_settings())
    return f"orn:okta:idp:{org.id}:authorization_servers:{server_id}"


def origin_of(url: str) -> str:
    u = urlsplit(url)
    return f"{u.scheme}://{u.netloc}"


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def sdk(tenant: Tenant) -> Client:
    return sdk_client(tenant.idp)


@pytest.fixture(scope="module")
def group_tenant(binary, tmp_path_factory):
    """An IdP bootstrapped with `--group admins` (the apps assigned to a group, not to users/me)."""
    base = tmp_path_factory.mktemp("okta-group-tenant")
    idp = start_idp(binary, base)
    try:
        yield bootstrapped(binary, idp, base / "cli", "--group", "admins")
    finally:
        stop_process(idp.proc)


# =========================================================================== 1. what bootstrap created, read by the SDK


def test_sdk_configured_as_documented_authenticates(tenant):
    client = sdk_client(tenant.idp)
    me, _ = run(client.get_user("me"))
    assert me.id == ALICE["id"]


def test_authorization_server_scopes_policy_and_rule(sdk, tenant):
    env, state = tenant.env, tenant.state
    server_id = state["authorization_server_id"]
    listed, resp = run(sdk.list_authorization_servers())
    assert resp.status_code == 200
    ours = [s for s in listed if s.id == server_id]
    assert len(ours) == 1 and all(isinstance(s, models.AuthorizationServer) for s in listed), listed
    server, _ = run(sdk.get_authorization_server(server_id))
    assert server.to_dict() == ours[0].to_dict()
    assert server.name == SERVER_NAME and server.status == "ACTIVE", server
    assert server.audiences == [env["TODO0_RESOURCE"]] == [TODO0_RESOURCE], server
    assert server.issuer == env["MCP_AUTHORIZATION_SERVER"] == f"{tenant.idp.issuer}/oauth2/{server_id}", server
    assert [s.id for s in run(sdk.list_authorization_servers(q=SERVER_NAME[:4]))[0]] == [server_id]

    scopes, _ = run(sdk.list_o_auth2_scopes(server_id))
    assert all(isinstance(s, models.OAuth2Scope) for s in scopes), scopes
    assert {s.name: s.id for s in scopes} == state["scope_ids"] and sorted(state["scope_ids"]) == sorted(SCOPES), scopes
    assert all(s.system is False and s.consent == "IMPLICIT" and s.display_name == s.name for s in scopes), scopes

    policies, _ = run(sdk.list_authorization_server_policies(server_id))
    assert [p.id for p in policies] == [state["policy_id"]], policies
    policy, _ = run(sdk.get_authorization_server_policy(server_id, state["policy_id"]))
    assert isinstance(policy, models.AuthorizationServerPolicy) and policy.to_dict() == policies[0].to_dict()
    assert policy.type == "OAUTH_AUTHORIZATION_POLICY" and policy.status == "ACTIVE", policy
    assert policy.conditions.clients.include == [env["AGENT_ID"]], policy

    rules, _ = run(sdk.list_authorization_server_policy_rules(server_id, state["policy_id"]))
    assert [r.id for r in rules] == [state["rule_id"]], rules
    rule, _ = run(sdk.get_authorization_server_policy_rule(server_id, state["policy_id"], state["rule_id"]))
    assert isinstance(rule, models.AuthorizationServerPolicyRule) and rule.to_dict() == rules[0].to_dict()
    assert rule.type == "RESOURCE_ACCESS" and rule.status == "ACTIVE", rule
    assert rule.conditions.scopes.include == SCOPES, rule
    assert JWT_BEARER in rule.conditions.grant_types.include, rule
    assert rule.conditions.people.groups.include == ["EVERYONE"], rule
    assert rule.actions.token.access_token_lifetime_minutes == 60, rule


def test_scope_by_id(sdk, tenant):
    server_id, scope_id = tenant.state["authorization_server_id"], tenant.state["scope_ids"]["mcp:connect"]
    scope, _ = run(sdk.get_o_auth2_scope(server_id, scope_id))
    assert isinstance(scope, models.OAuth2Scope) and scope.id == scope_id and scope.name == "mcp:connect", scope


def test_oidc_app_and_its_user_assignment(sdk, tenant):
    env, state = tenant.env, tenant.state
    app_id = state["agent0_app_id"]
    listed, _ = run(sdk.list_applications(q="agent0"))
    assert [a.id for a in listed] == [app_id], listed
    app, _ = run(sdk.get_application(app_id))
    # The SDK picks the model by signOnMode (the spec's discriminator).
    assert isinstance(app, models.OpenIdConnectApplication) and app.to_dict() == listed[0].to_dict(), app
    assert app.label == "agent0" and app.name == "oidc_client" and app.sign_on_mode == "OPENID_CONNECT" and app.status == "ACTIVE", app
    client = app.credentials.oauth_client
    assert client.client_id == env["AGENT0_CLIENT_ID"] == state["agent0_client_id"], client
    assert client.client_secret == env["AGENT0_CLIENT_SECRET"] and client.token_endpoint_auth_method == "client_secret_basic", client.token_endpoint_auth_method
    settings = app.settings.oauth_client
    assert settings.redirect_uris == [REDIRECT_URI] and settings.grant_types == ["authorization_code"], settings
    assert settings.response_types == ["code"] and settings.application_type == "web", settings

    users, _ = run(sdk.list_application_users(app_id))
    assert all(isinstance(u, models.AppUser) for u in users), users
    assert [u.id for u in users] == [state["assignments"][app_id]] == [ALICE["id"]], users
    assert users[0].scope == "USER" and users[0].status == "ACTIVE" and users[0].credentials.user_name == ALICE["email"], users
    groups, _ = run(sdk.list_application_group_assignments(app_id))
    assert groups == [] and state["group_assignments"] == {}, groups


def test_app_user_by_id(sdk, tenant):
    app_id = tenant.state["agent0_app_id"]
    user, _ = run(sdk.get_application_user(app_id, ALICE["id"]))
    assert isinstance(user, models.AppUser) and user.id == ALICE["id"] and user.scope == "USER", user


def test_group_assignment_of_bootstrap_with_group(group_tenant):
    client = sdk_client(group_tenant.idp)
    state = group_tenant.state
    app_id = state["agent0_app_id"]
    admins = run(client.list_groups(q="admins"))[0]
    assert [g.profile.actual_instance.name for g in admins] == ["admins"], admins
    assigned, _ = run(client.list_application_group_assignments(app_id))
    assert all(isinstance(a, models.ApplicationGroupAssignment) for a in assigned), assigned
    assert [a.id for a in assigned] == [state["group_assignments"][app_id]] == [admins[0].id], assigned
    assert assigned[0].links.app.href == f"{group_tenant.idp.issuer}/api/v1/apps/{app_id}", assigned[0].links
    assert assigned[0].links.group.href.endswith("/api/v1/groups/" + admins[0].id), assigned[0].links
    assert run(client.list_application_users(app_id))[0] == [] and state["assignments"] == {}


def test_group_assignment_by_id(group_tenant):
    client = sdk_client(group_tenant.idp)
    app_id = group_tenant.state["agent0_app_id"]
    group_id = group_tenant.state["group_assignments"][app_id]
    assignment, _ = run(client.get_application_group_assignment(app_id, group_id))
    assert isinstance(assignment, models.ApplicationGroupAssignment) and assignment.id == group_id, assignment


def test_trusted_origins(sdk, tenant):
    expected = {"switchboard-agent0": origin_of(REDIRECT_URI), "switchboard-todo0": origin_of(tenant.env["TODO0_RESOURCE"])}
    listed, _ = run(sdk.list_trusted_origins())
    assert all(isinstance(o, models.TrustedOrigin) for o in listed), listed
    ours = {o.name: o for o in listed if o.name in expected}
    assert {name: o.id for name, o in ours.items()} == tenant.state["trusted_origins"], listed
    for name, origin in ours.items():
        assert origin.origin == expected[name] and origin.status == "ACTIVE", origin
        assert sorted(s.type for s in origin.scopes) == ["CORS", "REDIRECT"], origin
        got, _ = run(sdk.get_trusted_origin(origin.id))
        assert got.to_dict() == origin.to_dict()


def test_users_me_org_and_groups(sdk, tenant):
    me, _ = run(sdk.get_user("me"))
    assert isinstance(me, models.User) and me.status == "ACTIVE", me
    assert me.id == ALICE["id"] and [me.id] == list(tenant.state["assignments"].values()), me
    assert me.profile.login == me.profile.email == ALICE["email"], me.profile
    assert (me.profile.first_name, me.profile.last_name) == tuple(ALICE["name"].split(" ", 1)), me.profile

    org, _ = run(sdk.get_org_settings())
    assert isinstance(org, models.OrgSetting) and org.id.startswith("00o") and org.status == "ACTIVE", org
    assert run(sdk.get_org_settings())[0].id == org.id

    groups, _ = run(sdk.list_groups())
    assert groups and all(isinstance(g, models.Group) and g.type == "OKTA_GROUP" for g in groups), groups
    names = [g.profile.actual_instance.name for g in groups]
    assert "admins" in names and len(set(g.id for g in groups)) == len(groups), names
    assert [g.profile.actual_instance.name for g in run(sdk.list_groups(q="adm"))[0]] == ["admins"]


def test_group_by_id(sdk):
    admins = run(sdk.list_groups(q="admins"))[0][0]
    group, _ = run(sdk.get_group(admins.id))
    assert isinstance(group, models.Group) and group.id == admins.id, group


def test_ai_agents_list_and_get(sdk, tenant):
    env, state = tenant.env, tenant.state
    status, _, body = agents_call(sdk, "GET", AGENTS)
    assert status == 200 and isinstance(body, dict) and isinstance(body["data"], list), body
    listed = [models.AIAgent.from_dict(a) for a in body["data"]]
    # (the agents other tests register act for apps of their own)
    listed = [a for a in listed if a.app_id == state["agent0_app_id"]]
    assert [a.id for a in listed] == [env["AGENT_ID"]] == [state["agent_id"]], listed
    status, _, body = agents_call(sdk, "GET", f"{AGENTS}/{env['AGENT_ID']}")
    agent = models.AIAgent.from_dict(body)
    assert status == 200 and agent.to_dict() == listed[0].to_dict(), agent
    assert agent.app_id == state["agent0_app_id"] and agent.status == "ACTIVE", agent
    assert agent.profile.name == AGENT_NAME, agent.profile
    assert agent.links.var_self.href == f"{tenant.idp.issuer}{AGENTS}/{agent.id}", agent.links


def test_agent_jwks_are_the_key_files_public_key(sdk, tenant):
    env = tenant.env
    status, _, body = agents_call(sdk, "GET", f"{AGENTS}/{env['AGENT_ID']}/credentials/jwks")
    keys = [agent_key(k) for k in jwk_items(body)]
    assert status == 200 and [k.kid for k in keys] == [env["AGENT_KEY_ID"]] == [tenant.state["agent_key_id"]], keys
    private = serialization.load_pem_private_key(Path(env["AGENT_KEY_FILE"]).read_bytes(), password=None)
    public = public_jwk(private, env["AGENT_KEY_ID"])
    key = keys[0]
    assert (key.kty, key.n, key.e) == ("RSA", public["n"], public["e"]), key
    assert key.use == "sig" and key.alg == "RS256" and key.status == "ACTIVE" and key.id.startswith("pks"), key


def test_agent_jwks_list_is_the_spec_envelope(sdk, tenant):
    path = f"{AGENTS}/{tenant.env['AGENT_ID']}/credentials/jwks"
    status, _, body = agents_call(sdk, "GET", path)
    assert status == 200
    assert isinstance(body, dict) and isinstance(body.get("data"), list), f"not {{data, _links}}: {str(body)[:200]}"
    assert body["_links"]["self"]["href"] == tenant.idp.issuer + path, body.get("_links")


def test_agent_jwk_by_id(sdk, tenant):
    agent_id = tenant.env["AGENT_ID"]
    key_id = jwk_items(agents_call(sdk, "GET", f"{AGENTS}/{agent_id}/credentials/jwks")[2])[0]["id"]
    key = agent_key(agents_call(sdk, "GET", f"{AGENTS}/{agent_id}/credentials/jwks/{key_id}")[2])
    assert key.id == key_id and key.kid == tenant.env["AGENT_KEY_ID"], key


def test_agent_managed_connection(sdk, tenant):
    env, state = tenant.env, tenant.state
    agent_id = env["AGENT_ID"]
    body = agents_call(sdk, "GET", f"{AGENTS}/{agent_id}/connections")[2]
    listed = [models.ManagedConnection.from_json(json.dumps(c)) for c in body["data"]]
    got = models.ManagedConnection.from_json(json.dumps(agents_call(sdk, "GET", f"{AGENTS}/{agent_id}/connections/{state['connection_id']}")[2]))
    assert [c.actual_instance.id for c in listed] == [state["connection_id"]] and got.to_dict() == listed[0].to_dict()
    connection = got.actual_instance
    assert isinstance(connection, models.IdentityAssertionCustomASConnection), connection
    assert connection.authorization_server.orn == server_orn(sdk, state["authorization_server_id"]), connection
    assert connection.authorization_server.issuer_url == env["MCP_AUTHORIZATION_SERVER"], connection
    assert connection.authorization_server.name == SERVER_NAME, connection
    assert connection.resource_indicator == env["TODO0_RESOURCE"], connection
    assert connection.scope_condition == "INCLUDE_ONLY" and connection.scopes == SCOPES and connection.status == "ACTIVE", connection


def test_agent_managed_connection_list_links(sdk, tenant):
    path = f"{AGENTS}/{tenant.env['AGENT_ID']}/connections"
    body = agents_call(sdk, "GET", path)[2]
    assert isinstance(body["data"], list) and body["data"], body
    links = models.ManagedConnectionListLinks.model_validate(body.get("_links"))
    assert links.var_self.href == tenant.idp.issuer + path, links


# =========================================================================== 2. objects the SDK creates


def test_sdk_creates_reads_and_deletes_an_authorization_server_with_scope_policy_and_rule(sdk, tenant):
    tag = uuid.uuid4().hex[:8]
    audience = f"http://{HOST}:5999/sdk-{tag}"
    made, resp = run(sdk.create_authorization_server(models.AuthorizationServer(name=f"sdk-as-{tag}", description="made by the Okta SDK", audiences=[audience])))
    assert resp.status_code == 201 and isinstance(made, models.AuthorizationServer), resp.status_code
    sid = made.id
    try:
        assert made.name == f"sdk-as-{tag}" and made.audiences == [audience] and made.status == "ACTIVE", made
        assert made.issuer == f"{tenant.idp.issuer}/oauth2/{sid}" and made.issuer_mode == "ORG_URL", made
        assert run(sdk.get_authorization_server(sid))[0].to_dict() == made.to_dict()
        assert sid in {s.id for s in run(sdk.list_authorization_servers())[0]}

        scope, resp = run(sdk.create_o_auth2_scope(sid, models.OAuth2Scope(name="sdk:read", consent="IMPLICIT", description="made by the SDK")))
        assert resp.status_code == 201 and scope.name == "sdk:read" and scope.consent == "IMPLICIT" and scope.system is False, scope
        assert [s.to_dict() for s in run(sdk.list_o_auth2_scopes(sid))[0]] == [scope.to_dict()]

        policy, resp = run(sdk.create_authorization_server_policy(sid, models.AuthorizationServerPolicy(
            name=f"sdk-policy-{tag}", description="made by the SDK", priority=1, type="OAUTH_AUTHORIZATION_POLICY",
            conditions=models.AuthorizationServerPolicyConditions(clients=models.ClientPolicyCondition(include=[tenant.env["AGENT_ID"]])))))
        assert resp.status_code == 201 and policy.status == "ACTIVE" and policy.conditions.clients.include == [tenant.env["AGENT_ID"]], policy
        rule, resp = run(sdk.create_authorization_server_policy_rule(sid, policy.id, models.AuthorizationServerPolicyRuleRequest(
            name=f"sdk-rule-{tag}", priority=1, type="RESOURCE_ACCESS",
            conditions=models.AuthorizationServerPolicyRuleConditions(
                grant_types=models.GrantTypePolicyRuleCondition(include=[JWT_BEARER]),
                people=models.AuthorizationServerPolicyPeopleCondition(groups=models.AuthorizationServerPolicyRuleGroupCondition(include=["EVERYONE"])),
                scopes=models.OAuth2ScopesMediationPolicyRuleCondition(include=["sdk:read"])),
            actions=models.AuthorizationServerPolicyRuleActions(token=models.TokenAuthorizationServerPolicyRuleAction(access_token_lifetime_minutes=5)))))
        assert resp.status_code == 201 and isinstance(rule, models.AuthorizationServerPolicyRule), rule
        assert rule.conditions.scopes.include == ["sdk:read"] and rule.actions.token.access_token_lifetime_minutes == 5, rule
        assert run(sdk.get_authorization_server_policy_rule(sid, policy.id, rule.id))[0].to_dict() == rule.to_dict()

        assert run(sdk.delete_authorization_server_policy_rule(sid, policy.id, rule.id))[1].status_code == 204
        assert run(sdk.list_authorization_server_policy_rules(sid, policy.id))[0] == []
        assert run(sdk.delete_authorization_server_policy(sid, policy.id))[1].status_code == 204
        assert run(sdk.delete_o_auth2_scope(sid, scope.id))[1].status_code == 204
        assert run(sdk.list_o_auth2_scopes(sid))[0] == []
        # Deactivated (204), then deleted (204).
        assert run(sdk.deactivate_authorization_server(sid))[1].status_code == 204
        assert run(sdk.get_authorization_server(sid))[0].status == "INACTIVE"
        assert run(sdk.delete_authorization_server(sid))[1].status_code == 204
        sid = None
        okta_api_error(api_error(sdk.get_authorization_server(made.id)), 404, "E0000007")
    finally:
        if sid:
            Mgmt(tenant.idp).request("POST", f"/api/v1/authorizationServers/{sid}/lifecycle/deactivate")
            Mgmt(tenant.idp).request("DELETE", f"/api/v1/authorizationServers/{sid}")


def test_sdk_creates_reads_and_deletes_an_oidc_app_with_a_user_assignment(sdk, tenant):
    label = f"sdk-app-{uuid.uuid4().hex[:8]}"
    app, resp = run(sdk.create_application(new_app(label)))
    assert resp.status_code == 200 and isinstance(app, models.OpenIdConnectApplication), resp.status_code  # Okta: 200, not 201
    try:
        assert app.label == label and app.status == "ACTIVE" and app.id.startswith("0oa"), app
        client = app.credentials.oauth_client
        assert client.client_id and client.client_secret and client.token_endpoint_auth_method == "client_secret_basic", client
        assert app.settings.oauth_client.redirect_uris == [REDIRECT_URI], app.settings
        got, _ = run(sdk.get_application(app.id))
        assert got.to_dict() == app.to_dict()
        assert [a.id for a in run(sdk.list_applications(q=label))[0]] == [app.id]

        bob = USERS["bob"]
        assigned, resp = run(sdk.assign_user_to_application(app.id, models.AppUserAssignRequest(id=bob["id"])))
        assert resp.status_code == 200 and isinstance(assigned, models.AppUser), resp.status_code
        assert assigned.id == bob["id"] and assigned.scope == "USER" and assigned.credentials.user_name == bob["email"], assigned
        assert [u.id for u in run(sdk.list_application_users(app.id))[0]] == [bob["id"]]
        assert run(sdk.unassign_user_from_application(app.id, bob["id"]))[1].status_code == 204
        assert run(sdk.list_application_users(app.id))[0] == []

        # Deleting an ACTIVE app: 403 E0000056. Deactivate (200, no body), then delete (204).
        err = okta_api_error(api_error(sdk.delete_application(app.id)), 403, "E0000056")
        assert err.error_summary == "Delete application forbidden.", vars(err)
        data, resp = run(sdk.deactivate_application(app.id))
        assert data is None and resp.status_code == 200, resp
        assert run(sdk.get_application(app.id))[0].status == "INACTIVE"
        assert run(sdk.delete_application(app.id))[1].status_code == 204
        okta_api_error(api_error(sdk.get_application(app.id)), 404, "E0000007")
    finally:
        mgmt = Mgmt(tenant.idp)
        if mgmt.request("GET", f"/api/v1/apps/{app.id}").status_code == 200:
            mgmt.request("POST", f"/api/v1/apps/{app.id}/lifecycle/deactivate")
            mgmt.request("DELETE", f"/api/v1/apps/{app.id}")


def test_sdk_creates_reads_and_deletes_a_trusted_origin(sdk):
    tag = uuid.uuid4().hex[:8]
    origin = f"http://sdk-{tag}.test:8443"
    made, resp = run(sdk.create_trusted_origin(models.TrustedOriginWrite(
        name=f"sdk-{tag}", origin=origin, scopes=[models.TrustedOriginScope(type="CORS"), models.TrustedOriginScope(type="REDIRECT")])))
    assert resp.status_code == 200 and isinstance(made, models.TrustedOrigin), resp.status_code
    assert made.id.startswith("tos") and made.name == f"sdk-{tag}" and made.origin == origin and made.status == "ACTIVE", made
    assert sorted(s.type for s in made.scopes) == ["CORS", "REDIRECT"], made
    assert run(sdk.get_trusted_origin(made.id))[0].to_dict() == made.to_dict()
    assert made.id in {o.id for o in run(sdk.list_trusted_origins())[0]}
    okta_api_error(api_error(sdk.create_trusted_origin(models.TrustedOriginWrite(name=f"sdk-{tag}-b", origin=origin))), 400, "E0000001")
    assert run(sdk.delete_trusted_origin(made.id))[1].status_code == 204
    okta_api_error(api_error(sdk.get_trusted_origin(made.id)), 404, "E0000007")
    assert made.id not in {o.id for o in run(sdk.list_trusted_origins())[0]}


def test_sdk_registers_an_ai_agent_with_a_key_activates_and_deletes_it(sdk, tenant):
    idp = tenant.idp
    app, _ = run(sdk.create_application(new_app(f"sdk-agent-app-{uuid.uuid4().hex[:8]}")))
    name = f"sdk agent {uuid.uuid4().hex[:8]}"
    agent_id = registered_agent(sdk, idp, app.id, name)
    try:
        agent = models.AIAgent.from_dict(agents_call(sdk, "GET", f"{AGENTS}/{agent_id}")[2])
        assert agent.id == agent_id and agent_id.startswith("wlp") and agent.status == "STAGED", agent
        assert agent.app_id == app.id and agent.profile.name == name, agent
        assert agent_id in {a["id"] for a in agents_call(sdk, "GET", AGENTS)[2]["data"]}

        kid = "sdk-" + uuid.uuid4().hex[:8]
        jwk, key = with_key(sdk, agent_id, kid)
        assert (key.kid, key.kty, key.n, key.e, key.use, key.alg, key.status) == (kid, "RSA", jwk["n"], jwk["e"], "sig", "RS256", "ACTIVE"), key
        listed = [agent_key(k) for k in jwk_items(agents_call(sdk, "GET", f"{AGENTS}/{agent_id}/credentials/jwks")[2])]
        assert [k.to_dict() for k in listed] == [key.to_dict()]

        status, headers, _ = agents_call(sdk, "POST", f"{AGENTS}/{agent_id}/lifecycle/activate")
        assert operation(sdk, idp, status, headers)[2]["resource"]["id"] == agent_id
        assert models.AIAgent.from_dict(agents_call(sdk, "GET", f"{AGENTS}/{agent_id}")[2]).status == "ACTIVE"
        # An ACTIVE agent cannot be deleted: deactivate (202), then delete (202).
        okta_api_error(agents_error(sdk, "DELETE", f"{AGENTS}/{agent_id}"), 400, "E0000001")
        status, headers, _ = agents_call(sdk, "POST", f"{AGENTS}/{agent_id}/lifecycle/deactivate")
        operation(sdk, idp, status, headers)
        assert models.AIAgent.from_dict(agents_call(sdk, "GET", f"{AGENTS}/{agent_id}")[2]).status == "INACTIVE"
        status, headers, _ = agents_call(sdk, "DELETE", f"{AGENTS}/{agent_id}")
        assert operation(sdk, idp, status, headers)[2]["resource"]["id"] == agent_id
        gone = agents_error(sdk, "GET", f"{AGENTS}/{agent_id}")
        assert okta_api_error(gone, 404, "E0000007").error_summary == f"Not found: Resource not found: {agent_id} (AIAgent)"
        agent_id = None
    finally:
        mgmt = Mgmt(idp)
        if agent_id:
            mgmt.request("POST", f"{AGENTS}/{agent_id}/lifecycle/deactivate")
            mgmt.request("DELETE", f"{AGENTS}/{agent_id}")
        mgmt.request("POST", f"/api/v1/apps/{app.id}/lifecycle/deactivate")
        mgmt.request("DELETE", f"/api/v1/apps/{app.id}")


def test_ai_agent_operation_parses(sdk, tenant):
    idp = tenant.idp
    app, _ = run(sdk.create_application(new_app(f"sdk-op-app-{uuid.uuid4().hex[:8]}")))
    body = models.CreateAIAgentRequest(app_id=app.id, profile=models.AIAgentProfile(name=f"sdk op agent {uuid.uuid4().hex[:8]}"))
    status, headers, _ = agents_call(sdk, "POST", AGENTS, body)
    path, first, second = operation(sdk, idp, status, headers)
    try:
        ops = [models.AIAgentOperationResponse.from_dict(o) for o in (first, second)]
        assert [o.status for o in ops] == ["IN_PROGRESS", "COMPLETED"] and {o.type for o in ops} == {"ai-agent:Register"}, ops
        assert ops[1].resource.links.var_self.href == f"{idp.issuer}{AGENTS}/{second['resource']['id']}", ops[1].resource
    finally:
        mgmt = Mgmt(idp)
        mgmt.request("DELETE", f"{AGENTS}/{second['resource']['id']}")
        mgmt.request("POST", f"/api/v1/apps/{app.id}/lifecycle/deactivate")
        mgmt.request("DELETE", f"/api/v1/apps/{app.id}")


def test_sdk_adds_a_managed_connection(sdk, tenant):
    idp = tenant.idp
    app, _ = run(sdk.create_application(new_app(f"sdk-conn-app-{uuid.uuid4().hex[:8]}")))
    agent_id = registered_agent(sdk, idp, app.id, f"sdk connection agent {uuid.uuid4().hex[:8]}")
    try:
        with_key(sdk, agent_id, "sdk-" + uuid.uuid4().hex[:8])
        status, headers, _ = agents_call(sdk, "POST", f"{AGENTS}/{agent_id}/lifecycle/activate")
        operation(sdk, idp, status, headers)
        orn = server_orn(sdk, tenant.state["authorization_server_id"])
        creatable = models.IdentityAssertionCustomASConnectionCreatable(
            connection_type="IDENTITY_ASSERTION_CUSTOM_AS", scope_condition="INCLUDE_ONLY", scopes=["mcp:connect"],
            authorization_server=models.IdentityAssertionCustomASConnectionCreatableAuthorizationServer(orn=orn))
        status, _, body = agents_call(sdk, "POST", f"{AGENTS}/{agent_id}/connections", creatable)
        made = models.ManagedConnection.from_json(json.dumps(body)).actual_instance
        assert status == 201 and made.authorization_server.orn == orn and made.scopes == ["mcp:connect"] and made.status == "ACTIVE", made
        listed = agents_call(sdk, "GET", f"{AGENTS}/{agent_id}/connections")[2]["data"]
        assert [c["id"] for c in listed] == [made.id], listed
    finally:
        mgmt = Mgmt(idp)
        mgmt.request("POST", f"{AGENTS}/{agent_id}/lifecycle/deactivate")
        mgmt.request("DELETE", f"{AGENTS}/{agent_id}")
        mgmt.request("POST", f"/api/v1/apps/{app.id}/lifecycle/deactivate")
        mgmt.request("DELETE", f"/api/v1/apps/{app.id}")


# =========================================================================== 3. errors


UNKNOWN = [
    ("authorization server", lambda c, t: c.get_authorization_server("ausNOPE"), "ausNOPE", "AuthorizationServer"),
    ("its scopes", lambda c, t: c.list_o_auth2_scopes("ausNOPE"), "ausNOPE", "AuthorizationServer"),
    ("policy", lambda c, t: c.get_authorization_server_policy(t.state["authorization_server_id"], "00pNOPE"), "00pNOPE", "AuthorizationServerPolicy"),
    ("app", lambda c, t: c.get_application("0oaNOPE"), "0oaNOPE", "App"),
    ("app users", lambda c, t: c.list_application_users("0oaNOPE"), "0oaNOPE", "App"),
    ("trusted origin", lambda c, t: c.get_trusted_origin("tosNOPE"), "tosNOPE", "TrustedOrigin"),
    ("deleting a trusted origin", lambda c, t: c.delete_trusted_origin("tosNOPE"), "tosNOPE", "TrustedOrigin"),
]


@pytest.mark.parametrize("what,call,unknown,type_name", UNKNOWN, ids=[u[0] for u in UNKNOWN])
def test_unknown_id_is_an_okta_api_error_e0000007(sdk, tenant, what, call, unknown, type_name):
    err = okta_api_error(api_error(call(sdk, tenant)), 404, "E0000007")
    assert err.error_summary == f"Not found: Resource not found: {unknown} ({type_name})", vars(err)
    assert err.error_causes == [] and err.message.startswith("Okta HTTP 404 E0000007 Not found:"), err.message


def test_unknown_ai_agent_is_an_okta_api_error_e0000007(sdk):
    for path, unknown, type_name in ((f"{AGENTS}/wlpNOPE", "wlpNOPE", "AIAgent"), (f"{AGENTS}/wlpNOPE/connections", "wlpNOPE", "AIAgent"),
                                     (f"{AGENTS}/wlpNOPE/credentials/jwks", "wlpNOPE", "AIAgent"), (f"{OPERATIONS}op-NOPE", "op-NOPE", "Operation")):
        err = okta_api_error(agents_error(sdk, "GET", path), 404, "E0000007")
        assert err.error_summary == f"Not found: Resource not found: {unknown} ({type_name})", vars(err)


def test_wrong_token_is_an_okta_api_error_e0000011(tenant):
    wrong = "00" + uuid.uuid4().hex + uuid.uuid4().hex[:8]
    client = sdk_client(tenant.idp, token=wrong)
    errors = [
        api_error(client.list_applications()),
        api_error(client.get_authorization_server(tenant.state["authorization_server_id"])),
        api_error(client.create_authorization_server(models.AuthorizationServer(name="never", audiences=["http://never.test"]))),
        api_error(client.delete_trusted_origin(tenant.state["trusted_origins"]["switchboard-agent0"])),
        agents_error(client, "GET", AGENTS),
    ]
    for err in errors:
        okta_api_error(err, 401, "E0000011")
        assert err.error_summary == "Invalid token provided" and wrong not in err.message, vars(err)
    # Nothing was made or removed with it.
    assert "never" not in {s.name for s in run(sdk_client(tenant.idp).list_authorization_servers())[0]}
    assert run(sdk_client(tenant.idp).get_trusted_origin(tenant.state["trusted_origins"]["switchboard-agent0"]))[0].status == "ACTIVE"
