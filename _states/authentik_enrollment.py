"""
Self-enrollment for Authentik (roadmap "Hecate Authentication Phase 1"): an enrollment
flow, linked from the identification stage of the authentication flow.

Brands have no enrollment flow (the roadmap's "brand-level enrollment" is this): the
login page shows a "Sign up" link when the identification stage's ``enrollment_flow`` is
set. The flow hecate builds, all objects named after its slug:

    [captcha]  <slug>-captcha        (optional; the private key is a Vault reference)
    prompt     <slug>-prompt         username, name, email, password, password (repeat)
    user write <slug>-user-write     creates the user (optionally into a group)
    user login <slug>-user-login     logs the new user in

New users are not put into an application's groups unless ``group`` says so: access to
an application stays a separate, deliberate group assignment.

.. code-block:: yaml

    bionicgpt-enrollment:
      authentik_enrollment.present:
        - flow_name: BionicGPT enrollment
        - title: Create your account
        - captcha:
            public_key: 6Lc...
            private_key: {vault: secret/hecate/captcha, key: private_key}
"""

import salt.exceptions

import hecate_clients
import hecate_loader
import hecate_secrets
import hecate_state

__virtualname__ = "authentik_enrollment"

# field_key, label, prompt type, order
PROMPTS = (
    ("username", "Username", "username", 0),
    ("name", "Name", "text", 1),
    ("email", "Email", "email", 2),
    ("password", "Password", "password", 3),
    ("password_repeat", "Password (repeat)", "password", 4),
)
ORDERS = {"captcha": 5, "prompt": 10, "user-write": 20, "user-login": 100}
DEFAULT_IDENTIFICATION = "default-authentication-identification"


def __virtual__():
    return hecate_loader.virtual(__virtualname__)


def _prompt_name(slug, key):
    return f"{slug}-field-{key.replace('_', '-')}"


class _Plan:
    """Collects field-level changes (display values) and the writes to make."""

    def __init__(self, test):
        self.test = test
        self.changes = {}

    def object(self, label, live, desired, current=None):
        """Record the diff of one object; returns the fields that differ (None: create)."""
        if live is None:
            self.changes[label] = {"old": None, "new": dict(desired) or "created"}
            return None
        current = current if current is not None else {k: live.get(k) for k in desired}
        diff = hecate_state.diff(current, desired)
        for key, val in diff.items():
            self.changes[f"{label}:{key}"] = val
        return {k for k in desired if current.get(k) != desired[k]}


