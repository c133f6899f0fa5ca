#!/usr/bin/env python3
"""Extracts the JSON samples of Tests/interop/okta_samples/ from Okta's published OpenAPI spec.

    python3 Tests/interop/okta_samples/extract.py /tmp/okta-api.yaml [okta-sdk-nodejs/oas-spec/management.yaml]

The first argument is `openapi/api.yaml` of okta/okta-sdk-python (commit SPEC["commit"]). It
writes, next to this script:

* one `<operation>.<request|response>.json` per example of SAMPLES: the example's `value`,
  verbatim;
* `schemas.json`: `samples` names for each sample the schema it is an instance of; `schemas` holds
  those schemas resolved ($ref, allOf, oneOf by the example's discriminator value) and reduced to
  what the tests read: type, properties, required, items, additionalProperties (when true),
  readOnly (when true) and `ref` (the component the node came from);
* `operations.json`: OPERATIONS (the calls `okta bootstrap` makes and the samples' operations),
  each with its method, path, success status and request and response samples; ERRORS, the
  status of each error sample (the components/responses entry it is the example of).

The optional second argument (okta-sdk-nodejs's `oas-spec/management.yaml`) cross-checks the
operations python's spec lists without operations (/workload-principals: AI agents, their keys,
connections and operations): their statuses and request schemas are that spec's.

The extraction is deterministic; test_okta_spec_samples.py re-runs it when /tmp/okta-api.yaml
exists and compares with the committed files.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent

SPEC = {
    "file": "openapi/api.yaml",
    "repository": "okta/okta-sdk-python",
    "commit": "f68509793adefde945ab53ff38f83fab578e3966",
    "date": "2026-07-01",
    "license": "Apache-2.0",
}
NODEJS_SPEC = {
    "file": "oas-spec/management.yaml",
    "repository": "okta/okta-sdk-nodejs",
    "commit": "92560f9364728c0ef37017c593ec3282cffa1f65",
    "date": "2026-05-06",
    "license": "Apache-2.0",
}

# (file stem, components/examples name, components/schemas name the example is an instance of)
SAMPLES: list[tuple[str, str, str]] = [
    ("create-authorization-server.request", "CreateAuthServerBody", "AuthorizationServer"),
    ("create-authorization-server.response", "CreateAuthServerResponse", "AuthorizationServer"),
    ("get-authorization-server.response", "RetrieveAuthServerResponse", "AuthorizationServer"),
    ("create-scope.request", "CreateOAuth2ScopeRequest", "OAuth2Scope"),
    ("create-scope.response", "ExampleOAuth2Scope", "OAuth2Scope"),
    ("create-policy.request", "CreateAuthorizationServerPolicyRequest", "AuthorizationServerPolicy"),
    ("create-policy.response", "AuthorizationServerPolicy", "AuthorizationServerPolicy"),
    ("create-policy-rule.request", "CreateAuthorizationServerPolicyRuleRequest", "AuthorizationServerPolicyRuleRequest"),
    ("create-policy-rule.response", "AuthorizationServerPolicyRule", "AuthorizationServerPolicyRule"),
    ("create-oidc-app.request", "OpenidConnectEx", "Application"),
    ("create-oidc-app.response", "OpenidConnectResponseEx", "Application"),
    ("assign-app-user.request", "AppUserAssignSSORequest", "AppUserAssignRequest"),
    ("assign-app-user.response", "AppUserSSOResponse", "AppUser"),
    ("assign-app-group.request", "GroupAssignmentPutRequestExample", "ApplicationGroupAssignment"),
    ("assign-app-group.response", "GroupAssignmentPutResponseExample", "ApplicationGroupAssignment"),
    ("create-trusted-origin.request", "TrustedOriginBody", "TrustedOriginWrite"),
    ("create-trusted-origin.response", "TrustedOriginResponse", "TrustedOrigin"),
    ("get-user.response", "user-example", "User"),
    ("register-ai-agent.request", "CreateAIAgentRequest", "CreateAIAgentRequest"),
    ("get-ai-agent.response", "AIAgentResponse", "AIAgent"),
    ("add-ai-agent-jwk.request", "agentJsonWebKeyRequest", "AgentJsonSigningKeyRequest"),
    ("add-ai-agent-jwk.response", "agentJsonWebKey", "AgentJsonSigningKeyResponse"),
    ("create-managed-connection.request", "create-managed-connection-identity-assertion-custom-as-example", "ManagedConnectionCreatable"),
    # The spec's create-response example is an IDENTITY_ASSERTION_APP_INSTANCE connection; its
    # IDENTITY_ASSERTION_CUSTOM_AS example is getManagedConnection's (same schema, ManagedConnection).
    ("get-managed-connection.response", "get-managed-connection-identity-assertion-custom-as-response-example", "ManagedConnection"),
    ("get-ai-agent-operation.response", "AIAgentOperationCompletedResponse", "AIAgentOperationResponse"),
    ("get-ai-agent-operation-in-progress.response", "AIAgentOperationInProgressResponse", "AIAgentOperationResponse"),
    ("error-validation.response", "ErrorApiValidationFailed", "Error"),
    ("error-conflict.response", "ErrorApiValidationConflict", "Error"),
    ("error-not-found.response", "ErrorResourceNotFound", "Error"),
    ("error-invalid-token.response", "ErrorInvalidTokenProvided", "Error"),
]

AGENTS = "/workload-principals/api/v1/ai-agents"
# operationId: (method, path, success status, request sample stem or None, response sample stem or None).
# Every call `okta bootstrap` makes is here. `None` as request: the operation has no request body.
OPERATIONS: dict[str, tuple[str, str, int, str | None, str | None]] = {
    "listAuthorizationServers": ("GET", "/api/v1/authorizationServers", 200, None, None),
    "createAuthorizationServer": ("POST", "/api/v1/authorizationServers", 201, "create-authorization-server.request", "create-authorization-server.response"),
    "getAuthorizationServer": ("GET", "/api/v1/authorizationServers/{authServerId}", 200, None, "get-authorization-server.response"),
    "activateAuthorizationServer": ("POST", "/api/v1/authorizationServers/{authServerId}/lifecycle/activate", 204, None, None),
    "activateAuthorizationServerPolicy": ("POST", "/api/v1/authorizationServers/{authServerId}/policies/{policyId}/lifecycle/activate", 204, None, None),
    "activateAuthorizationServerPolicyRule": ("POST", "/api/v1/authorizationServers/{authServerId}/policies/{policyId}/rules/{ruleId}/lifecycle/activate", 204, None, None),
    "listOAuth2Scopes": ("GET", "/api/v1/authorizationServers/{authServerId}/scopes", 200, None, None),
    "createOAuth2Scope": ("POST", "/api/v1/authorizationServers/{authServerId}/scopes", 201, "create-scope.request", "create-scope.response"),
    "listAuthorizationServerPolicies": ("GET", "/api/v1/authorizationServers/{authServerId}/policies", 200, None, None),
    "createAuthorizationServerPolicy": ("POST", "/api/v1/authorizationServers/{authServerId}/policies", 201, "create-policy.request", "create-policy.response"),
    "getAuthorizationServerPolicy": ("GET", "/api/v1/authorizationServers/{authServerId}/policies/{policyId}", 200, None, None),
    "getAuthorizationServerPolicyRule": ("GET", "/api/v1/authorizationServers/{authServerId}/policies/{policyId}/rules/{ruleId}", 200, None, None),
    "getOAuth2Scope": ("GET", "/api/v1/authorizationServers/{authServerId}/scopes/{scopeId}", 200, None, None),
    "getTrustedOrigin": ("GET", "/api/v1/trustedOrigins/{trustedOriginId}", 200, None, None),
    "getApplicationUser": ("GET", "/api/v1/apps/{appId}/users/{userId}", 200, None, None),
    "getApplicationGroupAssignment": ("GET", "/api/v1/apps/{appId}/groups/{groupId}", 200, None, None),
    "listAuthorizationServerPolicyRules": ("GET", "/api/v1/authorizationServers/{authServerId}/policies/{policyId}/rules", 200, None, None),
    "createAuthorizationServerPolicyRule": ("POST", "/api/v1/authorizationServers/{authServerId}/policies/{policyId}/rules", 201, "create-policy-rule.request", "create-policy-rule.response"),
    "listApplications": ("GET", "/api/v1/apps", 200, None, None),
    "createApplication": ("POST", "/api/v1/apps", 200, "create-oidc-app.request", "create-oidc-app.response"),
    "getApplication": ("GET", "/api/v1/apps/{appId}", 200, None, None),
    "activateApplication": ("POST", "/api/v1/apps/{appId}/lifecycle/activate", 200, None, None),
    "listApplicationUsers": ("GET", "/api/v1/apps/{appId}/users", 200, None, None),
    "assignUserToApplication": ("POST", "/api/v1/apps/{appId}/users", 200, "assign-app-user.request", "assign-app-user.response"),
    "listApplicationGroupAssignments": ("GET", "/api/v1/apps/{appId}/groups", 200, None, None),
    "assignGroupToApplication": ("PUT", "/api/v1/apps/{appId}/groups/{groupId}", 200, "assign-app-group.request", "assign-app-group.response"),
    "listGroups": ("GET", "/api/v1/groups", 200, None, None),
    "listTrustedOrigins": ("GET", "/api/v1/trustedOrigins", 200, None, None),
    "createTrustedOrigin": ("POST", "/api/v1/trustedOrigins", 200, "create-trusted-origin.request", "create-trusted-origin.response"),
    "getUser": ("GET", "/api/v1/users/{id}", 200, None, "get-user.response"),
    "getOrgSettings": ("GET", "/api/v1/org", 200, None, None),
    # Listed without operations in python's spec; these are okta-sdk-nodejs's (see the docstring).
    "listAIAgents": ("GET", AGENTS, 200, None, None),
    "registerAIAgent": ("POST", AGENTS, 202, "register-ai-agent.request", None),
    "getAIAgent": ("GET", AGENTS + "/{agentId}", 200, None, "get-ai-agent.response"),
    "activateAIAgent": ("POST", AGENTS + "/{agentId}/lifecycle/activate", 202, None, None),
    "listAgentJwk": ("GET", AGENTS + "/{agentId}/credentials/jwks", 200, None, None),
    "addAgentJwk": ("POST", AGENTS + "/{agentId}/credentials/jwks", 201, "add-ai-agent-jwk.request", "add-ai-agent-jwk.response"),
    "getAgentJwk": ("GET", AGENTS + "/{agentId}/credentials/jwks/{keyId}", 200, None, "add-ai-agent-jwk.response"),
    "listConnections": ("GET", AGENTS + "/{agentId}/connections", 200, None, None),
    "createManagedConnection": ("POST", AGENTS + "/{agentId}/connections", 201, "create-managed-connection.request", None),
    "getManagedConnection": ("GET", AGENTS + "/{agentId}/connections/{connectionId}", 200, None, "get-managed-connection.response"),
    "activateManagedConnection": ("POST", AGENTS + "/{agentId}/connections/{connectionId}/lifecycle/activate", 200, None, None),
    "getAIAgentOperation": ("GET", "/workload-principals/api/v1/operations/{operationId}", 200, None, "get-ai-agent-operation.response"),
}

# Error sample stem: (HTTP status, the components/responses entry whose example it is).
ERRORS: dict[str, tuple[int, str]] = {
    "error-validation.response": (400, "ErrorApiValidationFailed400"),
    "error-invalid-token.response": (401, "ErrorInvalidToken401"),
    "error-not-found.response": (404, "ErrorResourceNotFound404"),
    "error-conflict.response": (409, "ErrorApiValidationConflict409"),  # only createSsfStream lists it
}


# --------------------------------------------------------------------------- the spec


def load(path: str | Path) -> dict:
    """The spec as JSON sees it: YAML timestamps stay strings (an unquoted `2023-05-17T22:25:57Z`
    is a string in JSON, not a datetime)."""
    import yaml  # PyYAML: only the extraction needs it

    base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

    class Loader(base):  # type: ignore[misc, valid-type]
        pass

    Loader.yaml_implicit_resolvers = {
        k: [(tag, rx) for tag, rx in v if tag != "tag:yaml.org,2002:timestamp"] for k, v in base.yaml_implicit_resolvers.items()
    }
    with open(path, encoding="utf-8") as f:
        return yaml.load(f, Loader=Loader)


def ref_name(ref: str) -> str:
    return ref.rsplit("/", 1)[-1]


def example(spec: dict, name: str) -> Any:
    return spec["components"]["examples"][name]["value"]


# --------------------------------------------------------------------------- a small schema resolver


def _merge(into: dict, other: dict) -> None:
    """allOf: properties merged (recursively), required united."""
    for key in ("type", "ref"):
        if key in other and key not in into:
            into[key] = other[key]
    if other.get("readOnly"):
        into["readOnly"] = True
    if other.get("additionalProperties"):
        into["additionalProperties"] = True
    if "items" in other:
        if "items" in into:
            _merge(into["items"], other["items"])
        else:
            into["items"] = other["items"]
    if "properties" in other:
        props = into.setdefault("properties", {})
        for name, sub in other["properties"].items():
            if name in props:
                _merge(props[name], sub)
            else:
                props[name] = sub
    if other.get("required"):
        into["required"] = sorted(set(into.get("required", [])) | set(other["required"]))


def resolve(spec: dict, node: dict, pick: dict[str, Any] | None = None, stack: tuple[str, ...] = (),
            decided: list[str] | None = None) -> dict:
    """`node` reduced to type, properties, required, items, additionalProperties (true),
    readOnly (true) and ref. $ref and allOf are followed; a discriminator (with or without oneOf)
    follows its mapping for the value in `pick` (an example's top-level object), once; a oneOf or
    anyOf without a known value unites its alternatives' properties (required: only what all
    require). A schema met again below itself ends in {"ref": name, "recursive": true}. Each
    discriminator followed is noted in `decided` as "property=value"."""
    schemas = spec["components"]["schemas"]
    pick = dict(pick or {})
    if "$ref" in node:
        name = ref_name(node["$ref"])
        target = schemas[name]
        disc = target.get("discriminator")
        if disc and disc["propertyName"] in pick and disc.get("mapping", {}).get(pick[disc["propertyName"]]):
            value = pick.pop(disc["propertyName"])
            mapped = ref_name(disc["mapping"][value])
            if mapped != name:
                if decided is not None:
                    decided.append(f"{disc['propertyName']}={value}")
                return resolve(spec, {"$ref": "#/components/schemas/" + mapped}, pick, stack, decided)
        if name in stack:
            return {"ref": name, "recursive": True}
        out = resolve(spec, target, pick, stack + (name,), decided)
        out["ref"] = name
        if node.get("readOnly"):
            out["readOnly"] = True
        return out

    out: dict = {}
    if "type" in node:
        out["type"] = node["type"]
    if node.get("readOnly"):
        out["readOnly"] = True
    if node.get("additionalProperties") is True or isinstance(node.get("additionalProperties"), dict):
        out["additionalProperties"] = True
    for part in node.get("allOf", []):
        _merge(out, resolve(spec, part, pick, stack, decided))
    alternatives = node.get("oneOf") or node.get("anyOf")
    if alternatives:
        disc = node.get("discriminator")
        if disc and disc["propertyName"] in pick and pick[disc["propertyName"]] in disc.get("mapping", {}):
            value = pick.pop(disc["propertyName"])
            if decided is not None:
                decided.append(f"{disc['propertyName']}={value}")
            _merge(out, resolve(spec, {"$ref": disc["mapping"][value]}, pick, stack, decided))
        else:
            flat = [resolve(spec, a, pick, stack) for a in alternatives]
            united: dict = {}
            for f in flat:
                _merge(united, {k: v for k, v in f.items() if k != "required"})
            common = set.intersection(*(set(f.get("required", [])) for f in flat)) if flat else set()
            if common:
                united["required"] = sorted(common)
            united.pop("ref", None)
            _merge(out, united)
    if "items" in node:
        out["items"] = resolve(spec, node["items"], None, stack)
    if "properties" in node:
        props = out.setdefault("properties", {})
        for name, sub in node["properties"].items():
            flat = resolve(spec, sub, None, stack)
            if name in props:
                _merge(props[name], flat)
            else:
                props[name] = flat
    if node.get("required"):
        out["required"] = sorted(set(out.get("required", [])) | set(node["required"]))
    return out


def schema_of(spec: dict, schema: str, sample: Any) -> tuple[str, dict]:
    """The schema `sample` is an instance of, its discriminators decided by the sample's values,
    and its name in schemas.json: the component's, with the discriminator values it was resolved
    for (`Application[signOnMode=OPENID_CONNECT]`)."""
    pick = {k: v for k, v in sample.items() if isinstance(v, str)} if isinstance(sample, dict) else {}
    decided: list[str] = []
    flat = resolve(spec, {"$ref": "#/components/schemas/" + schema}, pick, (), decided)
    return schema + (f"[{','.join(decided)}]" if decided else ""), flat


# --------------------------------------------------------------------------- checks against the specs


def _operation(spec: dict, method: str, path: str) -> dict | None:
    return spec.get("paths", {}).get(path, {}).get(method.lower())


def _refs(content: dict | None) -> tuple[str | None, set[str]]:
    media = (content or {}).get("content", {}).get("application/json", {})
    schema = media.get("schema", {}).get("$ref")
    return (ref_name(schema) if schema else None), {ref_name(e["$ref"]) for e in media.get("examples", {}).values() if "$ref" in e}


def check_operations(spec: dict, nodejs: dict | None) -> list[str]:
    """Where OPERATIONS disagrees with the spec (or, for what python's spec lacks, nodejs's)."""
    problems = []
    samples = {stem: (ex, schema) for stem, ex, schema in SAMPLES}
    for op_id, (method, path, status, request, response) in OPERATIONS.items():
        source, op = "python", _operation(spec, method, path)
        if op is None and nodejs is not None:
            source, op = "nodejs", _operation(nodejs, method, path)
        if op is None:
            if nodejs is not None or not path.startswith("/workload-principals/"):
                problems.append(f"{op_id}: {method} {path} is in neither spec")
            continue
        if op.get("operationId") != op_id:
            problems.append(f"{op_id}: the {source} spec calls {method} {path} {op.get('operationId')}")
        codes = [c for c in op.get("responses", {}) if str(c).startswith("2")]
        if codes != [str(status)]:
            problems.append(f"{op_id}: success status {codes} in the {source} spec, not {status}")
        schema, examples = _refs(op.get("requestBody"))
        if request is None and op.get("requestBody"):
            problems.append(f"{op_id}: the {source} spec has a request body")
        if request is not None:
            ex, sch = samples[request]
            if schema != sch or ex not in examples:
                problems.append(f"{op_id}: request {schema} {sorted(examples)} in the {source} spec, not {sch} {ex}")
        if response is not None:
            schema, examples = _refs(op["responses"].get(str(status)))
            ex, sch = samples[response]
            if schema != sch or ex not in examples:
                problems.append(f"{op_id}: answer {schema} {sorted(examples)} in the {source} spec, not {sch} {ex}")
    for stem, (status, response) in ERRORS.items():
        ex = samples[stem][0]
        schema, examples = _refs(spec["components"]["responses"].get(response))
        if not response.endswith(str(status)) or schema != "Error" or ex not in examples:
            problems.append(f"{stem}: components/responses/{response} is {schema} {sorted(examples)}, not Error {ex} ({status})")
    return problems


# --------------------------------------------------------------------------- the files


def extracted(spec: dict) -> dict[str, Any]:
    """File name → content, as committed."""
    files: dict[str, Any] = {}
    samples: dict[str, str] = {}
    schemas: dict[str, Any] = {}
    for stem, name, schema in SAMPLES:
        value = example(spec, name)
        files[stem + ".json"] = value
        key, flat = schema_of(spec, schema, value)
        assert schemas.setdefault(key, flat) == flat, key
        samples[stem] = key
    files["schemas.json"] = {"samples": samples, "schemas": schemas}
    files["operations.json"] = {
        "operations": {
            op_id: {"method": m, "path": p, "status": s, "request": rq, "response": rs}
            for op_id, (m, p, s, rq, rs) in OPERATIONS.items()
        },
        "errors": {stem: {"status": status, "response": response} for stem, (status, response) in ERRORS.items()},
    }
    return files


def dumps(value: Any, name: str = "") -> str:
    if name == "schemas.json":  # one schema a line: small, and a diff names the schema that changed
        lines = [f"  {json.dumps(k)}: {json.dumps(v, ensure_ascii=False, sort_keys=True)}" for k, v in value["schemas"].items()]
        return ('{\n"samples": ' + json.dumps(value["samples"], indent=2) + ',\n"schemas": {\n' + ",\n".join(lines) + "\n}\n}\n")
    return json.dumps(value, indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    spec = load(argv[1])
    nodejs = load(argv[2]) if len(argv) > 2 else None
    problems = check_operations(spec, nodejs)
    for p in problems:
        print("mismatch:", p, file=sys.stderr)
    for name, value in extracted(spec).items():
        (HERE / name).write_text(dumps(value, name), encoding="utf-8")
    print(f"wrote {len(SAMPLES)} samples, schemas.json and operations.json to {HERE}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
