"""The whole system as a user meets it, for test_agent0_browser.py: `switchboard dev` on free
ports (agent0, the IdP, todo0, the GitHub stand-in, the LLM adapter with its offline planner, the
gateway) and Debian's chromium driven by selenium.

    chromium (selenium) ──> agent0 ──> gateway ──> todo0 / GitHub stand-in / third MCP server
          │                   │            └──> IdP (ID-JAG, STS)
          └── sign-in, consent popup ──> IdP

- `switchboard dev --port-offset N` moves every port by N; the fixture picks an N whose seven
  ports are free, runs in its own directory with its own copy of connections.yaml (the test
  appends a connection to it) and its own data directory.
- Screenshots go to $AGENT0_SCREENSHOT_DIR (default Tests/interop/artifacts/, not in git).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from selenium.webdriver.common.by import By

from interop_helpers import HOST, port_is_free, require_our_gateway, stop_process, switchboard_binary, wait_for_http_200, wait_until  # noqa: F401 (re-exported)

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parent.parent
BASE_PORTS = {"agent0": 3000, "idp": 9000, "todo0_mcp": 5002, "todo0_rest": 5001, "isv": 7000, "llm": 4000, "gateway": 8080}


def free_port_offset() -> int:
    """An offset that leaves all seven of `switchboard dev`'s ports free a moment ago."""
    for _ in range(200):
        offset = random.randrange(20000, 50000)
        if all(port_is_free(p + offset) for p in BASE_PORTS.values()):
            return offset
    raise RuntimeError("no free port offset for switchboard dev")


@dataclass
class DevSystem:
    base: Path
    offset: int
    config_path: Path
    data_dir: Path
    proc: subprocess.Popen
    log_path: Path

    def url(self, service: str) -> str:
        return f"http://{HOST}:{BASE_PORTS[service] + self.offset}"

    @property
    def agent0(self) -> str:
        return self.url("agent0")

    @property
    def gateway(self) -> str:
        return self.url("gateway")

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def gateway_status(self) -> dict:
        r = requests.get(self.gateway + "/api/connections/status", timeout=10)
        assert r.status_code == 200, r.text[:300]
        return r.json()


def _start_dev(binary: Path, base: Path, attempt: int, extra_args: tuple[str, ...] = ()) -> DevSystem:
    offset = free_port_offset()
    run_dir = base / f"dev-{attempt}"
    run_dir.mkdir(parents=True)
    config_path = run_dir / "connections.yaml"
    shutil.copyfile(REPO_ROOT / "connections.yaml", config_path)
    data_dir = run_dir / "data"
    log_path = run_dir / "dev.log"
    env = dict(os.environ)
    # Whatever the developer's shell points at, this run uses its own ports and files.
    for var in ("OKTA_ISSUER", "MCP_AUTHORIZATION_SERVER", "TODO0_MCP_URL", "TODO0_RESOURCE", "GITHUB_API_URL",
                "GITHUB_MCP_SERVER_URL", "AGENT_KEY_FILE", "SWITCHBOARD_CONFIG", "SWITCHBOARD_DATA_DIR",
                "LLM_URL", "GATEWAY_URL", "AGENT0_PUBLIC_URL", "ANTHROPIC_API_KEY", "LLM_BACKEND"):
        env.pop(var, None)
    env["LOG_LEVEL"] = "info"
    env["LLM_BACKEND"] = "offline"  # the planner, never a real model: the test must not need the internet
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [str(binary), "dev", "--port-offset", str(offset), "--config", str(config_path), "--data-dir", str(data_dir), *extra_args],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=str(run_dir),
        )
    dev = DevSystem(base=run_dir, offset=offset, config_path=config_path, data_dir=data_dir, proc=proc, log_path=log_path)
    try:
        for service, path in (("agent0", "/health"), ("gateway", "/healthz"), ("idp", "/.well-known/openid-configuration")):
            wait_for_http_200(dev.url(service) + path, proc, timeout=90, what=f"switchboard dev ({service})", log=log_path)
        require_our_gateway(dev.gateway, config_path, proc)
        return dev
    except BaseException:
        stop_process(proc)
        raise


@pytest.fixture(scope="module")
def dev_system(tmp_path_factory):
    binary = switchboard_binary(REPO_ROOT)
    if not binary.is_file():
        pytest.fail(f"switchboard binary not found at {binary}: build it with `swift build`", pytrace=False)
    base = tmp_path_factory.mktemp("agent0")
    errors = []
    dev = None
    for attempt in range(3):  # a port taken between the check and the bind: try another offset
        try:
            dev = _start_dev(binary, base, attempt)
            break
        except (RuntimeError, TimeoutError, requests.RequestException) as e:
            errors.append(str(e))
    if dev is None:
        pytest.fail("switchboard dev did not start:\n" + "\n".join(errors), pytrace=False)
    try:
        yield dev
    finally:
        stop_process(dev.proc)


# --------------------------------------------------------------------------- the browser


