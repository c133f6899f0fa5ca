"""agent0 in a real browser: the journey a user makes, end to end, on `switchboard dev`.

Debian's chromium (headless) driven by selenium signs in as alice at the IdP's page, chats with
the offline planner, watches tools run through the gateway (the step-up shown on the chip),
grants GitHub access from a consent card's popup, sees a third MCP server appear when it is
appended to connections.yaml, signs out, and signs in as bob, who sees none of alice's
conversation. Facts are checked where they land (todo0's answers, the GitHub stand-in's SQLite
file, the third server's call log), not only on the page. The tests run in file order: each step
builds on the one before, like the user's session does.

Screenshots of the chat and of the panel are saved to $AGENT0_SCREENSHOT_DIR
(default Tests/interop/artifacts/).
"""

from __future__ import annotations

import re
import sqlite3
import subprocess
import sys

import pytest
import requests
from selenium.webdriver.common.keys import Keys

from agent0_fixtures import (  # noqa: F401 (chrome, dev_system: fixtures)
    HERE, TURN_TIMEOUT, ConsoleLog, answers, chips, chrome, dev_system, page_fetch_json, q, qs, read_jsonl,
    screenshot_dir, send, shown, sign_in_at_idp, text_of, wait_until,
)
from interop_helpers import free_port, stop_process, wait_for_port, write_atomically


# What one test learns and a later one uses (the tests are steps of one journey).
journey: dict = {}


@pytest.fixture(scope="module")
def console(chrome):  # noqa: F811
    return ConsoleLog(chrome)


# --------------------------------------------------------------------------- page helpers


def message_text(answer) -> str:
    return text_of(q(answer, ".msg-text"))


def card_status(driver, name: str) -> str | None:
    cards = qs(driver, f'aside#panel .conn-card[data-name="{name}"] .conn-status')
    return cards[0].get_attribute("data-status") if cards else None


# --------------------------------------------------------------------------- the journey


def test_signed_out_page_is_the_sign_in_prompt_behind_a_strict_csp(dev_system, chrome, console):  # noqa: F811
    r = requests.get(dev_system.agent0 + "/", timeout=10)
    assert r.status_code == 200 and "text/html" in r.headers["Content-Type"]
    csp = r.headers["Content-Security-Policy"]
    directives = {d.split()[0]: d.split()[1:] for d in (p.strip() for p in csp.split(";")) if d}
    assert directives["script-src"] == ["'self'"], csp
    assert directives["default-src"] == ["'none'"] and directives["frame-ancestors"] == ["'none'"], csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp, csp
    assert r.headers["X-Content-Type-Options"] == "nosniff" and r.headers["X-Frame-Options"] == "DENY"
    assert "Access-Control-Allow-Origin" not in r.headers
    # No inline script or handler in the page itself (the CSP would block it anyway).
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", r.text) and not re.search(r"\son[a-z]+=", r.text)

    api = requests.get(dev_system.agent0 + "/api/history", timeout=10)
    assert api.status_code == 401 and api.json()["error"] == "not_signed_in"

    chrome.get(dev_system.agent0 + "/")
    wait_until(lambda: shown(chrome, "#signin"), 30, "the sign-in prompt")
    assert not q(chrome, "#app").is_displayed()
    assert q(chrome, "a#sign-in").get_attribute("href") == dev_system.agent0 + "/login"


def test_alice_signs_in_through_the_idp_and_the_panel_shows_every_connection_idle(dev_system, chrome):  # noqa: F811
    q(chrome, "a#sign-in").click()
    assert chrome.current_url.startswith(dev_system.url("idp")), chrome.current_url  # the IdP's own page
    sign_in_at_idp(chrome, "alice")
    wait_until(lambda: shown(chrome, "#app"), 30, "the chat")
    assert "Alice" in q(chrome, "#user-name").text

    cookie = chrome.get_cookie("agent0_session")
    assert cookie and cookie["httpOnly"] is True and cookie.get("sameSite") == "Lax" and cookie["secure"] is False, cookie
    # The page cannot read the session cookie or any token.
    assert "agent0_session" not in chrome.execute_script("return document.cookie")

    # Wide window: the panel is docked open, one section per kind, todo0 not used yet.
    wait_until(lambda: shown(chrome, "aside#panel") and card_status(chrome, "todo0"), 20, "the panel's todo0 card")
    kinds = {s.get_attribute("data-kind") for s in qs(chrome, "aside#panel .panel-section")}
    assert {"authorization_server", "application", "mcp_server"} <= kinds
    for name in ("todo0", "github", "github-mcp", "todo-mcp-as"):
        assert qs(chrome, f'.conn-card[data-name="{name}"]'), f"no card for {name}"
    assert card_status(chrome, "todo0") == "IDLE"
    todo0 = q(chrome, '.conn-card[data-name="todo0"]')
    assert "ID-JAG" in text_of(q(todo0, ".conn-strategy"))
    ids = {b.get_attribute("data-value") for b in qs(todo0, "button.conn-id")}
    assert dev_system.url("todo0_mcp") + "/mcp" in ids, ids


