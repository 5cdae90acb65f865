"""
The lab's pillar files (``lab/pillar/``) as data, for tests that run no salt-master: each file
rendered with Jinja (the files import their names from ``hecate.sls``, as the shipped ones
do) and merged in the order of the lab's top file, with Salt's default ``smart`` merge
(lists replace). Integration tests get the same pillar from the lab's master.
"""


import salt.utils.dictupdate

from lab import topology


def render(name, root=topology.PILLAR_DIR, grains=None):
    """One pillar SLS file of ``root`` (``hecate.sls``, ``env/prod.sls``) as data."""
    return topology.render_pillar_file(name, root, grains)


def compiled(env="lab", root=topology.PILLAR_DIR):
    """``hecate.sls`` + ``bionicgpt.sls`` + ``env/<env>.sls`` of the lab's tree, merged."""
    data = {}
    for name in ("hecate.sls", "bionicgpt.sls", f"env/{env}.sls"):
        data = salt.utils.dictupdate.merge(data, render(name, root, {"hecate_env": env}),
                                           strategy="smart", merge_lists=False)
    return data


# The one site the pillar deliberately serves differently from the user's Caddyfile: Authentik
# was the hand-run container hecate-server-1; hecate now runs it as the edge's Nomad job, whose
# server listens on the edge's loopback (hecate:authentik:ports:http).
CADDYFILE_TO_EDGE_BACKENDS = {"hecate-server-1:9000": "127.0.0.1:9000"}


def on_the_edge(caddy_block):
    """An imported ``hecate:reverse_proxy:caddy`` block with Authentik's backend as the edge runs it."""
    routes = [dict(r, backend=CADDYFILE_TO_EDGE_BACKENDS.get(r.get("backend"), r.get("backend")))
              if "backend" in r else r for r in caddy_block["routes"]]
    return dict(caddy_block, routes=routes)
