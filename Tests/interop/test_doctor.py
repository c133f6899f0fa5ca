"""`switchboard doctor [FILE] [--json]`: live checks of a connections.yaml against the services
it names (Sources/TenantTools/Doctor.swift, Sources/SwitchboardCLI/DoctorCommand.swift).

    switchboard doctor  ── discovery, JWKS, token exchange (agent key) ──>  switchboard idp (free port)
          │   (a copy of the shipped connections.yaml,                          ^ AS {issuer}/oauth2/todo-mcp
          │    env vars → our ports and our agent key)                          │
          └── RFC 9728 metadata ──>  switchboard todo0 (free ports, resource http://127.0.0.1:5002/mcp)

One IdP (`idp --init-agent` wrote the agent's key) and one todo0 run for the whole module;
every doctor run is its own subprocess with a timeout. A healthy run passes every check; each
broken thing (a key never registered, a scope the AS does not offer, a resource todo0 does not
publish, an issuer that does not answer, an AS that does not exist, a file that does not parse)
must fail exactly the checks it breaks, skip the ones built on them, and pass all the others.

Every doctor run is made twice, `--json` and text, and the two must tell the same story.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import shutil
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwcrypto import jwk

from idp_fixtures import IdP, start_idp
from interop_helpers import HOST, new_rsa_key, public_jwk, stop_process, built_switchboard
from system_fixtures import SHIPPED_CONFIG, TODO0_RESOURCE, _base_env, start_todo0
from todo0_fixtures import Todo0

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parent.parent

# The checks of the shipped connections.yaml (its only idjag connection is todo0; the two
# oauth-sts connections share the org token endpoint, so one agent-key check).
ALL_IDS = ["config", "issuer", "agent-key", "as:todo-mcp-as", "scopes:todo0", "resource:todo0", "resource-as:todo0"]
SHIPPED_SCOPES_LINE = "scopes: [mcp:connect, mcp:tools:read]"
DOCTOR_TIMEOUT = 60


# --------------------------------------------------------------------------- the services


@dataclass
class Services:
    binary: Path
    base: Path
    idp: IdP
    todo0: Todo0

    def env(self, **overrides: str) -> dict[str, str]:
        """The variables the shipped connections.yaml reads, pointing at our services."""
        env = {
            "OKTA_ISSUER": self.idp.issuer,
            "MCP_AUTHORIZATION_SERVER": self.idp.as_issuer,
            "TODO0_MCP_URL": self.todo0.mcp_url,
            "TODO0_RESOURCE": TODO0_RESOURCE,
            # Never contacted by doctor (oauth-sts needs only the org token endpoint), but the
            # shipped defaults must not matter: point them at nothing.
            "GITHUB_API_URL": f"http://{HOST}:9",
            "GITHUB_MCP_SERVER_URL": f"http://{HOST}:9/mcp",
            "AGENT_KEY_FILE": str(self.idp.agent_key_file),
        }
        env.update(overrides)
        return env

    def tails(self) -> str:
        return self.idp.log_tail(3000) + self.todo0.log_tail(3000)


@pytest.fixture(scope="module")
def services(tmp_path_factory):
    binary = built_switchboard(REPO_ROOT)
    base = tmp_path_factory.mktemp("doctor")
    started: list = []
    try:
        idp = start_idp(binary, base)
        started.append(idp.proc)
        todo0 = start_todo0(binary, base, idp.issuer)
        started.append(todo0.proc)
        yield Services(binary=binary, base=base, idp=idp, todo0=todo0)
    finally:
        for proc in reversed(started):
            stop_process(proc)


# --------------------------------------------------------------------------- running doctor


@dataclass
class Run:
    returncode: int
    report: dict
    text: str
    stderr: str

    @property
    def checks(self) -> list[dict]:
        return self.report["checks"]

    @property
    def ids(self) -> list[str]:
        return [c["id"] for c in self.checks]

    def check(self, id_: str) -> dict:
        found = [c for c in self.checks if c["id"] == id_]
        assert len(found) == 1, f"check {id_!r} in {self.ids}"
        return found[0]

    def with_status(self, status: str) -> set[str]:
        return {c["id"] for c in self.checks if c["status"] == status}

    def explain(self) -> str:
        return f"exit {self.returncode}\n--- text ---\n{self.text}\n--- json ---\n{json.dumps(self.report, indent=2)}\n--- stderr ---\n{self.stderr}"


def rendered(check: dict) -> str:
    """A check as the text output prints it (DoctorCheck.rendered)."""
    if check["status"] == "pass":
        return f"✓ {check['title']}"
    if check["status"] == "skipped":
        return f"– {check['title']} ({check.get('detail') or 'not checked'})"
    lines = [f"✗ {check['title']}"]
    if check.get("detail"):
        lines.append("    " + check["detail"].replace("\n", "\n    "))
    if check.get("fix"):
        lines.append(f"    fix: {check['fix']}")
    return "\n".join(lines)


def doctor(services: Services, config: Path, env: dict[str, str]) -> Run:
    """`switchboard doctor FILE --json`, then `switchboard doctor FILE`: the JSON report, and
    the text output checked against it (same checks, same order, same exit code)."""
    full = _base_env()
    full.update(env)
    cmd = [str(services.binary), "doctor", str(config)]
    as_json = subprocess.run(cmd + ["--json"], capture_output=True, text=True, timeout=DOCTOR_TIMEOUT, env=full, cwd=str(config.parent))
    as_text = subprocess.run(cmd, capture_output=True, text=True, timeout=DOCTOR_TIMEOUT, env=full, cwd=str(config.parent))
    try:
        report = json.loads(as_json.stdout)
    except ValueError as e:
        raise AssertionError(f"doctor --json printed no JSON ({e}):\n{as_json.stdout}\n{as_json.stderr}") from e
    run = Run(returncode=as_json.returncode, report=report, text=as_text.stdout, stderr=as_json.stderr + as_text.stderr)

    # The report's shape.
    assert set(report) == {"ok", "checks"}, run.explain()
    assert isinstance(report["ok"], bool), run.explain()
    for c in report["checks"]:
        assert {"id", "status", "title"} <= set(c) <= {"id", "status", "title", "detail", "fix"}, c
        assert c["status"] in ("pass", "fail", "skipped"), c
        assert c["title"], c
    assert len(run.ids) == len(set(run.ids)), f"duplicate check ids: {run.ids}"
    # ok, the exit code and the statuses agree, in both modes.
    all_pass = all(c["status"] == "pass" for c in report["checks"])
    assert report["ok"] is all_pass, run.explain()
    assert as_json.returncode == (0 if all_pass else 1), run.explain()
    assert as_text.returncode == as_json.returncode, f"text exit {as_text.returncode}, json exit {as_json.returncode}\n{run.explain()}"
    # The text output is the same checks, rendered, in the same order, then the summary.
    expected_text = "\n".join(rendered(c) for c in report["checks"]) + "\n\n"
    not_passed = sum(c["status"] != "pass" for c in report["checks"])
    expected_text += (f"all {len(report['checks'])} checks passed" if all_pass
                      else f"{not_passed} of {len(report['checks'])} checks did not pass") + "\n"
    assert as_text.stdout == expected_text, run.explain()
    return run


def config_copy(services: Services, name: str, edit=None) -> Path:
    """A copy of the shipped connections.yaml (its own directory), optionally edited."""
    directory = services.base / "configs" / name
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "connections.yaml"
    shutil.copyfile(SHIPPED_CONFIG, path)
    if edit is not None:
        text = path.read_text()
        edited = edit(text)
        assert edited != text, f"the edit of {name} changed nothing: is the shipped connections.yaml still shaped as expected?"
        path.write_text(edited)
    return path


def assert_outcome(run: Run, *, fail: set[str], skipped: set[str] = frozenset(), ids: list[str] = ALL_IDS) -> None:
    """Exactly these checks fail, exactly these are skipped, every other one passes."""
    assert run.ids == ids, run.explain()
    assert run.with_status("fail") == set(fail), run.explain()
    assert run.with_status("skipped") == set(skipped), run.explain()
    assert run.with_status("pass") == set(ids) - set(fail) - set(skipped), run.explain()
    for c in run.checks:
        if c["status"] == "fail":
            assert (c.get("fix") or "").strip(), f"failed check without a fix: {c}"
        if c["status"] == "skipped":
            assert (c.get("detail") or "").startswith("not checked: "), c
            assert "fix" not in c, c
        if c["status"] == "pass":
            assert "fix" not in c and "detail" not in c, c


# --------------------------------------------------------------------------- thumbprints


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def rfc7638_thumbprint(pem: bytes) -> str:
    """RFC 7638 SHA-256 thumbprint of the public half of a private key: computed by hand (the
    required members in lexicographic order, no whitespace: e, kty, n for RSA; crv, kty, x, y
    for EC) and cross-checked with jwcrypto's own implementation."""
    key = serialization.load_pem_private_key(pem, password=None)
    if isinstance(key, rsa.RSAPrivateKey):
        public = public_jwk(key, "unused")
        members = {"e": public["e"], "kty": "RSA", "n": public["n"]}
    else:
        assert isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp256r1"
        numbers = key.public_key().public_numbers()
        members = {"crv": "P-256", "kty": "EC", "x": _b64url(numbers.x.to_bytes(32, "big")), "y": _b64url(numbers.y.to_bytes(32, "big"))}
    by_hand = _b64url(hashlib.sha256(json.dumps(members, separators=(",", ":"), sort_keys=True).encode()).digest())
    assert jwk.JWK.from_pem(pem).thumbprint() == by_hand
    return by_hand


