"""
hecate state module: the checks an orchestration runs around its writes.

- ``validated``: the pillar passes the schema (and, for an environment, the secrets
  hecate does not create exist in Vault) - before anything writes; runs under
  ``test=True`` too, unlike ``salt.runner`` steps.
- ``reachable``: every API this minion will call answers an authenticated read.
- ``services_healthy`` / ``http_ok``: after a deployment, Consul reports every service
  passing and a request through Caddy gets an answer.

None of them writes anything.
"""

import time

import salt.exceptions

import hecate_clients
import hecate_http
import hecate_loader
import hecate_pillar
import hecate_preflight
import hecate_schema
import hecate_state

__virtualname__ = "hecate"


def __virtual__():
    return hecate_loader.virtual(__virtualname__, libs=("jsonschema", "consul"))


def validated(name, env=None, check_refs=True, run_id=None):
    """
    Fail unless the pillar passes the hecate schema and checks.

    env
        Given (orchestration, on the master): compile and check the pillar a minion of
        that environment gets (``hecate:members`` included), and (``check_refs``) that
        every Vault reference hecate does not produce itself exists. Minions whose grains
        claim a role in ``env`` but that ``hecate:members`` does not list are named in the
        comment (they are left out; they do not fail the step). Not given (on a minion):
        check this minion's own pillar for its ``hecate_env`` grain; a pillar that passed on
        this minion before is not checked again (``hecate_schema.validate_once``).
    run_id
        With ``env``: the orchestration run (``hecate.new_run_id``), whose steps on the
        master share one compilation of the environment's pillar.

    .. code-block:: yaml

        validate pillar:
          hecate.validated:
            - env: prod
    """
    note = ""
    if env is None:
        env = __grains__.get("hecate_env")
        # every step of an orchestration includes this state: a pillar that passed on this
        # minion before is not validated again (hecate_schema.validate_once)
        errors = hecate_schema.validate_once(dict(__pillar__), env, __opts__.get("cachedir"))
    else:
        errors = hecate_pillar.validate_env(__opts__, env, check_refs=check_refs, run_id=run_id)
        if not errors:
            note = _not_members(env, run_id)
    ret = hecate_state.new(name, f"pillar for environment '{env}' is valid{note}")
    if errors:
        ret["result"] = False
        ret["comment"] = f"pillar for environment '{env}' is invalid:\n" + "\n".join(errors)
    return ret


def _not_members(env, run_id=None):
    """What the validate step says of minions that claim a role by grains alone (left out)."""
    pillar, _ = hecate_pillar.compile_for_env(__opts__, env, run_id=run_id)
    left_out = hecate_pillar.membership(__opts__, env, pillar)["not_members"]
    if not left_out:
        return ""
    names = ", ".join(f"{mid} ({', '.join(roles)})" for mid, roles in sorted(left_out.items()))
    return f"; not members, left out (their grains claim a role, hecate:members does not list them): {names}"


@hecate_state.guard
def reachable(name, systems):
    """
    Fail unless each of ``systems`` (caddy, authentik, consul, nomad, vault) answers an
    authenticated read from this minion, with the credentials the modules will use.

    .. code-block:: yaml

        apis reachable:
          hecate.reachable:
            - systems: [caddy, authentik, consul, vault]
    """
    ret = hecate_state.new(name)
    ok, failed = [], []
    for system in systems:
        try:
            ok.append(
                hecate_preflight.reach(system, __opts__, __pillar__, hecate_clients.sdb_get(__opts__), __context__)
            )
        except (salt.exceptions.CommandExecutionError, salt.exceptions.SaltInvocationError) as exc:
            failed.append(str(exc))
    if failed:
        ret["result"] = False
        ret["comment"] = "not reachable:\n" + "\n".join(failed)
    else:
        ret["comment"] = "\n".join(ok)
    return ret


def _health(client, services):
    """``{service: problem}`` for every service that is not fully passing."""
    problems = {}
    for service in services:
        entries = client.health_service(service, passing=False)
        if not entries:
            problems[service] = "no instance registered"
            continue
        bad = []
        for entry in entries:
            for check in entry.get("Checks") or []:
                if check.get("Status") != "passing":
                    bad.append(f"{check.get('Name') or check.get('CheckID')}: {check.get('Status')}")
        if bad:
            problems[service] = ", ".join(bad)
    return problems


@hecate_state.guard
def services_healthy(name, services, timeout=120, interval=2):
    """
    Wait until Consul reports every instance of every one of ``services`` passing (at
    least one instance each), up to ``timeout`` seconds. Under ``test=True`` it looks
    once: healthy is True, anything else None (a real run would wait).

    .. code-block:: yaml

        bionicgpt healthy:
          hecate.services_healthy:
            - services: [bionicgpt, bionicgpt-oauth2-proxy]
    """
    ret = hecate_state.new(name)
    client = hecate_clients.consul(__opts__, __pillar__, __context__)
    deadline = time.monotonic() + float(timeout)
    while True:
        problems = _health(client, services)
        if not problems:
            ret["comment"] = f"Consul: all passing: {', '.join(services)}"
            return ret
        detail = "; ".join(f"{svc}: {why}" for svc, why in sorted(problems.items()))
        if __opts__.get("test"):
            ret["result"] = None
            ret["comment"] = f"not healthy yet ({detail}); a real run waits up to {timeout}s"
            return ret
        if time.monotonic() >= deadline:
            ret["result"] = False
            ret["comment"] = f"Consul: not healthy after {timeout}s: {detail}"
            return ret
        time.sleep(float(interval))


@hecate_state.guard
def http_ok(name, host=None, status=None, timeout=60, verify=True, ca_bundle=None):
    """
    Wait until ``GET <name>`` (a URL; ``host`` sets the Host header, e.g. to reach a
    route on Caddy's listener by address) answers with a status in ``status`` (default:
    any 2xx or 3xx), up to ``timeout`` seconds. Under ``test=True`` it tries once and
    reports None instead of failing. TLS is verified; ``ca_bundle`` names the CA file,
    and only ``verify: False`` turns verification off.

    .. code-block:: yaml

        chat answers through caddy:
          hecate.http_ok:
            - name: https://chat.example.com/ping
    """
    ret = hecate_state.new(name)
    accepted = set(status) if status else set(range(200, 400))
    base, _, path = name.partition("://")
    base = f"{base}://{path.split('/', 1)[0]}"
    path = "/" + path.split("/", 1)[1] if "/" in path else "/"
    client = hecate_http.Client(base, "probe", verify=verify, ca_bundle=ca_bundle, retries=0,
                                timeout=10)
    headers = {"Host": host} if host else {}
    deadline = time.monotonic() + float(timeout)
    what = f"GET {name}" + (f" (Host: {host})" if host else "")
    while True:
        try:
            resp = client.request("GET", path, ok=range(100, 600), headers=headers,
                                  allow_redirects=False)
            got = f"answered {resp.status_code}"
            if resp.status_code in accepted:
                ret["comment"] = f"{what} {got}"
                return ret
        except hecate_http.Unreachable as exc:
            got = str(exc)
        if __opts__.get("test"):
            ret["result"] = None
            ret["comment"] = f"{what}: {got}; a real run waits up to {timeout}s"
            return ret
        if time.monotonic() >= deadline:
            ret["result"] = False
            ret["comment"] = f"{what}: {got} (after {timeout}s)"
            return ret
        time.sleep(1)
