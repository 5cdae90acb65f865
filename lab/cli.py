"""
``python -m lab up|down|status|orch``: the embedded environment outside pytest.

``up`` starts the simulators (Vault, Consul, Nomad, Hetzner DNS), a throwaway salt-master
and the ``cloud``/``local`` minions (with their role grains; ``--edges N --nodes M``:
``edge-1``... and ``node-1``..., each edge with its own Caddy, the membership and per-minion
pillar of several edges and nodes), syncs hecate's modules from
file_roots to both sides (``saltutil.sync_all``) and writes the ``lab_runtime`` pillar.
The lab's own pillar tree is ``lab/pillar/`` (the operator's ``pillar/`` is never read).
Nothing of the edge runs yet: ``salt-run state.orch orch.hecate pillar='{"env": "lab"}'``
(previewed with ``test=True`` first) deploys it from zero - PostgreSQL, Authentik and Caddy
as Nomad jobs, whose tasks the lab's Nomad runs as the real parts (the real Caddy binary
with the job's bootstrap config, the Authentik simulator bootstrapped from the job's
environment) - then configures Authentik, the routes and the streams; ``orch.bionicgpt``
(previewed, applied) deploys BionicGPT behind it; both are re-run to show they converge
with zero writes, and requests go through Caddy. ``up --fast`` starts Caddy and the
Authentik simulator directly instead and runs orch.bionicgpt only, as the test suite's
fast lab does. Everything stays up until ``down``.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request

import yaml

from lab import caddy as lab_caddy
from lab import devservers, nomad_agent, procs, topology
from lab.sim import SimHandle

DEFAULT_DIR = os.path.join(topology.REPO, ".lab")


class Lab:
    def __init__(self, workdir):
        self.workdir = os.path.abspath(workdir)
        self.state_path = os.path.join(self.workdir, "state.json")
        self.salt_dir = os.path.join(self.workdir, "salt")
        self.master_conf = os.path.join(self.salt_dir, "master")

    # -- state file -----------------------------------------------------------------------
    def load_state(self):
        try:
            with open(self.state_path, encoding="utf-8") as fh:
                return json.load(fh)
        except OSError:
            return None

    def save_state(self, state):
        os.makedirs(self.workdir, exist_ok=True)
        with open(self.state_path, "w", encoding="utf-8") as fh:
            json.dump(state, fh, indent=2)
        os.chmod(self.state_path, 0o600)

    # -- up -------------------------------------------------------------------------------
    def up(self, run_orch=True, fast=False, edges=1, nodes=1):
        if self.load_state():
            print("a lab is already up; `python -m lab down` first", file=sys.stderr)
            return 1
        minions = topology.minions(edges, nodes)
        if topology.several(minions) and not fast:
            # the edge's own Nomad jobs (Caddy, Authentik) are deployed for one edge only
            step(f"{edges} edge(s), {nodes} node(s): the fast lab (each edge's Caddy started by the lab, "
                 "orch.bionicgpt)")
            fast = True
        # a throwaway lab: nothing of an earlier one (Caddy's autosave, keys, caches) survives
        shutil.rmtree(self.workdir, ignore_errors=True)
        os.makedirs(self.workdir, exist_ok=True)
        lab_secrets = topology.new_lab_secrets()
        state = {"pids": {}, "addresses": {"minions": minions}, "started": time.time(),
                 "mode": "fast" if fast else "from-zero"}
        try:
            self._start_services(state, lab_secrets, fast)
            # nginx/coturn of the edge write into the lab and listen on loopback ports
            state["addresses"].update(topology.edge_addresses(os.path.join(self.workdir, "edge")))
            topology.write_runtime_pillar(os.path.join(self.workdir, "pillar"), state["addresses"])
            self._start_salt(state, lab_secrets)
        except Exception:
            self.save_state(state)
            self.down()
            raise
        self.save_state(state)
        print(f"lab up in {time.time() - state['started']:.1f}s; logs in {self.workdir}/logs")
        self._print_addresses(state)
        if not run_orch:
            return 0
        if fast:
            return self.orch_three_times()
        return self.from_zero()

    def _start_services(self, state, lab_secrets, fast=False):
        if devservers.available("vault"):
            step("starting Vault (real binary, dev mode)")
            vault = devservers.vault(os.path.join(self.workdir, "vault"), lab_secrets)
        else:
            step("starting the Vault simulator")
            vault = SimHandle(
                "vault", os.path.join(self.workdir, "vault"), topology.vault_options(lab_secrets)
            ).start()
        state["pids"]["vault"] = vault.proc.pid
        state["addresses"]["vault"] = vault.url
        if devservers.available("consul"):
            step("starting Consul (real binary, dev mode)")
            consul = devservers.consul(os.path.join(self.workdir, "consul"), lab_secrets)
        else:
            step("starting the Consul simulator")
            consul = SimHandle(
                "consul", os.path.join(self.workdir, "consul"), topology.consul_options(lab_secrets)
            ).start()
        state["pids"]["consul"] = consul.proc.pid
        state["addresses"]["consul"] = consul.url
        agents_dir = os.path.join(self.workdir, "agents")
        if nomad_agent.available():
            step("starting Nomad (nomad agent -dev on loopback)")
            # ACLs on; the agent's generated token for hecate replaces lab_secrets["nomad_token"]
            # before the Salt configs are written
            nomad = nomad_agent.DevAgent(os.path.join(self.workdir, "nomad"),
                                         consul_url=state["addresses"].get("consul"),
                                         consul_token=lab_secrets["nomad_consul_token"],
                                         vault_url=state["addresses"].get("vault"),
                                         lab_secrets=lab_secrets,
                                         node_meta=topology.node_meta(state["addresses"]["minions"])).start()
        else:
            step("starting the Nomad simulator (no nomad binary on PATH)")
            nomad = SimHandle(
                "nomad", os.path.join(self.workdir, "nomad"),
                topology.nomad_options(consul_url=state["addresses"].get("consul"),
                                       consul_token=lab_secrets["nomad_consul_token"],
                                       lab_secrets=lab_secrets,
                                       vault_url=state["addresses"].get("vault"),
                                       vault_token=lab_secrets["nomad_vault_token"],
                                       data_dir=os.path.join(self.workdir, "nomad-tasks"),
                                       agents_dir=agents_dir,
                                       node_meta=topology.node_meta(state["addresses"]["minions"])),
            ).start()
        state["pids"]["nomad"] = nomad.proc.pid
        state["addresses"]["nomad"] = nomad.url
        if fast:
            step(f"starting the Authentik simulator (release {topology.AUTHENTIK_VERSION}, strict schema)")
            authentik = SimHandle(
                "authentik", os.path.join(self.workdir, "authentik"), topology.authentik_options(lab_secrets)
            ).start()
            state["pids"]["authentik"] = authentik.proc.pid
            state["addresses"]["authentik"] = authentik.url
        step("starting the Hetzner DNS simulator (the lab's zones, with records hecate must not touch)")
        hetzner = SimHandle(
            "hetzner", os.path.join(self.workdir, "hetzner"), topology.hetzner_options(lab_secrets)
        ).start()
        state["pids"]["hetzner"] = hetzner.proc.pid
        state["addresses"]["hetzner"] = hetzner.url
        # the API token and the lab users' passwords live in Vault only, as in production
        # operator-provided secrets (the Authentik API token, Consul ACL tokens, Azure) live in
        # Vault only, as in production; hecate generates the rest during the run
        topology.seed_prerequisites(vault.url, lab_secrets["vault_root_token"], lab_secrets, edge_from_zero=not fast)
        if fast:
            self._start_caddies(state)
            return
        # the edge from zero: Caddy and Authentik come up as Nomad jobs on these ports
        edge = topology.edge_job_ports()
        edge.update(vault_path="secret/hecate/authentik", state_dir=os.path.join(self.workdir, "caddy-state"))
        state["addresses"]["edge_jobs"] = edge
        state["addresses"]["caddy_http_port"] = edge["caddy_http"]

    def _start_caddies(self, state):
        """The real Caddy, one per edge (each its own admin port, listener and snapshots)."""
        minions = state["addresses"]["minions"]
        edges = sorted(mid for mid, grains in minions.items() if "hecate-edge" in grains["roles"])
        if not topology.several(minions):
            step("starting Caddy (real binary, admin API on loopback)")
            caddy = lab_caddy.Caddy(os.path.join(self.workdir, "caddy")).start()
            state["pids"]["caddy"] = caddy.proc.pid
            state["addresses"]["caddy_admin"] = caddy.admin_url
            state["addresses"]["caddy_http_port"] = caddy.http_port
            return
        state["addresses"]["edges"] = {}
        for mid in edges:
            step(f"starting Caddy of {mid} (real binary, its own admin API on loopback)")
            caddy = lab_caddy.Caddy(os.path.join(self.workdir, f"caddy-{mid}")).start()
            state["pids"][f"caddy-{mid}"] = caddy.proc.pid
            state["addresses"]["edges"][mid] = {
                "caddy_admin": caddy.admin_url, "caddy_http_port": caddy.http_port,
                "caddy_state_dir": os.path.join(self.workdir, f"caddy-state-{mid}")}
        first = state["addresses"]["edges"][edges[0]]
        state["addresses"]["caddy_admin"] = first["caddy_admin"]
        state["addresses"]["caddy_http_port"] = first["caddy_http_port"]

    def _start_salt(self, state, lab_secrets):
        minions = state["addresses"].get("minions") or topology.MINIONS
        step(f"starting salt-master and the minions {', '.join(sorted(minions))}")
        publish_port, ret_port = procs.free_port(), procs.free_port()
        user = _user()
        common = dict(topology.salt_opts(lab_secrets))
        common.update({"user": user, "log_level_logfile": "info"})
        master = dict(common)
        master.update(
            {
                "id": "lab-master",
                "root_dir": os.path.join(self.salt_dir, "master-root"),
                "interface": "127.0.0.1",
                "publish_port": publish_port,
                "ret_port": ret_port,
                "auto_accept": True,
                "file_roots": topology.file_roots(),
                "pillar_roots": topology.pillar_roots(os.path.join(self.workdir, "pillar")),
                "fileserver_followsymlinks": True,
                "log_file": os.path.join(self.workdir, "logs", "master.log"),
            }
        )
        self._write_conf(self.master_conf, "master", master)
        logs = os.path.join(self.workdir, "logs")
        proc = procs.Proc(
            "salt-master",
            [procs.venv_bin("salt-master"), "-c", self.master_conf, "-l", "warning"],
            os.path.join(logs, "salt-master.out"),
        )
        state["pids"]["salt-master"] = proc.pid
        procs.wait_port(ret_port, timeout=60)
        for name, grains in sorted(minions.items()):
            conf = dict(common)
            conf.update(
                {
                    "id": name,
                    "master": "127.0.0.1",
                    "master_port": ret_port,
                    "publish_port": publish_port,
                    "root_dir": os.path.join(self.salt_dir, f"{name}-root"),
                    "grains": grains,
                    "log_file": os.path.join(logs, f"minion-{name}.log"),
                }
            )
            conf_dir = os.path.join(self.salt_dir, name)
            self._write_conf(conf_dir, "minion", conf)
            proc = procs.Proc(
                f"salt-minion-{name}",
                [procs.venv_bin("salt-minion"), "-c", conf_dir, "-l", "warning"],
                os.path.join(logs, f"salt-minion-{name}.out"),
            )
            state["pids"][f"salt-minion-{name}"] = proc.pid
        self._wait_minions(sorted(minions))
        step("syncing hecate's modules from file_roots (minions and master)")
        self.salt(["*", "saltutil.sync_all"])
        self.salt_run(["saltutil.sync_all"])

    @staticmethod
    def _write_conf(conf_dir, name, data):
        os.makedirs(conf_dir, exist_ok=True)
        path = os.path.join(conf_dir, name)
        with open(path, "w", encoding="utf-8") as fh:
            yaml.safe_dump(data, fh, default_flow_style=False)
        os.chmod(path, 0o600)

    def _wait_minions(self, names, timeout=90):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            out = self.salt(["*", "test.ping", "--out=json", "--static", "-t", "5"], check=False)
            try:
                data = json.loads(out.stdout or "{}")
            except ValueError:
                data = {}
            if all(data.get(n) is True for n in names):
                return
            time.sleep(1)
        raise TimeoutError(f"minions {names} did not answer within {timeout}s")

    # -- salt commands ------------------------------------------------------------------------
    def salt(self, args, check=True):
        return _run([procs.venv_bin("salt"), "-c", self.master_conf] + args, check)

    def salt_run(self, args, check=True):
        return _run([procs.venv_bin("salt-run"), "-c", self.master_conf] + args, check)

    # -- orchestration ------------------------------------------------------------------------
    def orch(self, test=False, env=topology.ENV, sls="orch.bionicgpt"):
        args = ["state.orch", sls, f'pillar={{"env": "{env}"}}', "--out=json"]
        if test:
            args.append("test=True")
        started = time.monotonic()
        out = self.salt_run(args, check=False)
        elapsed = time.monotonic() - started
        try:
            data = json.loads(out.stdout)
        except ValueError:
            print(out.stdout, out.stderr, file=sys.stderr)
            raise
        return data, elapsed

    def orch_three_times(self):
        rc = 0
        for title, test in (("preview (test=True)", True), ("apply", False), ("re-run", False)):
            step(f"orch.bionicgpt env=lab: {title}")
            data, elapsed = self.orch(test=test)
            rc = max(rc, print_summary(data, elapsed))
        return max(rc, self.request_through_caddy())

    def from_zero(self):
        """The edge from zero (orch.hecate), BionicGPT behind it, then the converged re-runs."""
        rc = 0
        runs = (("orch.hecate", "preview from bare nodes (test=True)", True),
                ("orch.hecate", "apply: edge jobs, Authentik, routes", False),
                ("orch.bionicgpt", "preview (test=True)", True),
                ("orch.bionicgpt", "apply", False),
                ("orch.hecate", "re-run (converged: zero writes)", False),
                ("orch.bionicgpt", "re-run (converged: zero writes)", False))
        for sls, title, test in runs:
            step(f"{sls} env=lab: {title}")
            data, elapsed = self.orch(test=test, sls=sls)
            rc = max(rc, print_summary(data, elapsed))
        rc = max(rc, self.request_through_caddy("/-/health/live/", topology.LAB_AUTHENTIK_DOMAIN))
        return max(rc, self.request_through_caddy())

    def request_through_caddy(self, path="/", host=topology.LAB_CHAT_DOMAIN):
        """A request on each edge's Caddy listener: the chat domain -> oauth2-proxy's stand-in (or ``host``)."""
        addresses = (self.load_state() or {}).get("addresses") or {}
        edges = addresses.get("edges") or {}
        ports = [edge["caddy_http_port"] for _, edge in sorted(edges.items())] or [addresses.get("caddy_http_port")]
        return max(self._request(port, path, host) for port in ports if port) if any(ports) else 0

    @staticmethod
    def _request(port, path, host):
        step(f"GET http://{host}{path} through Caddy (127.0.0.1:{port})")
        req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers={"Host": host})
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310 (loopback)
                body = resp.read(300).decode("utf-8", "replace")
                print(f"  {resp.status} {body.splitlines()[0] if body else '(empty body)'}")
                return 0
        except urllib.error.HTTPError as exc:
            print(f"  {exc.code} {exc.read(300).decode('utf-8', 'replace')}")
        except OSError as exc:
            print(f"  failed: {exc}")
        return 1

    # -- down / status ----------------------------------------------------------------------
    def down(self):
        state = self.load_state()
        if not state:
            print("no lab is up")
            return 0
        edge_dir = (state.get("addresses") or {}).get("edge_dir")
        if edge_dir:  # nginx started by the hecate.nginx states of the lab
            procs.kill_pidfile(topology.edge_paths(edge_dir)["nginx_pid"])
        for name in reversed(list(state["pids"])):
            pidfile = os.path.join(self.workdir, f"{name}.pid")
            with open(pidfile, "w", encoding="utf-8") as fh:
                fh.write(str(state["pids"][name]))
            procs.kill_pidfile(pidfile)
        os.unlink(self.state_path)
        print("lab down")
        return 0

    def status(self):
        state = self.load_state()
        if not state:
            print("no lab is up")
            return 1
        for name, pid in state["pids"].items():
            alive = _alive(pid)
            print(f"{name:22} pid {pid:<8} {'running' if alive else 'DEAD'}")
        self._print_addresses(state)
        return 0

    @staticmethod
    def _print_addresses(state):
        for name, addr in state["addresses"].items():
            if name == "minions":
                print(f"  {name:20} {', '.join(sorted(addr))}")
            elif name == "edges":
                for mid, edge in sorted(addr.items()):
                    print(f"  {'caddy of ' + mid:20} admin {edge['caddy_admin']}, "
                          f"listener 127.0.0.1:{edge['caddy_http_port']}")
            else:
                print(f"  {name:20} {addr}")


def print_summary(data, elapsed):
    """One line per orchestration step: result, number of changed states, duration."""
    steps = {}
    for minion_ret in (data.get("data") or {}).values():
        if isinstance(minion_ret, dict):
            steps.update(minion_ret)
    if not steps:
        print(json.dumps(data, indent=2))
        return 1
    rc = 0
    for key, step_ret in sorted(steps.items(), key=lambda kv: kv[1].get("__run_num__", 0)):
        res = step_ret.get("result")
        runner = key.endswith("_|-runner")  # lock/record: the runner's return is no change count
        mark = {True: "ok", None: "preview", False: "FAILED"}[res]
        if res is False:
            rc = 1
        print(
            f"  {step_ret.get('__id__', '?'):34} {mark:8} "
            f"changes={'-' if runner else count_changes(step_ret.get('changes'))} "
            f"{step_ret.get('duration', 0) / 1000:.2f}s"
        )
        if res is False:
            print("      " + str(step_ret.get("comment", "")).replace("\n", "\n      "))
    print(f"  total {elapsed:.1f}s, retcode {data.get('retcode')}")
    return max(rc, 1 if data.get("retcode") else 0)


def count_changes(changes):
    """
    Changed states inside a salt.state step (per minion); 1 per minion for a
    salt.function step (its return is the function's, not state returns); 1 for a
    direct state.
    """
    if not changes:
        return 0
    if isinstance(changes, dict) and isinstance(changes.get("ret"), dict):
        total = 0
        for minion_ret in changes["ret"].values():
            if _is_state_returns(minion_ret):
                total += sum(1 for s in minion_ret.values() if s.get("changes"))
            else:
                total += 1
        return total
    return 1


def _is_state_returns(value):
    """Whether ``value`` is a minion's state returns ({state key: {result, changes, ...}})."""
    return isinstance(value, dict) and all(
        isinstance(s, dict) and "result" in s for s in value.values()
    )


def step(msg):
    print(f"==> {msg}", flush=True)


def _run(argv, check):
    out = subprocess.run(argv, capture_output=True, text=True, check=False)
    if check and out.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:4])}... failed ({out.returncode}): {out.stderr or out.stdout}")
    return out