@hecate_state.guard
def present(name, flow_name=None, title=None, identification_stage=DEFAULT_IDENTIFICATION,
            group=None, user_type="internal", captcha=None):
    """
    Ensure the enrollment flow ``name`` (its slug) exists and the identification stage
    links to it.

    flow_name / title
        The flow's name and the title shown on its pages.
    identification_stage
        The identification stage of the authentication flow
        (``default-authentication-identification`` on a fresh install).
    group
        Put new users into this group (none by default).
    user_type
        ``internal`` (default) or ``external``.
    captcha
        ``{public_key, private_key: <Vault reference>, js_url, api_url, interactive}``
        (reCAPTCHA by default; hCaptcha/Turnstile through the URLs). The private key is
        written when the stage is created (Authentik never shows it back).

    .. code-block:: yaml

        bionicgpt-enrollment:
          authentik_enrollment.present:
            - flow_name: BionicGPT enrollment
            - title: Create your account
    """
    slug = name
    ret = hecate_state.new(name)
    test = bool(__opts__.get("test"))
    if captcha is not None:
        if not isinstance(captcha, dict) or not captcha.get("public_key") or captcha.get("private_key") is None:
            raise salt.exceptions.SaltInvocationError(
                f"enrollment '{slug}': captcha needs public_key and private_key (a Vault reference)"
            )
        if not hecate_secrets.is_ref(captcha["private_key"]) and not str(captcha["private_key"]).startswith("sdb://"):
            raise salt.exceptions.SaltInvocationError(
                f"enrollment '{slug}': captcha private_key must be a Vault reference, never a value"
            )
    client = hecate_clients.authentik(__opts__, __pillar__, __context__, __salt__)
    plan = _Plan(test)

    ident = client.require("stage_identification", identification_stage,
                           where=f"enrollment '{slug}'")
    group_obj = None
    if group:
        group_obj = client.find("group", group)
        if group_obj is None and not test:
            raise salt.exceptions.CommandExecutionError(
                f"enrollment '{slug}': group '{group}' does not exist"
            )

    # -- the flow ------------------------------------------------------------------------------
    flow = client.get("flow", slug)
    flow_desired = {"name": flow_name or f"Enrollment ({slug})", "title": title or "Create your account",
                    "designation": "enrollment", "authentication": "require_unauthenticated"}
    flow_diff = plan.object(f"flow:{slug}", flow, flow_desired)

    # -- prompt fields ---------------------------------------------------------------------------
    prompts = {}
    for key, label, kind, order in PROMPTS:
        pname = _prompt_name(slug, key)
        live = client.find("prompt", pname)
        desired = {"field_key": key, "label": label, "type": kind, "required": True,
                   "placeholder": label, "order": order}
        prompts[pname] = (live, desired, plan.object(f"prompt:{pname}", live, desired))

    # -- stages --------------------------------------------------------------------------------------
    stages = {}
    prompt_stage = client.find("stage_prompt", f"{slug}-prompt")
    prompt_names = client.names_by_pk("prompt") if prompt_stage else {}
    desired = {"fields": [_prompt_name(slug, p[0]) for p in PROMPTS]}
    current = {"fields": [prompt_names.get(pk, pk) for pk in (prompt_stage or {}).get("fields", [])]}
    stages["prompt"] = ("stage_prompt", prompt_stage, desired,
                        plan.object(f"stage:{slug}-prompt", prompt_stage, desired, current))

    write_stage = client.find("stage_user_write", f"{slug}-user-write")
    desired = {"user_creation_mode": "always_create", "user_type": user_type,
               "create_users_group": group or None}
    current = None
    if write_stage:
        current = {k: write_stage.get(k) for k in desired}
        gpk = write_stage.get("create_users_group")
        current["create_users_group"] = client.names_by_pk("group").get(gpk, gpk) if gpk else None
    stages["user-write"] = ("stage_user_write", write_stage, desired,
                            plan.object(f"stage:{slug}-user-write", write_stage, desired, current))

    login_stage = client.find("stage_user_login", f"{slug}-user-login")
    stages["user-login"] = ("stage_user_login", login_stage, {},
                            plan.object(f"stage:{slug}-user-login", login_stage, {}))

    captcha_stage = client.find("stage_captcha", f"{slug}-captcha")
    if captcha is not None:
        desired = {"public_key": captcha["public_key"]}
        for key in ("js_url", "api_url", "interactive"):
            if captcha.get(key) is not None:
                desired[key] = captcha[key]
        diff = plan.object(f"stage:{slug}-captcha", captcha_stage, desired)
        if captcha_stage is None:
            plan.changes[f"stage:{slug}-captcha:private_key"] = {
                "old": None, "new": f"set from {hecate_secrets.describe(captcha['private_key'])}"}
        stages["captcha"] = ("stage_captcha", captcha_stage, desired, diff)
    elif captcha_stage is not None:
        plan.changes[f"stage:{slug}-captcha"] = {"old": "present", "new": "deleted"}

    # -- flow stage bindings ------------------------------------------------------------------------
    stage_names = {}
    for suffix, (_, obj, _, _) in stages.items():
        if obj:
            stage_names[obj["pk"]] = f"{slug}-{suffix}"
    if captcha_stage:
        stage_names[captcha_stage["pk"]] = f"{slug}-captcha"
    live_bindings = []
    if flow:
        live_bindings = [b for b in client.list("flow_binding", target=flow["pk"])
                         if b.get("target") == flow["pk"]]
    have = {f"{b.get('order')}:{stage_names.get(b.get('stage'), b.get('stage'))}": b for b in live_bindings}
    want = {f"{ORDERS[s]}:{slug}-{s}": s for s in stages}
    bind_add = sorted(k for k in want if k not in have)
    bind_remove = sorted(k for k in have if k not in want)
    if bind_add or bind_remove:
        plan.changes["bindings"] = {"added": bind_add, "removed": bind_remove}

    # -- the link from the identification stage ---------------------------------------------------
    linked = ident.get("enrollment_flow")
    linked_slug = client.names_by_pk("flow").get(linked, linked) if linked else None
    if linked_slug != slug:
        plan.changes[f"identification_stage:{identification_stage}:enrollment_flow"] = {
            "old": linked_slug, "new": slug}

    if plan.changes and not test:
        _apply(client, slug, plan, flow, flow_desired, flow_diff, prompts, stages, captcha,
               captcha_stage, group_obj, have, want, ident, linked)
    verb = "created" if flow is None else "updated"
    return hecate_state.result(ret, plan.changes, test,
                               f"enrollment flow '{slug}' would be {verb}",
                               f"enrollment flow '{slug}' {verb}")


