"""
Consul and Nomad agent configuration files, rendered from pillar on the minion.

.. code-block:: yaml

    /etc/consul.d/consul.json:
      hecate_agent.consul_config: []
    /etc/nomad.d/nomad.hcl:
      hecate_agent.nomad_config: []

Secrets in the config (Consul gossip key and ACL agent token, Nomad's Consul token) are
Vault references in pillar, resolved here with ``hecate_vault_client.Resolver`` at the
moment the file is rendered, and written only into the config file (owner ``user``,
group ``group`` from pillar, mode 0640 — the agent's group must read it — or 0600 when
the group is root). ``changes`` carry a unified diff with every secret value masked on
both sides, plus ``secrets: changed`` when only a masked value differs. Under
``test=True`` the secrets are read (Vault is only read) so that the prediction is exact;
nothing is written.
"""

import os

import salt.exceptions

try:
    import hecate_agents
    import hecate_secrets
    import hecate_state
    import hecate_vault_client
    import hecate_wireguard
except ImportError:  # installed with pip
    from saltext.hecate.utils import (
        hecate_agents,
        hecate_secrets,
        hecate_state,
        hecate_vault_client,
        hecate_wireguard,
    )

__virtualname__ = "hecate_agent"


def __virtual__():
    return __virtualname__


def _apply(name, kind, cfg, settings, render):
    ret = hecate_state.new(name)
    resolver = hecate_vault_client.Resolver(
        __opts__, __pillar__, __salt__.get("sdb.get"), __context__
    )
    try:
        resolved, names = hecate_agents.resolve_secrets(cfg, resolver, kind)
        text = render(resolved)
    except salt.exceptions.SaltException as exc:
        raise type(exc)(hecate_secrets.scrub(str(exc), resolver.resolved)) from None
    user, group = settings.get("user"), settings.get("group")
    if os.geteuid() != 0:  # not root: files stay the running user's (tests, labs)
        user = group = None
    mode = 0o600 if group in (None, "root") else 0o640
    changes = {}
    directory = os.path.dirname(name)
    if not os.path.isdir(directory):
        changes["config_dir"] = {"old": None, "new": directory}
    old, meta = hecate_wireguard.file_state(name, mode, user, group)
    if old != text:
        diff, secrets_changed = hecate_agents.masked_diff(old, text, name, names)
        changes["config"] = {"file": name, "diff": diff}
        if secrets_changed:
            changes["secrets"] = "changed (values not shown)"
    for key, (was, now) in meta.items():
        changes[key] = {"old": was, "new": now}
    test = __opts__["test"]
    if not changes or test:
        return hecate_state.result(ret, changes, test, f"would write the {kind} agent config {name}", "")
    hecate_wireguard.ensure_dir(directory, 0o755)
    try:
        hecate_wireguard.write_private(name, text, mode=mode, user=user, group=group)
    except salt.exceptions.CommandExecutionError as exc:
        raise salt.exceptions.CommandExecutionError(
            hecate_secrets.scrub(f"{kind} agent config: {exc}", resolver.resolved)
        ) from None
    return hecate_state.result(ret, changes, False, "", f"wrote the {kind} agent config {name}")


@hecate_state.guard
def consul_config(name):
    """
    The Consul agent config at ``name`` (a JSON file in ``hecate:consul:agent:config_dir``):
    server with ``bootstrap_expect`` and UI on the cloud node, client joining the cloud
    node's tunnel address on a local node; bound to this node's WireGuard address.
    """
    settings = hecate_agents.consul_settings(__pillar__)
    cfg = hecate_agents.consul_config(__pillar__, __grains__)
    return _apply(name, "Consul", cfg, settings, hecate_agents.render_json)


@hecate_state.guard
def nomad_config(name):
    """
    The Nomad agent config at ``name`` (HCL in ``bionicgpt:nomad:agent:config_dir``):
    server + client, ``meta.location = local``, host volumes, Consul and Vault
    integration, docker plugin settings.
    """
    settings = hecate_agents.nomad_settings(__pillar__)
    cfg = hecate_agents.nomad_config(__pillar__, __grains__)
    header = (
        "Managed by Salt (hecate) from pillar bionicgpt:nomad:agent; local edits are overwritten."
    )
    return _apply(name, "Nomad", cfg, settings, lambda c: hecate_agents.render_hcl(c, header))