def screenshot_dir() -> Path:
    path = Path(os.environ.get("AGENT0_SCREENSHOT_DIR", HERE / "artifacts"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def _find(candidates: list[str], what: str) -> str:
    for c in candidates:
        found = shutil.which(c) or (c if os.path.isfile(c) else None)
        if found:
            return found
    pytest.fail(f"{what} not found (apt-get install chromium chromium-driver)", pytrace=False)


@pytest.fixture(scope="module")
def chrome():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = _find(["chromium", "/usr/bin/chromium", "chromium-browser"], "chromium")
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1440,960",
                "--no-first-run", "--disable-extensions", "--lang=en-US"):
        options.add_argument(arg)
    # The console (CSP violations are reported there).
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(executable_path=_find(["chromedriver", "/usr/bin/chromedriver"], "chromedriver"))
    driver = webdriver.Chrome(options=options, service=service)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


class ConsoleLog:
    """The browser console over the whole run: selenium hands each entry out once."""

    def __init__(self, driver) -> None:
        self.driver = driver
        self.entries: list[dict] = []

    def drain(self) -> list[dict]:
        self.entries += self.driver.get_log("browser")
        return self.entries

    def csp_violations(self) -> list[str]:
        return [e["message"] for e in self.drain() if "Content Security Policy" in e.get("message", "")
                or "Content-Security-Policy" in e.get("message", "")]


def read_jsonl(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


# --------------------------------------------------------------------------- page helpers (one copy, for every browser test)

PASSWORDS = {"alice": "alice-dev-password", "bob": "bob-dev-password"}
TURN_TIMEOUT = 60  # one chat turn: model rounds plus tool calls through the gateway, on a busy CI machine


def q(driver, css: str):
    return driver.find_element(By.CSS_SELECTOR, css)


def qs(root, css: str):
    return root.find_elements(By.CSS_SELECTOR, css)


def text_of(element) -> str:
    """textContent (also of closed <details> bodies, which .text would hide)."""
    return element.get_attribute("textContent") or ""


def shown(driver, css: str) -> bool:
    found = qs(driver, css)
    return bool(found) and found[0].is_displayed()


def sign_in_at_idp(driver, user: str) -> None:
    wait_until(lambda: shown(driver, "input#username"), 30, "the IdP's sign-in form")
    q(driver, "input#username").send_keys(user)
    q(driver, "input#password").send_keys(PASSWORDS[user])
    q(driver, "button#sign-in").click()


def open_agent0_and_sign_in(driver, dev: DevSystem, user: str) -> None:
    driver.get(dev.agent0 + "/")
    wait_until(lambda: shown(driver, "#signin"), 30, "the sign-in prompt")
    q(driver, "a#sign-in").click()
    sign_in_at_idp(driver, user)
    wait_until(lambda: driver.current_url.startswith(dev.agent0) and shown(driver, "#app"), 30, f"agent0 signed in as {user}")


def answers(driver) -> list:
    return qs(driver, "#messages > .msg.assistant, #messages > .msg.error")


def send(driver, text: str, typed: bool = True):
    """Puts `text` in the chat box (typed key by key, or set as the value when `typed` is false:
    markup and control characters arrive as written), sends it and waits for agent0's answer;
    returns that answer's element."""
    before = len(answers(driver))
    box = q(driver, "textarea#chat-input")
    box.clear()
    if typed:
        box.send_keys(text)
    else:
        driver.execute_script("arguments[0].value = arguments[1]; arguments[0].dispatchEvent(new Event('input', {bubbles: true}));", box, text)
    wait_until(lambda: q(driver, "button#send").is_enabled(), 10, "the send button")
    q(driver, "button#send").click()
    wait_until(lambda: len(answers(driver)) > before and not shown(driver, "#typing"), TURN_TIMEOUT, f"the answer to {text!r}")
    answer = answers(driver)[-1]
    assert "error" not in answer.get_attribute("class").split(), f"{text!r} failed: {text_of(answer)}"
    return answer


def chips(answer) -> list[dict]:
    """The tool chips of an answer: connection, tool, error, step-up text, arguments and result."""
    found = []
    for chip in qs(answer, "details.tool-chip"):
        stepup = qs(chip, ".tool-stepup")
        found.append({
            "connection": chip.get_attribute("data-connection"),
            "tool": chip.get_attribute("data-tool"),
            "error": "error" in chip.get_attribute("class").split(),
            "step_up": text_of(stepup[0]) if stepup else None,
            "arguments": text_of(q(chip, "pre.tool-args")),
            "result": text_of(q(chip, "pre.tool-result")),
        })
    return found


def page_fetch_json(driver, path: str) -> dict:
    """GET `path` from inside the page (its cookie, its origin): what the page's own code sees."""
    return driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "fetch(arguments[0], {credentials: 'same-origin'}).then(r => r.json().then(b => done({status: r.status, body: b})))"
        ".catch(e => done({status: 0, body: String(e)}));",
        path,
    )