def test_list_and_add_a_todo_the_chip_shows_the_step_up(dev_system, chrome):  # noqa: F811
    listed = send(chrome, "list my todos")
    calls = chips(listed)
    assert calls and calls[0]["connection"] == "todo0" and not calls[0]["error"], calls
    assert calls[0]["step_up"] is None
    # A server that needs consent before it lists its tools is named once, with a card that holds no call.
    cards = qs(listed, '.consent-card[data-connection="github-mcp"]')
    assert cards and cards[0].get_attribute("data-waiting") == "false"

    added = send(chrome, 'add a todo "prep the demo"')
    calls = chips(added)
    assert len(calls) == 1 and calls[0]["connection"] == "todo0" and not calls[0]["error"], calls
    assert "prep the demo" in calls[0]["arguments"] and "prep the demo" in calls[0]["result"]
    # The first call that needs mcp:tools:manage: the gateway widened the token and said so.
    assert calls[0]["step_up"] and "mcp:tools:manage" in calls[0]["step_up"], calls[0]
    found = re.search(r'"id"\s*:\s*(\d+)', calls[0]["result"])
    assert found, calls[0]["result"]
    journey["todo_id"] = int(found.group(1))
    wait_until(lambda: card_status(chrome, "todo0") == "LIVE", 20, "todo0's card to turn LIVE")


def test_mark_done_then_delete_the_todo(dev_system, chrome):  # noqa: F811
    n = journey["todo_id"]
    done = chips(send(chrome, f"mark todo {n} as done"))
    assert len(done) == 1 and done[0]["connection"] == "todo0" and not done[0]["error"], done
    assert str(n) in done[0]["arguments"]
    assert done[0]["step_up"] is None  # the widened scope set is remembered
    assert re.search(r'"(completed|done)"\s*:\s*true', done[0]["result"]), done[0]["result"]

    deleted = chips(send(chrome, f"delete todo {n}"))
    assert len(deleted) == 1 and not deleted[0]["error"] and str(n) in deleted[0]["arguments"], deleted

    listed = chips(send(chrome, "list my todos"))
    assert listed and not listed[0]["error"]
    assert "prep the demo" not in listed[0]["result"], listed[0]["result"]


