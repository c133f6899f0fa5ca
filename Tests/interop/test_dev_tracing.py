"""`switchboard dev --otel`: one chat turn is one trace, from the browser's request to agent0 down
to todo0's database write — agent0's `POST /api/chat`, its calls to the LLM adapter and to the
gateway, the gateway's call to todo0 and todo0's INSERT, received by the OTLP receiver of
otlp_receiver.py. The user signs in to agent0 over HTTP the way a browser does (the IdP's form,
the session cookie, the CSRF token); the LLM adapter answers offline.
"""

from __future__ import annotations

import os
import time
from urllib.parse import urljoin

import pytest
import requests

from agent0_fixtures import REPO_ROOT, _start_dev
from idp_fixtures import parse_forms
from interop_helpers import stop_process, switchboard_binary
from otlp_receiver import Span, start_receiver


@pytest.fixture(scope="module")
def traced_dev(tmp_path_factory):
    receiver = start_receiver()
    settings = {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint, "OTEL_BSP_SCHEDULE_DELAY": "100"}
    saved = {k: os.environ.get(k) for k in settings}
    os.environ.update(settings)
    dev = None
    try:
        dev = _start_dev(switchboard_binary(REPO_ROOT), tmp_path_factory.mktemp("dev-otel"), 0, ("--otel",))
        yield dev, receiver
    finally:
        if dev is not None:
            stop_process(dev.proc)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        receiver.close()


def signed_in(dev, username: str = "alice", password: str = "alice-dev-password") -> tuple[requests.Session, str]:
    """A session signed in to agent0 as a browser would be, and its CSRF token."""
    s = requests.Session()
    r = s.get(dev.agent0 + "/login", allow_redirects=False, timeout=10)
    assert r.status_code in (302, 303), r.text[:200]
    page = s.get(r.headers["Location"], timeout=10)
    form = next(f for f in parse_forms(page.text) if f["method"] == "post")
    r = s.post(urljoin(page.url, form["action"]), data={**form["hidden"], "username": username, "password": password},
               allow_redirects=False, timeout=10)
    assert r.status_code in (302, 303), r.text[:300]
    r = s.get(r.headers["Location"], allow_redirects=False, timeout=30)  # agent0's /callback
    assert r.status_code in (302, 303), r.text[:300]
    status = s.get(dev.agent0 + "/auth/status", timeout=10).json()
    assert status.get("authenticated"), status
    return s, status["csrf_token"]


def test_one_chat_turn_is_one_trace_down_to_the_database_write(traced_dev):
    dev, receiver = traced_dev
    session, csrf = signed_in(dev)
    answer = session.post(dev.agent0 + "/api/chat", json={"message": 'add a todo "traced turn"'},
                          headers={"X-CSRF-Token": csrf, "Origin": dev.agent0}, timeout=60)
    assert answer.status_code == 200, answer.text[:300]

    def insert(spans: list[Span]) -> Span | None:
        return next((s for s in spans if s.name == "INSERT todo"), None)

    def chain_up(spans: list[Span]) -> tuple[Span | None, list[Span], list[Span]]:
        """The write, its ancestors as far as they have arrived, and its whole trace."""
        write = insert(spans)
        if write is None:
            return None, [], []
        trace = [s for s in spans if s.trace_id == write.trace_id]
        by_id = {s.span_id: s for s in trace}
        chain, s = [], write
        while s.parent_span_id in by_id:
            s = by_id[s.parent_span_id]
            chain.append(s)
        return write, chain, trace

    # Each service exports its spans in its own batches: wait for the whole chain, up to the
    # root, not only for the write (agent0's /api/chat span ends, and is sent, last).
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        write, chain, trace = chain_up(receiver.snapshot())
        if chain and chain[-1].parent_span_id == "":
            break
        time.sleep(0.1)
    spans = receiver.snapshot()
    write, chain, trace = chain_up(spans)
    assert write is not None, "no database span arrived: " + str(sorted({s.name for s in spans}))[:1000]
    names = [c.name for c in chain]
    # From the write up: todo0's server span, the gateway's call span, agent0's client span, agent0's /api/chat.
    assert chain and chain[-1].name == "/api/chat" and chain[-1].kind == 2 and chain[-1].parent_span_id == "", names
    assert any(c.attributes.get("gen_ai.tool.name") == "create-todo" and c.attributes.get("switchboard.connection") == "todo0" for c in chain), names
    # The same turn's call to the LLM adapter is in the trace, under /api/chat too.
    assert any(s.name.startswith("/v1/messages") or s.attributes.get("http.route") == "/v1/messages" for s in trace), \
        sorted({s.name for s in trace})
    assert all(s.service == "switchboard-dev" for s in trace), {s.service for s in trace}
