"""Web security of agent0's page and of the development IdP's pages, attacked through the running
system: one `switchboard dev` (the module-scoped `dev_system` of agent0_fixtures), real HTTP with
requests, and Debian's chromium driven by selenium (the `chrome` fixture). Attacker pages are
served by a small HTTP server in this process, on `http://localhost:P` (another *site* than
127.0.0.1) or `http://127.0.0.1:P` (the same site, another origin: cookies do not separate ports).

What the Swift tests already prove in-process (RouteTests, SecurityHeadersTests,
AuthorizationCodeFlowTests, OAuthSTSTests) is not repeated here; these cases add the running
binary, the real browser, and the effect (or its absence) where it would land:

- CSRF: agent0's POSTs without the token, with a wrong one, another user's, or from another
  origin are 403 and run nothing (todo0's database and the conversation are unchanged); a page
  on the same site or another site cannot make the browser post to agent0; the IdP's consent
  form refuses a missing, empty, forged or other-session `csrf` and records nothing; the IdP's
  sign-in form must refuse a post it did not issue (login CSRF).
- XSS: `<script>`, `<img onerror>`, `<svg onload>`, `javascript:` links (HTML and Markdown) in a
  tool result and in the model's own text reach the chat as text: no element is made from them,
  no dialog opens, the console has no CSP report and no script error — also after a reload,
  when the page renders the stored history.
- Clickjacking: `frame-ancestors 'none'` and `X-Frame-Options: DENY` on agent0's answers and on
  every IdP HTML page (sign-in, sign-in error, consent, consent refusals, error pages, signed
  out), and chromium refuses to show agent0, the IdP's sign-in page and its consent page (Allow
  button and all) inside another origin's frame.
- Open redirects: /authorize with a redirect_uri that differs from the registered one in any
  way is an error page and never a redirect — signed out, signed in (where a redirect would
  carry a code), on the error-redirect paths and on the sign-in POST; the IdP's logout and
  agent0's sign-in, callback and sign-out ignore any off-site target.
- Session fixation: a cookie an attacker planted before sign-in (a made-up value, or the
  attacker's own valid session) is never the victim's session afterwards, at agent0 and at the
  IdP.
- Cookie flags: agent0's and the IdP's cookies are HttpOnly, SameSite=Lax|Strict, Path=/,
  host-only, and `document.cookie` shows none of them.
- Logout: after agent0's sign-out flow, the old agent0 cookie is 401 everywhere and the old IdP
  cookie signs no one in; the browser is asked for a password again.

Real defects are kept as `xfail(strict=True, reason="DEFECT: …")` with the reproduction in the
test's docstring.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import re
import secrets
import sqlite3
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, quote, urlencode, urljoin, urlsplit

import jwt
import pytest
import requests
from selenium.common.exceptions import NoAlertPresentException

from agent0_fixtures import (  # noqa: F401 (chrome, dev_system: fixtures)
    PASSWORDS, TURN_TIMEOUT, DevSystem, answers, chrome, dev_system, open_agent0_and_sign_in, page_fetch_json, q, qs, send, shown, text_of, wait_until,
)
from idp_fixtures import parse_forms
from interop_helpers import free_port

USERS = PASSWORDS
SUBJECTS = {"alice": "00u-alice", "bob": "00u-bob"}
WEB_CLIENT_ID, WEB_CLIENT_SECRET = "agent0", "agent0-dev-secret"  # the embedded development directory
AGENT0_COOKIE, LOGIN_COOKIE, IDP_COOKIE = "agent0_session", "agent0_login", "sb_idp_session"
EVIL = "https://evil.example"


# --------------------------------------------------------------------------- URLs and forms


def idp_url(dev: DevSystem) -> str:
    return dev.url("idp")


def authorize_endpoint(dev: DevSystem) -> str:
    return idp_url(dev) + "/oauth2/v1/authorize"


def registered_redirect(dev: DevSystem) -> str:
    return dev.agent0 + "/callback"


def agent0_port(dev: DevSystem) -> int:
    return int(dev.agent0.rsplit(":", 1)[1])


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def authorize_params(redirect_uri: str | None, challenge: str, **extra) -> list[tuple[str, str]]:
    params = [("client_id", WEB_CLIENT_ID), ("response_type", "code"), ("scope", "openid profile email")]
    if redirect_uri is not None:
        params.append(("redirect_uri", redirect_uri))
    params += [("state", "st-" + uuid.uuid4().hex), ("nonce", "n-" + uuid.uuid4().hex),
               ("code_challenge", challenge), ("code_challenge_method", "S256")]
    return params + list(extra.items())


def authorize_url(dev: DevSystem, params: list[tuple[str, str]]) -> str:
    return authorize_endpoint(dev) + "?" + urlencode(params, quote_via=quote)


def cookie_header(**cookies: str) -> dict:
    return {"Cookie": "; ".join(f"{k}={v}" for k, v in cookies.items())}


def set_cookies(r: requests.Response) -> dict[str, str]:
    """The raw Set-Cookie lines of one response, by cookie name."""
    out = {}
    for line in r.raw.headers.getlist("Set-Cookie"):
        out[line.split("=", 1)[0].strip()] = line
    return out


def cookie_value(line: str) -> str:
    return line.split(";", 1)[0].split("=", 1)[1]


def cookie_attributes(line: str) -> dict[str, str]:
    attrs = {}
    for part in line.split(";")[1:]:
        k, _, v = part.strip().partition("=")
        attrs[k.lower()] = v
    return attrs


def csp_directives(csp: str) -> dict[str, list[str]]:
    return {d.split()[0].lower(): d.split()[1:] for d in (p.strip() for p in csp.split(";")) if d}


# --------------------------------------------------------------------------- agent0 and the IdP over HTTP


class Agent0Client:
    """A browser made of requests: one cookie jar for 127.0.0.1 (as a browser has: cookies do
    not separate ports), signed in to agent0 through the IdP's real sign-in page."""

    def __init__(self, dev: DevSystem, user: str) -> None:
        self.dev = dev
        self.user = user
        self.http = requests.Session()
        r = self.http.get(dev.agent0 + "/login", allow_redirects=False, timeout=10)
        assert r.status_code == 302, r.text[:300]
        page = self.http.get(r.headers["Location"], allow_redirects=False, timeout=10)
        assert page.status_code == 200 and "password" in page.text, page.text[:300]
        form = [f for f in parse_forms(page.text) if f["method"] == "post"][0]
        signed = self.http.post(urljoin(page.url, form["action"]), data=dict(form["hidden"], username=user, password=USERS[user]),
                                allow_redirects=False, timeout=10)
        assert signed.status_code == 302 and signed.headers["Location"].startswith(registered_redirect(dev) + "?"), signed.headers
        back = self.http.get(signed.headers["Location"], allow_redirects=False, timeout=10)
        assert back.status_code == 302 and back.headers["Location"] == "/", (back.status_code, back.text[:300])
        status = self.status()
        assert status["authenticated"] and status["subject"] == SUBJECTS[user], status
        self.csrf = status["csrf_token"]

    @property
    def session_cookie(self) -> str:
        return self.http.cookies.get(AGENT0_COOKIE)

    @property
    def idp_cookie(self) -> str:
        return self.http.cookies.get(IDP_COOKIE)

    def status(self) -> dict:
        return self.http.get(self.dev.agent0 + "/auth/status", timeout=10).json()

    def history(self) -> list:
        r = self.http.get(self.dev.agent0 + "/api/history", timeout=10)
        assert r.status_code == 200, r.text[:300]
        return r.json()["entries"]

    def post(self, path: str, body: dict, csrf: str | None = "own", origin: str | None = None) -> requests.Response:
        headers = {"Content-Type": "application/json"}
        if csrf == "own":
            headers["X-CSRF-Token"] = self.csrf
        elif csrf is not None:
            headers["X-CSRF-Token"] = csrf
        if origin is not None:
            headers["Origin"] = origin
        return self.http.post(self.dev.agent0 + path, data=json.dumps(body), headers=headers, timeout=TURN_TIMEOUT)

    def chat(self, message: str) -> dict:
        r = self.post("/api/chat", {"message": message}, origin=self.dev.agent0)
        assert r.status_code == 200, r.text[:500]
        return r.json()

    def new_github_interaction(self) -> str:
        """A GitHub call that waits for this user's consent; returns its interaction_uri."""
        turn = self.chat(f'comment "needs consent {uuid.uuid4().hex[:6]}" on PR 1 in acme/widgets')
        waiting = [c for c in turn["consents"] if c.get("waiting") and c["connection"] == "github"]
        assert waiting and waiting[0]["interaction_uri"].startswith(idp_url(self.dev) + "/"), turn
        return waiting[0]["interaction_uri"]


