"""agent0 itself on what `switchboard okta bootstrap` created, in a real browser.

    chromium (selenium) ── sign-in ──> switchboard idp (fresh, empty tenant; bootstrap created the AS,
          │                                 ^            agent0's app, the AI agent + key, its managed
          v                                 │            connection and access policy)
    switchboard agent (okta.env alone) ── relay ──> gateway (okta.env) ── relay ──> todo0 (trusts the created AS)
          └──> switchboard llm (offline planner)

The two recording relays (system_fixtures.RecordingRelay) keep the bearer tokens on the wire:
agent0 → gateway carries agent0's ID token, gateway → todo0 the access tokens the gateway got.
alice signs in through agent0, lists her todos and adds one; the test checks that the sign-in
used the created client (the IdP's authorize request, its log, the ID token agent0 sends), that
the call reached todo0 through the gateway (the relays, todo0's own REST API, the gateway read
back with the mcp SDK) and that the access tokens came from the created authorization server
for the created AI agent (their verified claims, the IdP's log, the gateway's status). The
GitHub connections are disabled (DISABLED_CONNECTIONS): bootstrap gives the agent no STS
connection unless asked, and no GitHub stand-in runs here.
"""

from __future__ import annotations

import shutil
import uuid
from urllib.parse import parse_qs, urlsplit

import jwt
import requests

from agent0_fixtures import chips, chrome, q, screenshot_dir, send, shown, sign_in_at_idp, wait_until  # noqa: F401 (chrome: a fixture)
from idp_fixtures import USERS, WEB_CLIENT_ID
from interop_helpers import HOST, free_port, stop_process
from llm_fixtures import start_llm_adapter
from mcp_client import call_tool
from okta_fixtures import ENV_FILE, binary, explain, fresh_idp, okta, read_env_file, read_state  # noqa: F401 (binary, fresh_idp: fixtures)
from system_fixtures import SHIPPED_CONFIG, TODO0_RESOURCE, RecordingRelay, start_agent0, start_gateway, start_todo0


def _verified(token: str, issuer: str, jwks_uri: str, audience: str) -> dict:
    key = jwt.PyJWKClient(jwks_uri).get_signing_key_from_jwt(token).key
    return jwt.decode(token, key, algorithms=["RS256"], audience=audience, issuer=issuer)


