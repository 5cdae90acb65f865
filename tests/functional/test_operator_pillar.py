"""
The operator's ``pillar/`` is theirs to edit; the lab and every other test use the lab's own
tree (``lab/pillar/``), and ``tests/conftest.py`` refuses any read of ``pillar/`` by a test not
marked ``operator_pillar``. The tests marked here read it on purpose, and assume only what any
valid operator pillar satisfies: each of its environment overlays validates, and keeps
validating when every name and address in it changes, as when an operator adapts it to their
own domain. They validate with the runner ``hecate.validate`` - ``hecate_pillar.validate_env``,
the code the orchestration's first step (``hecate.validated``) runs - on a master whose
pillar_roots is a copy of ``pillar/``. Vault references are not checked (no Vault here): the
schema, secrets-as-references, every system's semantic checks and membership are.

The derivation of names from ``hecate:global:domain`` is tested on the lab's tree (which is
built like the shipped one), through Salt's own pillar compiler.
"""

import glob
import ipaddress
import json
import os
import re
import shutil
import uuid

import pytest
import salt.loader
import salt.pillar

from lab import topology

ROLES = ("hecate-edge", "bionicgpt-node")
NEW_DOMAIN = "operator-test.example"
NEW_CHAT_DOMAIN = "ask.operator-test.example"
NEW_TUNNEL_NETWORK = "10.213.0.0"
# Addresses an operator's edit keeps: loopback (the local APIs), the unspecified address.
KEPT_ADDRESSES = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("0.0.0.0/32"))
IPV4 = re.compile(r"(?<![\w.])(\d{1,3}(?:\.\d{1,3}){3})(?![\w.])")


@pytest.fixture
def master_opts(salt_factories, tmp_path):
    """A master's opts (not started) whose pillar_roots is ``tmp_path/pillar``."""
    root = tmp_path / "pillar"
    factory = salt_factories.salt_master_daemon(
        f"pillar-master-{uuid.uuid4().hex[:6]}",
        overrides={"module_dirs": [topology.REPO], "pillar_roots": {"base": [str(root)]},
                   "file_roots": {"base": [os.path.join(topology.REPO, "salt")]}},
    )
    opts = factory.config.copy()
    opts["pillar_root_dir"] = str(root)
    return opts


def compile_pillar(opts, env):
    """The pillar of a minion of ``env`` with both roles, as the master compiles it."""
    grains = {"id": f"{env}-check", "roles": list(ROLES), "hecate_env": env}
    popts = dict(opts, grains=grains, id=grains["id"])
    pillar = salt.pillar.Pillar(popts, grains, grains["id"], "base").compile_pillar()
    assert not pillar.get("_errors"), pillar["_errors"]
    return pillar


def validate(opts, env):
    runners = salt.loader.runner(opts, utils=salt.loader.utils(opts), context={})
    return runners["hecate.validate"](env=env, refs=False)


def environments(root):
    """The environments of a pillar tree: one overlay ``env/<env>.sls`` each."""
    return sorted(os.path.basename(p)[: -len(".sls")] for p in glob.glob(os.path.join(root, "env", "*.sls")))


def copy_operator_pillar(opts):
    root = opts["pillar_root_dir"]
    shutil.copytree(topology.OPERATOR_PILLAR_DIR, root, dirs_exist_ok=True)
    envs = environments(root)
    assert envs, "pillar/env/ has no overlay: no environment can be deployed"
    return root, envs


def _sub_names(text, names):
    """Every whole occurrence of each old name (a domain, not a label of a longer one) -> new."""
    for old, new in names.items():
        text = re.sub(r"(?<![A-Za-z0-9-])" + re.escape(old) + r"(?![A-Za-z0-9-])", new, text)
    return text


def _new_address(old, network, new_network, mapped):
    """``old`` moved: inside the tunnel network to the same offset in the new one, else TEST-NET."""
    addr = ipaddress.ip_address(old)
    if any(addr in net for net in KEPT_ADDRESSES):
        return old
    if network and addr in network:
        return str(new_network[int(addr) - int(network.network_address)])
    if old not in mapped:
        mapped[old] = str(ipaddress.ip_address("198.51.100.0") + len(mapped) + 1)
    return mapped[old]


