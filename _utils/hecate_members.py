"""
Membership: which minions belong to an environment, in which role - decided by the master.

Grains are set by the minion itself, so a ``roles``/``hecate_env`` grain is only a claim. Pillar
``hecate:members`` (the environment's overlay, ``pillar/env/<env>.sls``) lists per role the
minion ids, or globs, that belong::

    hecate:
      members:
        hecate-edge: [edge-1.example.com]
        bionicgpt-node: [gpu-1.example.com, 'gpu-2*']

A minion is a member when it has the grains *and* its id matches the list. Every target hecate
builds says both, as a compound target (``G@roles:<role> and G@hecate_env:<env> and ( <id or
glob> or ... )``, glob being compound's default for a bare word); the minion id is the one its
accepted key is registered under, which a minion cannot choose. The orchestration, the runner,
the top file and the WireGuard peer lists all use :func:`target`; minions with the grains but
not listed are reported by ``hecate.validate``/``hecate.status`` (:func:`resolve`).
"""

import fnmatch
import re

import hecate_config

PILLAR_PATH = "hecate:members"
ROLES = ("hecate-edge", "bionicgpt-node")
# the WireGuard side of each role, whose default tunnel address a member takes
# (bionicgpt:wireguard:<side>:address) unless bionicgpt:wireguard:nodes:<id>:address is set
TUNNEL_SIDE = {"hecate-edge": "cloud", "bionicgpt-node": "local"}
# Minion ids and Salt globs (* ? [seq] [!seq]). No whitespace, '@', parentheses or commas:
# the patterns are words of a compound target.
WORD = r"[A-Za-z0-9_.*?!\[\]-]+"
PATTERN = f"^{WORD}$"
COMPOUND_WORDS = ("and", "or", "not")
# a compound clause that matches no minion (everything minus everything)
NOTHING = "not *"

PILLAR_SCHEMA = {
    PILLAR_PATH: {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            role: {
                "type": "array",
                "uniqueItems": True,
                "items": {"type": "string", "pattern": PATTERN},
                "examples": [[f"{TUNNEL_SIDE[role]}-1.example.com"]],
                "description": (
                    f"Minion ids (or Salt globs) that take the {role} role; a minion with the role "
                    "grain that is not listed is never targeted."
                ),
            }
            for role in ROLES
        },
        "description": (
            "Which minions belong to this environment, per role; set in each environment overlay "
            "(hecate.validate fails without it). A minion is a member when it has the role and "
            "hecate_env grains and its id is listed."
        ),
    }
}


def check_pillar(pillar, env=None):  # pylint: disable=unused-argument
    """A pattern must not be a compound operator (the schema checks the characters)."""
    errors = []
    members = hecate_config.traverse(pillar, PILLAR_PATH)
    if not isinstance(members, dict):
        return errors
    for role in ROLES:
        for idx, pat in enumerate(members.get(role) or []):
            if isinstance(pat, str) and pat.lower() in COMPOUND_WORDS:
                errors.append((f"{PILLAR_PATH}:{role}:{idx}",
                               f"{pat!r} is a compound target operator, not a minion id or glob"))
    return errors


def required(pillar):
    """``[(path, message)]`` when the environment lists no members at all (master-side check)."""
    if isinstance(hecate_config.traverse(pillar, PILLAR_PATH), dict):
        return []
    return [(PILLAR_PATH, "required key is missing: list the minion ids (or globs) of each role of "
                          "this environment, e.g. {hecate-edge: [<id>], bionicgpt-node: [<id>]}; "
                          "a minion's own grains only claim a role")]


def members(pillar):
    """``{role: [id or glob, ...]}`` from pillar (only well-formed patterns; missing roles empty)."""
    conf = hecate_config.traverse(pillar, PILLAR_PATH)
    out = {}
    for role in ROLES:
        pats = conf.get(role) if hasattr(conf, "get") else None  # (__pillar__ may hold proxies)
        out[role] = [
            str(p) for p in (pats if isinstance(pats, (list, tuple)) else [])
            if isinstance(p, str) and re.fullmatch(WORD, p) and p.lower() not in COMPOUND_WORDS
        ]
    return out


