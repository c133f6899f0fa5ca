"""Rate limits (`rate_limits:` per connection) through the running gateway: a burst over the
limit gives exactly the expected number of refusals (counted, not timed); `Retry-After` is right
within a second; each user has their own bucket; only the limited tool counts; a refusal comes
before any credential is fetched; the MCP refusal is a tool error a model can read; calls
through the aggregated `/mcp` endpoint count once each.
"""

from __future__ import annotations

import re

import pytest
import requests

from mcp_client import call_tools as calls, text_of
from system_fixtures import System, login, system  # noqa: F401  (system is a fixture)

# todo0: 3 get-todos per user per minute (20 s apart at the sustained rate); GitHub REST: 2 per user per minute.
TODO0_LIMITS = "    rate_limits:\n      - {name: reads, requests: 3, per: 1m, tool: get-todos}\n"
GITHUB_LIMITS = "    rate_limits:\n      - {name: rest, requests: 2, per: 1m}\n"


def insert_after(text: str, line: str, block: str) -> str:
    index = text.index(line + "\n") + len(line) + 1
    return text[:index] + block + text[index:]


@pytest.fixture(scope="module")
def limited(system: System):
    original = system.config_path.read_text()
    system.apply_config(insert_after(insert_after(original, "  - name: todo0", TODO0_LIMITS), "  - name: github", GITHUB_LIMITS))
    bob, _ = login(system.idp, "bob")
    try:
        yield system, bob["id_token"]
    finally:
        system.config_path.write_text(original)


def test_a_burst_of_tool_calls_gets_exactly_the_refusals_over_the_limit_per_user(limited):
    system, bob = limited
    before = system.todo0_relay.sent_text().count("get-todos")
    results = calls(system.mcp_url("todo0"), system.alice_id_token, [("get-todos", {})] * 5 + [("create-todo", {"title": "not limited"})])
    refused = [r for r in results[:5] if r.is_error]
    assert len(refused) == 2 and all(not r.is_error for r in results[:3]), [text_of(r) for r in results]
    assert not results[5].is_error, "only get-todos is limited: " + text_of(results[5])
    text = text_of(refused[0])
    assert "rate limit 'reads'" in text and "3 per minute" in text, text
    meta = (refused[0].meta or {})["switchboard/rate_limit"]
    seconds = int(re.search(r"try again in (\d+) second", text).group(1))
    assert meta["limit"] == "reads" and meta["retry_after_s"] == seconds and 19 <= seconds <= 20, (meta, text)
    assert system.todo0_relay.sent_text().count("get-todos") == before + 3, "a refused call reached todo0"

    # bob's bucket is his own.
    bobs = calls(system.mcp_url("todo0"), bob, [("get-todos", {})] * 3)
    assert not any(r.is_error for r in bobs), [text_of(r) for r in bobs]


def test_rest_calls_over_the_limit_get_429_with_retry_after_before_any_credential(limited):
    system, bob = limited
    answers = [requests.get(system.rest_url("github", "user/repos"), headers={"Authorization": f"Bearer {bob}"}, timeout=30) for _ in range(5)]
    statuses = [a.status_code for a in answers]
    # bob never consented to GitHub: the first two go on to the credential and need consent;
    # the limit refuses the rest before any credential is asked for.
    assert statuses == [401, 401, 429, 429, 429], [(a.status_code, a.text[:120]) for a in answers]
    limited_answer = answers[2]
    assert limited_answer.json()["error"] == "rate_limited" and limited_answer.json()["limit"] == "rest", limited_answer.text
    retry = int(limited_answer.headers["Retry-After"])
    assert 29 <= retry <= 30, retry  # 2 per minute: the next one 30 s after the first
    assert limited_answer.headers["RateLimit-Remaining"] == "0" and int(limited_answer.headers["RateLimit-Reset"]) == retry
    alice = requests.get(system.rest_url("github", "user/repos"), headers={"Authorization": f"Bearer {system.alice_id_token}"}, timeout=30)
    assert alice.status_code != 429, "alice has her own bucket"


def test_calls_through_the_gateways_own_endpoint_are_counted_once_each(limited):
    """Through `/mcp` (the aggregated endpoint), each call takes exactly one from its bucket,
    whichever of the gateway's drivers runs it."""
    system, _ = limited
    previous = system.config_path.read_text()
    reads = "      - {name: reads, requests: 3, per: 1m, tool: get-todos}\n"
    assert reads in previous
    before = system.todo0_relay.sent_text().count("get-todos")
    system.apply_config(previous.replace(reads, "      - {name: via-endpoint, requests: 2, per: 1m, tool: get-todos}\n"))
    try:
        results = calls(system.gateway.url + "/mcp", system.alice_id_token, [("todo0__get-todos", {})] * 5)
        refused = [r for r in results if r.is_error]
        assert [r.is_error for r in results] == [False, False, True, True, True], [text_of(r) for r in results]
        assert "rate limit 'via-endpoint'" in text_of(refused[0]), text_of(refused[0])
        assert system.todo0_relay.sent_text().count("get-todos") == before + 2, "a refused call reached todo0"
    finally:
        system.apply_config(previous)
