"""The gateway's `/metrics`, read with prometheus_client's own text parser (not a regex of ours):
the names, types and labels the README lists, and counts that match the calls made — requests
per connection, method and status against what the upstream answered; credential cache hits and
misses and the plugin's token exchanges; consent prompts; registry reloads. No per-user label,
no token.
"""

from __future__ import annotations

import collections
import re
import time

import requests
from prometheus_client.parser import text_string_to_metric_families

from system_fixtures import System, login, system  # noqa: F401  (system is a fixture)

ALLOWED_LABELS = {"connection", "method", "status", "strategy", "outcome", "result", "state", "le"}


def scrape(system: System) -> tuple[dict[str, str], list]:
    """(type of each sample name's family, every sample) of one scrape."""
    answer = requests.get(system.gateway.url + "/metrics", timeout=10)
    assert answer.status_code == 200 and answer.headers["Content-Type"].startswith("text/plain; version=0.0.4"), answer.headers
    types: dict[str, str] = {}
    samples = []
    for family in text_string_to_metric_families(answer.text):
        for s in family.samples:
            types[s.name] = family.type
            samples.append(s)
    return types, samples


def value(samples, name: str, **labels: str) -> float:
    """The sum of `name`'s samples whose labels include `labels`."""
    return sum(s.value for s in samples if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()))


def statuses(lines: list[str]) -> collections.Counter:
    return collections.Counter(int(re.match(r"HTTP/1\.[01] (\d{3})", line).group(1)) for line in lines)


def test_names_types_and_labels(system: System):
    requests.post(system.mcp_url("todo0"), json={"jsonrpc": "2.0", "id": 1, "method": "ping"},
                  headers={"Authorization": f"Bearer {system.alice_id_token}", "Accept": "application/json, text/event-stream"}, timeout=30)
    types, samples = scrape(system)
    expected = {
        "switchboard_requests_total": "counter",
        "switchboard_request_duration_seconds_bucket": "histogram",
        "switchboard_request_duration_seconds_count": "histogram",
        "switchboard_request_duration_seconds_sum": "histogram",
        "switchboard_failures_total": "counter",
        "switchboard_upstream_errors_total": "counter",
        "switchboard_step_ups_total": "counter",
        "switchboard_consent_prompts_total": "counter",
        "switchboard_policy_denials_total": "counter",
        "switchboard_rate_limited_total": "counter",
        "switchboard_credential_cache_lookups_total": "counter",
        "switchboard_token_exchanges_total": "counter",
        "switchboard_token_exchange_duration_seconds_count": "histogram",
        "switchboard_connection_live": "gauge",
        "switchboard_registry_generation": "gauge",
        "switchboard_upstream_connections": "gauge",
        "switchboard_upstream_pool_waiters": "gauge",
    }
    for name, kind in expected.items():
        assert types.get(name) == kind, f"{name}: {types.get(name)!r}, expected {kind} (have {sorted(types)})"
    # Every label is one of the few the README names: no user, no token, nothing a caller picks freely.
    for s in samples:
        assert set(s.labels) <= ALLOWED_LABELS, (s.name, s.labels)
    names = {s.labels.get("connection") for s in samples if s.name == "switchboard_connection_live"}
    assert names == {c["name"] for c in system.status()["connections"]}, names
    assert value(samples, "switchboard_registry_generation") == system.status()["config"]["generation"]
    text = requests.get(system.gateway.url + "/metrics", timeout=10).text
    for secret in system.secrets:
        assert secret not in text


