"""`switchboard llm` (the LLM adapter) as a subprocess on 127.0.0.1, for the interop tests of
the Anthropic Messages API it serves (test_llm_anthropic_sdk.py, test_llm_bedrock_sigv4.py).

    tests (official `anthropic` SDK) ── POST /v1/messages ──> switchboard llm ──> offline planner
                                                                     └──────────> Bedrock stand-in (SigV4)

- The environment of the adapter is built from scratch (PATH, HOME, locale, TMPDIR and the
  variables a test asks for), so a real ANTHROPIC_API_KEY or AWS_* of the outer shell can never
  pick the backend or leak into a request.
- A free port is looked up, the binary binds it (`--port`); the adapter is ours when GET /healthz
  answers with the backend we configured *and* our own log says it listens on that port.

Fixtures:
  llm_binary          the binary (env SWITCHBOARD_BIN, default <repo>/.build/debug/switchboard)
  llm_adapter_factory start(extra_env, name=...) -> LLMAdapter; every adapter stops at module end
  llm_adapter         one offline adapter for the module
"""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest
import requests

from interop_helpers import HOST, free_port, stop_process, switchboard_binary, wait_for_http_200

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parent.parent

OFFLINE_MODEL = "switchboard-offline-planner"

# Only these are taken from the outer environment; everything else is what the test passes.
_PASSED_THROUGH = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "LD_LIBRARY_PATH")


@dataclass
class LLMAdapter:
    name: str
    port: int
    url: str
    env: dict[str, str]
    proc: subprocess.Popen
    stderr_log: Path
    stdout_log: Path

    def log_text(self) -> str:
        return "".join(p.read_text(errors="replace") for p in (self.stderr_log, self.stdout_log) if p.exists())

    def tail(self, chars: int = 4000) -> str:
        return f"\n--- switchboard llm ({self.name}) log, last {chars} chars ---\n{self.log_text()[-chars:]}"

    def health(self) -> dict:
        return requests.get(self.url + "/healthz", timeout=5).json()


def adapter_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The adapter's whole environment: a few process basics, the log level, and `extra`."""
    env = {k: os.environ[k] for k in _PASSED_THROUGH if k in os.environ}
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    env["LOG_LEVEL"] = os.environ.get("INTEROP_LOG_LEVEL", "trace")
    env.update(extra or {})
    return env


def _expected_backend(env: dict[str, str]) -> str:
    choice = env.get("LLM_BACKEND", "").strip().lower()
    if choice:
        return choice
    if env.get("ANTHROPIC_API_KEY"):
        return "anthropic"
    if env.get("BEDROCK_MODEL_ID") and env.get("AWS_ACCESS_KEY_ID") and env.get("AWS_SECRET_ACCESS_KEY"):
        return "bedrock"
    return "offline"


def start_llm_adapter(binary: Path, log_dir: Path, extra_env: dict[str, str] | None = None, name: str = "offline",
                      attempts: int = 3) -> LLMAdapter:
    """Starts `switchboard llm` on a free port and waits until it answers /healthz as ours."""
    env = adapter_env(extra_env)
    backend = _expected_backend(env)
    errors: list[str] = []
    for attempt in range(attempts):
        port = free_port()
        stderr_log = log_dir / f"llm-{name}-{attempt}.stderr.log"
        stdout_log = log_dir / f"llm-{name}-{attempt}.stdout.log"
        with open(stderr_log, "wb") as err, open(stdout_log, "wb") as out:
            proc = subprocess.Popen(
                [str(binary), "llm", "--host", HOST, "--port", str(port)],
                stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env, cwd=str(log_dir),
            )
        adapter = LLMAdapter(name=name, port=port, url=f"http://{HOST}:{port}", env=env, proc=proc,
                             stderr_log=stderr_log, stdout_log=stdout_log)
        try:
            wait_for_http_200(adapter.url + "/healthz", proc, timeout=60, what=f"switchboard llm ({name})", log=stderr_log)
            health = adapter.health()
            # Ours: still running, the backend we configured, and our own log says it listens there.
            deadline = time.monotonic() + 5
            while f":{port}" not in adapter.log_text() and time.monotonic() < deadline and proc.poll() is None:
                time.sleep(0.05)
            if proc.poll() is not None or health.get("backend") != backend or f":{port}" not in adapter.log_text():
                raise RuntimeError(f"{adapter.url} is not our adapter (healthz {health}, exit code {proc.poll()}){adapter.tail()}")
            return adapter
        except (RuntimeError, TimeoutError, requests.RequestException, ValueError) as e:
            stop_process(proc)
            errors.append(str(e))
            time.sleep(0.5)
    raise RuntimeError(f"switchboard llm ({name}) did not start:\n" + "\n".join(errors))


@pytest.fixture(scope="module")
def llm_binary() -> Path:
    binary = switchboard_binary(REPO_ROOT)
    if not binary.is_file() or not os.access(binary, os.X_OK):
        pytest.fail(f"switchboard binary not found or not executable at {binary}. Build it with "
                    f"`swift build --product switchboard` in {REPO_ROOT}, or point SWITCHBOARD_BIN at it.", pytrace=False)
    return binary


@pytest.fixture(scope="module")
def llm_adapter_factory(llm_binary: Path, tmp_path_factory) -> Callable[..., LLMAdapter]:
    """`start(extra_env=None, name="...")`: another adapter with these variables on top of the
    clean environment. All of them are stopped when the module is done."""
    log_dir = tmp_path_factory.mktemp("llm")
    started: list[LLMAdapter] = []

    def start(extra_env: dict[str, str] | None = None, name: str = "custom") -> LLMAdapter:
        try:
            adapter = start_llm_adapter(llm_binary, log_dir, extra_env, name=f"{name}-{len(started)}")
        except RuntimeError as e:
            pytest.fail(str(e), pytrace=False)
        started.append(adapter)
        return adapter

    try:
        yield start
    finally:
        for adapter in reversed(started):
            stop_process(adapter.proc)


@pytest.fixture(scope="module")
def llm_adapter(llm_adapter_factory) -> LLMAdapter:
    """The offline planner (no key, no network), shared by the module."""
    return llm_adapter_factory({}, name="offline")