def test_comment_on_a_pull_request_after_consent_in_a_popup(dev_system, chrome):  # noqa: F811
    answer = send(chrome, 'comment "LGTM" on PR 1 in acme/widgets')
    card = wait_until(lambda: qs(answer, '.consent-card[data-connection="github"][data-waiting="true"]'), 10, "a consent card")[0]
    # Counted before the popup: the resumed turn can be on the page before the test is back in
    # this window (the whole resume takes a few tens of milliseconds).
    before_answers = len(answers(chrome))
    main = chrome.current_window_handle
    before = set(chrome.window_handles)
    open_button = q(card, "button.consent-open")
    assert open_button.is_enabled()
    open_button.click()
    popup = wait_until(lambda: set(chrome.window_handles) - before, 20, "the consent popup").pop()
    chrome.switch_to.window(popup)
    try:
        wait_until(lambda: shown(chrome, "#approve") or shown(chrome, "input#username"), 30, "the IdP's consent page")
        if shown(chrome, "input#username"):
            sign_in_at_idp(chrome, "alice")
            wait_until(lambda: shown(chrome, "#approve"), 30, "the consent page")
        assert "GitHub" in chrome.page_source
        q(chrome, "#approve").click()
        wait_until(lambda: not qs(chrome, "#approve"), 30, "the IdP to record the consent")
    finally:
        chrome.close()
        chrome.switch_to.window(main)

    # The page sees the popup close and resumes the waiting call.
    wait_until(lambda: len(answers(chrome)) > before_answers and not shown(chrome, "#typing"), TURN_TIMEOUT, "the resumed turn")
    resumed = answers(chrome)[-1]
    calls = chips(resumed)
    assert len(calls) == 1 and calls[0]["connection"] == "github" and not calls[0]["error"], calls
    assert "LGTM" in calls[0]["arguments"]
    assert "LGTM" in message_text(resumed) or "comment" in message_text(resumed).lower(), message_text(resumed)
    assert card.get_attribute("data-state") == "done"

    # The comment exists where GitHub (the stand-in) keeps it.
    db = sqlite3.connect(f"file:{dev_system.data_dir / 'isv.sqlite'}?mode=ro", uri=True)
    try:
        rows = db.execute("SELECT owner, repo, number, body FROM comment").fetchall()
    finally:
        db.close()
    assert ("acme", "widgets", 1, "LGTM") in rows, rows
    wait_until(lambda: card_status(chrome, "github") == "LIVE", 20, "github's card to turn LIVE")

    shots = screenshot_dir()
    chrome.save_screenshot(str(shots / "chat.png"))
    chrome.set_window_size(1440, 2200)  # tall enough for the whole panel in one picture
    try:
        wait_until(lambda: q(chrome, "aside#panel").size["height"] > 1500, 10, "the panel to grow")
        q(chrome, "aside#panel").screenshot(str(shots / "panel.png"))
    finally:
        chrome.set_window_size(1440, 960)
    assert (shots / "chat.png").stat().st_size > 10_000 and (shots / "panel.png").stat().st_size > 5_000


def test_markup_in_a_tool_result_is_shown_as_text(dev_system, chrome):  # noqa: F811
    payload = "<img src=x onerror=alert(1)>"
    answer = send(chrome, f'add a todo "{payload}"')
    calls = chips(answer)
    assert calls and payload in calls[0]["result"], calls
    assert chrome.execute_script("return document.querySelectorAll('#messages img, #messages [onerror]').length") == 0
    # Where the answer repeats the title, it is text too.
    assert payload in text_of(answer)
    n = re.search(r'"id"\s*:\s*(\d+)', calls[0]["result"])
    assert n
    send(chrome, f"delete todo {n.group(1)}")


def test_a_third_mcp_server_appended_to_connections_yaml_is_used_by_the_next_turn(dev_system, chrome, tmp_path):  # noqa: F811
    port = free_port()
    call_log = tmp_path / "weather-calls.jsonl"
    log = tmp_path / "weather.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, str(HERE / "third_mcp_server.py"), str(port), "--call-log", str(call_log)],
                                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, cwd=str(HERE))
    try:
        wait_for_port(port, proc, timeout=30, what="the third MCP server", log=log)
        with open(dev_system.config_path, "a") as f:
            f.write(
                "\n  - name: weather\n"
                "    kind: mcp_server\n"
                "    title: Weather MCP Server\n"
                f"    upstream: http://127.0.0.1:{port}/mcp\n"
                "    auth:\n"
                "      strategy: none\n"
            )
        wait_until(lambda: any(c["name"] == "weather" for c in dev_system.gateway_status()["connections"]), 30,
                   "the gateway to load the new connection")

        answer = send(chrome, 'what is the weather forecast for "Lisbon"?')
        calls = chips(answer)
        assert len(calls) == 1 and calls[0]["connection"] == "weather" and calls[0]["tool"] == "weather_forecast", calls
        assert not calls[0]["error"] and "Lisbon" in calls[0]["result"], calls
        assert read_jsonl(call_log) == [{"city": "Lisbon"}]  # it really reached the new server
        wait_until(lambda: card_status(chrome, "weather") == "LIVE", 20, "the new server's card")
    finally:
        stop_process(proc)