def _apply(client, slug, plan, flow, flow_desired, flow_diff, prompts, stages, captcha,
           captcha_stage, group_obj, have, want, ident, linked):
    if flow is None:
        flow = client.create("flow", dict(flow_desired, slug=slug))
    elif flow_diff:
        flow = client.patch("flow", slug, {k: flow_desired[k] for k in flow_diff})
    prompt_pks = {}
    for pname, (live, desired, diff) in prompts.items():
        if live is None:
            live = client.create("prompt", dict(desired, name=pname))
        elif diff:
            live = client.patch("prompt", live["pk"], {k: desired[k] for k in diff})
        prompt_pks[pname] = live["pk"]
    stage_pks = {}
    for suffix, (kind, live, desired, diff) in stages.items():
        body = dict(desired)
        if suffix == "prompt":
            body["fields"] = [prompt_pks[n] for n in desired["fields"]]
        if suffix == "user-write":
            body["create_users_group"] = group_obj["pk"] if group_obj else None
        if live is None:
            body["name"] = f"{slug}-{suffix}"
            if suffix == "captcha":
                resolve = hecate_clients.resolver(__opts__, __pillar__, __context__, __salt__)
                body["private_key"] = resolve(captcha["private_key"],
                                              f"enrollment '{slug}': captcha private_key").reveal()
            live = client.create(kind, body)
        elif diff:
            live = client.patch(kind, live["pk"], {k: body[k] for k in diff})
        stage_pks[suffix] = live["pk"]
    if captcha is None and captcha_stage is not None:
        client.delete("stage_captcha", captcha_stage["pk"])  # its binding goes with it
        have = {k: b for k, b in have.items() if b.get("stage") != captcha_stage["pk"]}
    for key, binding in have.items():
        if key not in want:
            client.delete("flow_binding", binding["pk"])
    for key, suffix in want.items():
        if key not in have:
            client.create("flow_binding", {"target": flow["pk"], "stage": stage_pks[suffix],
                                           "order": ORDERS[suffix]})
    if linked != flow["pk"]:
        client.set_enrollment_flow(ident, flow["pk"])


@hecate_state.guard
def absent(name, identification_stage=DEFAULT_IDENTIFICATION):
    """
    Ensure the enrollment flow ``name`` and its stages and prompts are gone, and the
    identification stage no longer links to it (self-enrollment off).

    .. code-block:: yaml

        bionicgpt-enrollment:
          authentik_enrollment.absent
    """
    slug = name
    ret = hecate_state.new(name, f"enrollment flow '{slug}' is already absent")
    test = bool(__opts__.get("test"))
    client = hecate_clients.authentik(__opts__, __pillar__, __context__, __salt__)
    flow = client.get("flow", slug)
    objects = []
    for kind, suffix in (("stage_captcha", "captcha"), ("stage_prompt", "prompt"),
                         ("stage_user_write", "user-write"), ("stage_user_login", "user-login")):
        obj = client.find(kind, f"{slug}-{suffix}")
        if obj:
            objects.append((kind, obj, f"stage:{slug}-{suffix}"))
    for key, *_ in PROMPTS:
        obj = client.find("prompt", _prompt_name(slug, key))
        if obj:
            objects.append(("prompt", obj, f"prompt:{_prompt_name(slug, key)}"))
    ident = client.find("stage_identification", identification_stage)
    changes = {}
    if ident and flow and ident.get("enrollment_flow") == flow["pk"]:
        changes[f"identification_stage:{identification_stage}:enrollment_flow"] = {"old": slug, "new": None}
    if flow:
        changes[f"flow:{slug}"] = {"old": "present", "new": "deleted"}
    for _, _, label in objects:
        changes[label] = {"old": "present", "new": "deleted"}
    if not changes:
        return ret
    if not test:
        if ident and flow and ident.get("enrollment_flow") == flow["pk"]:
            client.set_enrollment_flow(ident, None)
        if flow:
            client.delete("flow", slug)
        for kind, obj, _ in objects:
            client.delete(kind, obj["pk"])
    return hecate_state.result(ret, changes, test,
                               f"enrollment flow '{slug}' would be removed",
                               f"enrollment flow '{slug}' removed")
