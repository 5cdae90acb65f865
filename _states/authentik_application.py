"""
Authentik applications, looked up by slug (the list endpoint is filtered by the token
user's policies and cached; the slug is the stable key).

``policy_engine_mode`` defaults to ``any``: with one policy binding per allowed group, a
user in any of them gets in (``all`` would demand every group at once).

.. code-block:: yaml

    bionicgpt application:
      authentik_application.present:
        - name: BionicGPT
        - slug: bionicgpt
        - provider_name: BionicGPT OAuth2
        - launch_url: https://chat.example.com
"""

import salt.exceptions

import hecate_authentik_client
import hecate_clients
import hecate_loader
import hecate_state

__virtualname__ = "authentik_application"

PROVIDER_KINDS = {"oauth2": "provider_oauth2", "proxy": "provider_proxy", "saml": "provider_saml"}


def __virtual__():
    return hecate_loader.virtual(__virtualname__)


@hecate_state.guard
def present(name, slug, provider=None, provider_type="oauth2", launch_url=None,
            description=None, publisher=None, group=None, open_in_new_tab=None,
            policy_engine_mode="any", icon=None, owner=None, provider_name=None):
    """
    Ensure an application exists with these settings.

    name
        Display name.
    slug
        The application's key (``^[-a-zA-Z0-9_]+$``), used in URLs such as
        ``/application/o/<slug>/``.
    provider_name / provider_type
        The provider's name and kind (``oauth2``, ``proxy`` or ``saml``); unmanaged when
        omitted. ``provider`` is the same as ``provider_name`` but costs a reload of every
        loader module: Salt reads a state argument named ``provider`` as its own global
        option (the execution module to use instead, ``salt.state.State.load_modules``) and
        loads all modules afresh before the state runs; write ``provider_name``.
    launch_url / description / publisher / group / open_in_new_tab / icon
        Shown on the user's dashboard (``icon`` a URL); unmanaged when omitted.
    policy_engine_mode
        ``any`` (default) or ``all``.
    owner
        The ownership mark (hecate's ``hecate/<env>/...``): written as the publisher, and an
        existing application with this slug whose publisher is not ``owner`` is an error
        naming it, never taken over.

    .. code-block:: yaml

        bionicgpt application:
          authentik_application.present:
            - name: BionicGPT
            - slug: bionicgpt
            - provider_name: BionicGPT OAuth2
            - launch_url: https://chat.example.com
    """
    if provider is not None and provider_name is not None and provider != provider_name:
        raise salt.exceptions.SaltInvocationError(
            f"application '{slug}': provider {provider!r} and provider_name {provider_name!r} differ; "
            "give provider_name only"
        )
    provider = provider_name if provider_name is not None else provider
    ret = hecate_state.new(name)
    test = bool(__opts__.get("test"))
    hecate_authentik_client.check_application_slug(slug, f"application '{slug}'")
    kind = PROVIDER_KINDS.get(provider_type)
    if kind is None:
        raise salt.exceptions.SaltInvocationError(
            f"application '{slug}': provider_type must be one of {', '.join(PROVIDER_KINDS)}, not {provider_type!r}"
        )
    client = hecate_clients.authentik(__opts__, __pillar__, __context__, __salt__)
    if owner is not None:
        publisher = owner
    desired = {"name": name, "policy_engine_mode": policy_engine_mode}
    fields = {"meta_launch_url": launch_url, "meta_description": description,
              "meta_publisher": publisher, "group": group, "open_in_new_tab": open_in_new_tab}
    desired.update({k: v for k, v in fields.items() if v is not None})
    body = dict(desired)
    if provider is not None:
        desired["provider"] = provider or None
        prov = client.find(kind, provider) if provider else None
        if provider and prov is None and not test:
            raise salt.exceptions.CommandExecutionError(
                f"application '{slug}': provider '{provider}' does not exist "
                "(its state must run first)"
            )
        body["provider"] = prov["pk"] if prov else None
    live = client.get("application", slug)
    if live is not None and owner is not None and live.get("meta_publisher") != owner:
        raise salt.exceptions.CommandExecutionError(
            f"application '{slug}': Authentik already has an application with this slug ({live.get('name')}, "
            f"publisher {live.get('meta_publisher') or ''!r}) that is not {owner}'s; hecate never takes it "
            "over: set the slug, or delete that application"
        )
    if live is None:
        changes = {"application": {"old": None, "new": slug}}
        changes.update(hecate_state.diff({}, desired))
        if icon:
            changes["icon"] = {"old": None, "new": icon}
        if not test:
            client.create("application", dict(body, slug=slug))
            if icon:
                client.set_app_icon(slug, icon)
        return hecate_state.result(ret, changes, test,
                                   f"application '{slug}' would be created",
                                   f"application '{slug}' created")
    current = {k: live.get(k) for k in desired if k != "provider"}
    if "provider" in desired:
        current["provider"] = (live.get("provider_obj") or {}).get("name") if live.get("provider") else None
    changes = hecate_state.diff(current, desired)
    patch = {}
    for key, value in desired.items():
        if current.get(key) != value:
            patch[key] = body[key]
    if patch and not test:
        client.patch("application", slug, patch)
    if icon and live.get("meta_icon") != icon:
        changes["icon"] = {"old": live.get("meta_icon") or None, "new": icon}
        if not test:
            client.set_app_icon(slug, icon)
    names = ", ".join(sorted(changes))
    return hecate_state.result(ret, changes, test,
                               f"application '{slug}' would be updated ({names})",
                               f"application '{slug}' updated ({names})")