def todo_titles(dev: DevSystem) -> list[str]:
    """Every todo title in todo0's own database (all users)."""
    db = sqlite3.connect(f"file:{dev.data_dir / 'todo0.sqlite'}?mode=ro", uri=True)
    try:
        return [row[0] for row in db.execute("SELECT title FROM todo")]
    finally:
        db.close()


def idp_sign_in(dev: DevSystem, user: str, cookies: dict | None = None, prompt_login: bool = False) -> tuple[requests.Response, str]:
    """The IdP's sign-in form, posted like a browser with `cookies` (no jar). Returns the POST's
    answer and the redirect it gave."""
    _, challenge = pkce()
    extra = {"prompt": "login"} if prompt_login else {}
    page = requests.get(authorize_url(dev, authorize_params(registered_redirect(dev), challenge, **extra)),
                        headers=cookie_header(**(cookies or {})), allow_redirects=False, timeout=10)
    assert page.status_code == 200, (page.status_code, page.headers.get("Location"))
    form = [f for f in parse_forms(page.text) if f["method"] == "post"][0]
    r = requests.post(urljoin(page.url, form["action"]), data=dict(form["hidden"], username=user, password=USERS[user]),
                      headers=cookie_header(**(cookies or {})), allow_redirects=False, timeout=10)
    assert r.status_code == 302, (r.status_code, r.text[:300])
    return r, r.headers["Location"]


def idp_user_behind(dev: DevSystem, idp_cookie: str) -> str | None:
    """Whom the IdP signs in for a browser that sends `idp_cookie`: None when it shows its
    sign-in form, else the subject of the ID token the code it hands out redeems for."""
    verifier, challenge = pkce()
    r = requests.get(authorize_url(dev, authorize_params(registered_redirect(dev), challenge)),
                     headers=cookie_header(**{IDP_COOKIE: idp_cookie}), allow_redirects=False, timeout=10)
    if r.status_code == 200:
        assert 'name="password"' in r.text, r.text[:300]
        return None
    assert r.status_code == 302 and r.headers["Location"].startswith(registered_redirect(dev) + "?"), (r.status_code, r.headers)
    code = parse_qs(urlsplit(r.headers["Location"]).query)["code"][0]
    token = requests.post(idp_url(dev) + "/oauth2/v1/token", auth=(WEB_CLIENT_ID, WEB_CLIENT_SECRET), timeout=10, data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": registered_redirect(dev), "code_verifier": verifier})
    assert token.status_code == 200, token.text[:300]
    return jwt.decode(token.json()["id_token"], options={"verify_signature": False})["sub"]


# --------------------------------------------------------------------------- the attacker's web server


class AttackerSite:
    """Pages an attacker controls, served from this process (a thread, no CSP, no cookies)."""

    def __init__(self) -> None:
        self.pages: dict[str, str] = {}
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server API)
                body = site.pages.get(self.path.split("?")[0])
                data = (body if body is not None else "not found").encode()
                self.send_response(200 if body is not None else 404)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, name="attacker-site", daemon=True)
        self.thread.start()

    def put(self, path: str, body: str, *, same_site: bool) -> str:
        """Serves `body` at `path`; returns its URL on 127.0.0.1 (same site as agent0 and the
        IdP, another origin) or on localhost (another site)."""
        self.pages[path] = body
        return f"http://{'127.0.0.1' if same_site else 'localhost'}:{self.port}{path}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def attacker():
    site = AttackerSite()
    try:
        yield site
    finally:
        site.stop()


# --------------------------------------------------------------------------- the browser


class Console:
    """The browser console over the run (selenium hands each entry out once), with marks so a
    test looks only at what its own steps logged."""

    def __init__(self, driver) -> None:
        self.driver = driver
        self.entries: list[dict] = []

    def mark(self) -> int:
        self.entries += self.driver.get_log("browser")
        return len(self.entries)

    def since(self, mark: int) -> list[dict]:
        self.mark()
        return self.entries[mark:]

    @staticmethod
    def problems(entries: list[dict]) -> list[str]:
        """CSP reports and script errors (a failed network load alone is not one)."""
        return [e["message"] for e in entries
                if "Content Security Policy" in e.get("message", "") or "Content-Security-Policy" in e.get("message", "")
                or (e.get("level") == "SEVERE" and e.get("source") != "network")]


@pytest.fixture(scope="module")
def console(chrome):  # noqa: F811
    return Console(chrome)


def reset_browser(driver) -> None:
    """A browser with no cookies and one window on about:blank."""
    main = driver.window_handles[0]
    for handle in driver.window_handles[1:]:
        driver.switch_to.window(handle)
        driver.close()
    driver.switch_to.window(main)
    driver.get("about:blank")
    driver.execute_cdp_cmd("Network.clearBrowserCookies", {})


def browser_sign_in(driver, dev: DevSystem, user: str, reset: bool = True) -> None:
    if reset:
        reset_browser(driver)
    open_agent0_and_sign_in(driver, dev, user)


def assert_no_dialog(driver) -> None:
    try:
        alert = driver.switch_to.alert
    except NoAlertPresentException:
        return
    text = alert.text
    alert.dismiss()
    raise AssertionError(f"a script ran: a dialog opened saying {text!r}")


