"""
A real WireGuard tunnel from the configs the states produced (root only).

Two network namespaces joined by a veth pair stand for the cloud and the local node
(the cloud end of the veth has the lab pillar's public endpoint, 198.18.0.1). The kernel
here may lack the WireGuard module, so the userspace implementation (wireguard-go) runs
in each namespace. The responder (cloud) comes up first, by hand, from the config file
the cloud minion's state wrote (``wg-quick strip`` + its ``PostUp`` line). The local end
is brought up by the local minion's own ``wireguard`` state (pillar ``netns`` points it
into the namespace): it finds the bare interface and syncs it live. Then: ping across
the tunnel, ``wireguard.verify``, and a peer change applied while a ping runs, proving
the tunnel is not dropped.

wireguard-go's control sockets live in /var/run/wireguard (shared by all namespaces), so
the two ends use different interface names, and a lock file serialises concurrent runs
of this test on one machine.
"""

import fcntl
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest

UTILS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "_utils")
if UTILS not in sys.path:
    sys.path.insert(0, UTILS)

import hecate_wireguard_keys  # noqa: E402
import hecate_wireguard_process  # noqa: E402

pytestmark = pytest.mark.root

CLOUD_ENDPOINT_IP = "198.18.0.1"  # lab/pillar/env/lab.sls bionicgpt:wireguard:cloud:endpoint
LOCAL_UNDERLAY_IP = "198.18.0.2"
CLOUD_IF = "hcwc0"  # the local end uses the pillar's name, hcwg0
LOCAL_IF = "hcwg0"
LOCK = "/run/lock/hecate-wireguard-netns-test.lock"


def skip_reason():
    if os.geteuid() != 0:
        return "needs root: network namespaces, veth pairs and TUN devices (run `make test` as root)"
    for tool in ("ip", "wg", "wg-quick", "wireguard-go", "ping"):
        if not shutil.which(tool):
            return (f"{tool} is not installed (`make test` as root installs wireguard-tools, wireguard-go, "
                    "iproute2, iputils-ping)")
    if not os.path.exists("/dev/net/tun"):
        return "/dev/net/tun is missing (no TUN support for wireguard-go)"
    probe = f"hcprobe{os.getpid()}"
    out = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True, check=False)
    if out.returncode != 0:
        return f"`ip netns add` does not work here: {out.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True, check=False)
    return None


def sh(*cmd, ns=None, check=True, stdin=None):
    if ns:
        cmd = ("ip", "netns", "exec", ns) + cmd
    out = subprocess.run(list(cmd), capture_output=True, text=True, input=stdin, check=False, timeout=60)
    if check and out.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed: {out.stderr or out.stdout}")
    return out


class Namespaces:
    """Two namespaces joined by a veth pair; wireguard-go processes; everything torn down."""

    def __init__(self, workdir):
        suffix = os.getpid() % 100000
        self.cloud, self.local = f"hecate-c{suffix}", f"hecate-l{suffix}"
        self.veth = (f"hcvc{suffix}", f"hcvl{suffix}")
        self.workdir = workdir
        self.procs = []

    def up(self):
        sh("ip", "netns", "add", self.cloud)
        sh("ip", "netns", "add", self.local)
        sh("ip", "link", "add", self.veth[0], "type", "veth", "peer", "name", self.veth[1])
        for ns, dev, addr in (
            (self.cloud, self.veth[0], CLOUD_ENDPOINT_IP),
            (self.local, self.veth[1], LOCAL_UNDERLAY_IP),
        ):
            sh("ip", "link", "set", dev, "netns", ns)
            sh("ip", "-n", ns, "addr", "add", f"{addr}/24", "dev", dev)
            sh("ip", "-n", ns, "link", "set", dev, "up")
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        return self

    def wireguard_go(self, ns, iface):
        """Start wireguard-go in the foreground (we own the process) and wait for its socket."""
        sock = f"/var/run/wireguard/{iface}.sock"
        if os.path.exists(sock):
            os.unlink(sock)  # stale socket of a killed earlier run (we hold the lock)
        log = open(os.path.join(self.workdir, f"wireguard-go-{iface}.log"), "w", encoding="utf-8")  # noqa: SIM115
        env = dict(os.environ, LOG_LEVEL="error")
        proc = subprocess.Popen(  # pylint: disable=consider-using-with
            ["ip", "netns", "exec", ns, "wireguard-go", "-f", iface], stdout=log, stderr=log, env=env
        )
        self.procs.append((proc, log))
        deadline = time.monotonic() + 20
        while not os.path.exists(sock):
            assert proc.poll() is None, f"wireguard-go {iface} exited ({proc.returncode}); see {log.name}"
            assert time.monotonic() < deadline, f"wireguard-go {iface} made no control socket"
            time.sleep(0.1)
        return proc

    def down(self):
        for proc, log in self.procs:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=10)
            log.close()
        for ns in (self.cloud, self.local):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)
        subprocess.run(["ip", "link", "del", self.veth[0]], capture_output=True, check=False)


