"""
WireGuard states for hecate's members: edges and local nodes in a mesh.

.. code-block:: yaml

    wireguard key:
      wireguard.key_present:
        - name: wg0
    wireguard public key in the mine:
      wireguard.mine_published:
        - name: wg0
    wireguard interface:
      wireguard.configured:
        - name: wg0
    wireguard tunnel is up:
      wireguard.handshake:
        - name: wg0
        - timeout: 60

``configured`` writes ``<config_dir>/<if>.conf`` from pillar and the mine and, when the
interface is up, applies the difference live with ``wg syncconf`` (a peer change never
takes the tunnel down). Every function honours ``test=True`` (result None, the same
changes, nothing written) and never shows the private key.
"""

import os
import time

import salt.exceptions

import hecate_files
import hecate_loader
import hecate_state
import hecate_wireguard_config
import hecate_wireguard_keys
import hecate_wireguard_process
import hecate_wireguard_schema

__virtualname__ = "wireguard"


def __virtual__():
    return hecate_loader.virtual(__virtualname__, libs=("cryptography",))


def _conf(name, netns=None):
    return hecate_wireguard_schema.settings(__pillar__, __grains__, {"interface": name, "netns": netns})


def _mine_get(tgt, tgt_type="glob"):
    data = __salt__["mine.get"](tgt, hecate_wireguard_schema.MINE_KEY, tgt_type=tgt_type)
    return data if isinstance(data, dict) else {}


_MINE = "hecate.wireguard.mine"
# characters that would change the meaning of a compound target around a minion id
_NOT_IN_ID = frozenset(" ,()")


def _mine(conf):
    """
    ``{minion: public key}`` of this minion and of the members at the other end of its
    tunnel, read once per state run (``__context__``): each ``mine.get`` is a request to the
    master on a new channel (~60 ms, most of it loading the minion's key), and the keys,
    tunnel and verify states each need it. :func:`hecate_wireguard_config.peers_from_mine`
    leaves this minion out of the peers. Dropped when this minion publishes a new key.
    """
    mid = __grains__["id"]
    peers = hecate_wireguard_schema.peer_target(conf)
    key = (_MINE, mid, peers)
    if key not in __context__:
        if _NOT_IN_ID & set(mid):
            data = dict(_mine_get(peers, "compound"))
            data.update({k: v for k, v in _mine_get(mid).items() if k == mid})
        else:
            data = _mine_get(f"( {peers} ) or L@{mid}", "compound")
        __context__[key] = data
    return __context__[key]


def _forget_mine():
    for key in [k for k in __context__ if isinstance(k, tuple) and k and k[0] == _MINE]:
        del __context__[key]


@hecate_state.guard
def key_present(name, force=False):
    """
    The minion has a WireGuard key pair for interface ``name``; the private key is in
    ``<config_dir>/<name>.key`` (0600) and nowhere else. ``force: True`` makes a new one.

    .. code-block:: yaml

        wireguard key wg0:
          wireguard.key_present:
            - name: wg0
    """
    conf = _conf(name)
    key_file = conf["key_file"]
    ret = hecate_state.new(name)
    public = None if force else hecate_wireguard_keys.read_public_key(key_file)
    if public:
        problem = hecate_wireguard_keys.key_file_problems(key_file)
        if not problem:
            ret["comment"] = f"key pair exists (public key {public})"
            return ret
        changes = {"mode": {"old": problem, "new": "0600"}}
        if __opts__["test"]:
            return hecate_state.result(ret, changes, True, f"would restrict {key_file} to 0600", "")
        hecate_wireguard_keys.ensure_key(key_file)
        return hecate_state.result(ret, changes, False, "", f"restricted {key_file} to 0600")
    changes = {"key_file": key_file, "public_key": {"old": None, "new": "(made on the minion)"}}
    if __opts__["test"]:
        return hecate_state.result(ret, changes, True, f"would make a key pair in {key_file}", "")
    public, _ = hecate_wireguard_keys.ensure_key(key_file, force=bool(force))
    changes["public_key"]["new"] = public
    return hecate_state.result(ret, changes, False, "", f"made a key pair in {key_file} (0600)")