@hecate_state.guard
def absent(name, slug=None):
    """
    Ensure an application does not exist (``slug`` defaults to ``name``).

    .. code-block:: yaml

        old application:
          authentik_application.absent:
            - slug: old-app
    """
    slug = slug or name
    ret = hecate_state.new(slug, f"application '{slug}' is already absent")
    test = bool(__opts__.get("test"))
    if __salt__["authentik.application_get"](slug) is None:
        return ret
    changes = {"application": {"old": slug, "new": None}}
    if not test:
        __salt__["authentik.application_delete"](slug)
    return hecate_state.result(ret, changes, test,
                               f"application '{slug}' would be deleted",
                               f"application '{slug}' deleted")


@hecate_state.guard
def pruned(name, prefix, keep=()):
    """
    Delete the applications published under ``prefix`` (hecate's ``hecate/<env>/app/``)
    whose publisher is not in ``keep``, each with its provider, and providers named under
    ``prefix`` (OAuth2 or SAML) that no kept entry names. Applications and providers
    without the mark are never touched.

    name
        State ID (free text).
    prefix
        The mark's prefix, e.g. ``hecate/prod/app/``.
    keep
        The marks still wanted (the entries in pillar).

    .. code-block:: yaml

        hecate applications removed:
          authentik_application.pruned:
            - prefix: hecate/prod/app/
            - keep:
              - hecate/prod/app/grafana
              - hecate/prod/app/wazuh
    """
    ret = hecate_state.new(name, f"nothing published under {prefix} is left over")
    test = bool(__opts__.get("test"))
    if not str(prefix).startswith("hecate/") or str(prefix).count("/") < 3:
        raise salt.exceptions.SaltInvocationError(
            f"{name}: prefix {prefix!r} is not one of hecate's marks (hecate/<env>/<kind>/)"
        )
    client = hecate_clients.authentik(__opts__, __pillar__, __context__, __salt__)
    keep = set(keep or ())
    changes = {}
    apps = [a for a in client.list("application")
            if str(a.get("meta_publisher") or "").startswith(prefix) and a["meta_publisher"] not in keep]
    providers = []
    for kind in ("provider_oauth2", "provider_saml"):
        providers.extend((kind, p) for p in client.list(kind)
                         if str(p.get("name") or "").startswith(prefix) and p["name"] not in keep)
    for app in apps:
        changes[app["meta_publisher"]] = {"application": {"old": app["slug"], "new": None}}
    for _kind, prov in providers:
        changes.setdefault(prov["name"], {})["provider"] = {"old": prov["name"], "new": None}
    if changes and not test:
        for app in apps:
            client.delete("application", app["slug"])
        for kind, prov in providers:
            client.delete(kind, prov["pk"])
    return hecate_state.result(ret, changes, test,
                               f"{len(changes)} entr(y/ies) under {prefix} would be removed",
                               f"{len(changes)} entr(y/ies) under {prefix} removed")
