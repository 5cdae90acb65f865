"""
Authentik states at scale: one state run ensuring N groups and N scope mappings against
the Authentik simulator (token from the Vault simulator), first creating them, then
again with nothing to do. Prints requests per method and resource, and wall time.

    python -m bench authentik            # N=200, release 2025.10
    python -m bench.bench_authentik --count 500 --release 2026.5
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

from lab import topology  # noqa: E402  pylint: disable=wrong-import-position
from lab.sim import SimHandle  # noqa: E402  pylint: disable=wrong-import-position


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


def _sls(count):
    lines = []
    for idx in range(count):
        lines.append(f"bench-group-{idx:04d}:\n  authentik_group.present:\n"
                     f"    - prefix: bench-\n    - attributes: {{index: {idx}}}")
        lines.append(f"bench mapping {idx:04d}:\n  authentik_scope_mapping.present:\n"
                     f"    - scope_name: bench{idx}\n    - expression: 'return {{\"n\": {idx}}}'")
    return "\n".join(lines)


def _per_kind(requests):
    counts = collections.Counter()
    for req in requests:
        parts = req["path"].split("/")[3:5]  # /api/v3/<app>/<resource>/...
        counts[(req["method"], "/".join(parts))] += 1
    return counts


def main(argv):
    parser = argparse.ArgumentParser(prog="bench_authentik")
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--release", default="2025.10", choices=("2025.6", "2025.10", "2026.5"))
    args = parser.parse_args(argv)
    from saltfactories.utils.functional import Loaders  # pylint: disable=import-outside-toplevel

    with tempfile.TemporaryDirectory(prefix="bench-authentik-") as workdir:
        lab_secrets = topology.new_lab_secrets()
        vault = SimHandle("vault", os.path.join(workdir, "vault"), topology.vault_options(lab_secrets)).start()
        vault.root_token = lab_secrets["vault_root_token"]
        authentik = SimHandle("authentik", os.path.join(workdir, "authentik"),
                              topology.authentik_options(lab_secrets, version=args.release)).start()
        try:
            topology.seed_vault(vault.url, vault.root_token, topology.authentik_vault_seed(lab_secrets))
            loaders = Loaders(_opts(workdir, vault, authentik))
            sls = _sls(args.count)
            print(f"Authentik {args.release}: {args.count} groups + {args.count} scope mappings, one state run")
            for title in ("create", "converged"):
                loaders.reset_state()
                authentik.clear_requests()
                started = time.monotonic()
                rets = list(loaders.modules.state.template_str(sls))
                elapsed = time.monotonic() - started
                failed = [r for r in rets if r.result is not True]
                changed = sum(1 for r in rets if r.changes)
                reqs = authentik.requests()
                print(f"  {title:10} {elapsed:6.2f}s  states {len(rets)} changed {changed} failed {len(failed)}"
                      f"  requests {len(reqs)}")
                for (method, kind), num in sorted(_per_kind(reqs).items()):
                    print(f"      {method:6} {kind:32} {num}")
                if failed:
                    print("  first failure:", failed[0].comment)
        finally:
            authentik.stop()
            vault.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