@hecate_state.guard
def mine_published(name):
    """
    This minion's current public key is in the Salt mine (``wireguard_public_key``).

    .. code-block:: yaml

        wireguard public key wg0 in the mine:
          wireguard.mine_published:
            - name: wg0
            - require:
              - wireguard: wireguard key wg0
    """
    conf = _conf(name)
    ret = hecate_state.new(name)
    mid = __grains__["id"]
    public = hecate_wireguard_keys.read_public_key(conf["key_file"])
    current = _mine(conf).get(mid)
    if public is None:
        if __opts__["test"]:
            return hecate_state.result(
                ret, {"mine": {"old": current, "new": "(the new public key)"}}, True,
                "would publish the public key once the key pair exists", "",
            )
        raise salt.exceptions.CommandExecutionError(
            f"no WireGuard key in {conf['key_file']}: apply wireguard.key_present first"
        )
    if current == public:
        ret["comment"] = "the mine has the current public key"
        return ret
    changes = {"mine": {"old": current, "new": public}}
    if __opts__["test"]:
        return hecate_state.result(ret, changes, True, "would publish the public key to the mine", "")
    __salt__["mine.send"](hecate_wireguard_schema.MINE_KEY, mine_function="wireguard.public_key")
    _forget_mine()
    for _ in range(20):
        if _mine_get(mid).get(mid) == public:
            break
        time.sleep(0.5)
    else:
        raise salt.exceptions.CommandExecutionError(
            "mine.send did not reach the master: the mine still lacks this minion's public key"
        )
    return hecate_state.result(ret, changes, False, "", "published the public key to the mine")


@hecate_state.guard
def configured(name, netns=None):
    """
    ``<config_dir>/<name>.conf`` matches pillar and the peers' public keys from the
    mine and, if the interface exists, so does the live interface. Live changes go
    through ``wg syncconf`` (only differences; unchanged peers keep their sessions),
    ``wg set private-key <file>`` and ``ip addr``: never a down/up.

    A local node fails when no cloud node has published its key yet (nothing to
    connect to); the cloud node is fine with no peers yet.

    .. code-block:: yaml

        wireguard wg0:
          wireguard.configured:
            - name: wg0
    """
    conf = _conf(name, netns)
    ret = hecate_state.new(name)
    test = __opts__["test"]
    mine = _mine(conf)
    peers, problems = hecate_wireguard_config.peers_from_mine(conf, mine)
    if problems:
        raise salt.exceptions.CommandExecutionError("; ".join(problems))
    notes = []
    if conf["role"] == "local" and not [p for p in peers if p.get("role") == "cloud"]:
        edges = hecate_wireguard_schema.peer_target(conf, "hecate-edge")
        msg = (
            f"no hecate-edge minion ({edges}) has published a "
            f"WireGuard public key yet: apply wireguard.keys on the cloud node first"
        )
        if not hecate_wireguard_schema.peer_patterns(conf, "hecate-edge"):
            msg = ("pillar hecate:members:hecate-edge lists no minion: this node has no "
                   "edge to connect to")
        if not test:
            raise salt.exceptions.CommandExecutionError(msg)
        notes.append(msg)
    elif not peers:
        notes.append("no other member has published a public key yet; this edge has no peers")

    text = hecate_wireguard_config.render_config(conf, peers)
    changes = {}
    if not os.path.isdir(conf["config_dir"]):
        changes["config_dir"] = {"old": None, "new": conf["config_dir"]}
    old, meta = hecate_files.file_state(conf["config_file"], 0o600)
    if old != text:
        changes["config"] = {
            "file": conf["config_file"],
            "diff": hecate_files.unified_diff(old, text, conf["config_file"]),
        }
    for key, (was, now) in meta.items():
        changes[key] = {"old": was, "new": now}

    public = hecate_wireguard_keys.read_public_key(conf["key_file"])
    live = hecate_wireguard_process.live_status(conf["interface"], conf.get("netns"))
    live_changes = {}
    if live is not None:
        if public is None and not test:
            raise salt.exceptions.CommandExecutionError(
                f"no WireGuard key in {conf['key_file']}: apply wireguard.key_present first"
            )
        live_changes = hecate_wireguard_process.live_changes(conf, peers, live, public)
        if live_changes:
            changes["live"] = live_changes

    would = f"would update {conf['config_file']}" + (f" and the live interface {name}" if live_changes else "")
    did = f"updated {conf['config_file']}" + (
        f" and the live interface {name} (wg syncconf, no restart)" if live_changes else ""
    )
    if notes:
        would = would + "; " + "; ".join(notes)
        did = did + "; " + "; ".join(notes)
        if not changes:
            ret["comment"] = "; ".join(notes)
            if test:
                ret["result"] = None
    if not changes or test:
        return hecate_state.result(ret, changes, test, would, did)

    hecate_files.ensure_dir(conf["config_dir"], 0o700)
    if "config" in changes or meta:
        hecate_files.write_atomic(conf["config_file"], text, 0o600)
    if live_changes:
        hecate_wireguard_process.sync_live(conf, text, live, live_changes)
        after = hecate_wireguard_process.live_status(conf["interface"], conf.get("netns"))
        left = hecate_wireguard_process.live_changes(conf, peers, after, public) if after else {"interface": "gone"}
        if left:
            ret["result"] = False
            ret["changes"] = changes
            ret["comment"] = f"{did}, but the live interface still differs: {left}"
            return ret
    return hecate_state.result(ret, changes, False, would, did)