def is_glob(pattern):
    """Whether ``pattern`` is a glob (matches ids by Salt's glob matcher) rather than one minion id."""
    return any(ch in str(pattern) for ch in "*?[")


def matches(minion_id, patterns):
    """Whether ``minion_id`` matches one of ``patterns`` as Salt's glob matcher does."""
    return any(fnmatch.fnmatch(str(minion_id), pat) for pat in patterns or ())


def _ids(patterns):
    return f"( {' or '.join(patterns)} )" if patterns else NOTHING


def target(env, member_map, role=None):
    """
    The compound target of the members of ``role`` in ``env`` (``role=None``: of every
    role). A role nobody is listed for yields a clause that matches no minion.
    """
    if role is not None:
        if not env:
            return f"G@roles:{role} and {NOTHING}"
        return f"G@roles:{role} and G@hecate_env:{env} and {_ids(member_map.get(role))}"
    if not env:
        return NOTHING
    clauses = [f"( G@roles:{r} and {_ids(member_map[r])} )" for r in ROLES if member_map.get(r)]
    if not clauses:
        return f"G@hecate_env:{env} and {NOTHING}"
    return f"G@hecate_env:{env} and ( {' or '.join(clauses)} )"


# -- on the master ------------------------------------------------------------------------------


def claims(opts, env):
    """
    What the master knows of the accepted minions: ``(claimed, accepted)`` where ``claimed``
    is ``{role: [ids whose cached grains say roles:<role> and hecate_env:<env>]}``.
    """
    import salt.utils.minions  # pylint: disable=import-outside-toplevel

    ckm = salt.utils.minions.CkMinions(opts)
    accepted = sorted(ckm.check_minions("*", "glob")["minions"])
    claimed = {
        role: sorted(ckm.check_minions(f"G@roles:{role} and G@hecate_env:{env}", "compound")["minions"])
        for role in ROLES
    }
    return claimed, accepted


def one_known(opts, tgt):
    """
    ``tgt`` (a compound target) narrowed to its first minion, by sorted id, that the master's
    grains cache matches; ``""`` when it matches none. Minions the cache holds nothing for are
    left out (not greedy): the one member a shared-system step runs on must be one the master
    has heard from. The narrowed target keeps ``tgt``'s clauses, so a stale cache can only
    make it match nobody, never a minion ``tgt`` does not match.
    """
    import salt.utils.minions  # pylint: disable=import-outside-toplevel

    found = salt.utils.minions.CkMinions(opts).check_minions(tgt, "compound", greedy=False)["minions"]
    return f"( {tgt} ) and L@{min(found)}" if found else ""


def resolve(env, member_map, claimed, accepted):
    """
    Membership of ``env``: ``{"members": {role: [ids]}, "not_members": {id: [roles]},
    "warnings": [...]}``. A member has the grains and is listed; a minion with the grains but
    not listed is a not-member (never targeted, never a WireGuard peer); a listed minion
    without the grains is not targeted either (a warning says so).
    """
    report = {"members": {}, "not_members": {}, "warnings": []}
    for role in ROLES:
        pats = member_map.get(role) or []
        have = claimed.get(role) or []
        report["members"][role] = [mid for mid in have if matches(mid, pats)]
        for mid in have:
            if not matches(mid, pats):
                report["not_members"].setdefault(mid, []).append(role)
        # (a catch-all glob lists everybody: not worth a warning per minion)
        listed_only = [] if "*" in pats else [mid for mid in accepted if matches(mid, pats) and mid not in have]
        where = f"{PILLAR_PATH}:{role}"
        if not pats:
            report["warnings"].append(f"{where}: lists no minion: the steps for {role} target nobody")
        elif listed_only:
            report["warnings"].append(
                f"{where}: {', '.join(listed_only)} listed but without the grains roles:{role} and "
                f"hecate_env:{env}: not targeted"
            )
        if "*" in pats:
            report["warnings"].append(
                f"{where}: '*' makes every minion that claims roles:{role} and hecate_env:{env} a member"
            )
        if pats and not listed_only and not report["members"][role]:
            report["warnings"].append(
                f"{where}: no accepted minion with the grains roles:{role} and hecate_env:{env} "
                f"matches {', '.join(pats)}"
            )
    for mid, roles in sorted(report["not_members"].items()):
        report["warnings"].append(
            f"minion {mid} claims roles {', '.join(roles)} in hecate_env {env} (its own grains) but "
            f"is not listed in {PILLAR_PATH}: never targeted, never a WireGuard peer"
        )
    return report


