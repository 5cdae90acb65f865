"""
The live WireGuard interface: ``wg``/``ip`` commands, its status (``wg show <if> dump``),
what a live sync would change, the sync itself, and tunnel verification (handshakes, ping).

Peers change without dropping the tunnel: a live interface is updated with
``wg syncconf`` (only the differences are applied; sessions of unchanged peers stay up),
never with a down/up. The private key goes to ``wg syncconf`` through stdin; ``wg show
<if> dump`` output (whose first line carries it) is parsed and the key dropped at once,
and command output is never logged.
"""

import ipaddress
import re
import subprocess
import time

import salt.exceptions

import hecate_wireguard_config
import hecate_wireguard_schema

# -- commands -------------------------------------------------------------------------------------


def run(cmd, netns=None, stdin=None, check=True, timeout=30):
    """
    Run a command (inside ``netns`` when given) without a shell. Output is returned,
    never logged; an error names the command and its stderr (``wg``/``ip`` never echo a
    key there).
    """
    if netns:
        cmd = ["ip", "netns", "exec", netns] + list(cmd)
    try:
        proc = subprocess.run(
            cmd, input=stdin, capture_output=True, text=True, timeout=timeout, check=False
        )
    except FileNotFoundError:
        raise salt.exceptions.CommandExecutionError(f"{cmd[0]} is not installed") from None
    except subprocess.TimeoutExpired:
        raise salt.exceptions.CommandExecutionError(f"`{' '.join(cmd[:4])} ...` timed out after {timeout}s") from None
    if check and proc.returncode != 0:
        raise salt.exceptions.CommandExecutionError(
            f"`{' '.join(cmd)}` failed: {proc.stderr.strip() or proc.returncode}"
        )
    return proc


def interface_exists(interface, netns=None):
    return run(["ip", "link", "show", "dev", interface], netns=netns, check=False).returncode == 0


def parse_dump(text):
    """
    ``wg show <if> dump`` as ``{public_key, listen_port, fwmark, peers: {public_key: {...}}}``.
    The interface's private key and the peers' preshared keys are dropped here.
    """
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        raise salt.exceptions.CommandExecutionError("empty output from `wg show dump`")
    first = lines[0].split("\t")
    if len(first) != 4:
        raise salt.exceptions.CommandExecutionError("unexpected `wg show dump` output (interface line)")
    out = {
        "public_key": first[1] if first[1] != "(none)" else None,
        "listen_port": int(first[2]) if first[2].isdigit() else None,
        "fwmark": None if first[3] == "off" else first[3],
        "peers": {},
    }
    for line in lines[1:]:
        fields = line.split("\t")
        if len(fields) != 8:
            raise salt.exceptions.CommandExecutionError("unexpected `wg show dump` output (peer line)")
        pub, psk, endpoint, allowed, handshake, rx, tx, keepalive = fields
        out["peers"][pub] = {
            "preshared_key": psk != "(none)",
            "endpoint": None if endpoint == "(none)" else endpoint,
            "allowed_ips": [] if allowed == "(none)" else sorted(allowed.split(",")),
            "latest_handshake": int(handshake),
            "transfer_rx": int(rx),
            "transfer_tx": int(tx),
            "persistent_keepalive": None if keepalive == "off" else int(keepalive),
        }
    return out


def live_status(interface, netns=None):
    """Parsed ``wg show <if> dump`` plus the interface's addresses and link state, or None."""
    if not interface_exists(interface, netns):
        return None
    dump = parse_dump(run(["wg", "show", interface, "dump"], netns=netns).stdout)
    addr = run(["ip", "-o", "addr", "show", "dev", interface], netns=netns).stdout
    # link-local IPv6 addresses appear by themselves when the link comes up: not ours to manage
    dump["addresses"] = sorted(a for a in re.findall(r"\binet6? (\S+)", addr) if not a.lower().startswith("fe80:"))
    link = run(["ip", "-o", "link", "show", "dev", interface], netns=netns).stdout
    flags = re.search(r"<([^>]*)>", link)
    dump["up"] = bool(flags and "UP" in flags.group(1).split(","))
    index = re.match(r"(\d+):", link)
    dump["ifindex"] = int(index.group(1)) if index else None
    return dump


def live_changes(conf, peers, live, key_public):
    """What a live sync would change: ``{peers: {added, removed, changed}, address, key, link}``."""
    changes = {}
    want = {p["public_key"]: p for p in peers}
    have = live["peers"]
    added = sorted(want[k]["name"] for k in want if k not in have)
    removed = sorted(k for k in have if k not in want)
    changed = []
    for key, peer in want.items():
        if key not in have:
            continue
        cur = have[key]
        if sorted(peer["allowed_ips"]) != cur["allowed_ips"]:
            changed.append(f"{peer['name']}: allowed_ips {cur['allowed_ips']} -> {sorted(peer['allowed_ips'])}")
        if (peer.get("persistent_keepalive") or None) != cur["persistent_keepalive"]:
            changed.append(
                f"{peer['name']}: persistent_keepalive {cur['persistent_keepalive']} -> "
                f"{peer.get('persistent_keepalive')}"
            )
        endpoint = peer.get("endpoint")
        if endpoint and _is_ip_endpoint(endpoint) and _norm_endpoint(endpoint) != cur["endpoint"]:
            changed.append(f"{peer['name']}: endpoint {cur['endpoint']} -> {endpoint}")
    if added or removed or changed:
        changes["peers"] = {"added": added, "removed": removed, "changed": changed}
    if live.get("listen_port") != conf["listen_port"]:
        changes["listen_port"] = {"old": live.get("listen_port"), "new": conf["listen_port"]}
    if live["addresses"] != [conf["cidr"]]:
        changes["addresses"] = {"old": live["addresses"], "new": [conf["cidr"]]}
    if live.get("public_key") != key_public:
        changes["key"] = {"old": live.get("public_key"), "new": key_public}
    if not live.get("up"):
        changes["link"] = {"old": "down", "new": "up"}
    return changes