@hecate_state.guard
def handshake(name, within=None, timeout=None, ping=None, netns=None):
    """
    The tunnel works: every peer from the mine has a handshake younger than ``within``
    seconds and answers a ping at its tunnel address; waits up to ``timeout`` seconds.
    Defaults from ``bionicgpt:wireguard:verify``; ``enabled: false`` there (labs that
    start no services) makes this a no-op that says so. Writes nothing; under
    ``test=True`` it checks once without waiting and reports None if not yet working.

    .. code-block:: yaml

        wireguard tunnel wg0 works:
          wireguard.handshake:
            - name: wg0
            - within: 180
            - timeout: 60
    """
    conf = _conf(name, netns)
    opts = conf["verify"]
    ret = hecate_state.new(name)
    if not opts.get("enabled", True):
        ret["comment"] = "tunnel verification is disabled (bionicgpt:wireguard:verify:enabled: false)"
        return ret
    within = int(within if within is not None else opts["within"])
    timeout = int(timeout if timeout is not None else opts["timeout"])
    do_ping = bool(ping if ping is not None else opts["ping"])
    mine = _mine(conf)
    peers, problems = hecate_wireguard_config.peers_from_mine(conf, mine)
    peers = [p for p in peers if p.get("address")]
    test = __opts__["test"]
    if test and (not peers or not hecate_wireguard_process.interface_exists(conf["interface"], conf.get("netns"))):
        ret["result"] = None
        ret["comment"] = f"would wait up to {timeout}s for a handshake on {name} (the tunnel is not up yet)"
        return ret
    ok, report = hecate_wireguard_process.verify(
        conf["interface"], peers, within=within, timeout=0 if test else timeout,
        do_ping=do_ping, netns=conf.get("netns"),
    )
    summary = "; ".join(
        f"{peer}: handshake {r.get('handshake_age')}s ago" + (", ping ok" if r.get("ping") else "")
        for peer, r in report.items()
        if not r.get("problem")
    )
    if ok:
        ret["comment"] = f"tunnel {name} is up: {summary}"
        return ret
    details = "; ".join(f"{peer or 'tunnel'}: {r['problem']}" for peer, r in report.items() if r.get("problem"))
    if problems:
        details += " (" + "; ".join(problems) + ")"
    if test:
        ret["result"] = None
        ret["comment"] = f"would wait up to {timeout}s for the tunnel {name}: {details}"
        return ret
    ret["result"] = False
    ret["comment"] = f"tunnel {name} is not working after {timeout}s: {details}"
    return ret
