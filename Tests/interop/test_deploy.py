"""deploy/: the gateway's image (deploy/Dockerfile, .dockerignore) and its Kubernetes manifests
(deploy/k8s/), checked without Docker or a cluster.

    deploy/k8s/*.yaml ──> kubernetes-validate (the OpenAPI schemas it bundles, strict)
                     ──> what the pod must be: probes, non-root, read-only root, mounts
    ConfigMap's connections.yaml + the Deployment's env + stand-ins for the Secret files
                     ──> `switchboard validate`, then `switchboard gateway` as the pod runs it:
                         uid 10001, no capabilities, a read-only root (a private mount
                         namespace), the kubelet's ConfigMap layout, a real PostgreSQL 15
    deploy/Dockerfile ──> the release build command, a non-root slim final stage, its HEALTHCHECK
                          run against that gateway
"""

from __future__ import annotations

import base64
import copy
import json
import os
import re
import secrets
import shlex
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import kubernetes_validate.utils as kv
import pytest
import requests
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from interop_helpers import HOST, built_switchboard, free_port, stop_process

REPO_ROOT = Path(__file__).resolve().parent.parent.parent
DEPLOY = REPO_ROOT / "deploy"
K8S = DEPLOY / "k8s"
DOCKERFILE = DEPLOY / "Dockerfile"
DOCKERIGNORE = REPO_ROOT / ".dockerignore"

# The Kubernetes versions the manifests are held to: the oldest that has every field they use
# (topologySpreadConstraints.matchLabelKeys, PDB unhealthyPodEvictionPolicy) among the versions
# kubernetes-validate bundles, and the newest it bundles.
K8S_VERSIONS = ("1.30", "1.37")
RELEASE_BUILD = "swift build -c release --product switchboard"
SECRETS_ROOT = "/var/run/secrets/switchboard"   # the default of ${SWITCHBOARD_SECRETS} in the ConfigMap


# --------------------------------------------------------------------------- reading deploy/


