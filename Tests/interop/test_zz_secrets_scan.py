"""After the whole interop suite (this module's name sorts last, so pytest runs it after the
others): no log the system's own processes wrote — gateway, IdP, todo0, the ISV stand-in, the
LLM adapter, agent0, `switchboard dev`, at the trace level most of them run at here — nor the
audit trail carries a JWT, a private key, a client secret or a user's password (issue 20,
secrets). Recordings made by the tests' own servers (what an upstream received, which holds
the access tokens the gateway injected on purpose) are not the system's output and are left out.

Run alone, there is nothing to scan and it skips; in the README's test command it runs last.
"""

from __future__ import annotations

import re
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from idp_fixtures import USERS, WEB_CLIENT_SECRET
from interop_helpers import new_rsa_key

JWT = re.compile(rb"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{16,}")
# A PEM private key's armour, or a JWK's private exponent (the marker is assembled, so this file
# holds no key-shaped text of its own).
PEM_PRIVATE = b"PRIVATE " + b"KEY-----"
KEY = re.compile(rb"-----BEGIN [A-Z ]*" + PEM_PRIVATE + rb"|\"d\"\s*:\s*\"[A-Za-z0-9_-]{40,}\"")
LITERALS = [WEB_CLIENT_SECRET.encode()] + [u["password"].encode() for u in USERS.values()]

# The system's own output: its processes' logs (named by the fixtures) and the audit trail.
OURS = re.compile(r"^(gateway|idp|todo0|isv|llm|agent0|dev)([-.].*)?\.log$|^audit\.jsonl$")
# `switchboard dev`'s banner on stdout tells a newcomer how to sign in (README's promise): not a log line.
BANNER = re.compile(rb"^open http://\S+ \xe2\x80\x94 sign in as alice / alice-dev-password$", re.M)


def system_outputs(base: Path) -> list[Path]:
    return [p for p in base.rglob("*") if p.is_file() and OURS.match(p.name)]


def test_no_secret_in_any_log_or_audit_record(tmp_path_factory):
    base = tmp_path_factory.getbasetemp()
    files = system_outputs(base)
    if len(files) < 5:
        pytest.skip(f"only {len(files)} log(s) of the system's processes under {base}: run the whole interop suite first")
    found = []
    for path in files:
        data = BANNER.sub(b"", path.read_bytes())
        for pattern, what in ((JWT, "a JWT"), (KEY, "a private key")):
            if m := pattern.search(data):
                found.append(f"{path.relative_to(base)}: {what} at byte {m.start()}: {data[max(0, m.start() - 80):m.start()][-80:]!r}")
        for literal in LITERALS:
            if (i := data.find(literal)) >= 0:
                found.append(f"{path.relative_to(base)}: the secret {literal[:3]!r}… at byte {i}")
    assert not found, f"{len(found)} secret(s) in {len(files)} scanned file(s):\n" + "\n".join(found[:20])


def test_the_scan_finds_what_it_looks_for(tmp_path):
    """The scanner itself: a planted token, key and password are each found (so a clean result means something)."""
    key = new_rsa_key()  # made now: nothing key-like is committed
    token = jwt.encode({"sub": "00u-alice"}, key, algorithm="RS256").encode()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    samples = {"gateway.log": b"x " + token + b" y", "idp-1.stderr.log": b"signing key: " + pem, "todo0.log": LITERALS[1]}
    for name, data in samples.items():
        (tmp_path / name).write_bytes(data)
    (tmp_path / "upstream-1.log").write_bytes(token)  # a test's recording: not scanned
    names = sorted(p.name for p in system_outputs(tmp_path))
    assert names == sorted(samples), names
    assert JWT.search(samples["gateway.log"]) and KEY.search(samples["idp-1.stderr.log"])