def remove_stale_namespaces():
    """Namespaces of a run that was killed before its teardown (we hold the lock, so no
    other run is using them)."""
    listing = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False).stdout
    for name in re.findall(r"^(hecate-[cl]\d+)\b", listing, re.M):
        subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)


@pytest.fixture(scope="module")
def netns(tmp_path_factory):
    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    os.makedirs(os.path.dirname(LOCK), exist_ok=True)
    with open(LOCK, "w", encoding="utf-8") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        remove_stale_namespaces()
        pair = Namespaces(str(tmp_path_factory.mktemp("netns")))
        try:
            yield pair.up()
        finally:
            pair.down()
            fcntl.flock(lock, fcntl.LOCK_UN)


@pytest.fixture(scope="module")
def configs(salt_cli, agent_vault_secrets):
    """Keys on both nodes (published to the mine), then each node's wireguard state."""
    for sls, tgt in (("wireguard.keys", "*"), ("wireguard", "cloud"), ("wireguard", "local")):
        ret = salt_cli.run("state.apply", sls, minion_tgt=tgt)
        assert ret.returncode == 0, ret
    out = {}
    for minion in ("cloud", "local"):
        ret = salt_cli.run("wireguard.settings", minion_tgt=minion)
        assert ret.returncode == 0, ret
        out[minion] = ret.data
        out[minion]["public_key"] = salt_cli.run("wireguard.public_key", minion_tgt=minion).data
    return out


def pillar_for(netns_pair, **extra):
    wg = {"netns": netns_pair.local, "verify": {"enabled": True, "timeout": 30, "within": 180}}
    wg.update(extra)
    return "pillar=" + json.dumps({"bionicgpt": {"wireguard": wg}})


def the_state(ret, sls_id):
    assert isinstance(ret.data, dict), ret
    (state,) = [s for s in ret.data.values() if s["__id__"] == sls_id]
    return state


@pytest.fixture(scope="module")
def tunnel(netns, configs, salt_cli):
    cloud = configs["cloud"]
    # 1. the responder: bring the cloud end up from the file its state wrote, as wg-quick would
    netns.wireguard_go(netns.cloud, CLOUD_IF)
    stripped = sh("wg-quick", "strip", cloud["config_file"]).stdout
    assert "PrivateKey" not in stripped and configs["local"]["public_key"] in stripped
    sh("wg", "setconf", CLOUD_IF, "/dev/stdin", ns=netns.cloud, stdin=stripped)
    conf_text = open(cloud["config_file"], encoding="utf-8").read()  # noqa: SIM115
    (post_up,) = re.findall(r"^PostUp = (.+)$", conf_text, re.M)
    sh("sh", "-c", post_up.replace("%i", CLOUD_IF), ns=netns.cloud)
    (address,) = re.findall(r"^Address = (.+)$", conf_text, re.M)
    sh("ip", "addr", "add", address, "dev", CLOUD_IF, ns=netns.cloud)
    sh("ip", "link", "set", CLOUD_IF, "up", ns=netns.cloud)
    live = hecate_wireguard_process.live_status(CLOUD_IF, netns.cloud)
    assert live["public_key"] == cloud["public_key"] and live["listen_port"] == 51820

    # 2. the initiator: a bare wireguard-go interface that the local minion's state syncs live
    netns.wireguard_go(netns.local, LOCAL_IF)
    preview = salt_cli.run("state.apply", "wireguard", pillar_for(netns), "test=True", minion_tgt="local")
    predicted = the_state(preview, f"wireguard interface {LOCAL_IF}")
    assert predicted["result"] is None
    assert hecate_wireguard_process.live_status(LOCAL_IF, netns.local)["peers"] == {}  # the preview wrote nothing
    ret = salt_cli.run("state.apply", "wireguard", pillar_for(netns), minion_tgt="local")
    state = the_state(ret, f"wireguard interface {LOCAL_IF}")
    assert state["result"] is True, state
    assert state["changes"] == predicted["changes"]
    assert state["changes"]["live"]["peers"] == {"added": ["cloud"], "removed": [], "changed": []}
    assert state["changes"]["live"]["addresses"] == {"old": [], "new": ["10.88.0.2/24"]}
    assert state["changes"]["live"]["key"]["new"] == configs["local"]["public_key"]
    assert "config" not in state["changes"]  # the file was already right; only the live side changed
    return netns