def _is_ip_endpoint(endpoint):
    match = hecate_wireguard_schema.ENDPOINT.match(endpoint)
    if not match:
        return False
    if match.group("v6"):
        return True
    try:
        ipaddress.ip_address(match.group("host"))
        return True
    except ValueError:
        return False


def _norm_endpoint(endpoint):
    match = hecate_wireguard_schema.ENDPOINT.match(endpoint)
    if match.group("v6"):
        return f"[{ipaddress.ip_address(match.group('v6'))}]:{int(match.group('port'))}"
    return f"{match.group('host')}:{int(match.group('port'))}"


def _with_private_key(config_text, key_file):
    try:
        with open(key_file, encoding="ascii") as fh:
            private = fh.read().strip()
    except OSError as exc:
        raise salt.exceptions.CommandExecutionError(
            f"cannot read the WireGuard key file {key_file}: {exc.strerror}"
        ) from None
    lines = hecate_wireguard_config.strip_config(config_text).splitlines()
    at = lines.index("[Interface]") + 1
    return "\n".join(lines[:at] + [f"PrivateKey = {private}"] + lines[at:]) + "\n"


def sync_live(conf, config_text, live, changes):
    """
    Bring a live interface to the config without taking it down: ``wg syncconf`` applies
    only the differences (unchanged peers keep their sessions; the private key is part of
    its input, so it is kept), then addresses, MTU and link state.
    """
    iface, netns = conf["interface"], conf.get("netns")
    if {"peers", "listen_port", "key"} & set(changes):
        # `wg syncconf` sets the interface to exactly the given config: a config without
        # PrivateKey clears the key (and every session). The key goes in through stdin,
        # never argv, a log line or a file other than the key file.
        run(
            ["wg", "syncconf", iface, "/dev/stdin"], netns=netns, stdin=_with_private_key(config_text, conf["key_file"])
        )
    if "addresses" in changes:
        for cidr in live["addresses"]:
            if cidr != conf["cidr"]:
                run(["ip", "addr", "del", cidr, "dev", iface], netns=netns)
        if conf["cidr"] not in live["addresses"]:
            run(["ip", "addr", "add", conf["cidr"], "dev", iface], netns=netns)
    if conf.get("mtu"):
        run(["ip", "link", "set", "dev", iface, "mtu", str(conf["mtu"])], netns=netns)
    if "link" in changes:
        run(["ip", "link", "set", "dev", iface, "up"], netns=netns)


# -- verification -----------------------------------------------------------------------------


def ping(address, netns=None, count=1, wait=2):
    """True when ``address`` answers an ICMP echo (``ping`` from iputils)."""
    proc = run(
        ["ping", "-n", "-q", "-c", str(count), "-W", str(wait), str(address)],
        netns=netns,
        check=False,
        timeout=count * wait + 5,
    )
    return proc.returncode == 0


def verify(interface, peers, within=180, timeout=60, do_ping=True, netns=None, clock=time.time):
    """
    Wait up to ``timeout`` seconds until every peer has a handshake younger than
    ``within`` seconds and (``do_ping``) answers a ping at its tunnel address. Pinging
    also makes WireGuard initiate a handshake. Returns ``(ok, report)``;
    report is ``{peer name: {handshake_age, ping, transfer_rx, transfer_tx, problem}}``.
    """
    if not peers:
        return False, {"": {"problem": "no peers to verify (no public key published by the other side)"}}
    deadline = time.monotonic() + max(timeout, 0)
    while True:
        live = live_status(interface, netns)
        report, ok = {}, True
        for peer in peers:
            entry = {"handshake_age": None, "ping": None}
            have = (live or {}).get("peers", {}).get(peer["public_key"])
            if live is None:
                entry["problem"] = f"interface {interface} does not exist"
            elif have is None:
                entry["problem"] = "not configured on the interface"
            else:
                entry["transfer_rx"], entry["transfer_tx"] = have["transfer_rx"], have["transfer_tx"]
                if do_ping and peer.get("address"):
                    entry["ping"] = ping(peer["address"], netns=netns)
                    if entry["ping"]:
                        have = live_status(interface, netns)["peers"].get(peer["public_key"], have)
                if have["latest_handshake"]:
                    entry["handshake_age"] = max(0, int(clock()) - have["latest_handshake"])
                if not have["latest_handshake"]:
                    entry["problem"] = "no handshake yet"
                elif entry["handshake_age"] > within:
                    entry["problem"] = f"latest handshake {entry['handshake_age']}s ago (> {within}s)"
                elif do_ping and peer.get("address") and not entry["ping"]:
                    entry["problem"] = f"no answer to ping at {peer['address']} over the tunnel"
            if entry.get("problem"):
                ok = False
            report[peer["name"]] = entry
        if ok or time.monotonic() >= deadline:
            return ok, report
        time.sleep(1)
