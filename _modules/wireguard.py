"""
WireGuard on a hecate node: key pair, public key (the mine function), peers from the
mine, config rendering, live interface status and tunnel verification.

Settings come from pillar ``bionicgpt:wireguard`` (see docs/systems/wireguard-agents.md);
the node's role is its ``roles`` grain (``hecate-edge`` = hub,
``bionicgpt-node`` = peer). The private key never leaves ``<config_dir>/<if>.key``:
no function returns or logs it.

CLI Example:

.. code-block:: bash

    salt '*' wireguard.public_key
    salt '*' wireguard.status
    salt -G 'roles:bionicgpt-node' wireguard.verify timeout=30
"""

import salt.exceptions

import hecate_loader
import hecate_wireguard_config
import hecate_wireguard_keys
import hecate_wireguard_process
import hecate_wireguard_schema

__virtualname__ = "wireguard"


def __virtual__():
    return hecate_loader.virtual(__virtualname__, libs=("cryptography",))


def _conf(**overrides):
    return hecate_wireguard_schema.settings(__pillar__, __grains__, overrides)


def _mine_peers(conf):
    data = __salt__["mine.get"](
        hecate_wireguard_schema.peer_target(conf), hecate_wireguard_schema.MINE_KEY, tgt_type="compound"
    )
    if not isinstance(data, dict):
        raise salt.exceptions.CommandExecutionError(
            f"mine.get for {hecate_wireguard_schema.MINE_KEY} returned {type(data).__name__}"
        )
    return data


def settings():
    """
    This minion's effective WireGuard settings: role, interface, tunnel address, peer
    target, file paths (no key material).

    CLI Example:

    .. code-block:: bash

        salt '*' wireguard.settings
    """
    conf = _conf()
    conf["peer_target"] = hecate_wireguard_schema.peer_target(conf)
    return conf


def genkey(force=False):
    """
    Make this minion's key pair unless it exists (``force=True`` replaces it: every
    peer must then learn the new public key). The private key is written to
    ``<config_dir>/<interface>.key`` (0600) and never returned.

    CLI Example:

    .. code-block:: bash

        salt '*' wireguard.genkey
    """
    conf = _conf()
    public, created = hecate_wireguard_keys.ensure_key(conf["key_file"], force=bool(force))
    return {"public_key": public, "created": created, "key_file": conf["key_file"]}


def public_key():
    """
    This minion's public key, or None when it has no key yet. The mine publishes it
    (pillar ``mine_functions: {wireguard_public_key: {mine_function: wireguard.public_key}}``).

    CLI Example:

    .. code-block:: bash

        salt '*' wireguard.public_key
    """
    try:
        conf = _conf()
    except salt.exceptions.SaltInvocationError:
        return None
    return hecate_wireguard_keys.read_public_key(conf["key_file"])


def peers():
    """
    The peers this minion's config gets: the members (pillar ``hecate:members``) of its
    environment it meshes with (every edge; other local nodes when one of the two has an
    endpoint) that published a public key in the mine, with the tunnel addresses and
    endpoints pillar gives them, plus ``extra_peers``. ``problems`` lists what keeps a
    peer out.

    CLI Example:

    .. code-block:: bash

        salt -G 'roles:hecate-edge' wireguard.peers
    """
    conf = _conf()
    found, problems = hecate_wireguard_config.peers_from_mine(conf, _mine_peers(conf))
    return {"peers": found, "problems": problems}


def render_config():
    """
    The wg-quick config this minion gets (no secret in it: the key is loaded from the
    key file by ``PostUp``).

    CLI Example:

    .. code-block:: bash

        salt -G 'roles:bionicgpt-node' wireguard.render_config
    """
    conf = _conf()
    found, _ = hecate_wireguard_config.peers_from_mine(conf, _mine_peers(conf))
    return hecate_wireguard_config.render_config(conf, found)


def status(interface=None, netns=None):
    """
    Live status of the interface from ``wg show <if> dump``: public key, listen port,
    peers with endpoint, allowed IPs, latest handshake (unix time, 0 = none) and
    transfer counters; addresses and link state. ``{"present": False}`` when the
    interface does not exist.

    CLI Example:

    .. code-block:: bash

        salt '*' wireguard.status
    """
    conf = _conf(interface=interface, netns=netns)
    live = hecate_wireguard_process.live_status(conf["interface"], conf.get("netns"))
    if live is None:
        return {"present": False, "interface": conf["interface"]}
    live.update({"present": True, "interface": conf["interface"]})
    return live


def verify(within=None, timeout=None, ping=None, interface=None, netns=None):
    """
    Check the tunnel: every peer has a handshake younger than ``within`` seconds and
    answers a ping at its tunnel address, waiting up to ``timeout`` seconds (defaults
    from ``bionicgpt:wireguard:verify``). Raises when the tunnel is not working.

    CLI Example:

    .. code-block:: bash

        salt -G 'roles:bionicgpt-node' wireguard.verify timeout=30
    """
    conf = _conf(interface=interface, netns=netns)
    opts = conf["verify"]
    found, problems = hecate_wireguard_config.peers_from_mine(conf, _mine_peers(conf))
    found = [p for p in found if p.get("address")]  # extra_peers (laptops...) are not required
    ok, report = hecate_wireguard_process.verify(
        conf["interface"],
        found,
        within=int(within if within is not None else opts["within"]),
        timeout=int(timeout if timeout is not None else opts["timeout"]),
        do_ping=bool(ping if ping is not None else opts["ping"]),
        netns=conf.get("netns"),
    )
    if not ok:
        details = "; ".join(f"{name or 'tunnel'}: {r['problem']}" for name, r in report.items() if r.get("problem"))
        raise salt.exceptions.CommandExecutionError(
            f"WireGuard tunnel {conf['interface']} is not working: {details}"
            + (f" ({'; '.join(problems)})" if problems else "")
        )
    return report
