"""
Test harness: a real salt-master and two real salt-minions on loopback
(pytest-salt-factories), the real Caddy binary, and the lab's HTTP simulators.

- ``cloud`` carries ``roles: [hecate-edge]``, ``local`` carries ``roles: [bionicgpt-node]``;
  both ``hecate_env: lab``.
- file_roots is ``salt/`` (which links ``orch/`` and the ``_modules``-style dirs, so
  ``saltutil.sync_all`` works); pillar_roots is the lab's own tree ``lab/pillar/`` plus a
  per-session directory holding ``lab_runtime.sls`` with the loopback addresses.
- The operator's ``pillar/`` is theirs to edit: no test reads it, except those marked
  ``operator_pillar``, which must pass for any valid edit of it. An audit hook refuses every
  other open of a file under ``pillar/`` in this process (the error names the test), and the
  salt-master's pillar_roots are checked before it starts (:func:`assert_lab_pillar_roots`).
- Custom modules load straight from the repo (``module_dirs``), no sync needed.

Everything is session-scoped and started on first use, so unit tests start nothing.
"""

import os
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
for _path in (REPO, os.path.join(REPO, "_utils")):  # the lab package; utils as the tree has them
    if _path not in sys.path:
        sys.path.insert(0, _path)

from lab import caddy as lab_caddy  # noqa: E402
from lab import procs, topology  # noqa: E402
from lab.sim import SimHandle  # noqa: E402


# -- the operator's pillar/ is not the tests' ------------------------------------------------------
class OperatorPillarGuard:
    """
    Refuses, in this process, opening any file under the operator's ``pillar/`` unless the
    running test is marked ``operator_pillar``: a Python audit hook on the ``open`` event
    (builtins.open, io.open, os.open: what yaml loads, shutil copies and Salt's pillar
    compiler do, whatever the spelling of the path: it is resolved), so no test depends on the
    operator's values in-process. Salt daemons are other processes: their pillar_roots are
    checked instead (:func:`assert_lab_pillar_roots`). Every refused
    open is also recorded, so a refusal swallowed by the code under test still fails the test.
    """

    def __init__(self, root):
        self.root = os.path.realpath(root)
        self.allowed = False
        self.reads = []

    def inside(self, path):
        try:
            path = os.fsdecode(path)
        except TypeError:  # a file descriptor
            return False
        if "pillar" not in path:  # cheap: this runs on every open of the process
            return False
        path = os.path.realpath(path)
        return path == self.root or path.startswith(self.root + os.sep)

    def __call__(self, event, args):
        if event != "open" or self.allowed or not args or not self.inside(args[0]):
            return
        self.reads.append(os.fsdecode(args[0]))
        raise PermissionError(
            f"a test read the operator's pillar ({os.fsdecode(args[0])}): tests use the lab's "
            "pillar lab/pillar/ (lab.topology.PILLAR_DIR, tests/pillar_files.py); a test about "
            "the operator's files is marked operator_pillar and holds for any valid edit of them"
        )


OPERATOR_PILLAR_GUARD = OperatorPillarGuard(topology.OPERATOR_PILLAR_DIR)
sys.addaudithook(OPERATOR_PILLAR_GUARD)


def assert_lab_pillar_roots(opts):
    """A Salt config of the test suite reads no pillar from the operator's ``pillar/``."""
    for roots in (opts.get("pillar_roots") or {}).values():
        for root in roots:
            assert not OPERATOR_PILLAR_GUARD.inside(root), (
                f"pillar_roots has the operator's pillar ({root}); use lab.topology.pillar_roots")


@pytest.fixture(autouse=True)
def operator_pillar_guard(request):
    """Only tests marked ``operator_pillar`` may read the operator's pillar/ (see the class)."""
    guard = OPERATOR_PILLAR_GUARD
    guard.allowed = request.node.get_closest_marker("operator_pillar") is not None
    start = len(guard.reads)
    try:
        yield guard
    finally:
        guard.allowed = False
    refused = guard.reads[start:]
    if refused:
        pytest.fail(f"read the operator's pillar/ without the operator_pillar marker: {refused}")


@pytest.fixture(scope="session")
def repo():
    return REPO


@pytest.fixture(scope="session")
def lab_secrets():
    return topology.new_lab_secrets()


@pytest.fixture(scope="session")
def lab_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("lab"))