def _alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except OSError:
        return False


def _user():
    import getpass  # pylint: disable=import-outside-toplevel

    return getpass.getuser()


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m lab", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["up", "down", "status", "orch"])
    parser.add_argument("--dir", default=DEFAULT_DIR, help="lab state directory (default .lab/)")
    parser.add_argument("--no-orch", action="store_true", help="up: start only, run nothing")
    parser.add_argument("--fast", action="store_true",
                        help="up: start Caddy and Authentik directly (not as Nomad jobs); orch.bionicgpt only")
    parser.add_argument("--edges", type=int, default=1,
                        help="up: edges (roles:hecate-edge, each with its own Caddy; more than 1: the fast lab)")
    parser.add_argument("--nodes", type=int, default=1, help="up: local nodes (roles:bionicgpt-node)")
    parser.add_argument("--test", action="store_true", help="orch: preview only")
    parser.add_argument("--sls", default="orch.bionicgpt", help="orch: orch.bionicgpt (default) or orch.hecate")
    args = parser.parse_args(argv)
    lab = Lab(args.dir)
    if args.command == "up":
        if args.edges < 1 or args.nodes < 1:
            parser.error("--edges and --nodes are at least 1")
        return lab.up(run_orch=not args.no_orch, fast=args.fast, edges=args.edges, nodes=args.nodes)
    if args.command == "down":
        return lab.down()
    if args.command == "status":
        return lab.status()
    data, elapsed = lab.orch(test=args.test, sls=args.sls)
    return print_summary(data, elapsed)