def mutate(root, pillar):
    """
    An operator's adaptation of a pillar tree, as text edits of every file in it: their own
    domain and chat domain (wherever the old names are written), every address other than
    loopback (backends, external services, stream and Consul check targets) and the WireGuard
    tunnel network with the addresses in it. Returns the names and addresses replaced.
    """
    old_domain = pillar["hecate"]["global"]["domain"]
    names = {}
    chat = (pillar.get("bionicgpt") or {}).get("domain")
    if chat and chat != old_domain and not chat.endswith("." + old_domain):
        names[chat] = NEW_CHAT_DOMAIN
    names[old_domain] = NEW_DOMAIN
    wg_net = ((pillar.get("bionicgpt") or {}).get("wireguard") or {}).get("network")
    network = ipaddress.ip_network(wg_net) if wg_net else None
    new_network = ipaddress.ip_network(f"{NEW_TUNNEL_NETWORK}/{network.prefixlen}", strict=False) if network else None
    mapped = {}

    def address(match):
        try:
            return _new_address(match.group(1), network, new_network, mapped)
        except ValueError:  # 4-part numbers that are not addresses (a version): left alone
            return match.group(1)

    for dirpath, _, files in os.walk(root):
        for name in files:
            path = os.path.join(dirpath, name)
            with open(path, encoding="utf-8") as fh:
                text = fh.read()
            new = IPV4.sub(address, _sub_names(text, names))
            if new != text:
                with open(path, "w", encoding="utf-8") as fh:
                    fh.write(new)
    return names, mapped


@pytest.mark.operator_pillar
def test_every_environment_of_the_operators_pillar_validates(master_opts):
    """The shipped pillar/ (or the operator's edit of it): each of its environments is valid."""
    _, envs = copy_operator_pillar(master_opts)
    for env in envs:
        ret = validate(master_opts, env)
        assert ret["result"] is True and ret["errors"] == [], (env, ret["errors"])


@pytest.mark.operator_pillar
def test_the_operators_pillar_validates_with_another_domain_and_other_addresses(master_opts):
    """
    The issue's check: copy pillar/, change the domain and the addresses - every name that
    holds the domain (hecate:global:domain, routes, the Authentik URL and OIDC issuer, the
    WireGuard endpoint, ...), backends, external services, the tunnel network - and each
    environment still validates, with the new values in the compiled pillar.
    """
    root, envs = copy_operator_pillar(master_opts)
    before = {env: compile_pillar(master_opts, env) for env in envs}
    names, mapped = mutate(root, before[envs[0]])
    for env in envs:
        after = compile_pillar(master_opts, env)
        assert after != before[env], env
        assert after["hecate"]["global"]["domain"] == NEW_DOMAIN
        text = json.dumps({k: after.get(k) for k in ("hecate", "bionicgpt")})
        for old in list(names) + list(mapped):
            assert not re.search(r"(?<![\w.-])" + re.escape(old) + r"(?![\w-])", text), (env, old)
        ret = validate(master_opts, env)
        assert ret["result"] is True and ret["errors"] == [], (env, ret["errors"])


def test_names_derive_from_the_domain(master_opts):
    """
    In the lab's tree (built like the shipped one), changing the one line that sets the
    domain moves every name made from it - hecate.sls's and those bionicgpt.sls and the
    overlays import - and the result validates.
    """
    root = master_opts["pillar_root_dir"]
    shutil.copytree(topology.PILLAR_DIR, root, dirs_exist_ok=True)
    path = os.path.join(root, "hecate.sls")
    with open(path, encoding="utf-8") as fh:
        text = fh.read()
    old = compile_pillar(master_opts, "staging")["hecate"]["global"]["domain"]
    line = f"{{%- set domain = '{old}' %}}"
    assert text.count(line) == 1
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(text.replace(line, f"{{%- set domain = '{NEW_DOMAIN}' %}}"))

    pillar = compile_pillar(master_opts, "staging")
    hecate, bionic = pillar["hecate"], pillar["bionicgpt"]
    assert hecate["global"]["domain"] == NEW_DOMAIN
    # hecate reaches Authentik on the edge's loopback (its job's port); the world through Caddy
    assert hecate["verify"]["probe"]["url"] == f"https://hera.{NEW_DOMAIN}/-/health/live/"
    assert hecate["authentik"]["bootstrap"]["email"] == f"admin@{NEW_DOMAIN}"
    assert hecate["connections"]["vault"]["url"] == f"https://vault.{NEW_DOMAIN}:8200"
    routes = {r["service"]: r["domain"] for r in hecate["reverse_proxy"]["caddy"]["routes"]}
    assert routes["authentik"] == f"hera.{NEW_DOMAIN}" and routes["helen"] == NEW_DOMAIN
    assert routes.pop("bionicgpt") == bionic["domain"]  # chat_domain: another zone of the lab's
    assert all(d == NEW_DOMAIN or d.endswith("." + NEW_DOMAIN) for d in routes.values()), routes
    assert hecate["reverse_proxy"]["coturn"]["realm"] == NEW_DOMAIN
    assert hecate["consul"]["services"]["jenkins-master"]["meta"]["domain"] == f"jenkins.{NEW_DOMAIN}"
    assert bionic["wireguard"]["cloud"]["endpoint"] == f"cloud.{NEW_DOMAIN}:51820"
    assert bionic["jobs"]["application"]["oidc_issuer_url"] == f"https://hera.{NEW_DOMAIN}/application/o/bionicgpt/"
    assert old not in json.dumps({k: pillar[k] for k in ("hecate", "bionicgpt")})
    ret = validate(master_opts, "staging")
    assert ret["result"] is True and ret["errors"] == [], ret["errors"]