@pytest.fixture(scope="session")
def vault_sim(lab_dir, lab_secrets):
    """
    The Vault simulator (``.url``; ``.root_token`` for the harness, which seeds and checks
    Vault; Salt's master and minions log in with the lab's AppRole instead).
    """
    handle = SimHandle(
        "vault", os.path.join(lab_dir, "vault"), topology.vault_options(lab_secrets)
    ).start()
    handle.root_token = lab_secrets["vault_root_token"]
    yield handle
    handle.stop()


@pytest.fixture(scope="session")
def consul_sim(lab_dir, lab_secrets):
    """
    The Consul simulator, ACLs on with default deny (``.url``, ``.token``: hecate's
    management token; the agents' and Nomad's tokens are known to it too).
    """
    handle = SimHandle(
        "consul", os.path.join(lab_dir, "consul"), topology.consul_options(lab_secrets)
    ).start()
    handle.token = lab_secrets["consul_token"]
    yield handle
    handle.stop()


@pytest.fixture(scope="session")
def nomad_sim(lab_dir, lab_secrets, consul_sim, vault_sim):
    """
    The Nomad simulator (one dev-agent-like node, meta.location=local and node class
    hecate-edge, 100x faster); its allocations' services register in the Consul simulator
    with Nomad's Consul token, as Nomad's Consul integration does; its tasks' templates read
    the Vault simulator with the jobs' read-only token; Caddy's, Authentik's and PostgreSQL's
    images run their real parts (topology.task_runners). ACLs on as in production: ``.token``
    is the management token (the harness's, like Vault's root token), ``.headers`` sends it;
    Salt's master and minions carry hecate's own token (``lab_secrets["nomad_token"]``).
    """
    options = topology.nomad_options(consul_url=consul_sim.url, consul_token=lab_secrets["nomad_consul_token"],
                                     lab_secrets=lab_secrets,
                                     vault_url=vault_sim.url, vault_token=lab_secrets["nomad_vault_token"],
                                     data_dir=os.path.join(lab_dir, "nomad-tasks"),
                                     agents_dir=os.path.join(lab_dir, "agents"))
    handle = SimHandle("nomad", os.path.join(lab_dir, "nomad"), options).start()
    handle.token = lab_secrets["nomad_management_token"]
    yield handle
    handle.stop()


@pytest.fixture(scope="session")
def hetzner_sim(lab_dir, lab_secrets):
    """
    The Hetzner DNS simulator (Zones/RRSets of the Cloud API): the lab's zones with their
    foreign records (``topology.LAB_FOREIGN_RRSETS``); ``.token`` is the lab's API token,
    which the Vault simulator holds at secret/hecate/hetzner#dns_api_token.
    """
    handle = SimHandle(
        "hetzner", os.path.join(lab_dir, "hetzner"), topology.hetzner_options(lab_secrets)
    ).start()
    handle.token = topology.hetzner_token(lab_secrets)
    yield handle
    handle.stop()


@pytest.fixture(scope="session")
def caddy(lab_dir):
    """The real Caddy, admin API on a free loopback port, one HTTP listener."""
    proc = lab_caddy.Caddy(os.path.join(lab_dir, "caddy")).start()
    yield proc
    proc.stop()


@pytest.fixture(scope="session")
def authentik_sims(lab_dir, lab_secrets, vault_sim):
    """
    ``authentik_sims(version)``: the Authentik simulator of that release (2025.6,
    2025.10, 2026.5), started on first use, strict (unknown request fields are a 400),
    with its API token seeded in the Vault simulator at secret/hecate/authentik#api_token
    so modules resolve it the production way. Each handle has ``.token`` and ``.version``.
    """
    started = {}
    topology.seed_vault(vault_sim.url, vault_sim.root_token, topology.authentik_vault_seed(lab_secrets))

    def get(version=topology.AUTHENTIK_VERSION):
        if version not in started:
            handle = SimHandle(
                "authentik",
                os.path.join(lab_dir, f"authentik-{version}"),
                topology.authentik_options(lab_secrets, version=version),
            ).start()
            handle.token = topology.authentik_token(lab_secrets)
            handle.version = version
            started[version] = handle
        return started[version]

    yield get
    for handle in started.values():
        handle.stop()


@pytest.fixture(scope="session")
def authentik_sim(authentik_sims):
    """The lab's Authentik simulator (release ``topology.AUTHENTIK_VERSION``)."""
    return authentik_sims()