def _wireguard(pillar):
    wg = hecate_config.traverse(pillar, "bionicgpt:wireguard") or {}
    wg = wg if isinstance(wg, dict) else {}
    nodes = wg.get("nodes") if isinstance(wg.get("nodes"), dict) else {}
    return wg, nodes


def _own(nodes, mid, key):
    return isinstance(nodes.get(mid), dict) and bool(nodes[mid].get(key))


def address_problems(pillar, resolved):
    """
    ``[(path, message)]``: members of one role that would share a tunnel address - each
    member takes ``bionicgpt:wireguard:nodes:<id>:address``, else its side's default address,
    which only one member may use - and edges that would share a public endpoint (each
    takes ``nodes:<id>:endpoint``, else ``cloud:endpoint``).
    """
    wg, nodes = _wireguard(pillar)
    errors = []
    shared = [mid for mid in resolved.get("hecate-edge") or [] if not _own(nodes, mid, "endpoint")]
    if len(shared) > 1:
        endpoint = (wg.get("cloud") or {}).get("endpoint") if isinstance(wg.get("cloud"), dict) else None
        errors.append((
            "bionicgpt:wireguard:nodes",
            f"edges {', '.join(shared)} have no endpoint of their own: all would be dialled at "
            f"{endpoint} (bionicgpt:wireguard:cloud:endpoint); give each its public host:port "
            f"under bionicgpt:wireguard:nodes:<minion id>:endpoint",
        ))
    for role in ROLES:
        side = TUNNEL_SIDE[role]
        shared = [mid for mid in resolved.get(role) or [] if not _own(nodes, mid, "address")]
        if len(shared) > 1:
            address = (wg.get(side) or {}).get("address") if isinstance(wg.get(side), dict) else None
            errors.append((
                "bionicgpt:wireguard:nodes",
                f"minions {', '.join(shared)} are members of {role} without their own tunnel address: "
                f"all would take {address} (bionicgpt:wireguard:{side}:address); give each its own "
                f"under bionicgpt:wireguard:nodes:<minion id>:address",
            ))
    return errors


def tunnel_warnings(pillar, resolved):
    """
    Warnings about the mesh: pairs of local nodes without a tunnel between them (neither
    has ``bionicgpt:wireguard:nodes:<id>:endpoint``, so neither can dial the other: their
    traffic - Consul's gossip, tasks talking across nodes - does not pass).
    """
    _, nodes = _wireguard(pillar)
    locals_ = sorted(resolved.get("bionicgpt-node") or [])
    blind = [mid for mid in locals_ if not _own(nodes, mid, "endpoint")]
    if len(blind) < 2:
        return []
    return [
        f"bionicgpt:wireguard:nodes: local nodes {', '.join(blind)} have no endpoint: no tunnel between "
        f"any two of them (Consul gossip and tasks talking across them fail); give those on one LAN "
        f"their LAN host:port under bionicgpt:wireguard:nodes:<minion id>:endpoint"
    ]