def manifest_files() -> list[Path]:
    return sorted(p for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")


def documents(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def all_resources() -> list[tuple[Path, dict]]:
    return [(p, d) for p in manifest_files() for d in documents(p)]


def resource(kind: str, name: str | None = None) -> dict:
    found = [d for _, d in all_resources() if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    assert len(found) == 1, f"expected one {kind} {name or ''} under deploy/k8s, found {len(found)}"
    return found[0]


def deployment() -> dict:
    return resource("Deployment")


def pod_spec() -> dict:
    return deployment()["spec"]["template"]["spec"]


def gateway_container() -> dict:
    (container,) = pod_spec()["containers"]
    return container


def container_port(container: dict, port) -> int:
    """A probe's or Service's port (a number or a port name) as the container's port number."""
    if isinstance(port, int):
        assert any(p["containerPort"] == port for p in container["ports"]), f"{port} is not a port of the container"
        return port
    (match,) = [p for p in container["ports"] if p.get("name") == port]
    return match["containerPort"]


def connections_yaml() -> str:
    return resource("ConfigMap", "switchboard-config")["data"]["connections.yaml"]


def secret_templates() -> dict[str, dict]:
    return {d["metadata"]["name"]: d for d in documents(K8S / "secret.template.yaml") if d["kind"] == "Secret"}


@dataclass
class Stage:
    name: str
    image: str
    instructions: list[tuple[str, str]]   # (INSTRUCTION, rest of the line), continuations joined

    def all(self, instruction: str) -> list[str]:
        return [rest for ins, rest in self.instructions if ins == instruction]

    def one(self, instruction: str) -> str:
        found = self.all(instruction)
        assert len(found) == 1, f"stage {self.name}: expected one {instruction}, found {found}"
        return found[0]


def dockerfile_stages() -> tuple[dict[str, str], list[Stage]]:
    """The Dockerfile's global ARG defaults and its stages, in order."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())   # line continuations
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, rest = line.partition(" ")
        instruction, rest = instruction.upper(), rest.strip()
        if instruction == "ARG" and not stages:
            name, _, default = rest.partition("=")
            args[name] = default
        elif instruction == "FROM":
            m = re.fullmatch(r"(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?", rest, re.IGNORECASE)
            assert m, f"unreadable FROM: {rest}"
            image = re.sub(r"\$\{(\w+)\}", lambda v: args.get(v.group(1), v.group(0)), m.group(1))
            stages.append(Stage(m.group(2) or str(len(stages)), image, []))
        else:
            assert stages, f"{instruction} before the first FROM"
            stages[-1].instructions.append((instruction, rest))
    return args, stages


def run_command(rest: str) -> str:
    """A RUN's shell command without its --mount/--network/--security options."""
    return re.sub(r"^(?:--\S+\s+)*", "", rest).strip()


def entrypoint() -> list[str]:
    _, stages = dockerfile_stages()
    return json.loads(stages[-1].one("ENTRYPOINT"))


def flag(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


def healthcheck_command() -> list[str]:
    _, stages = dockerfile_stages()
    rest = stages[-1].one("HEALTHCHECK")
    _, _, command = rest.partition(" CMD ")
    return json.loads(command)


# --------------------------------------------------------------------------- the schemas


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_every_manifest_validates_strictly_against_the_kubernetes_schema(version):
    resources = all_resources()
    errors = []
    for path, doc in resources:
        try:
            kv.validate(doc, version, strict=True)
        except kv.ValidationError as e:
            errors.append(f"{path.name} {doc['kind']}/{doc['metadata']['name']}: {'.'.join(map(str, e.path))}: {e.message}")
        except kv.SchemaNotFoundError as e:
            errors.append(f"{path.name}: {e.message}")
    assert not errors, "\n".join(errors)
    kinds = sorted({d["kind"] for _, d in resources})
    assert kinds == ["ConfigMap", "Deployment", "Namespace", "PodDisruptionBudget", "Secret", "Service"], kinds


def test_the_validation_is_strict_an_unknown_field_is_an_error():
    doc = copy.deepcopy(deployment())
    doc["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {"httpGet": {"path": "/readyz", "port": 8080}}
    with pytest.raises(kv.ValidationError, match="readinesProbe"):
        kv.validate(doc, K8S_VERSIONS[0], strict=True)
    doc = copy.deepcopy(deployment())
    doc["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = "8080"
    with pytest.raises(kv.ValidationError):
        kv.validate(doc, K8S_VERSIONS[0], strict=True)


def test_kustomization_lists_every_manifest_but_the_secret_template():
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    listed = kustomization["resources"]
    assert all((K8S / name).is_file() for name in listed), listed
    assert "secret.template.yaml" not in listed, "applying the template would overwrite the real Secrets"
    assert sorted(listed) == sorted(p.name for p in manifest_files() if p.name != "secret.template.yaml")
    for path, doc in all_resources():
        if doc["kind"] != "Namespace":
            assert doc["metadata"].get("namespace") == "switchboard", f"{path.name}: {doc['kind']} outside the namespace"


# --------------------------------------------------------------------------- what the pod must be


def test_probes_ask_readyz_and_healthz_on_the_container_port():
    container = gateway_container()
    port = flag(entrypoint(), "--port")
    _, stages = dockerfile_stages()
    assert stages[-1].one("EXPOSE") == port == "8080"
    readiness, liveness = container["readinessProbe"]["httpGet"], container["livenessProbe"]["httpGet"]
    assert readiness["path"] == "/readyz"
    assert liveness["path"] == "/healthz"
    assert container_port(container, readiness["port"]) == container_port(container, liveness["port"]) == int(port)
    # /readyz asks the database (SELECT 1, bounded at 2 s): the probe must wait longer than that.
    assert container["readinessProbe"].get("timeoutSeconds", 1) > 2
    # The gateway listens once the database answered (it waits up to 30 s): a startup probe on
    # /healthz covers that, so liveness does not restart a pod that is still waiting.
    startup = container["startupProbe"]
    assert startup["httpGet"]["path"] == "/healthz" and container_port(container, startup["httpGet"]["port"]) == int(port)
    assert startup.get("periodSeconds", 10) * startup.get("failureThreshold", 3) > 30


def test_service_and_disruption_budget_select_the_gateway_pods():
    labels = deployment()["spec"]["template"]["metadata"]["labels"]
    assert deployment()["spec"]["replicas"] == 3
    service = resource("Service")
    assert service["spec"].get("type", "ClusterIP") == "ClusterIP"
    assert service["spec"]["selector"].items() <= labels.items()
    (port,) = service["spec"]["ports"]
    assert port["port"] == 80 and container_port(gateway_container(), port["targetPort"]) == 8080
    pdb = resource("PodDisruptionBudget")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert pdb["spec"].get("maxUnavailable") == 1 or pdb["spec"].get("minAvailable") == 2, pdb["spec"]


def test_replicas_spread_across_nodes_and_stop_gracefully():
    spec = pod_spec()
    labels = deployment()["spec"]["template"]["metadata"]["labels"]
    by_node = [c for c in spec.get("topologySpreadConstraints", []) if c["topologyKey"] == "kubernetes.io/hostname"]
    anti = spec.get("affinity", {}).get("podAntiAffinity", {})
    anti_terms = anti.get("requiredDuringSchedulingIgnoredDuringExecution", []) + [
        t["podAffinityTerm"] for t in anti.get("preferredDuringSchedulingIgnoredDuringExecution", [])]
    by_node += [t for t in anti_terms if t["topologyKey"] == "kubernetes.io/hostname"]
    assert by_node, "no spread of the replicas across nodes"
    assert all(c["labelSelector"]["matchLabels"].items() <= labels.items() for c in by_node)
    # In-flight calls may wait up to timeouts.response (30 s) for an upstream's answer head.
    sleep = gateway_container()["lifecycle"]["preStop"]["exec"]["command"]
    assert sleep[0] == "sleep"
    assert spec["terminationGracePeriodSeconds"] >= 30 + int(sleep[1])


def test_the_pod_runs_as_non_root_on_a_read_only_root():
    spec, container = pod_spec(), gateway_container()
    _, stages = dockerfile_stages()
    uid, _, gid = stages[-1].one("USER").partition(":")
    assert uid.isdigit() and int(uid) > 0
    pod_sc, sc = spec["securityContext"], container["securityContext"]
    assert pod_sc["runAsNonRoot"] is True and sc["runAsNonRoot"] is True
    assert pod_sc["runAsUser"] == sc["runAsUser"] == int(uid)
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"] and not sc["capabilities"].get("add")
    assert pod_sc["seccompProfile"]["type"] == sc["seccompProfile"]["type"] == "RuntimeDefault"
    assert spec["automountServiceAccountToken"] is False
    assert resource("Namespace")["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= container["resources"][kind].keys()


def test_the_configmap_is_mounted_as_a_directory_without_subpath():
    config = flag(entrypoint(), "--config")
    volumes = {v["name"]: v for v in pod_spec()["volumes"]}
    mounts = gateway_container()["volumeMounts"]
    (mount,) = [m for m in mounts if volumes[m["name"]].get("configMap", {}).get("name") == "switchboard-config"]
    assert "subPath" not in mount and "subPathExpr" not in mount, "a subPath mount never sees the ConfigMap's updates"
    assert mount["mountPath"] == os.path.dirname(config)
    assert "items" not in volumes[mount["name"]]["configMap"]
    assert os.path.basename(config) in resource("ConfigMap", "switchboard-config")["data"]
    assert not [m for m in mounts if "subPath" in m or "subPathExpr" in m]


def secret_file_paths() -> list[str]:
    """The files the ConfigMap's connections.yaml reads (file: settings), at their pod paths."""
    paths = re.findall(r"file:(\S+)", connections_yaml())
    assert paths, "the ConfigMap's connections.yaml reads no secret file"
    out = []
    for p in paths:
        m = re.fullmatch(r"\$\{SWITCHBOARD_SECRETS:-([^}]+)\}(/\S+)", p)
        assert m and m.group(1) == SECRETS_ROOT, f"{p}: secrets are read under ${{SWITCHBOARD_SECRETS:-{SECRETS_ROOT}}}"
        out.append(m.group(1) + m.group(2))
    return out


def test_every_secret_the_config_reads_is_a_mounted_secret_file_never_an_env_var():
    volumes = {v["name"]: v for v in pod_spec()["volumes"]}
    mounts = {m["mountPath"]: m for m in gateway_container()["volumeMounts"]}
    templates = secret_templates()
    for path in secret_file_paths():
        directory, key = os.path.dirname(path), os.path.basename(path)
        assert directory in mounts, f"{path}: no volume mounted at {directory}"
        volume = volumes[mounts[directory]["name"]]
        assert "secret" in volume, f"{path} is not from a Secret"
        assert key in templates[volume["secret"]["secretName"]]["stringData"], f"{path}: not a key of the Secret"
        assert mounts[directory].get("readOnly") is True
        # Owner-readable for root, group-readable for fsGroup (= the gateway's group), no one else.
        assert volume["secret"]["defaultMode"] & 0o007 == 0
    assert pod_spec()["securityContext"]["fsGroup"] == gateway_container()["securityContext"]["runAsGroup"]
    container = gateway_container()
    assert not [e for e in container.get("env", []) if "secretKeyRef" in e.get("valueFrom", {})]
    assert not [e for e in container.get("envFrom", []) if "secretRef" in e]


def test_the_audit_trail_writes_no_file_in_the_pod():
    config = yaml.safe_load(connections_yaml())
    audit = config["gateway"]["audit"]
    # The default, .switchboard/audit.sqlite next to connections.yaml, is inside the read-only
    # ConfigMap volume; the pod has no writable volume at all.
    # (PyYAML reads a bare `off` as YAML 1.1's false; the gateway's YAML reader takes it as the word.)
    assert audit["sqlite"] in ("off", False)
    assert re.search(r"^\s+sqlite: off\s*(#.*)?$", connections_yaml(), re.M)
    assert audit["jsonl"] == "stdout"
    assert not [v for v in pod_spec()["volumes"] if "emptyDir" in v or "persistentVolumeClaim" in v]


# --------------------------------------------------------------------------- the pod's files, here


def deployment_env() -> dict[str, str]:
    """The container's environment as Kubernetes would build it from the manifests."""
    env: dict[str, str] = {}
    container = gateway_container()
    for source in container.get("envFrom", []):
        env.update(resource("ConfigMap", source["configMapRef"]["name"])["data"])
    for var in container.get("env", []):
        if "value" in var:
            env[var["name"]] = var["value"]
        else:
            ref = var["valueFrom"]["configMapKeyRef"]
            env[var["name"]] = resource("ConfigMap", ref["name"])["data"][ref["key"]]
    return env


def write_configmap_version(config_dir: Path, files: dict[str, str]) -> None:
    """The kubelet's atomic writer: a timestamped directory, `..data` pointing at it (swapped by a
    rename), and each key a symlink through `..data`."""
    version = config_dir / (time.strftime("..%Y_%m_%d_%H_%M_%S.") + str(time.monotonic_ns()))
    version.mkdir(parents=True)
    for name, text in files.items():
        (version / name).write_text(text)
        (version / name).chmod(0o444)
    version.chmod(0o755)
    old = (config_dir / "..data").resolve() if (config_dir / "..data").is_symlink() else None
    (config_dir / "..data_tmp").symlink_to(version.name)
    os.replace(config_dir / "..data_tmp", config_dir / "..data")
    for name in files:
        if not (config_dir / name).is_symlink():
            (config_dir / name).symlink_to(f"..data/{name}")
    if old is not None:
        shutil.rmtree(old)


def real_secret_values() -> dict[str, dict[str, str]]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()
    return {
        "switchboard-agent-key": {"private-key.pem": pem},
        "switchboard-state-key": {"state-key-1": base64.b64encode(secrets.token_bytes(48)).decode() + "\n"},
        "switchboard-postgres": {"password": "pw-" + secrets.token_hex(12) + "\n"},
    }


def lay_out_pod(root: Path, values: dict[str, dict[str, str]], gid: int) -> Path:
    """The pod's view under `root`: the ConfigMap at its mount path (the kubelet's layout), each
    Secret at its mount path with the volume's mode, group `gid` (fsGroup). Returns the config."""
    root.mkdir(parents=True, exist_ok=True)
    root.chmod(0o755)
    volumes = {v["name"]: v for v in pod_spec()["volumes"]}
    config = flag(entrypoint(), "--config")
    for mount in gateway_container()["volumeMounts"]:
        volume = volumes[mount["name"]]
        target = root / mount["mountPath"].lstrip("/")
        target.mkdir(parents=True, exist_ok=True)
        walk = target
        while walk != root:   # traversable by the pod's uid, as the image's directories are
            walk.chmod(0o755)
            walk = walk.parent
        if "configMap" in volume:
            write_configmap_version(target, resource("ConfigMap", volume["configMap"]["name"])["data"])
        else:
            name = volume["secret"]["secretName"]
            for key in secret_templates()[name]["stringData"]:
                f = target / key
                f.write_text(values[name][key])
                if os.geteuid() == 0:
                    os.chown(f, 0, gid)   # root:fsGroup, as the kubelet leaves a Secret's files
                f.chmod(volume["secret"]["defaultMode"])
    return root / config.lstrip("/")


def validate_env(root: Path) -> dict[str, str]:
    return {"PATH": os.environ["PATH"], "SWITCHBOARD_SECRETS": str(root) + SECRETS_ROOT, **deployment_env()}


def test_the_configmaps_connections_yaml_passes_switchboard_validate(tmp_path):
    binary = built_switchboard(REPO_ROOT)
    config = lay_out_pod(tmp_path / "pod", real_secret_values(), gid=os.getegid())
    env = validate_env(tmp_path / "pod")
    r = subprocess.run([str(binary), "validate", str(config)], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "OK, 4 connection(s)" in r.stdout, r.stdout
    # Every ${VAR} it reads is set by the Deployment: without the env ConfigMap it fails.
    bare = {"PATH": os.environ["PATH"], "SWITCHBOARD_SECRETS": env["SWITCHBOARD_SECRETS"]}
    r = subprocess.run([str(binary), "validate", str(config)], env=bare, capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "is not set" in r.stdout + r.stderr


def test_the_secret_templates_placeholders_are_refused(tmp_path):
    """A pod never starts on the template's values: `switchboard validate` (and so the gateway's
    start) refuses the state key. (The agent key's placeholder passes validate, which checks the
    plugin's parameters, not the key; the gateway's start refuses it when the plugin is set up.)"""
    binary = built_switchboard(REPO_ROOT)
    placeholders = {name: d["stringData"] for name, d in secret_templates().items()}
    assert all("REPLACE-ME" in v for values in placeholders.values() for v in values.values())
    config = lay_out_pod(tmp_path / "pod", placeholders, gid=os.getegid())
    r = subprocess.run([str(binary), "validate", str(config)], env=validate_env(tmp_path / "pod"), capture_output=True, text=True, timeout=60)
    out = r.stdout + r.stderr
    assert r.returncode == 1, out
    assert "state key must be at least 32 characters" in out, out


# --------------------------------------------------------------------------- the gateway as the pod runs it


@dataclass
class Pod:
    proc: subprocess.Popen
    url: str
    port: int
    root: Path
    config_dir: Path
    stderr: Path
    stdout: Path
    pg: object

    def log(self) -> str:
        return self.stderr.read_text(errors="replace")


def _can_isolate() -> str | None:
    if os.geteuid() != 0:
        return "needs root (a private mount namespace, setpriv to the pod's uid)"
    for tool in ("unshare", "setpriv", "mount"):
        if not shutil.which(tool):
            return f"{tool} not found (util-linux)"
    probe = subprocess.run(["unshare", "-m", "--propagation", "private", "--", "sh", "-c", "mount -o remount,bind,ro / && ! touch /.sb-ro-probe 2>/dev/null"],
                           capture_output=True, text=True, timeout=30)
    return None if probe.returncode == 0 else f"cannot remount / read-only in a mount namespace here: {probe.stderr.strip()}"


@pytest.fixture(scope="module")
def pod(tmp_path_factory):
    """`switchboard gateway` started with the image's entrypoint arguments, the Deployment's
    environment, uid/gid from the image's USER, no capabilities, no_new_privs, and `/` read-only
    (a private mount namespace): the pod's read-only root and no writable volume. PostgreSQL is a
    real one on loopback (the manifests' PG_HOST/PG_PORT/PG_SSLMODE are replaced for it)."""
    reason = _can_isolate()
    if reason:
        pytest.skip(reason)
    from postgres_fixtures import remove_postgres, start_postgres

    binary = built_switchboard(REPO_ROOT)
    _, stages = dockerfile_stages()
    uid, _, gid = stages[-1].one("USER").partition(":")
    gid = gid or uid
    pg = start_postgres()
    root = Path(tempfile.mkdtemp(prefix="sb-pod-"))
    logs = tmp_path_factory.mktemp("pod-logs")
    proc = None
    try:
        values = real_secret_values()
        values["switchboard-postgres"]["password"] = pg.password + "\n"
        config = lay_out_pod(root, values, gid=int(gid))
        port = free_port()
        argv = entrypoint()
        assert argv[0] == "/usr/local/bin/switchboard" and argv[1] == "gateway"
        argv = [str(binary), *argv[1:]]
        argv[argv.index("--config") + 1] = str(config)
        argv[argv.index("--port") + 1] = str(port)
        env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/nonexistent",
               **deployment_env(), "SWITCHBOARD_SECRETS": str(root) + SECRETS_ROOT,
               "PG_HOST": HOST, "PG_PORT": str(pg.port), "PG_SSLMODE": "disable"}
        isolate = ("mount -o remount,bind,ro / && exec setpriv --reuid \"$SB_UID\" --regid \"$SB_GID\" --clear-groups "
                   "--inh-caps=-all --bounding-set=-all --no-new-privs -- \"$@\"")
        stderr, stdout = logs / "gateway.stderr.log", logs / "gateway.stdout.log"
        with open(stderr, "wb") as err, open(stdout, "wb") as out:
            proc = subprocess.Popen(["unshare", "-m", "--propagation", "private", "--", "sh", "-c", isolate, "sh", *argv],
                                    env={**env, "SB_UID": uid, "SB_GID": gid}, stdin=subprocess.DEVNULL, stdout=out, stderr=err, cwd="/")
        url = f"http://{HOST}:{port}"
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                pytest.fail(f"the gateway exited ({proc.returncode}) as the pod would run it:\n{stderr.read_text(errors='replace')[-4000:]}")
            try:
                if requests.get(url + "/readyz", timeout=3).status_code == 200:
                    break
            except requests.RequestException:
                pass
            assert time.monotonic() < deadline, stderr.read_text(errors="replace")[-4000:]
            time.sleep(0.2)
        yield Pod(proc, url, port, root, config.parent, stderr, stdout, pg)
    finally:
        if proc is not None:
            stop_process(proc)
        remove_postgres(pg)
        shutil.rmtree(root, ignore_errors=True)


def test_the_gateway_runs_as_the_pod_would(pod):
    ready = requests.get(pod.url + "/readyz", timeout=5)
    assert ready.status_code == 200 and ready.json()["state"] == "shared", ready.text
    assert requests.get(pod.url + "/healthz", timeout=5).json() == {"status": "ok"}
    names = sorted(c["name"] for c in requests.get(pod.url + "/api/connections", timeout=5).json()["connections"])
    assert names == ["github", "github-mcp", "todo-mcp-as", "todo0"]
    # The schema was migrated into the database the Deployment's env names.
    assert pod.pg.psql("SELECT count(*) FROM switchboard_schema") not in ("", "0")
    assert pod.pg.psql("SELECT to_regclass('switchboard_credential') IS NOT NULL") == "t"
    # It ran as the image's USER, and nothing went wrong on the read-only root (a write would
    # have been refused and logged).
    _, stages = dockerfile_stages()
    uid = stages[-1].one("USER").partition(":")[0]
    status = Path(f"/proc/{pod.proc.pid}/status").read_text()
    assert re.search(rf"^Uid:\s+{uid}\s+{uid}\s+{uid}\s+{uid}$", status, re.M), status
    assert re.search(r"^CapEff:\s+0+$", status, re.M) and re.search(r"^NoNewPrivs:\s+1$", status, re.M), status
    levels = [json.loads(line).get("level", "") for line in pod.log().splitlines() if line.startswith("{")]
    assert levels, "LOG_FORMAT=json from the Deployment: no JSON log line"
    assert not [lv for lv in levels if lv.lower() in ("error", "critical")], pod.log()[-4000:]
    assert "Read-only file system" not in pod.log()


def test_the_images_healthcheck_passes_against_it_and_fails_without_it(pod):
    command = healthcheck_command()
    assert command[0] == "bash" and "/healthz" in command[-1] and "/8080" in command[-1]
    here = [*command[:-1], command[-1].replace("/8080", f"/{pod.port}")]
    r = subprocess.run(here, capture_output=True, text=True, timeout=10)
    assert r.returncode == 0, r.stderr
    closed = [*command[:-1], command[-1].replace("/8080", f"/{free_port()}")]
    assert subprocess.run(closed, capture_output=True, text=True, timeout=10).returncode != 0


def test_a_configmap_update_reaches_the_running_gateway(pod):
    """The kubelet's update (a new ..data directory, the link swapped) is seen by the watcher,
    which fingerprints the file through its symlinks (it once read the link itself: no reload)."""
    before = requests.get(pod.url + "/readyz", timeout=5).json()["generation"]
    text = connections_yaml() + (
        "\n  - name: extra-as\n    kind: authorization_server\n    issuer: ${OKTA_ISSUER}/oauth2/extra\n")
    write_configmap_version(pod.config_dir, {"connections.yaml": text})
    deadline = time.monotonic() + 5
    names: list[str] = []
    while time.monotonic() < deadline:
        names = [c["name"] for c in requests.get(pod.url + "/api/connections", timeout=5).json()["connections"]]
        if "extra-as" in names:
            break
        time.sleep(0.25)
    assert "extra-as" in names, f"no reload within 5 s (generation {before}); connections: {names}"
    assert requests.get(pod.url + "/readyz", timeout=5).json()["generation"] != before


def test_sigterm_stops_it_within_the_grace_period(pod):
    grace = pod_spec()["terminationGracePeriodSeconds"] - int(gateway_container()["lifecycle"]["preStop"]["exec"]["command"][1])
    pod.proc.terminate()
    started = time.monotonic()
    assert pod.proc.wait(timeout=grace) == 0
    assert time.monotonic() - started < grace


# --------------------------------------------------------------------------- the image


def test_the_build_stage_runs_the_release_build_of_the_benchmarks_and_ci():
    _, stages = dockerfile_stages()
    build, final = stages[0], stages[-1]
    assert len(stages) >= 2, "a multi-stage build"
    commands = [run_command(r) for r in build.all("RUN")]
    assert RELEASE_BUILD in commands, commands
    # The command the benchmarks document (they add only a --scratch-path of their own).
    assert RELEASE_BUILD in (REPO_ROOT / "bench" / "todo0").read_text()
    # The build has the libraries .ci/run installs for it.
    ci = (REPO_ROOT / ".ci" / "run").read_text()
    ci_libs = set(re.search(r"apt-get install[^\n]*?(libssl-dev[^\n>]*)", ci).group(1).split()) - {"wrk"}
    installed = " ".join(build.all("RUN"))
    assert all(lib in installed for lib in ci_libs), (ci_libs, installed)
    # What leaves the build stage is the binary that command made, and nothing else.
    copies = final.all("COPY")
    assert len(copies) == 1 and copies[0].startswith(f"--from={build.name} "), copies
    assert copies[0].split()[2] == entrypoint()[0]
    (install,) = [c for c in commands if c.startswith("install ")]
    assert ".build/release/switchboard" in install and install.split()[-1] == copies[0].split()[1]


def test_the_final_stage_is_slim_and_non_root():
    args, stages = dockerfile_stages()
    build, final = stages[0], stages[-1]
    assert final.image.endswith("-slim") and final.image.startswith("swift:"), final.image
    assert build.image == final.image.removesuffix("-slim"), (build.image, final.image)
    uid, _, gid = final.one("USER").partition(":")
    assert uid.isdigit() and int(uid) > 0 and (not gid or gid.isdigit()), "a numeric non-root USER"
    assert final.one("EXPOSE") == "8080"
    assert entrypoint() == ["/usr/local/bin/switchboard", "gateway", "--host", "0.0.0.0", "--port", "8080",
                            "--config", "/etc/switchboard/connections.yaml"]
    assert not final.all("ADD")


# Where each shared library the binary links comes from in the final image.
PROVIDED_BY_BASE = re.compile(r"^(linux-vdso|ld-linux[\w-]*|libc|libm|libdl|librt|libpthread|libutil|libstdc\+\+|libgcc_s|libz)\.so")
# The Swift runtime (the toolchain's lib/swift/linux), which the slim image carries.
SWIFT_RUNTIME = re.compile(r"^(libswift\w*|lib_?Foundation\w*|libdispatch|libBlocksRuntime)\.so")
PACKAGE_OF = {"libsqlite3.so.0": "libsqlite3-0", "libcurl.so.4": "libcurl4", "libssl.so.3": "libssl3",
              "libcrypto.so.3": "libssl3", "libyaml-0.so.2": "libyaml-0-2", "libxml2.so.2": "libxml2"}


def test_the_final_stage_installs_every_library_the_binary_links():
    binary = built_switchboard(REPO_ROOT)
    r = subprocess.run(["ldd", str(binary)], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    _, stages = dockerfile_stages()
    installed = " ".join(stages[-1].all("RUN"))
    missing = []
    for line in r.stdout.splitlines():
        m = re.match(r"\s*(\S+)(?:\s+=>\s+(\S+))?", line)
        name = os.path.basename(m.group(1))
        if PROVIDED_BY_BASE.match(name) or SWIFT_RUNTIME.match(name):
            continue
        package = PACKAGE_OF.get(name)
        if package is None or not re.search(rf"\b{re.escape(package)}\b", installed):
            missing.append(f"{name} ({package or 'unknown package'})")
    assert not missing, f"the final stage does not install: {missing}"
    assert "ca-certificates" in installed, "the trust roots for the IdP, upstreams and PostgreSQL over TLS"


def dockerignore_excludes(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last pattern that matches the path or one of its parent directories
    decides; `!` re-includes. `*` and `?` stay within a path segment, `**` spans any."""
    def regex(p: str) -> re.Pattern:
        out, i = "", 0
        while i < len(p):
            if p.startswith("**/", i):
                out, i = out + "(?:.*/)?", i + 3
            elif p.startswith("**", i):
                out, i = out + ".*", i + 2
            elif p[i] == "*":
                out, i = out + "[^/]*", i + 1
            elif p[i] == "?":
                out, i = out + "[^/]", i + 1
            elif p[i] == "[":
                j = p.index("]", i)
                out, i = out + "[" + p[i + 1:j].replace("!", "^", 1) + "]", j + 1
            else:
                out, i = out + re.escape(p[i]), i + 1
        return re.compile(out)
    parts = path.split("/")
    prefixes = ["/".join(parts[:n]) for n in range(1, len(parts) + 1)]
    excluded = False
    for raw in patterns:
        negate = raw.startswith("!")
        pattern = os.path.normpath(raw.lstrip("!").strip()).lstrip("/")
        if any(regex(pattern).fullmatch(prefix) for prefix in prefixes):
            excluded = not negate
    return excluded


def test_dockerignore_keeps_build_output_and_local_state_out_and_the_sources_in():
    patterns = [line.strip() for line in DOCKERIGNORE.read_text().splitlines() if line.strip() and not line.startswith("#")]
    for path in (".build/release/switchboard", ".build/debug/switchboard", ".build-release/release/switchboard",
                 ".build-fuzz/x", ".switchboard/audit.sqlite", ".switchboard/agent0-private-key.pem",
                 "Tests/interop/artifacts/run.log", ".git/HEAD", "Tests/interop/__pycache__/x.pyc"):
        assert dockerignore_excludes(path, patterns), f"{path} would be sent to the build"
    tracked = subprocess.run(["git", "ls-files", "Package.swift", "Sources", "Plugins", "Tests"], cwd=REPO_ROOT,
                             capture_output=True, text=True, timeout=30, check=True).stdout.split()
    needed = [p for p in tracked if not p.startswith("Tests/interop/")] + ["Package.resolved"]
    assert len(needed) > 100
    left_out = [p for p in needed if dockerignore_excludes(p, patterns)]
    assert not left_out, f"the build needs these, .dockerignore leaves them out: {left_out[:10]}"


# --------------------------------------------------------------------------- the docs


def test_the_scale_out_doc_names_what_exists_and_the_numbers_the_code_has():
    doc = (REPO_ROOT / "docs" / "scale-out.md").read_text()
    for ref in set(re.findall(r"\b(deploy/[\w./-]+\w)", doc)):
        assert (REPO_ROOT / ref).exists(), f"docs/scale-out.md names {ref}, which does not exist"
    assert "docs/scale-out.md" in (REPO_ROOT / "README.md").read_text()
    # The constants the capacity estimate is built on, as the code has them.
    sources = REPO_ROOT / "Sources"
    facts = {
        "maximumConnections = 20": (sources / "PostgresState" / "PostgresStateStore.swift", "20 connections"),
        "refreshMargin: TimeInterval = 30": (sources / "Gateway" / "Proxy" / "Pipeline" / "CredentialResolver.swift", "30 s"),
        "SingleFlightCache(capacity: 100_000": (sources / "Gateway" / "Runtime" / "Connection.swift", "100,000"),
        "lease: Duration = .seconds(15)": (sources / "Gateway" / "Proxy" / "Pipeline" / "SharedCredentials.swift", "15 s"),
        "prefix(6)": (sources / "PostgresState" / "CredentialSeal.swift", "12 hex"),
    }
    for code, (path, in_doc) in facts.items():
        assert code in path.read_text(), f"{path.name} no longer has `{code}`: update docs/scale-out.md's estimate"
        assert in_doc in doc, f"docs/scale-out.md does not state {in_doc!r}"
