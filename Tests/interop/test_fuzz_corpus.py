"""The committed fuzz corpus and every crash reproducer (Fuzz/, see scripts/fuzz) replayed
through the plain build of `switchboard-fuzz` on every test run: an input that once crashed a
parser must not crash it again. (The fuzzing itself runs on its own: `scripts/fuzz`.)
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from interop_helpers import switchboard_binary

ROOT = Path(__file__).resolve().parents[2]
TARGETS = ["config", "path", "jsonrpc", "sse", "www-authenticate", "scope-challenge", "form", "cookie"]


@pytest.mark.parametrize("target", TARGETS)
def test_corpus_and_crash_reproducers_replay_without_a_crash(target):
    fuzz = switchboard_binary(ROOT).with_name("switchboard-fuzz")
    if not fuzz.exists():
        pytest.skip(f"{fuzz} is not built (swift build builds it)")
    corpus = ROOT / "Fuzz" / "corpus" / target
    reproducers = sorted((ROOT / "Fuzz" / "crashes").glob(f"{target}-*"))
    assert corpus.is_dir() and any(corpus.iterdir()), f"no seed corpus for {target}"
    run = subprocess.run([str(fuzz), target, str(corpus), *map(str, reproducers)], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, f"{target}: exit {run.returncode}\n{run.stderr[-2000:]}"
    replayed = int(run.stdout.split(":")[1].split()[0])
    assert replayed >= len(list(corpus.iterdir())) + len(reproducers), run.stdout


def test_an_unknown_target_is_refused():
    fuzz = switchboard_binary(ROOT).with_name("switchboard-fuzz")
    if not fuzz.exists():
        pytest.skip(f"{fuzz} is not built")
    run = subprocess.run([str(fuzz), "no-such-target"], capture_output=True, text=True, timeout=60)
    assert run.returncode == 2 and "usage" in run.stderr