def pkcs8(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def private_material(pem: bytes) -> list[str]:
    """Strings that would betray the private key if printed: the PEM's armour and body lines
    and the private JWK members."""
    text = pem.decode()
    found = ["-----BEGIN", "PRIVATE KEY"]
    found += [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("-----")]
    private = json.loads(jwk.JWK.from_pem(pem).export_private())
    found += [private[m] for m in ("d", "p", "q", "dp", "dq", "qi") if m in private]
    return found


# --------------------------------------------------------------------------- the tests


def test_healthy_system_passes_every_check(services: Services):
    config = config_copy(services, "healthy")
    run = doctor(services, config, services.env())
    assert run.returncode == 0, run.explain() + services.tails()
    assert run.report["ok"] is True, run.explain()
    assert set(ALL_IDS) <= set(run.ids), run.explain()
    assert run.with_status("pass") == set(run.ids), run.explain()
    assert_outcome(run, fail=set())
    # The passes say what they proved, with the values of this system.
    thumbprint = rfc7638_thumbprint(services.idp.agent_key_file.read_bytes())
    agent = run.check("agent-key")["title"]
    assert thumbprint in agent and "wlp-dev-agent0" in agent and services.idp.token_endpoint in agent, agent
    assert services.idp.as_issuer in run.check("as:todo-mcp-as")["title"], run.explain()
    assert TODO0_RESOURCE in run.check("resource:todo0")["title"], run.explain()
    assert f"all {len(run.ids)} checks passed" in run.text


@pytest.mark.parametrize("kind", ["rsa-2048", "ec-p256"])
def test_key_not_registered_fails_only_the_agent_key_check_and_names_its_thumbprint(services: Services, tmp_path: Path, kind: str):
    pem = pkcs8(new_rsa_key() if kind == "rsa-2048" else ec.generate_private_key(ec.SECP256R1()))
    key_file = tmp_path / "never-registered.pem"
    key_file.write_bytes(pem)
    thumbprint = rfc7638_thumbprint(pem)
    registered = rfc7638_thumbprint(services.idp.agent_key_file.read_bytes())
    assert thumbprint != registered

    run = doctor(services, config_copy(services, "wrong-key"), services.env(AGENT_KEY_FILE=str(key_file)))
    assert_outcome(run, fail={"agent-key"})
    check = run.check("agent-key")
    assert thumbprint in check["fix"], check
    assert registered not in json.dumps(check), f"the fix names the registered key, not the one configured: {check}"
    assert "wlp-dev-agent0" in check["title"] and "dev-agent0-key" in check["title"], check
    assert run.returncode == 1
    # No private key material, of either key, anywhere in what doctor printed.
    output = run.text + json.dumps(run.report) + run.stderr
    for secret in private_material(pem) + private_material(services.idp.agent_key_file.read_bytes()):
        assert secret not in output, f"doctor printed private key material ({secret[:12]}…)"


def test_unusable_agent_key_fails_only_the_agent_key_check(services: Services, tmp_path: Path):
    # A PEM private key doctor must refuse to sign with (RSA below 2048 bits).
    pem = pkcs8(rsa.generate_private_key(public_exponent=65537, key_size=1024))
    key_file = tmp_path / "weak.pem"
    key_file.write_bytes(pem)
    run = doctor(services, config_copy(services, "weak-key"), services.env(AGENT_KEY_FILE=str(key_file)))
    assert_outcome(run, fail={"agent-key"})
    assert "not a usable key" in run.check("agent-key")["title"], run.explain()
    output = run.text + json.dumps(run.report) + run.stderr
    for secret in private_material(pem):
        assert secret not in output, f"doctor printed private key material ({secret[:12]}…)"


def test_scope_the_authorization_server_does_not_offer(services: Services):
    missing = "mcp:tools:nonexistent"
    config = config_copy(services, "missing-scope", lambda t: t.replace(
        SHIPPED_SCOPES_LINE, f"scopes: [mcp:connect, mcp:tools:read, {missing}]"))
    run = doctor(services, config, services.env())
    assert_outcome(run, fail={"scopes:todo0"})
    check = run.check("scopes:todo0")
    assert missing in check["title"], check
    # Only the missing one is called missing: the scopes the AS does offer are not.
    called_missing = check["title"].rsplit("does not offer:", 1)[-1]
    assert "mcp:connect" not in called_missing and "mcp:tools:read" not in called_missing, check
    assert missing in check["fix"] or "auth.scopes" in check["fix"], check
    assert "todo-mcp-as" in check["title"], check
    # The detail lists what the AS does offer (the development directory's todo-mcp scopes).
    assert check["detail"] == "scopes_supported: " + ", ".join(sorted(services.idp.as_metadata()["scopes_supported"])), check
    assert run.returncode == 1


def test_resource_todo0_does_not_publish(services: Services):
    wrong = "http://127.0.0.1:5999/not-todo0"
    run = doctor(services, config_copy(services, "wrong-resource"), services.env(TODO0_RESOURCE=wrong))
    assert_outcome(run, fail={"resource:todo0"})
    published = requests.get(services.todo0.mcp_base + "/.well-known/oauth-protected-resource/mcp", timeout=5).json()["resource"]
    assert published == TODO0_RESOURCE
    check = run.check("resource:todo0")
    assert published in check["fix"], check
    assert wrong in check["title"] and published in check["title"], check
    assert run.returncode == 1


def test_unreachable_issuer_fails_issuer_and_skips_the_agent_key(services: Services):
    # A port bound but never listening: connections to it are refused, and nobody else can
    # take it while the test runs.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as closed:
        closed.bind((HOST, 0))
        dead = f"http://{HOST}:{closed.getsockname()[1]}"
        run = doctor(services, config_copy(services, "dead-issuer"), services.env(OKTA_ISSUER=dead))
    assert_outcome(run, fail={"issuer"}, skipped={"agent-key"})
    assert run.check("agent-key")["status"] != "pass"
    assert dead in run.check("issuer")["title"], run.explain()
    assert "not checked" in run.check("agent-key")["detail"], run.explain()
    assert run.returncode == 1 and run.report["ok"] is False
    assert "2 of 7 checks did not pass" in run.text, run.text


def test_authorization_server_that_does_not_exist(services: Services):
    nope = services.idp.issuer + "/oauth2/nope"
    assert requests.get(nope + "/.well-known/oauth-authorization-server", timeout=5).status_code != 200
    run = doctor(services, config_copy(services, "no-such-as"), services.env(MCP_AUTHORIZATION_SERVER=nope))
    # todo0 still names the real AS ({issuer}/oauth2/todo-mcp), so the connection's
    # authorization server is not the one its MCP server trusts: resource-as fails too.
    assert_outcome(run, fail={"as:todo-mcp-as", "resource-as:todo0"}, skipped={"scopes:todo0"})
    assert nope in run.check("as:todo-mcp-as")["detail"], run.explain()
    assert services.idp.as_issuer in run.check("resource-as:todo0")["title"], run.explain()
    assert run.returncode == 1


def _line_col(text: str, needle: str) -> tuple[int, int]:
    for number, line in enumerate(text.splitlines(), start=1):
        if needle in line:
            return number, line.index(needle) + 1
    raise AssertionError(f"{needle!r} not in the file")


@pytest.mark.parametrize("kind", ["unknown-key", "yaml-syntax"])
def test_invalid_config_is_the_only_check(services: Services, kind: str):
    if kind == "unknown-key":
        needle = "bogus_key: 1"
        config = config_copy(services, kind, lambda t: t.replace(
            "    title: Todo0 MCP Server\n", "    title: Todo0 MCP Server\n    bogus_key: 1\n"))
    else:
        needle = "[mcp:connect, mcp:tools:read"
        config = config_copy(services, kind, lambda t: t.replace(SHIPPED_SCOPES_LINE, "scopes: [mcp:connect, mcp:tools:read"))
    line, column = _line_col(config.read_text(), needle)
    run = doctor(services, config, services.env())
    assert_outcome(run, fail={"config"}, ids=["config"])
    assert run.returncode == 1 and run.report["ok"] is False
    detail = run.check("config")["detail"]
    if kind == "unknown-key":
        assert f"{config}:{line}:{column}:" in detail and "bogus_key" in detail, detail
    else:
        # The YAML parser reports where it gave up, which is on or after the broken line.
        m = re.search(re.escape(str(config)) + r":(\d+):(\d+):", detail)
        assert m, detail
        assert int(m.group(1)) >= line and int(m.group(2)) >= 1, detail


def test_json_of_a_failing_run_has_a_fix_for_every_failure(services: Services, tmp_path: Path):
    # Three things broken at once: a key never registered, a missing scope, a wrong resource.
    key_file = tmp_path / "stranger.pem"
    key_file.write_bytes(pkcs8(new_rsa_key()))
    config = config_copy(services, "many-broken", lambda t: t.replace(
        SHIPPED_SCOPES_LINE, "scopes: [mcp:connect, mcp:tools:read, mcp:tools:nonexistent]"))
    full = _base_env()
    full.update(services.env(AGENT_KEY_FILE=str(key_file), TODO0_RESOURCE="http://127.0.0.1:5999/other"))
    r = subprocess.run([str(services.binary), "doctor", str(config), "--json"], capture_output=True, text=True,
                       timeout=DOCTOR_TIMEOUT, env=full, cwd=str(config.parent))
    assert r.returncode == 1, r.stdout + r.stderr
    report = json.loads(r.stdout)  # stdout is exactly one JSON object
    assert report["ok"] is False
    failed = [c for c in report["checks"] if c["status"] == "fail"]
    assert {c["id"] for c in failed} == {"agent-key", "scopes:todo0", "resource:todo0"}, report
    for c in failed:
        assert isinstance(c.get("fix"), str) and c["fix"].strip(), c
    assert all(c["status"] == "pass" for c in report["checks"] if c not in failed), report
    # And the same through the shared runner (text agrees with JSON).
    assert_outcome(doctor(services, config, full), fail={"agent-key", "scopes:todo0", "resource:todo0"})