def test_request_counts_match_what_the_upstream_answered(system: System):
    """Calls with alice's token straight to todo0 through the gateway: every one reaches todo0
    (whatever todo0 answers), so the per-status counts must equal the relay's; each asked the
    credential cache once, and a miss ran the ID-JAG exchange."""
    _, before = scrape(system)
    seen = len(system.todo0_relay.status_lines())
    headers = {"Authorization": f"Bearer {system.alice_id_token}", "Accept": "application/json, text/event-stream"}
    bodies = [{"jsonrpc": "2.0", "id": i, "method": "ping"} for i in range(4)] + [{"jsonrpc": "2.0", "id": 9, "method": "no/such"}]
    for body in bodies:
        requests.post(system.mcp_url("todo0"), json=body, headers=headers, timeout=30)
    requests.get(system.mcp_url("todo0"), headers=headers, timeout=30)  # todo0 has no GET stream: its own status
    _, after = scrape(system)
    upstream = statuses(system.todo0_relay.status_lines()[seen:])
    assert sum(upstream.values()) == 6, upstream
    for status, count in upstream.items():
        delta = value(after, "switchboard_requests_total", connection="todo0", status=str(status)) - \
            value(before, "switchboard_requests_total", connection="todo0", status=str(status))
        assert delta == count, f"status {status}: the gateway counted {delta}, todo0 answered {count}"
    delta = lambda name, **labels: value(after, name, **labels) - value(before, name, **labels)  # noqa: E731
    assert delta("switchboard_requests_total", connection="todo0", method="POST") == 5
    assert delta("switchboard_requests_total", connection="todo0", method="GET") == 1
    # The histogram saw the same calls as the counter.
    assert delta("switchboard_request_duration_seconds_count", connection="todo0") == 6
    # Six lookups (the event-loop driver's cache hits and the async driver's lookups); a miss
    # is one exchange at the IdP, and alice's calls are 6 in a row: at most the first missed.
    lookups = delta("switchboard_credential_cache_lookups_total", connection="todo0")
    misses = delta("switchboard_credential_cache_lookups_total", connection="todo0", result="miss")
    assert lookups == 6 and misses <= 1, (lookups, misses)
    assert delta("switchboard_token_exchanges_total", connection="todo0", strategy="idjag") == misses


def test_a_new_user_misses_once_then_hits_and_consent_prompts_are_counted(system: System):
    bob, _ = login(system.idp, "bob")
    token = bob["id_token"]
    system.secrets.append(token)
    _, before = scrape(system)
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json, text/event-stream"}
    for i in range(3):
        requests.post(system.mcp_url("todo0"), json={"jsonrpc": "2.0", "id": i, "method": "ping"}, headers=headers, timeout=30)
    # bob never consented to GitHub (oauth-sts): each call is a consent prompt, never cached.
    answers = [requests.get(system.rest_url("github", "user/repos"), headers={"Authorization": f"Bearer {token}"}, timeout=30) for _ in range(2)]
    assert [a.status_code for a in answers] == [401, 401] and all(a.json()["error"] == "interaction_required" for a in answers), \
        [(a.status_code, a.text[:200]) for a in answers]
    _, after = scrape(system)
    delta = lambda name, **labels: value(after, name, **labels) - value(before, name, **labels)  # noqa: E731
    assert delta("switchboard_credential_cache_lookups_total", connection="todo0", result="miss") == 1
    assert delta("switchboard_credential_cache_lookups_total", connection="todo0", result="hit") == 2
    assert delta("switchboard_token_exchanges_total", connection="todo0", strategy="idjag", outcome="issued") == 1
    assert delta("switchboard_token_exchange_duration_seconds_count", connection="todo0", strategy="idjag", outcome="issued") == 1
    assert delta("switchboard_consent_prompts_total", connection="github") == 2
    assert delta("switchboard_token_exchanges_total", connection="github", strategy="oauth-sts", outcome="interaction_required") == 2
    assert delta("switchboard_requests_total", connection="github", method="GET", status="401") == 2
    assert delta("switchboard_credential_cache_lookups_total", connection="github", result="miss") == 2


def test_reloads_are_counted_applied_and_rejected(system: System):
    _, before = scrape(system)
    original = system.config_path.read_text()
    system.apply_config(original + "\n# touched by test_metrics\n")
    generation = system.status()["config"]["generation"]
    system.config_path.write_text(original + "\nconnections: [unterminated\n")
    try:
        deadline = time.monotonic() + 30
        while not system.status()["config"].get("last_error"):
            assert time.monotonic() < deadline, "the gateway did not try the broken file"
            time.sleep(0.1)
        _, after = scrape(system)
    finally:
        system.config_path.write_text(original)  # (apply_config would stop at the last error)
        deadline = time.monotonic() + 30
        while system.status()["config"]["generation"] == generation and time.monotonic() < deadline:
            time.sleep(0.1)
    assert system.status()["config"]["generation"] == generation + 1, "the original file was not served again"
    delta = lambda name, **labels: value(after, name, **labels) - value(before, name, **labels)  # noqa: E731
    assert delta("switchboard_registry_reloads_total", outcome="applied") == 1
    assert delta("switchboard_registry_reloads_total", outcome="rejected") == 1