def test_agent0_signs_in_and_calls_todo0_on_the_bootstrapped_objects(binary, fresh_idp, chrome, tmp_path):  # noqa: F811
    idp = fresh_idp
    agent0_port = free_port()
    agent0_url = f"http://{HOST}:{agent0_port}"
    cwd = tmp_path / "cli"
    cwd.mkdir()
    run = okta(binary, idp, cwd, "bootstrap", "--resource", TODO0_RESOURCE, "--agent0-url", agent0_url)
    assert run.returncode == 0, explain(run) + idp.log_tail()
    env, state = read_env_file(cwd / ENV_FILE), read_state(cwd)
    client_id, agent_id, server = env["AGENT0_CLIENT_ID"], env["AGENT_ID"], env["MCP_AUTHORIZATION_SERVER"]
    # Created objects, not the IdP's embedded ones (which would work as well and prove nothing).
    assert client_id == state["agent0_client_id"] and client_id != WEB_CLIENT_ID, (env, state)
    assert agent_id == state["agent_id"] and server == f"{idp.issuer}/oauth2/{state['authorization_server_id']}", (env, state)

    started: list = []
    relays: list[RecordingRelay] = []
    try:
        todo0 = start_todo0(binary, tmp_path, idp.issuer, authorization_server=server)
        started.append(todo0.proc)
        todo0_relay = RecordingRelay(todo0.mcp_port, "todo0")
        relays.append(todo0_relay)
        config = tmp_path / "connections.yaml"
        shutil.copyfile(SHIPPED_CONFIG, config)
        # The GitHub connections are off: bootstrap gave the agent no STS connection, and no GitHub runs here.
        gateway_env = {**env, "TODO0_MCP_URL": todo0_relay.url + "/mcp", "DISABLED_CONNECTIONS": "github,github-mcp"}
        gateway = start_gateway(binary, tmp_path, gateway_env, config)
        started.append(gateway.proc)
        gateway_relay = RecordingRelay(int(urlsplit(gateway.url).port), "gateway")
        relays.append(gateway_relay)
        llm = start_llm_adapter(binary, tmp_path, {"LLM_BACKEND": "offline"})
        started.append(llm.proc)
        # agent0 from the env file alone, plus where the gateway and the model are.
        agent0 = start_agent0(binary, tmp_path, agent0_port, {**env, "GATEWAY_URL": gateway_relay.url, "LLM_URL": llm.url})
        started.append(agent0.proc)

        title = f"okta agent0 {uuid.uuid4().hex[:8]}"
        try:
            # --- alice signs in through agent0: the IdP is asked for the created client.
            chrome.get(agent0_url + "/")
            wait_until(lambda: shown(chrome, "#signin"), 30, "the sign-in prompt")
            q(chrome, "a#sign-in").click()
            wait_until(lambda: chrome.current_url.startswith(idp.issuer), 30, "the IdP's sign-in page")
            asked = parse_qs(urlsplit(chrome.current_url).query)
            assert asked.get("client_id") == [client_id] and asked.get("redirect_uri") == [agent0_url + "/callback"], chrome.current_url
            sign_in_at_idp(chrome, "alice")
            wait_until(lambda: chrome.current_url.startswith(agent0_url) and shown(chrome, "#app"), 30, "agent0 signed in as alice")
            assert "Alice" in q(chrome, "#user-name").text

            # --- list, then add a todo: chips name todo0; adding widens the token (step-up).
            listed = chips(send(chrome, "list my todos"))
            assert listed and listed[0]["connection"] == "todo0" and listed[0]["tool"] == "get-todos" and not listed[0]["error"], listed
            added = chips(send(chrome, f'add a todo "{title}"'))
            assert len(added) == 1 and added[0]["connection"] == "todo0" and added[0]["tool"] == "create-todo", added
            assert not added[0]["error"] and title in added[0]["arguments"] and title in added[0]["result"], added
            assert added[0]["step_up"] and "mcp:tools:manage" in added[0]["step_up"], added[0]
        except BaseException:
            chrome.save_screenshot(str(screenshot_dir() / "okta-agent0-failure.png"))
            raise

        # --- the sign-in went through the created client: the IdP says so, and the ID token agent0
        # sends the gateway is the IdP's, for that client, about alice.
        signed_in = [line for line in idp.log_text().splitlines() if "signed in" in line and "alice" in line]
        assert any(client_id in line for line in signed_in), signed_in[-5:] or idp.log_tail()
        id_tokens = gateway_relay.bearer_tokens()
        assert id_tokens, "agent0 sent the gateway no bearer token"
        for token in id_tokens:
            claims = _verified(token, idp.issuer, idp.jwks_uri, client_id)
            assert claims["sub"] == USERS["alice"]["id"], claims
        assert title in gateway_relay.sent_text(), "agent0's call did not go to the gateway"

        # --- the call reached todo0 through the gateway, with access tokens of the created AS for
        # the created AI agent.
        assert title in todo0_relay.sent_text(), "the gateway did not send the call to todo0"
        access_tokens = todo0_relay.bearer_tokens()
        assert access_tokens, "the gateway sent todo0 no access token"
        scopes = set()
        for token in access_tokens:
            assert jwt.get_unverified_header(token)["typ"] == "at+jwt"
            claims = _verified(token, server, server + "/v1/keys", TODO0_RESOURCE)
            assert claims["client_id"] == agent_id and claims["sub"] == USERS["alice"]["id"], claims
            scopes |= set(claims["scp"])
        assert {"mcp:connect", "mcp:tools:read", "mcp:tools:manage"} <= scopes, scopes
        issued = [line for line in idp.log_text().splitlines() if "issued access token" in line]
        assert issued and all(state["authorization_server_id"] in line and agent_id in line for line in issued), issued or idp.log_tail()
        status = requests.get(gateway.url + "/api/connections/status", timeout=10).json()
        by_name = {c["name"]: c for c in status["connections"]}
        assert by_name["todo0"]["status"] == "LIVE" and by_name["todo-mcp-as"]["status"] == "LIVE", by_name
        assert by_name["todo-mcp-as"]["details"].get("issuer") == server, by_name["todo-mcp-as"]
        assert by_name["todo0"]["details"].get("agent_id") == agent_id and by_name["todo0"]["counts"]["step_ups"] >= 1, by_name["todo0"]

        # --- the todo exists: todo0's own REST API with the token the gateway used, and the gateway
        # read back with the mcp SDK and agent0's ID token.
        token = next(iter(access_tokens))
        rest = requests.get(todo0.rest_url, headers={"Authorization": f"Bearer {token}"}, timeout=10)
        assert rest.status_code == 200 and title in {t["title"] for t in rest.json()["todos"]}, rest.text[:500]
        read_back = call_tool(gateway.url + "/mcp/todo0", next(iter(id_tokens)), "get-todos", {})
        assert not read_back.is_error and title in {t["title"] for t in read_back.structured_content["todos"]}, read_back

        # The client secret agent0 was given stays out of every log.
        secret = env["AGENT0_CLIENT_SECRET"]
        assert secret not in agent0.log_text() + gateway.log_text() + todo0.log_text() + idp.log_text() + llm.log_text()
    finally:
        for relay in relays:
            relay.close()
        for proc in reversed(started):
            stop_process(proc)