# Every element in the chat that markup from a tool or the model could have made, or that runs script.
INJECTED_ELEMENTS_JS = """
const found = [];
for (const e of document.querySelectorAll('#messages *')) {
  const tag = e.tagName.toLowerCase();
  if (['script', 'img', 'svg', 'iframe', 'object', 'embed', 'form', 'input', 'video', 'audio', 'math', 'style',
       'link', 'meta', 'base', 'frame'].includes(tag)) found.push('<' + tag + '>');
  for (const a of e.attributes) {
    if (/^on/i.test(a.name)) found.push(tag + '[' + a.name + ']');
    if (/^\\s*(javascript|data|vbscript):/i.test(a.value)) found.push(tag + '[' + a.name + '=' + a.value + ']');
  }
}
for (const s of document.scripts) {
  if (!(s.getAttribute('src') || '').startsWith('/static/')) found.push('document script ' + (s.src || s.textContent.slice(0, 40)));
}
return found;
"""


# =========================================================================== CSRF


def test_csrf_agent0_chat_without_token_wrong_token_or_foreign_origin_is_403_and_runs_nothing(dev_system):  # noqa: F811
    alice, bob = Agent0Client(dev_system, "alice"), Agent0Client(dev_system, "bob")
    marker = "csrf-probe-" + uuid.uuid4().hex[:8]
    body = {"message": f'add a todo "{marker}"'}
    history = alice.history()
    cases = {
        "no X-CSRF-Token": dict(csrf=None),
        "empty X-CSRF-Token": dict(csrf=""),
        "wrong X-CSRF-Token": dict(csrf=secrets.token_urlsafe(32)),
        "bob's X-CSRF-Token": dict(csrf=bob.csrf),
        "own token, foreign Origin": dict(origin=EVIL),
        "own token, Origin null": dict(origin="null"),
        "own token, the IdP's Origin (same host, other port)": dict(origin=idp_url(dev_system)),
        "own token, Origin http://localhost (same port)": dict(origin=f"http://localhost:{agent0_port(dev_system)}"),
        "own token, https Origin": dict(origin="https://" + dev_system.agent0.split("://", 1)[1]),
        "no token, foreign Origin": dict(csrf=None, origin=EVIL),
    }
    for name, how in cases.items():
        for path, payload in (("/api/chat", body), ("/api/chat/resume", {"consent_id": "c-1"}), ("/logout", {})):
            r = alice.post(path, payload, **how)
            assert r.status_code == 403, f"{name} {path}: HTTP {r.status_code} {r.text[:300]}"
            assert r.json()["error"] == "csrf_failed", f"{name} {path}: {r.text[:300]}"
            assert "Access-Control-Allow-Origin" not in r.headers
    # No effect anywhere: no todo, no turn in the conversation, the session still signed in.
    assert not [t for t in todo_titles(dev_system) if marker in t]
    assert alice.history() == history
    assert alice.status()["authenticated"] is True
    # The same request with the session's token and its own Origin does run (the probe is live).
    ok = alice.post("/api/chat", body, origin=dev_system.agent0)
    assert ok.status_code == 200, ok.text[:300]
    assert marker in todo_titles(dev_system)


@pytest.mark.parametrize("site", ["same-site page (127.0.0.1, other port)", "cross-site page (localhost)"])
def test_csrf_an_attacker_page_cannot_make_the_browser_post_to_agent0(dev_system, chrome, attacker, site):  # noqa: F811
    """alice is signed in; a page of another origin auto-submits a form (text/plain, a JSON body)
    and fires a no-cors fetch with credentials at /api/chat. The same-site page gets the cookie
    sent (SameSite does not separate ports) and is refused by the CSRF check; the cross-site page
    does not even get the cookie sent (SameSite=Lax). Nothing runs."""
    same_site = site.startswith("same")
    browser_sign_in(chrome, dev_system, "alice")
    before = page_fetch_json(chrome, "/api/history")["body"]["entries"]
    marker = "csrf-browser-" + uuid.uuid4().hex[:8]
    message = f'add a todo \\"{marker}\\"'
    action = dev_system.agent0 + "/api/chat"
    name = '{"message":"' + message + '","x":"'
    page = f"""<!doctype html><html><body><h1>You won!</h1>
<form method="post" enctype="text/plain" action="{html.escape(action)}"><input type="hidden" name="{html.escape(name)}" value='"}}'></form>
<script>
fetch({json.dumps(action)}, {{method: 'POST', mode: 'no-cors', credentials: 'include', headers: {{'Content-Type': 'text/plain'}},
  body: JSON.stringify({{message: {json.dumps('add a todo "' + marker + '"')}}})}})
  .catch(() => null).finally(() => document.forms[0].submit());
</script></body></html>"""
    url = attacker.put(f"/csrf-{uuid.uuid4().hex[:6]}", page, same_site=same_site)
    chrome.get(url)
    wait_until(lambda: chrome.current_url == action, 20, "the attacker's form to post to agent0")
    answer = json.loads(q(chrome, "body").text)
    expected = "csrf_failed" if same_site else "not_signed_in"
    assert answer.get("error") == expected, answer
    assert not [t for t in todo_titles(dev_system) if marker in t], "the forged POST created a todo"
    chrome.get(dev_system.agent0 + "/")
    wait_until(lambda: shown(chrome, "#app"), 30, "alice still signed in")
    assert page_fetch_json(chrome, "/api/history")["body"]["entries"] == before


def test_csrf_idp_consent_form_refuses_missing_wrong_or_other_session_csrf_and_records_nothing(dev_system):  # noqa: F811
    alice = Agent0Client(dev_system, "alice")
    uri = alice.new_github_interaction()
    page = alice.http.get(uri, allow_redirects=False, timeout=10)
    assert page.status_code == 200, page.text[:300]
    form = [f for f in parse_forms(page.text) if f["method"] == "post"][0]
    action = urljoin(page.url, form["action"])
    good = form["hidden"]["csrf"]
    # alice signed in at the IdP a second time (another browser): its page has its own csrf.
    other = Agent0Client(dev_system, "alice")
    other_csrf = [f for f in parse_forms(other.http.get(uri, timeout=10).text) if f["method"] == "post"][0]["hidden"]["csrf"]
    assert other_csrf != good
    cases = {
        "no csrf field": {"decision": "approve"},
        "empty csrf": {"csrf": "", "decision": "approve"},
        "forged csrf": {"csrf": "0" * len(good), "decision": "approve"},
        "csrf of another of alice's sessions": {"csrf": other_csrf, "decision": "approve"},
        "csrf with a character changed": {"csrf": good[:-1] + ("0" if good[-1] != "0" else "1"), "decision": "approve"},
    }
    for name, data in cases.items():
        r = alice.http.post(action, data=data, headers={"Origin": EVIL}, allow_redirects=False, timeout=10)
        assert r.status_code == 403, f"{name}: HTTP {r.status_code} {r.text[:300]}"
        assert "connected" not in r.text.lower().replace("not connected", ""), f"{name}: {r.text[-300:]}"
    # Nothing recorded: the request still waits, GitHub still needs consent.
    assert alice.http.get(uri, allow_redirects=False, timeout=10).status_code == 200
    github = [c for c in alice.http.get(dev_system.agent0 + "/api/connections", timeout=10).json()["user"]["connections"] if c["name"] == "github"]
    assert github and github[0]["state"] == "consent_required", github
    # The page's own csrf works (the refusals above were not a broken form), here to deny.
    denied = alice.http.post(action, data={"csrf": good, "decision": "deny"}, allow_redirects=False, timeout=10)
    assert denied.status_code == 200 and "Not connected" in denied.text, denied.text[-300:]
    assert alice.http.get(uri, allow_redirects=False, timeout=10).status_code == 404


