"""Per-call authorization policy (`policies:` in connections.yaml) through the running gateway,
with the official Python MCP SDK and plain HTTP: a denied tool is missing from `tools/list` and
calling it anyway is a tool error naming the rule that never reaches the upstream; a rule on a
tool's argument allows one repository and denies another; the ID token's `groups` (from the
development IdP: alice in `admins`, bob not) decide; a REST rule refuses before any credential
is fetched; a policy with a bad regular expression is refused at its line and column and the
previous one keeps serving; a body the policy cannot judge (a repeated member, a batch) is refused.
"""

from __future__ import annotations

from typing import Any

import pytest
import requests

from interop_helpers import wait_until
from mcp_client import list_tools, call_tool, text_of
from system_fixtures import System, consent, login, system  # noqa: F401  (system is a fixture)

POLICIES = """
policies:
  - name: admins-delete
    deny:
      connection: todo0
      tool: delete-todo
      claims:
        groups: {not_contains: admins}
  - name: acme-only-comments
    deny:
      connection: github-mcp
      tool: add_pull_request_comment
      arguments:
        /owner: {not_equals: acme}
  - name: no-repo-list-for-bob
    deny:
      connection: github
      rest_method: GET
      path: /user/repos
      claims:
        email: {glob: "bob@*"}
"""


def tools_and_call(url: str, token: str, name: str, arguments: dict) -> tuple[set[str], Any]:
    return {t.name for t in list_tools(url, token).tools}, call_tool(url, token, name, arguments)


def posts_with(relay, needle: str) -> int:
    """How many requests the gateway sent through `relay` whose bytes contain `needle`."""
    return relay.sent_text().count(needle)


@pytest.fixture(scope="module")
def policed(system: System):
    """The system with POLICIES appended to its connections.yaml, loaded; bob signed in."""
    original = system.config_path.read_text()
    system.apply_config(original + POLICIES)
    bob, _ = login(system.idp, "bob")
    try:
        yield system, bob["id_token"]
    finally:
        system.config_path.write_text(original)


def test_a_tool_denied_to_a_group_is_hidden_and_refused_without_reaching_the_upstream(policed):
    system, bob = policed
    before = posts_with(system.todo0_relay, "delete-todo")
    for url, name in ((system.mcp_url("todo0"), "delete-todo"), (system.gateway.url + "/mcp", "todo0__delete-todo")):
        tools, refused = tools_and_call(url, bob, name, {"id": 1})
        assert name not in tools and name.replace("delete-todo", "get-todos") in tools, (url, tools)
        assert refused.is_error and "admins-delete" in text_of(refused), (url, text_of(refused))
        assert (refused.meta or {}).get("switchboard/policy", {}).get("rule") == "admins-delete", refused.meta
    assert posts_with(system.todo0_relay, "delete-todo") == before, "a refused call reached todo0"

    # alice is in `admins`: she sees the tool and her call reaches todo0.
    tools, allowed = tools_and_call(system.mcp_url("todo0"), system.alice_id_token, "delete-todo", {"id": 999999})
    assert "delete-todo" in tools
    assert "admins-delete" not in text_of(allowed), text_of(allowed)
    assert posts_with(system.todo0_relay, "delete-todo") > before, "alice's call did not reach todo0"


def test_a_rule_on_an_argument_allows_one_repository_and_refuses_another(policed):
    system, _ = policed
    url = system.mcp_url("github-mcp")
    probe = requests.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "p", "version": "1"}}},
        headers={"Authorization": f"Bearer {system.alice_id_token}", "Accept": "application/json, text/event-stream"}, timeout=30)
    if probe.status_code == 401:
        consent(system.alice_browser, probe.json()["interaction_uri"])
    args = {"repo": "app", "pull_number": 2, "body": "policy test"}
    tools, allowed = tools_and_call(url, system.alice_id_token, "add_pull_request_comment", dict(args, owner="acme"))
    assert "add_pull_request_comment" in tools, "a tool allowed for some arguments stays listed"
    assert not allowed.is_error, text_of(allowed)
    before = posts_with(system.isv_relay, "other-org")
    _, refused = tools_and_call(url, system.alice_id_token, "add_pull_request_comment", dict(args, owner="other-org"))
    assert refused.is_error and "acme-only-comments" in text_of(refused), text_of(refused)
    assert posts_with(system.isv_relay, "other-org") == before, "the refused comment reached the GitHub stand-in"


def test_a_rest_rule_refuses_before_any_credential_is_fetched(policed):
    system, bob = policed
    before = len(system.isv_relay.request_lines())
    r = requests.get(system.rest_url("github", "user/repos"), headers={"Authorization": f"Bearer {bob}"}, timeout=30)
    assert r.status_code == 403, r.text
    assert r.json()["error"] == "policy_denied" and r.json()["rule"] == "no-repo-list-for-bob", r.text
    assert len(system.isv_relay.request_lines()) == before
    # bob never consented to GitHub: had the credential been asked for first, he would have
    # got interaction_required, not the policy's refusal.
    other = requests.get(system.rest_url("github", "repos/acme/app/issues/2/comments"), headers={"Authorization": f"Bearer {bob}"}, timeout=30)
    assert other.status_code == 401 and other.json()["error"] == "interaction_required", other.text


def test_a_policy_with_a_bad_regex_is_refused_at_its_line_and_the_previous_one_keeps_serving(policed):
    system, bob = policed
    good = system.config_path.read_text()
    bad = good + "  - name: broken\n    deny:\n      claims:\n        email: {regex: \"([a-z\"}\n"
    line = bad.count("\n", 0, bad.index("{regex:")) + 1
    try:
        system.config_path.write_text(bad)
        error = wait_until(lambda: system.status()["config"].get("last_error"), 30, "the reload to be refused")
        items = [e for e in error["errors"] if "regular expression" in e["message"]]
        assert len(items) == 1 and items[0]["line"] == line, error
        _, refused = tools_and_call(system.mcp_url("todo0"), bob, "delete-todo", {"id": 1})
        assert refused.is_error and "admins-delete" in text_of(refused), "the previous policy must keep serving"
    finally:
        system.config_path.write_text(good)
        wait_until(lambda: not system.status()["config"].get("last_error"), 30, "the good file to load again")


@pytest.mark.parametrize("body", [
    # Parsers disagree on a repeated member (Python's json and JavaScript keep the last, the
    # gateway's parser the first): judged one way, it would be called the other.
    '{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"get-todos","name":"delete-todo","arguments":{"id":1}}}',
    '{"jsonrpc":"2.0","id":5,"method":"tools/list","method":"tools/call","params":{"name":"delete-todo","arguments":{"id":1}}}',
    # A JSON-RPC batch (2025-03-26 allowed them): no single method to judge.
    '[{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"delete-todo","arguments":{"id":1}}}]',
], ids=["repeated-name", "repeated-method", "batch"])
def test_a_body_the_policy_cannot_judge_is_refused_without_reaching_the_upstream(policed, body):
    system, bob = policed
    before = posts_with(system.todo0_relay, "delete-todo")
    r = requests.post(system.mcp_url("todo0"), data=body, timeout=30, headers={
        "Authorization": f"Bearer {bob}", "Content-Type": "application/json", "Accept": "application/json, text/event-stream"})
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == -32600 and r.json()["error"]["data"]["error"] == "invalid_request", r.text
    assert posts_with(system.todo0_relay, "delete-todo") == before, "a body the policy could not judge reached todo0"