@pytest.fixture(scope="session")
def edge_addresses(lab_dir):
    """Paths and loopback ports of the lab's nginx streams and coturn config (the cloud
    minion's pillar); the nginx the states start there is stopped at the end."""
    addresses = topology.edge_addresses(os.path.join(lab_dir, "edge"))
    yield addresses
    procs.kill_pidfile(topology.edge_paths(addresses["edge_dir"])["nginx_pid"])


@pytest.fixture(scope="session")
def runtime_pillar_dir(
    lab_dir, lab_secrets, caddy, vault_sim, consul_sim, nomad_sim, authentik_sim, hetzner_sim,
    edge_addresses,
):
    path = os.path.join(lab_dir, "pillar")
    addresses = {
        "caddy_admin": caddy.admin_url,
        "caddy_http_port": caddy.http_port,
        "vault": vault_sim.url,
        "consul": consul_sim.url,
        "nomad": nomad_sim.url,
        "authentik": authentik_sim.url,
        "hetzner": hetzner_sim.url,
    }
    addresses.update(edge_addresses)
    topology.write_runtime_pillar(path, addresses)
    # as `python -m lab up` does: the secrets operators store before deploying
    topology.seed_prerequisites(vault_sim.url, vault_sim.root_token, lab_secrets)
    return path


def _common_overrides(lab_secrets):
    overrides = {"module_dirs": [REPO], "log_level_logfile": "debug"}
    overrides.update(topology.salt_opts(lab_secrets))
    return overrides


@pytest.fixture(scope="session")
def salt_master(salt_factories, runtime_pillar_dir, lab_secrets):
    overrides = _common_overrides(lab_secrets)
    overrides.update(
        {
            "file_roots": topology.file_roots(),
            "pillar_roots": topology.pillar_roots(runtime_pillar_dir),
            "fileserver_followsymlinks": True,
            # as docs/systems/caddy.md tells operators: routes synced when an edge says so
            "reactor": [{"hecate/routes/sync": ["salt://reactor/hecate_sync_routes.sls"]}],
        }
    )
    assert_lab_pillar_roots(overrides)
    factory = salt_factories.salt_master_daemon("hecate-master", overrides=overrides)
    with factory.started():
        yield factory


def _minion(salt_master, name, lab_secrets):
    overrides = _common_overrides(lab_secrets)
    overrides["grains"] = dict(topology.MINIONS[name])
    return salt_master.salt_minion_daemon(name, overrides=overrides)


@pytest.fixture(scope="session")
def cloud_minion(salt_master, lab_secrets):
    factory = _minion(salt_master, "cloud", lab_secrets)
    with factory.started():
        yield factory


@pytest.fixture(scope="session")
def local_minion(salt_master, lab_secrets):
    factory = _minion(salt_master, "local", lab_secrets)
    with factory.started():
        yield factory


@pytest.fixture(scope="session")
def salt_run_cli(salt_master):
    return salt_master.salt_run_cli(timeout=300)


@pytest.fixture(scope="session")
def salt_cli(salt_master, cloud_minion, local_minion):
    return salt_master.salt_cli(timeout=300)


@pytest.fixture(scope="session")
def cloud_call(cloud_minion):
    return cloud_minion.salt_call_cli(timeout=300)


@pytest.fixture(scope="session")
def local_call(local_minion):
    return local_minion.salt_call_cli(timeout=300)


@pytest.fixture(scope="session")
def agents_dir(lab_dir, runtime_pillar_dir):
    """Where the WireGuard/Consul/Nomad agent states write (per minion), never /etc."""
    return os.path.join(lab_dir, "agents")


@pytest.fixture(scope="session")
def agent_vault_secrets(vault_sim, lab_secrets):
    """
    The secrets the agent configs reference (pillar: secret/hecate/consul,
    secret/bionicgpt/nomad) in the Vault simulator: a fresh gossip key, the ACL tokens the
    lab's Consul knows.
    """
    return topology.seed_agent_secrets(vault_sim.url, vault_sim.root_token, lab_secrets=lab_secrets)


def pytest_sessionfinish(session, exitstatus):
    """
    Salt's deferred console handler (set up when salt is imported here) holds the
    daemons' forwarded log records and flushes them at exit into pytest's already
    closed stderr; hand them to the real handlers now instead.
    """
    import salt._logging.impl  # pylint: disable=import-outside-toplevel

    salt._logging.impl.shutdown_temp_handler()