def test_ping_across_the_tunnel(tunnel):
    deadline = time.monotonic() + 30
    while not hecate_wireguard_process.ping("10.88.0.1", netns=tunnel.local):
        assert time.monotonic() < deadline, "no answer from the cloud end over the tunnel"
    assert hecate_wireguard_process.ping("10.88.0.2", netns=tunnel.cloud)
    # the traffic really went through WireGuard: both ends saw a handshake and bytes
    for ns, iface in ((tunnel.cloud, CLOUD_IF), (tunnel.local, LOCAL_IF)):
        (peer,) = hecate_wireguard_process.live_status(iface, ns)["peers"].values()
        assert peer["latest_handshake"] > 0 and peer["transfer_rx"] > 0 and peer["transfer_tx"] > 0
    (cloud_peer,) = hecate_wireguard_process.live_status(CLOUD_IF, tunnel.cloud)["peers"].values()
    assert cloud_peer["endpoint"] == f"{LOCAL_UNDERLAY_IP}:51820"


def test_verify_state_and_module(tunnel, salt_cli):
    ret = salt_cli.run("state.apply", "wireguard.verify", pillar_for(tunnel), minion_tgt="local")
    state = the_state(ret, f"wireguard tunnel {LOCAL_IF} is up")
    assert state["result"] is True, state
    assert re.search(r"cloud: handshake \d+s ago, ping ok", state["comment"]), state
    ret = salt_cli.run("wireguard.verify", f"netns={tunnel.local}", "timeout=10", minion_tgt="local")
    assert ret.returncode == 0, ret
    assert set(ret.data) == {"cloud"} and ret.data["cloud"]["ping"] is True, ret.data
    assert ret.data["cloud"]["handshake_age"] is not None and not ret.data["cloud"].get("problem")
    ret = salt_cli.run("wireguard.status", f"netns={tunnel.local}", minion_tgt="local")
    assert ret.data["present"] is True and ret.data["up"] is True
    assert ret.data["addresses"] == ["10.88.0.2/24"]
    (peer,) = ret.data["peers"].values()
    assert peer["endpoint"] == f"{CLOUD_ENDPOINT_IP}:51820" and peer["latest_handshake"] > 0
    assert "PrivateKey" not in ret.stdout


def test_rerun_with_live_interface_changes_nothing(tunnel, salt_cli):
    ret = salt_cli.run("state.apply", "wireguard", pillar_for(tunnel), minion_tgt="local")
    for state in ret.data.values():
        assert state["result"] is True and state["changes"] == {}, state


def test_peer_change_does_not_drop_the_tunnel(tunnel, salt_cli):
    laptop = hecate_wireguard_keys.public_from_private(hecate_wireguard_keys.new_private_key())
    extra = [{"name": "laptop", "public_key": laptop, "allowed_ips": ["10.88.0.50/32"]}]
    before = hecate_wireguard_process.live_status(LOCAL_IF, tunnel.local)
    (cloud_key,) = before["peers"]
    pinger = subprocess.Popen(  # pylint: disable=consider-using-with
        ["ip", "netns", "exec", tunnel.local, "ping", "-n", "-i", "0.2", "-c", "600", "-W", "1", "10.88.0.1"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        time.sleep(1)
        ret = salt_cli.run("state.apply", "wireguard", pillar_for(tunnel, extra_peers=extra), minion_tgt="local")
        state = the_state(ret, f"wireguard interface {LOCAL_IF}")
        assert state["result"] is True, state
        assert state["changes"]["live"] == {"peers": {"added": ["laptop"], "removed": [], "changed": []}}
        assert "no restart" in state["comment"]
        during = hecate_wireguard_process.live_status(LOCAL_IF, tunnel.local)
        assert set(during["peers"]) == {cloud_key, laptop}
        ret = salt_cli.run("state.apply", "wireguard", pillar_for(tunnel), minion_tgt="local")
        state = the_state(ret, f"wireguard interface {LOCAL_IF}")
        assert state["changes"]["live"]["peers"]["removed"] == [laptop]
        time.sleep(1)
        pinger.send_signal(signal.SIGINT)  # ping prints its summary and exits
        output, _ = pinger.communicate(timeout=30)
    finally:
        if pinger.poll() is None:
            pinger.kill()
    after = hecate_wireguard_process.live_status(LOCAL_IF, tunnel.local)
    # same interface, same session with the cloud peer (no new handshake was needed), no lost ping
    assert after["ifindex"] == before["ifindex"] and after["up"]
    # (a rekey is due 120s after a handshake, whatever we do; a down/up would force one at once)
    shake_before = before["peers"][cloud_key]["latest_handshake"]
    shake_after = after["peers"][cloud_key]["latest_handshake"]
    assert shake_after == shake_before or shake_after - shake_before >= 120
    assert set(after["peers"]) == {cloud_key}
    assert " 0% packet loss" in output, output


def test_skip_reason_names_root_when_not_root(monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert skip_reason().startswith("needs root")
