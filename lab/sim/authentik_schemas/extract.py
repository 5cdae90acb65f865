"""
Extract the part of Authentik's published OpenAPI schema that the lab simulator serves.

The vendor files (goauthentik/client-python, branch ``version-<release>``, ``schema.yml``;
copies in shared/vendor/authentik/) are 1.5 MB of YAML each. The simulator needs only the
paths it implements and the components they reference, verbatim; this script writes them
to ``<release>.json`` next to it::

    python -m lab.sim.authentik_schemas.extract /path/to/vendor/authentik

Nothing is edited: operations keep their parameters, request and response schemas, and
every component reachable from them is copied unchanged (``$ref`` kept), so the
simulator validates against exactly what Authentik publishes.
"""

import json
import os
import sys

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
RELEASES = ("2025.6", "2025.10", "2026.5")

# Path prefixes (relative to /api/v3) the simulator implements.
SERVED = (
    "/root/config/",
    "/admin/version/",
    "/core/groups/",
    "/core/users/",
    "/core/applications/",
    "/core/brands/",
    "/providers/oauth2/",
    "/providers/proxy/",
    "/propertymappings/provider/scope/",
    "/flows/instances/",
    "/flows/bindings/",
    "/policies/bindings/",
    "/outposts/instances/",
    "/stages/identification/",
    "/stages/captcha/",
    "/stages/password/",
    "/stages/prompt/prompts/",
    "/stages/prompt/stages/",
    "/stages/user_write/",
    "/stages/user_login/",
    "/crypto/certificatekeypairs/",
    "/flows/executor/",
    "/providers/saml/",
    "/propertymappings/provider/saml/",
)
# Sub-resources under the served prefixes that the simulator does not implement.
SKIP_SUFFIXES = (
    "/used_by/", "/diagram/", "/execute/", "/export/", "/set_background/",
    "/set_background_url/", "/set_icon/", "/check_access/",
    "/impersonate/", "/impersonate_end/", "/recovery/", "/recovery_email/", "/me/",
    "/paths/", "/service_account/", "/preview_user/", "/setup_urls/", "/health/",
    "/default_settings/", "/cache_clear/", "/cache_info/", "/import/", "/preview/",
    "/current/", "/history/", "/export_csv/", "/bulk_delete/", "/metrics/",
    "/account_lockdown/", "/set_password_hash/", "/generate/", "/view_certificate/",
    "/view_private_key/",
)
METHODS = ("get", "post", "put", "patch", "delete")


def _refs(node, out):
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            out.add(ref)
        for val in node.values():
            _refs(val, out)
    elif isinstance(node, list):
        for val in node:
            _refs(val, out)


def _resolve(doc, ref):
    node = doc
    for part in ref.lstrip("#/").split("/"):
        node = node[part]
    return node


def extract(doc):
    paths = {}
    for path, ops in doc["paths"].items():
        if not path.startswith(SERVED):
            continue
        if any(s in path for s in SKIP_SUFFIXES):
            continue
        kept = {}
        for method in METHODS:
            op = ops.get(method)
            if op is None:
                continue
            params = []
            for param in op.get("parameters", []) + ops.get("parameters", []):
                if "$ref" in param:
                    param = _resolve(doc, param["$ref"])
                params.append(param)
            body = ((op.get("requestBody") or {}).get("content") or {}).get("application/json")
            responses = {}
            for status, resp in (op.get("responses") or {}).items():
                if "$ref" in resp:
                    resp = _resolve(doc, resp["$ref"])
                schema = ((resp.get("content") or {}).get("application/json") or {}).get("schema")
                responses[status] = schema
            kept[method] = {
                "operationId": op.get("operationId"),
                "parameters": params,
                "requestBody": (body or {}).get("schema"),
                "requestRequired": bool((op.get("requestBody") or {}).get("required")),
                "responses": responses,
            }
        if kept:
            paths[path] = kept
    # transitive closure of the components the kept operations reference
    wanted, seen = set(), set()
    _refs(paths, wanted)
    components = {}
    while wanted - seen:
        ref = sorted(wanted - seen)[0]
        seen.add(ref)
        node = _resolve(doc, ref)
        section, name = ref.split("/")[-2:]
        components.setdefault(section, {})[name] = node
        _refs(node, wanted)
    return {
        "release": doc["info"]["version"],
        "source": "goauthentik/client-python schema.yml (extracted, unchanged)",
        "paths": paths,
        "components": components,
    }


def main(argv):
    vendor = argv[0] if argv else os.path.join("/work/shared/vendor/authentik")
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    for release in RELEASES:
        with open(os.path.join(vendor, f"schema-{release}.yml"), encoding="utf-8") as fh:
            doc = yaml.load(fh, Loader=loader)  # noqa: S506 - SafeLoader
        data = extract(doc)
        out = os.path.join(HERE, f"{release}.json")
        with open(out, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=1, sort_keys=True)
            fh.write("\n")
        print(f"{out}: {data['release']}, {len(data['paths'])} paths, "
              f"{sum(len(v) for v in data['components'].values())} components")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