def test_csrf_idp_sign_in_form_refuses_a_post_without_a_csrf_value(dev_system):  # noqa: F811
    """Login CSRF (found by this suite, fixed): POST /oauth2/v1/authorize with the authorization
    request's fields plus username=bob&password=bob-dev-password and `Origin: https://evil.example`
    (what an auto-submitted form on any site sends) was a 302 with bob's session cookie; it is
    403 with no cookie now (the IdP refuses cross-origin posts: Sec-Fetch-Site / Origin)."""
    _, challenge = pkce()
    form = dict(authorize_params(registered_redirect(dev_system), challenge), username="bob", password=USERS["bob"])
    for name, extra in {"no csrf": {}, "forged csrf": {"csrf": "0" * 64}}.items():
        r = requests.post(authorize_endpoint(dev_system), data=dict(form, **extra), headers={"Origin": EVIL}, allow_redirects=False, timeout=10)
        assert IDP_COOKIE not in set_cookies(r), f"{name}: the IdP signed the browser in: HTTP {r.status_code} {r.headers.get('Location')}"
        assert r.status_code == 403, f"{name}: HTTP {r.status_code}"


def test_csrf_a_cross_site_page_cannot_sign_the_browser_in_to_the_idp_as_the_attacker(dev_system, chrome, attacker):  # noqa: F811
    """Reproduction in chromium: with no cookies, open a page on http://localhost:P that
    auto-submits a form to the IdP's /oauth2/v1/authorize with client_id=agent0, the registered
    redirect_uri, any code_challenge, username=bob, password=bob-dev-password. The browser lands
    on agent0's /callback (400 login_expired) but holds bob's sb_idp_session. Then open agent0
    and click Sign in: the IdP asks nothing and agent0 shows 'Bob Example'."""
    reset_browser(chrome)
    _, challenge = pkce()
    fields = dict(authorize_params(registered_redirect(dev_system), challenge), username="bob", password=USERS["bob"])
    inputs = "".join(f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">' for k, v in fields.items())
    page = (f'<!doctype html><html><body><form method="post" action="{html.escape(authorize_endpoint(dev_system))}">{inputs}</form>'
            "<script>document.forms[0].submit()</script></body></html>")
    try:
        url = attacker.put(f"/login-csrf-{uuid.uuid4().hex[:6]}", page, same_site=False)
        chrome.get(url)
        # Posted: the IdP answered (today with a redirect to agent0's /callback, fixed with a refusal).
        wait_until(lambda: not chrome.current_url.startswith(url.rsplit("/", 1)[0]), 20, "the forged sign-in form to be posted")
        chrome.get(dev_system.agent0 + "/")
        wait_until(lambda: shown(chrome, "#signin"), 30, "agent0's sign-in prompt")
        q(chrome, "a#sign-in").click()
        wait_until(lambda: shown(chrome, "input#username") or (chrome.current_url.startswith(dev_system.agent0) and shown(chrome, "#app")),
                   30, "the IdP's form or agent0's chat")
        assert shown(chrome, "input#username"), f"signed in without a password as {q(chrome, '#user-name').text!r}"
    finally:
        reset_browser(chrome)


# =========================================================================== XSS

PAYLOADS = {
    "script element": "<script>alert('script')</script>",
    "img onerror": "<img src=x onerror=alert('img')>",
    "svg onload": "<svg onload=alert('svg')>",
    "iframe javascript src": "<iframe src=javascript:alert('iframe')></iframe>",
    "html javascript link": "<a href=javascript:alert('a')>html-link</a>",
    "markdown javascript link": "[md-link](javascript:alert('md'))",
    "markdown javascript image": "![md-image](javascript:alert('mdimg'))",
    "markdown data link": "[data-link](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
}


def check_chat_is_inert(driver, console: Console, mark: int, what: str) -> None:
    assert_no_dialog(driver)
    injected = driver.execute_script(INJECTED_ELEMENTS_JS)
    assert injected == [], f"{what}: elements made from the payload: {injected}"
    assert driver.execute_script("return window.__xss === undefined"), f"{what}: a payload ran"
    problems = Console.problems(console.since(mark))
    assert problems == [], f"{what}: console: {problems}"


def test_xss_markup_in_a_tool_result_and_in_the_models_text_is_shown_as_text(dev_system, chrome, console):  # noqa: F811
    """A todo titled with every payload at once: todo0 returns it (the chip's result), the offline
    planner's summary repeats it (the model's Markdown text), and a message that matches no tool
    is echoed by the planner ("I couldn't match …"). Then a reload renders it all again from the
    stored history."""
    browser_sign_in(chrome, dev_system, "alice")
    mark = console.mark()
    title = " ".join(PAYLOADS.values())
    assert '"' not in title and len(title) < 500
    answer = send(chrome, f'add a todo "{title}"', typed=False)
    chips = qs(answer, "details.tool-chip")
    assert len(chips) == 1 and chips[0].get_attribute("data-tool") == "create-todo", [c.get_attribute("data-tool") for c in chips]
    result, args = text_of(q(chips[0], "pre.tool-result")), text_of(q(chips[0], "pre.tool-args"))
    model_text = text_of(q(answer, ".msg-text"))
    for name, payload in PAYLOADS.items():
        assert payload in result.replace('\\"', '"'), f"{name} not shown in the tool result: {result[:300]}"
        assert payload in args.replace('\\"', '"'), f"{name} not shown in the arguments"
        if not name.startswith("markdown"):
            assert payload in model_text, f"{name} not shown as text in the model's answer: {model_text[:400]}"
    # Markdown links to script or data URLs keep their text and lose the URL.
    assert "md-link" in model_text and "md-image" in model_text and "data-link" in model_text
    for link in qs(answer, ".msg-text a"):
        assert (link.get_attribute("href") or "").startswith(("http://", "https://")) or not link.get_attribute("href"), link.get_attribute("outerHTML")
    check_chat_is_inert(chrome, console, mark, "the tool result and the summary")

    echoed = "zqxv " + PAYLOADS["img onerror"] + " " + PAYLOADS["html javascript link"] + " " + PAYLOADS["markdown javascript link"]
    answer = send(chrome, echoed, typed=False)
    model_text = text_of(q(answer, ".msg-text"))
    assert "couldn't match" in model_text and PAYLOADS["img onerror"] in model_text and PAYLOADS["html javascript link"] in model_text, model_text[:400]
    assert echoed in text_of(qs(chrome, "#messages > .msg.user")[-1])
    check_chat_is_inert(chrome, console, mark, "the planner's echo of the message")

    # The stored history, rendered by a fresh page.
    mark = console.mark()
    chrome.refresh()
    wait_until(lambda: shown(chrome, "#app") and len(answers(chrome)) >= 2, 30, "the history after a reload")
    assert title in chrome.execute_script("return document.getElementById('messages').textContent")
    check_chat_is_inert(chrome, console, mark, "the history after a reload")
    # The check can fail: markup put into the chat the unsafe way is seen (and blocked by the CSP).
    chrome.execute_script("const d = document.createElement('div'); d.innerHTML = arguments[0]; document.getElementById('messages').appendChild(d);",
                          "<img src=x onerror=\"window.__xss=1\">")
    assert chrome.execute_script(INJECTED_ELEMENTS_JS), "the DOM check saw nothing"
    wait_until(lambda: Console.problems(console.since(mark)), 10, "the blocked inline handler to be reported")
    assert chrome.execute_script("return window.__xss === undefined")
    chrome.refresh()


# =========================================================================== clickjacking


def assert_denies_framing(r: requests.Response, what: str) -> None:
    assert r.headers.get("X-Frame-Options", "").upper() == "DENY", f"{what}: X-Frame-Options {r.headers.get('X-Frame-Options')!r}"
    csp = r.headers.get("Content-Security-Policy", "")
    assert csp_directives(csp).get("frame-ancestors") == ["'none'"], f"{what}: CSP {csp!r}"


def test_clickjacking_agent0_answers_carry_frame_ancestors_none_and_x_frame_options_deny(dev_system):  # noqa: F811
    alice = Agent0Client(dev_system, "alice")
    answers_ = {
        "the page, signed out": requests.get(dev_system.agent0 + "/", timeout=10),
        "the page, signed in": alice.http.get(dev_system.agent0 + "/", timeout=10),
        "app.js": requests.get(dev_system.agent0 + "/static/app.js", timeout=10),
        "a 404": requests.get(dev_system.agent0 + "/nope", timeout=10),
        "/login's redirect": requests.get(dev_system.agent0 + "/login", allow_redirects=False, timeout=10),
        "a refused callback": requests.get(dev_system.agent0 + "/callback?code=x&state=y", timeout=10),
        "an API answer": alice.http.get(dev_system.agent0 + "/api/history", timeout=10),
    }
    for what, r in answers_.items():
        assert r.status_code in (200, 302, 400, 404), f"{what}: {r.status_code}"
        assert_denies_framing(r, what)


@pytest.fixture(scope="module")
def idp_html_pages(dev_system):  # noqa: F811
    """Every kind of HTML page the IdP shows, fetched over HTTP."""
    _, challenge = pkce()
    signin_url = authorize_url(dev_system, authorize_params(registered_redirect(dev_system), challenge))
    signin = requests.get(signin_url, timeout=10)
    form = [f for f in parse_forms(signin.text) if f["method"] == "post"][0]
    alice, bob = Agent0Client(dev_system, "alice"), Agent0Client(dev_system, "bob")
    uri = alice.new_github_interaction()
    consent = alice.http.get(uri, timeout=10)
    action = urljoin(uri, [f for f in parse_forms(consent.text) if f["method"] == "post"][0]["action"])
    pages = {
        "sign-in form": (signin, 200),
        "sign-in form after a wrong password": (requests.post(urljoin(signin_url, form["action"]), timeout=10,
                                                              data=dict(form["hidden"], username="alice", password="nope")), 401),
        "authorize error page (unregistered redirect_uri)": (requests.get(authorize_url(dev_system, authorize_params(EVIL + "/cb", challenge)),
                                                                          allow_redirects=False, timeout=10), 400),
        "authorize error page (unknown client)": (requests.get(authorize_endpoint(dev_system) + "?client_id=nobody&redirect_uri=x",
                                                               allow_redirects=False, timeout=10), 400),
        "consent page": (consent, 200),
        "consent page signed out": (requests.get(uri, timeout=10), 401),
        "consent page of another user": (bob.http.get(uri, timeout=10), 403),
        "consent form post refused": (alice.http.post(action, data={"csrf": "x", "decision": "approve"}, timeout=10), 403),
        "unknown consent link": (requests.get(idp_url(dev_system) + "/oauth2/v1/interaction/nope", timeout=10), 404),
        "signed out page": (requests.get(idp_url(dev_system) + "/oauth2/v1/logout", allow_redirects=False, timeout=10), 200),
    }
    for what, (r, status) in pages.items():
        assert r.status_code == status and r.headers.get("Content-Type", "").startswith("text/html"), f"{what}: {r.status_code} {r.headers}"
    return {what: r for what, (r, _) in pages.items()}


def test_clickjacking_idp_html_pages_send_x_frame_options_deny(idp_html_pages):
    for what, r in idp_html_pages.items():
        assert r.headers.get("X-Frame-Options", "").upper() == "DENY", f"{what}: X-Frame-Options {r.headers.get('X-Frame-Options')!r}"


def test_clickjacking_idp_html_pages_send_csp_frame_ancestors_none(idp_html_pages):
    """Reproduction: curl -si 'http://127.0.0.1:9000/oauth2/v1/logout' (or any IdP page: sign-in,
    consent, errors) shows `Content-Security-Policy: default-src 'none'; style-src 'unsafe-inline';
    form-action 'self'` — `default-src` does not cover `frame-ancestors`."""
    for what, r in idp_html_pages.items():
        csp = r.headers.get("Content-Security-Policy", "")
        assert csp_directives(csp).get("frame-ancestors") == ["'none'"], f"{what}: CSP {csp!r}"


def test_clickjacking_chromium_refuses_to_show_agent0_or_the_idps_pages_in_another_origins_frame(dev_system, chrome, console, attacker):  # noqa: F811
    """alice is signed in (so the consent page would show its Allow button); a page on the same
    site (127.0.0.1, another port: the cookies go along) frames agent0, the IdP's sign-in page and
    the consent page. None of them renders in the frame."""
    alice = Agent0Client(dev_system, "alice")
    uri = alice.new_github_interaction()
    browser_sign_in(chrome, dev_system, "alice")
    assert shown(chrome, "#app")
    _, challenge = pkce()
    targets = {
        "agent0": (dev_system.agent0 + "/", "#app, #signin, a#sign-in"),
        "the IdP's sign-in page": (authorize_url(dev_system, authorize_params(registered_redirect(dev_system), challenge, prompt="login")), "input#username"),
        "the IdP's consent page": (uri, "#approve, #deny, form"),
    }
    # Positive control: the consent page is alice's in this browser, Allow button and all.
    chrome.get(uri)
    wait_until(lambda: shown(chrome, "#approve"), 20, "alice's consent page at top level")
    mark = console.mark()
    frames = "".join(f'<iframe id="f{i}" src="{html.escape(url)}" width="600" height="400"></iframe>' for i, (url, _) in enumerate(targets.values()))
    chrome.get(attacker.put(f"/frame-{uuid.uuid4().hex[:6]}", f"<!doctype html><html><body><h1>Click the button</h1>{frames}</body></html>", same_site=True))

    def frame_url(i: int) -> str:
        chrome.switch_to.frame(q(chrome, f"iframe#f{i}"))
        try:
            return chrome.execute_script("return document.URL")
        finally:
            chrome.switch_to.default_content()

    for i, (what, (url, selector)) in enumerate(targets.items()):
        # Blocked, not merely slow: chromium replaced the frame's document with its error page.
        wait_until(lambda i=i: frame_url(i).startswith("chrome-error://"), 15, f"chromium to refuse {what} in a frame")
        chrome.switch_to.frame(q(chrome, f"iframe#f{i}"))
        try:
            assert not qs(chrome, selector), f"{what} rendered inside the attacker's frame"
        finally:
            chrome.switch_to.default_content()
    # …and said why: agent0 by its CSP, the IdP by X-Frame-Options.
    def refused(origin: str, why: str) -> list[str]:
        return [m for m in Console.problems(console.since(mark)) if f"'{origin}/'" in m and why in m]

    wait_until(lambda: refused(dev_system.agent0, "frame-ancestors 'none'"), 10, "agent0's frame-ancestors refusal in the console")
    # (The IdP's pages carry both; chromium names the CSP directive when there is one.)
    wait_until(lambda: refused(idp_url(dev_system), "frame-ancestors 'none'") or refused(idp_url(dev_system), "X-Frame-Options"), 10,
               "the IdP's frame-ancestors / X-Frame-Options refusal in the console")
    # The consent request is untouched.
    assert alice.http.get(uri, timeout=10).status_code == 200


# =========================================================================== open redirects


def redirect_variants(dev: DevSystem) -> dict[str, str]:
    r = registered_redirect(dev)
    port = agent0_port(dev)
    return {
        "extra path": r + "/evil",
        "dot-dot path": r + "/../evil",
        "extra query": r + "?next=" + EVIL,
        "fragment": r + "#frag",
        "trailing slash": r + "/",
        "other port": f"http://127.0.0.1:{port + 1}/callback",
        "https scheme": f"https://127.0.0.1:{port}/callback",
        "upper-case scheme": f"HTTP://127.0.0.1:{port}/callback",
        "percent-encoded path": f"http://127.0.0.1:{port}/%63allback",
        "userinfo before an evil host": f"http://127.0.0.1:{port}@evil.example/callback",
        "userinfo before the good host": f"http://evil.example@127.0.0.1:{port}/callback",
        "backslash trick": f"http://127.0.0.1:{port}\\@evil.example/callback",
        "evil host": EVIL + "/callback",
        "protocol-relative": "//evil.example/callback",
        "trailing dot host": f"http://localhost.:{port}/callback",
        "trailing space": r + " ",
        "empty": "",
        "missing": None,  # type: ignore[dict-item]
    }


VARIANT_NAMES = [
    "extra path", "dot-dot path", "extra query", "fragment", "trailing slash", "other port", "https scheme", "upper-case scheme",
    "percent-encoded path", "userinfo before an evil host", "userinfo before the good host", "backslash trick", "evil host",
    "protocol-relative", "trailing dot host", "trailing space", "empty", "missing",
]


@pytest.fixture(scope="module")
def idp_session(dev_system):  # noqa: F811
    """A live IdP session (alice's), with which a good /authorize redirects at once with a code."""
    r, _ = idp_sign_in(dev_system, "alice")
    return cookie_value(set_cookies(r)[IDP_COOKIE])


def assert_error_page_not_redirect(r: requests.Response, what: str, target: str | None) -> None:
    assert "Location" not in r.headers, f"{what}: redirected to {r.headers['Location']!r} (HTTP {r.status_code})"
    assert r.status_code == 400, f"{what}: HTTP {r.status_code} {r.text[:200]}"
    assert r.headers.get("Content-Type", "").startswith("text/html"), f"{what}: {r.headers.get('Content-Type')}"
    assert 'name="password"' not in r.text, f"{what}: the sign-in form was shown"
    assert not re.search(r"http-equiv\s*=\s*[\"']?refresh", r.text, re.I), f"{what}: a meta refresh"
    assert IDP_COOKIE not in set_cookies(r), f"{what}: set a session cookie"
    if target:
        assert f'href="{html.escape(target)}' not in r.text, f"{what}: links to the target"


@pytest.mark.parametrize("variant", VARIANT_NAMES)
def test_open_redirect_idp_authorize_with_a_redirect_uri_not_exactly_registered_never_redirects(dev_system, idp_session, variant):  # noqa: F811
    assert sorted(VARIANT_NAMES) == sorted(redirect_variants(dev_system))
    target = redirect_variants(dev_system)[variant]
    _, challenge = pkce()
    signed_in = cookie_header(**{IDP_COOKIE: idp_session})
    good = requests.get(authorize_url(dev_system, authorize_params(registered_redirect(dev_system), challenge)), headers=signed_in,
                        allow_redirects=False, timeout=10)
    assert good.status_code == 302 and good.headers["Location"].startswith(registered_redirect(dev_system) + "?code="), good.headers  # the session is live

    base = authorize_params(target, challenge)
    tries = {
        "signed out": (authorize_url(dev_system, base), {}),
        "signed in (would carry a code)": (authorize_url(dev_system, base), signed_in),
        "signed in, prompt=none": (authorize_url(dev_system, base + [("prompt", "none")]), signed_in),
        "signed out, prompt=none (error redirect)": (authorize_url(dev_system, base + [("prompt", "none")]), {}),
        "response_type=token (error redirect)": (authorize_url(dev_system, [(k, "token" if k == "response_type" else v) for k, v in base]), signed_in),
        "no PKCE (error redirect)": (authorize_url(dev_system, [(k, v) for k, v in base if not k.startswith("code_challenge")]), {}),
        "scope without openid (error redirect)": (authorize_url(dev_system, [(k, "profile" if k == "scope" else v) for k, v in base]), signed_in),
    }
    for how, (url, headers) in tries.items():
        assert_error_page_not_redirect(requests.get(url, headers=headers, allow_redirects=False, timeout=10), f"GET, {how}", target)
    # The sign-in form's POST, with the right password.
    posted = requests.post(authorize_endpoint(dev_system), data=dict(base, username="alice", password=USERS["alice"]), allow_redirects=False, timeout=10)
    assert_error_page_not_redirect(posted, "POST with alice's password", target)


def test_open_redirect_idp_authorize_with_a_repeated_redirect_uri_goes_nowhere_but_the_registered_one(dev_system, idp_session):  # noqa: F811
    _, challenge = pkce()
    registered = registered_redirect(dev_system)
    for order in ([registered, EVIL + "/callback"], [EVIL + "/callback", registered]):
        params = [p for p in authorize_params(None, challenge)] + [("redirect_uri", u) for u in order]
        for cookies in ({}, {IDP_COOKIE: idp_session}):
            r = requests.get(authorize_url(dev_system, params), headers=cookie_header(**cookies), allow_redirects=False, timeout=10)
            location = r.headers.get("Location")
            assert location is None or location.startswith(registered + "?"), f"{order}: redirected to {location}"
            assert "evil.example" not in (location or ""), location


def test_open_redirect_idp_logout_follows_only_the_registered_post_logout_uri(dev_system):  # noqa: F811
    logout = idp_url(dev_system) + "/oauth2/v1/logout"
    home = dev_system.agent0 + "/"
    port = agent0_port(dev_system)
    ok = requests.get(logout, params={"post_logout_redirect_uri": home, "state": "s"}, allow_redirects=False, timeout=10)
    assert ok.status_code == 302 and ok.headers["Location"] == home + "?state=s", ok.headers
    for target in (dev_system.agent0, home + "x", home + "?next=" + EVIL, f"http://127.0.0.1:{port + 1}/", f"https://127.0.0.1:{port}/",
                   f"http://127.0.0.1:{port}@evil.example/", f"http://evil.example@127.0.0.1:{port}/", EVIL + "/", "//evil.example/", "javascript:alert(1)"):
        r = requests.get(logout, params={"post_logout_redirect_uri": target, "state": "s"}, allow_redirects=False, timeout=10)
        assert "Location" not in r.headers, f"{target}: redirected to {r.headers['Location']}"
        assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/html"), (target, r.status_code)
        assert f'href="{html.escape(target)}' not in r.text


def test_open_redirect_agent0_sign_in_callback_and_sign_out_never_send_the_browser_off_site(dev_system):  # noqa: F811
    names = ("next", "redirect", "redirect_uri", "return_to", "returnTo", "continue", "url", "post_login_redirect_uri", "post_logout_redirect_uri")
    evil_params = {n: EVIL + "/" for n in names}
    s = requests.Session()
    r = s.get(dev_system.agent0 + "/login", params=evil_params, allow_redirects=False, timeout=10)
    assert r.status_code == 302 and r.headers["Location"].startswith(authorize_endpoint(dev_system) + "?"), r.headers
    query = parse_qs(urlsplit(r.headers["Location"]).query)
    assert query["redirect_uri"] == [registered_redirect(dev_system)] and "evil.example" not in r.headers["Location"], r.headers["Location"]
    page = s.get(r.headers["Location"], timeout=10)
    form = [f for f in parse_forms(page.text) if f["method"] == "post"][0]
    signed = s.post(urljoin(page.url, form["action"]), data=dict(form["hidden"], username="alice", password=USERS["alice"]), allow_redirects=False, timeout=10)
    callback = signed.headers["Location"] + "&" + urlencode(evil_params)
    back = s.get(callback, allow_redirects=False, timeout=10)
    assert back.status_code == 302 and back.headers["Location"] == "/", back.headers
    csrf = s.get(dev_system.agent0 + "/auth/status", timeout=10).json()["csrf_token"]

    out = s.post(dev_system.agent0 + "/logout", params=evil_params, data=json.dumps(evil_params),
                 headers={"X-CSRF-Token": csrf, "Origin": dev_system.agent0, "Content-Type": "application/json"}, timeout=10)
    assert out.status_code == 200, out.text[:300]
    redirect = out.json()["redirect"]
    assert redirect.startswith(idp_url(dev_system) + "/oauth2/v1/logout?"), redirect
    assert parse_qs(urlsplit(redirect).query)["post_logout_redirect_uri"] == [dev_system.agent0 + "/"], redirect
    idp = s.get(redirect, allow_redirects=False, timeout=10)
    assert idp.status_code == 302 and idp.headers["Location"] == dev_system.agent0 + "/", idp.headers


# =========================================================================== session fixation


def test_session_fixation_cookies_planted_before_sign_in_are_replaced_and_sign_no_one_in(dev_system, chrome):  # noqa: F811
    """An attacker who can set cookies for 127.0.0.1 (any port, a sibling app) plants made-up
    agent0 and IdP session ids; alice then signs in in that browser."""
    reset_browser(chrome)
    chrome.get(dev_system.agent0 + "/health")
    planted = {AGENT0_COOKIE: secrets.token_urlsafe(32), IDP_COOKIE: secrets.token_urlsafe(32)}
    for name, value in planted.items():
        chrome.add_cookie({"name": name, "value": value, "path": "/", "httpOnly": True, "sameSite": "Lax"})
    browser_sign_in(chrome, dev_system, "alice", reset=False)
    now = {name: chrome.get_cookie(name)["value"] for name in planted}
    for name in planted:
        assert now[name] != planted[name], f"{name} kept the planted value"

    def agent0_subject(value: str) -> str | None:
        return requests.get(dev_system.agent0 + "/auth/status", headers=cookie_header(**{AGENT0_COOKIE: value}), timeout=10).json().get("subject")

    assert agent0_subject(now[AGENT0_COOKIE]) == SUBJECTS["alice"]
    assert agent0_subject(planted[AGENT0_COOKIE]) is None
    assert requests.get(dev_system.agent0 + "/api/history", headers=cookie_header(**{AGENT0_COOKIE: planted[AGENT0_COOKIE]}), timeout=10).status_code == 401
    assert idp_user_behind(dev_system, now[IDP_COOKIE]) == SUBJECTS["alice"]
    assert idp_user_behind(dev_system, planted[IDP_COOKIE]) is None
    reset_browser(chrome)


def test_session_fixation_the_attackers_own_agent0_session_planted_before_sign_in_never_becomes_the_victims(dev_system):  # noqa: F811
    bob = Agent0Client(dev_system, "bob")
    fixed = bob.session_cookie
    victim = requests.Session()
    victim.cookies.set(AGENT0_COOKIE, fixed, domain="127.0.0.1", path="/")  # planted; the victim starts a sign-in with it
    r = victim.get(dev_system.agent0 + "/login", allow_redirects=False, timeout=10)
    page = victim.get(r.headers["Location"], timeout=10)
    form = [f for f in parse_forms(page.text) if f["method"] == "post"][0]
    signed = victim.post(urljoin(page.url, form["action"]), data=dict(form["hidden"], username="alice", password=USERS["alice"]),
                         allow_redirects=False, timeout=10)
    back = victim.get(signed.headers["Location"], allow_redirects=False, timeout=10)
    issued = set_cookies(back)
    assert AGENT0_COOKIE in issued and cookie_value(issued[AGENT0_COOKIE]) != fixed, issued
    new = requests.get(dev_system.agent0 + "/auth/status", headers=cookie_header(**{AGENT0_COOKIE: cookie_value(issued[AGENT0_COOKIE])}), timeout=10)
    assert new.json().get("subject") == SUBJECTS["alice"], new.text
    as_fixed = requests.get(dev_system.agent0 + "/auth/status", headers=cookie_header(**{AGENT0_COOKIE: fixed}), timeout=10).json()
    assert as_fixed.get("subject") != SUBJECTS["alice"], f"the planted session is alice's now: {as_fixed}"


def test_session_fixation_the_attackers_own_idp_session_planted_before_sign_in_never_becomes_the_victims(dev_system):  # noqa: F811
    attacker_cookie = cookie_value(set_cookies(idp_sign_in(dev_system, "bob")[0])[IDP_COOKIE])
    assert idp_user_behind(dev_system, attacker_cookie) == SUBJECTS["bob"]
    # alice is shown the form (prompt=login, or she was signed out and the attacker's id is
    # unknown) with the attacker's cookie in her browser, and signs in.
    for planted in (attacker_cookie, secrets.token_urlsafe(32)):
        r, _ = idp_sign_in(dev_system, "alice", cookies={IDP_COOKIE: planted}, prompt_login=True)
        issued = set_cookies(r)
        assert IDP_COOKIE in issued and cookie_value(issued[IDP_COOKIE]) != planted, issued
        assert idp_user_behind(dev_system, cookie_value(issued[IDP_COOKIE])) == SUBJECTS["alice"]
        assert idp_user_behind(dev_system, planted) != SUBJECTS["alice"], "the planted IdP session signs alice in"


# =========================================================================== cookie flags


def assert_session_cookie_flags(line: str, what: str) -> None:
    attrs = cookie_attributes(line)
    assert "httponly" in attrs, f"{what}: not HttpOnly: {line}"
    assert attrs.get("samesite", "").lower() in ("lax", "strict"), f"{what}: SameSite {attrs.get('samesite')!r}: {line}"
    assert attrs.get("path") == "/", f"{what}: Path {attrs.get('path')!r}: {line}"
    assert "domain" not in attrs, f"{what}: a Domain attribute widens it: {line}"


def test_cookie_flags_every_session_cookie_agent0_and_the_idp_set_is_httponly_samesite_path_root(dev_system):  # noqa: F811
    s = requests.Session()
    seen: dict[str, list[str]] = {}

    def record(r: requests.Response) -> requests.Response:
        for name, line in set_cookies(r).items():
            seen.setdefault(name, []).append(line)
        return r

    r = record(s.get(dev_system.agent0 + "/login", allow_redirects=False, timeout=10))
    page = s.get(r.headers["Location"], timeout=10)
    form = [f for f in parse_forms(page.text) if f["method"] == "post"][0]
    signed = record(s.post(urljoin(page.url, form["action"]), data=dict(form["hidden"], username="alice", password=USERS["alice"]),
                           allow_redirects=False, timeout=10))
    record(s.get(signed.headers["Location"], allow_redirects=False, timeout=10))
    csrf = s.get(dev_system.agent0 + "/auth/status", timeout=10).json()["csrf_token"]
    out = record(s.post(dev_system.agent0 + "/logout", data="{}", headers={"X-CSRF-Token": csrf, "Content-Type": "application/json"}, timeout=10))
    record(s.get(out.json()["redirect"], allow_redirects=False, timeout=10))
    assert {LOGIN_COOKIE, AGENT0_COOKIE, IDP_COOKIE} <= set(seen), seen
    for name, lines in seen.items():
        assert len(lines) >= 2, f"{name}: set and cleared: {lines}"
        for line in lines:
            assert_session_cookie_flags(line, name)


def test_cookie_flags_no_session_cookie_is_readable_by_document_cookie(dev_system, chrome):  # noqa: F811
    browser_sign_in(chrome, dev_system, "alice")
    cookies = {c["name"]: c for c in chrome.get_cookies()}
    assert {AGENT0_COOKIE, IDP_COOKIE} <= set(cookies), sorted(cookies)
    for name in (AGENT0_COOKIE, IDP_COOKIE):
        c = cookies[name]
        assert c["httpOnly"] is True and c.get("sameSite") in ("Lax", "Strict") and c["path"] == "/", c
        assert not c.get("domain", "").startswith("."), c
    assert chrome.execute_script("return document.cookie") == "", "agent0's page can read a cookie"
    # The IdP's own page (its sign-in form, forced with prompt=login so the session stays).
    _, challenge = pkce()
    chrome.get(authorize_url(dev_system, authorize_params(registered_redirect(dev_system), challenge, prompt="login")))
    wait_until(lambda: shown(chrome, "input#username"), 20, "the IdP's sign-in form")
    assert chrome.execute_script("return document.cookie") == "", "the IdP's page can read a cookie"
    reset_browser(chrome)


# =========================================================================== logout


def test_logout_ends_both_sessions_old_cookies_are_refused_and_the_idp_asks_for_a_password_again(dev_system, chrome):  # noqa: F811
    browser_sign_in(chrome, dev_system, "alice")
    old = {name: chrome.get_cookie(name)["value"] for name in (AGENT0_COOKIE, IDP_COOKIE)}
    csrf = page_fetch_json(chrome, "/auth/status")["body"]["csrf_token"]
    assert idp_user_behind(dev_system, old[IDP_COOKIE]) == SUBJECTS["alice"]  # both live before

    q(chrome, "button#sign-out").click()
    wait_until(lambda: chrome.current_url.startswith(dev_system.agent0) and shown(chrome, "#signin"), 30, "the sign-out flow to come back")
    assert chrome.get_cookie(AGENT0_COOKIE) is None and chrome.get_cookie(IDP_COOKIE) is None, chrome.get_cookies()

    # agent0: the old cookie, replayed, is no one.
    stale = cookie_header(**{AGENT0_COOKIE: old[AGENT0_COOKIE]})
    for path in ("/api/history", "/api/connections"):
        r = requests.get(dev_system.agent0 + path, headers=stale, timeout=10)
        assert r.status_code == 401, f"{path}: HTTP {r.status_code} {r.text[:200]}"
    for path, body in (("/api/chat", {"message": "list my todos"}), ("/api/chat/resume", {"consent_id": "c-1"})):
        r = requests.post(dev_system.agent0 + path, data=json.dumps(body), timeout=10,
                          headers=dict(stale, **{"X-CSRF-Token": csrf, "Origin": dev_system.agent0, "Content-Type": "application/json"}))
        assert r.status_code == 401, f"{path}: HTTP {r.status_code} {r.text[:200]}"
    assert requests.get(dev_system.agent0 + "/auth/status", headers=stale, timeout=10).json()["authenticated"] is False
    # The IdP: the old cookie signs no one in.
    assert idp_user_behind(dev_system, old[IDP_COOKIE]) is None
    # The browser: Sign in asks for a password.
    q(chrome, "a#sign-in").click()
    wait_until(lambda: shown(chrome, "input#username") or shown(chrome, "#app"), 30, "the IdP's form")
    assert shown(chrome, "input#username") and chrome.current_url.startswith(idp_url(dev_system)), chrome.current_url
    reset_browser(chrome)
