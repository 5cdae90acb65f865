"""
Authentik states at scale: one state run ensuring N groups and N scope mappings against
the Authentik simulator (token from the Vault simulator), first creating them, then
changing a tenth of each, then again with nothing to do. Prints wall time and, per
resource, the requests by kind: GET of a list page, GET of one object, POST, PATCH, PUT,
DELETE. Asserts nothing.

    python -m bench authentik            # N=200, release 2025.10
    python -m bench.bench_authentik --count 500 --release 2026.5
    python -m bench.bench_authentik --smoke
"""

import argparse
import collections
import os
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
for path in (REPO, os.path.join(REPO, "_utils")):
    if path not in sys.path:
        sys.path.insert(0, path)

from bench import common  # noqa: E402  pylint: disable=wrong-import-position
from lab import topology  # noqa: E402  pylint: disable=wrong-import-position
from lab.sim import SimHandle  # noqa: E402  pylint: disable=wrong-import-position
from lab.sim import authentik as sim_authentik  # noqa: E402  pylint: disable=wrong-import-position


def _opts(workdir, vault, authentik):
    import salt.config  # pylint: disable=import-outside-toplevel

    opts = salt.config.minion_config(None)
    for key, sub in (("root_dir", ""), ("cachedir", "cache"), ("extension_modules", "extmods"),
                     ("pki_dir", "pki"), ("sock_dir", "sock")):
        opts[key] = os.path.join(workdir, sub)
        os.makedirs(opts[key], exist_ok=True)
    opts.update({
        "id": "bench-authentik",
        "file_client": "local",
        "module_dirs": [REPO],
        "log_file": os.path.join(workdir, "minion.log"),
        "hecate": {"connections": {
            "authentik": {"url": authentik.url, "token": {"vault": "secret/hecate/authentik", "key": "api_token"}},
            "vault": {"url": vault.url, "token": vault.root_token},
        }},
    })
    return opts


def _sls(count, changed=0):
    """``count`` groups and scope mappings; the first ``changed`` of each differ from the original."""
    lines = []
    for idx in range(count):
        extra = ", revision: 2" if idx < changed else ""
        expr = f"return {{\"n\": {idx}, \"revision\": 2}}" if idx < changed else f"return {{\"n\": {idx}}}"
        lines.append(f"bench-group-{idx:04d}:\n  authentik_group.present:\n"
                     f"    - prefix: bench-\n    - attributes: {{index: {idx}{extra}}}")
        lines.append(f"bench mapping {idx:04d}:\n  authentik_scope_mapping.present:\n"
                     f"    - scope_name: bench{idx}\n    - expression: '{expr}'")
    return "\n".join(lines)


def _kind(req):
    """``(resource, kind)``: kind is "GET list page" for a GET of a collection, else the method."""
    path = req["path"]
    for res in sorted(sim_authentik.RESOURCES, key=lambda r: -len(r.path)):
        prefix = sim_authentik.API + res.path
        if path.startswith(prefix):
            rest = path[len(prefix):]
            if req["method"] == "GET":
                return res.path.strip("/"), "GET list page" if not rest else "GET one"
            return res.path.strip("/"), req["method"]
    return path[len(sim_authentik.API):].strip("/"), req["method"]


KINDS = ("GET list page", "GET one", "POST", "PATCH", "PUT", "DELETE")


def per_kind(reqs):
    counts = collections.defaultdict(collections.Counter)
    for req in reqs:
        resource, kind = _kind(req)
        counts[resource][kind] += 1
    return counts


def report(title, elapsed, rets, reqs):
    failed = [r for r in rets if r.result is not True]
    changed = sum(1 for r in rets if r.changes)
    print(f"  {title:<34} {elapsed:6.2f} s  states {len(rets)}, changed {changed}, failed {len(failed)}, "
          f"requests {len(reqs)}")
    for resource, counts in sorted(per_kind(reqs).items()):
        cells = "  ".join(f"{counts.get(k, 0):>{len(k)}}" for k in KINDS)
        print(f"      {resource:<32} {cells}")
    if failed:
        print("  first failure:", failed[0].comment)
    return {"seconds": elapsed, "states": len(rets), "changed": changed, "failed": len(failed),
            "requests": len(reqs), "per_kind": {r: dict(c) for r, c in per_kind(reqs).items()}}


def main(argv):
    run(argv)
    return 0


def run(argv):
    parser = argparse.ArgumentParser(prog="bench_authentik")
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--changed", type=int, default=None, help="objects of each kind changed in the update run "
                        "(default: a tenth)")
    parser.add_argument("--release", default="2025.10", choices=("2025.6", "2025.10", "2026.5"))
    parser.add_argument("--smoke", action="store_true", help="5 groups and 5 mappings")
    args = parser.parse_args(argv)
    if args.smoke:
        args.count = 5
    changed = max(1, args.count // 10) if args.changed is None else args.changed
    from saltfactories.utils.functional import Loaders  # pylint: disable=import-outside-toplevel

    results = {}
    with tempfile.TemporaryDirectory(prefix="bench-authentik-") as workdir:
        lab_secrets = topology.new_lab_secrets()
        vault = SimHandle("vault", os.path.join(workdir, "vault"), topology.vault_options(lab_secrets)).start()
        vault.root_token = lab_secrets["vault_root_token"]
        authentik = SimHandle("authentik", os.path.join(workdir, "authentik"),
                              topology.authentik_options(lab_secrets, version=args.release)).start()
        try:
            topology.seed_vault(vault.url, vault.root_token, topology.authentik_vault_seed(lab_secrets))
            loaders = Loaders(_opts(workdir, vault, authentik))
            print(f"Authentik {args.release} simulator: {args.count} groups + {args.count} scope mappings in one "
                  f"state run (state.template_str); {common.machine()}")
            print(f"      {'requests per resource':<32} {'  '.join(KINDS)}")
            runs = (("create", "first run: create all", _sls(args.count)),
                    ("update", f"update: {changed} of each changed", _sls(args.count, changed)),
                    ("converged", "converged re-run", _sls(args.count, changed)))
            for key, title, sls in runs:
                loaders.reset_state()
                authentik.clear_requests()
                started = time.monotonic()
                rets = list(loaders.modules.state.template_str(sls))
                elapsed = time.monotonic() - started
                results[key] = report(title, elapsed, rets, authentik.requests())
        finally:
            authentik.stop()
            vault.stop()
    return results


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
