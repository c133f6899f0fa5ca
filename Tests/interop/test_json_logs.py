"""LOG_FORMAT=json: every line a service writes is one JSON object with `time` (RFC 3339, UTC),
`level`, `logger`, `message`, `source` and its metadata as fields; an unknown LOG_FORMAT is said
once and the text format used. Run against the real binary (the development IdP: quick to start).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import requests

from interop_helpers import HOST, free_port, stop_process, switchboard_binary, wait_for_http_200

ROOT = Path(__file__).resolve().parents[2]


def run_idp(tmp_path: Path, log_format: str) -> str:
    """Starts the IdP with LOG_FORMAT, makes it log a request it refuses, stops it; its stderr."""
    port = free_port()
    log = tmp_path / f"idp-{log_format}.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([str(switchboard_binary(ROOT)), "idp", "--port", str(port), "--data-dir", str(tmp_path / "idp")],
                                stdout=subprocess.DEVNULL, stderr=out, env=dict(os.environ, LOG_FORMAT=log_format, LOG_LEVEL="debug"))
    try:
        wait_for_http_200(f"http://{HOST}:{port}/healthz", proc, 30, "the identity provider", log)
        # A token request with a bad client: the IdP logs its refusal with metadata.
        requests.post(f"http://{HOST}:{port}/oauth2/v1/token", data={"grant_type": "client_credentials"}, auth=("nobody", "secret-x"), timeout=10)
    finally:
        stop_process(proc)
    return log.read_text()


def test_json_lines_carry_time_level_logger_message_and_metadata(tmp_path):
    text = run_idp(tmp_path, "json")
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) >= 3, text
    records = [json.loads(line) for line in lines]  # every line parses, alone
    for r in records:
        assert isinstance(r, dict) and {"time", "level", "logger", "message", "source"} <= r.keys(), r
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", r["time"]), r["time"]
        assert r["level"] in {"trace", "debug", "info", "notice", "warning", "error", "critical"}, r
        assert r["logger"] == "switchboard.idp", r
    listening = [r for r in records if r["message"] == "identity provider listening"]
    assert listening and listening[0]["issuer"].startswith("http://"), "metadata are top-level fields"
    assert "secret-x" not in text, "a client secret reached the log"


def test_an_unknown_format_is_said_and_text_is_used(tmp_path):
    text = run_idp(tmp_path, "xml")
    first = text.splitlines()[0]
    assert "LOG_FORMAT is neither text nor json" in first and not first.startswith("{"), first
    assert not any(line.startswith("{") for line in text.splitlines()), text
