"""
Turn an orchestration return (``state.orchestrate``, usually ``test=True``) into a plan:
one row per object that would change — step, system, minion, object, change — the way
``terraform plan`` reads, plus the failures that would stop the run.
"""

# State module -> the system it manages (everything else is the host itself).
SYSTEMS = {
    "caddy_routes": "Caddy",
    "caddy_route": "Caddy",
    "authentik_group": "Authentik",
    "authentik_scope_mapping": "Authentik",
    "authentik_oauth2_provider": "Authentik",
    "authentik_application": "Authentik",
    "authentik_binding": "Authentik",
    "authentik_enrollment": "Authentik",
    "authentik_user": "Authentik",
    "authentik_route_auth": "Authentik",
    "nomad_job": "Nomad",
    "nomad_variable": "Nomad",
    "consul_kv": "Consul",
    "consul_service": "Consul",
    "hetzner_dns": "Hetzner DNS",
    "hecate_secret": "Vault",
    "nginx_config": "nginx",
    "wireguard": "WireGuard",
    "hecate": "hecate",
}


def _split_key(key):
    """``module_|-id_|-name_|-function`` -> (module, id, name, function)."""
    parts = key.split("_|-")
    if len(parts) != 4:
        return ("?", key, key, "?")
    return tuple(parts)


def summarize(changes):
    """A short human description of one state's ``changes``."""
    if not isinstance(changes, dict) or not changes:
        return str(changes)
    if set(changes) <= {"old", "new"}:
        old, new = changes.get("old"), changes.get("new")
        if old in (None, {}, "", []):
            return "create"
        if new in (None, {}, "", []):
            return "delete"
        return "update"
    parts = []
    for key in sorted(changes, key=str):
        val = changes[key]
        if isinstance(val, list):
            parts.append(f"{key} ({len(val)})" if val else key)
        elif isinstance(val, dict) and set(val) <= {"old", "new"}:
            if val.get("old") in (None, {}, ""):
                parts.append(f"+{key}")
            elif val.get("new") in (None, {}, ""):
                parts.append(f"-{key}")
            else:
                parts.append(f"~{key}")
        else:
            parts.append(str(key))
    text = ", ".join(parts)
    return text if len(text) <= 160 else text[:157] + "..."


def rows(orch_return):
    """
    ``[{"step", "system", "minion", "object", "change", "result", "key"}]`` for every
    state with changes, in run order. Failed states appear with their comment as the
    change. A state that several steps include (e.g. the WireGuard keys, made by one step
    and required by the next) is one object: under test=True each step predicts it again,
    so only its first appearance counts.
    """
    out = []
    data = (orch_return or {}).get("data") or {}
    for master_ret in data.values():
        if not isinstance(master_ret, dict):
            continue
        steps = sorted(master_ret.items(), key=lambda kv: kv[1].get("__run_num__", 0))
        for step_key, step in steps:
            module, step_id, _, _ = _split_key(step_key)
            nested = (step.get("changes") or {}).get("ret") if module == "salt" else None
            if nested:
                for minion, states in sorted(nested.items()):
                    if not isinstance(states, dict):
                        out.append(_row(step_id, "?", minion, step_id, str(states), False, step_key))
                        continue
                    for key, ret in sorted(states.items(), key=lambda kv: kv[1].get("__run_num__", 0)):
                        out.extend(_state_rows(step_id, minion, key, ret))
            elif module != "salt":
                out.extend(_state_rows(step_id, "master", step_key, step))
            elif step.get("result") is False:
                out.append(_row(step_id, "?", "-", step_id, step.get("comment", ""), False, step_key))
    seen, unique = set(), []
    for row in out:
        ident = (row["minion"], row["key"])
        if ident not in seen:
            seen.add(ident)
            unique.append(row)
    return unique


def _state_rows(step_id, minion, key, ret):
    if not isinstance(ret, dict):
        return []
    module, _, name, _ = _split_key(key)
    system = SYSTEMS.get(module, "host")
    if ret.get("result") is False:
        return [_row(step_id, system, minion, name, "FAILS: " + str(ret.get("comment", "")), False, key)]
    if ret.get("changes"):
        return [_row(step_id, system, minion, name, summarize(ret["changes"]), ret.get("result"), key)]
    return []


def _row(step, system, minion, obj, change, result, key):
    return {"step": step, "system": system, "minion": minion, "object": obj,
            "change": change, "result": result, "key": key}


def render(plan_rows, env):
    """The plan as text, one aligned line per row."""
    if not plan_rows:
        return f"Plan for environment '{env}': no changes. Everything is converged."
    systems = sorted({r["system"] for r in plan_rows})
    failing = [r for r in plan_rows if r["result"] is False]
    head = (f"Plan for environment '{env}': {len(plan_rows) - len(failing)} change(s) "
            f"in {', '.join(systems)}")
    if failing:
        head += f"; {len(failing)} step(s) would FAIL"
    widths = {k: max(len(k), *(len(str(r[k])) for r in plan_rows))
              for k in ("step", "system", "minion", "object")}
    lines = [head, "  " + "  ".join(k.ljust(widths[k]) for k in widths) + "  change"]
    for r in plan_rows:
        lines.append("  " + "  ".join(str(r[k]).ljust(widths[k]) for k in widths) + "  " + r["change"])
    return "\n".join(lines)