def test_the_panel_counts_what_the_gateways_policy_and_rate_limits_refused(dev_system, chrome):  # noqa: F811
    """A policy rule on a tool's argument and a rate limit on todo0: the refused calls come back
    to the chat as tool errors that name the rule, and todo0's card counts them."""
    original = dev_system.config_path.read_text()
    generation = dev_system.gateway_status()["config"]["generation"]
    governed = original.replace(
        "  - name: todo0\n", "  - name: todo0\n    rate_limits:\n      - {name: panel-lists, requests: 1, per: 1h, tool: get-todos}\n", 1)
    governed += ("\npolicies:\n  - name: keep-todo-424242\n"
                 "    deny: {connection: todo0, tool: delete-todo, arguments: {/id: {equals: \"424242\"}}}\n")
    assert governed.count("panel-lists") == 1
    write_atomically(dev_system.config_path, governed)  # the watcher must never read half of it
    try:
        wait_until(lambda: dev_system.gateway_status()["config"]["generation"] != generation, 30, "the gateway to load the rules")
        assert not dev_system.gateway_status()["config"].get("last_error")

        denied = chips(send(chrome, "delete todo 424242"))
        assert len(denied) == 1 and denied[0]["error"] and "keep-todo-424242" in denied[0]["result"], denied
        first, second = chips(send(chrome, "list my todos")), chips(send(chrome, "list my todos"))
        assert first and not first[0]["error"], first
        assert second and second[0]["error"] and "rate limit 'panel-lists'" in second[0]["result"], second

        def counts() -> str:
            found = qs(chrome, 'aside#panel .conn-card[data-name="todo0"] .conn-counts')
            return text_of(found[0]) if found else ""
        wait_until(lambda: "1 call denied by policy" in counts() and "1 call rate-limited" in counts(), 30,
                   "todo0's card to count the refused calls")
    finally:
        generation = dev_system.gateway_status()["config"]["generation"]
        write_atomically(dev_system.config_path, original)
        wait_until(lambda: dev_system.gateway_status()["config"]["generation"] != generation, 30, "the original file to load again")


def test_on_a_narrow_screen_the_panel_is_a_slide_over_that_escape_closes(dev_system, chrome):  # noqa: F811
    chrome.set_window_size(760, 900)
    try:
        wait_until(lambda: not shown(chrome, "aside#panel"), 10, "the panel to leave the narrow layout")
        toggle = q(chrome, "button#panel-toggle")
        assert toggle.get_attribute("aria-expanded") == "false"
        toggle.click()
        wait_until(lambda: shown(chrome, "aside#panel") and shown(chrome, "#panel-backdrop"), 10, "the slide-over")
        assert chrome.execute_script("return document.activeElement.id") == "panel"  # keyboard focus moved in
        chrome.switch_to.active_element.send_keys(Keys.ESCAPE)
        wait_until(lambda: not shown(chrome, "aside#panel"), 10, "Esc to close the panel")
        assert chrome.execute_script("return document.activeElement.id") == "panel-toggle"
    finally:
        chrome.set_window_size(1440, 960)


def test_sign_out_then_bob_sees_none_of_alices_conversation(dev_system, chrome):  # noqa: F811
    assert page_fetch_json(chrome, "/api/history")["body"]["entries"], "alice has a history before signing out"
    q(chrome, "button#sign-out").click()
    # agent0 → the IdP's end-session endpoint → back to agent0's sign-in prompt.
    wait_until(lambda: chrome.current_url.startswith(dev_system.agent0) and shown(chrome, "#signin"), 30, "the sign-in prompt")
    assert page_fetch_json(chrome, "/api/history")["status"] == 401

    q(chrome, "a#sign-in").click()
    sign_in_at_idp(chrome, "bob")  # the IdP session ended too: it asks again
    wait_until(lambda: shown(chrome, "#app"), 30, "the chat as bob")
    assert "Bob" in q(chrome, "#user-name").text
    history = page_fetch_json(chrome, "/api/history")
    assert history["status"] == 200 and history["body"]["entries"] == [], history
    assert not qs(chrome, "#messages .msg")
    assert "prep the demo" not in chrome.page_source and "LGTM" not in chrome.page_source


def test_the_console_shows_no_csp_violation(dev_system, chrome, console):  # noqa: F811
    violations = console.csp_violations()
    assert violations == [], violations
    # The check can fail: an inline script the CSP must refuse shows up in the same log.
    chrome.execute_script("const s = document.createElement('script'); s.textContent = 'window.__x = 1'; document.body.appendChild(s);")
    wait_until(lambda: console.csp_violations(), 10, "the deliberate violation to be reported")
    assert chrome.execute_script("return window.__x") is None
