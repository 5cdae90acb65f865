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
        - provider: BionicGPT OAuth2
        - launch_url: https://chat.example.com
"""

import salt.exceptions

import hecate_authentik_client
import hecate_clients
import hecate_loader
import hecate_state

__virtualname__ = "authentik_application"

PROVIDER_KINDS = {"oauth2": "provider_oauth2", "proxy": "provider_proxy"}


def __virtual__():
    return hecate_loader.virtual(__virtualname__)


@hecate_state.guard
def present(name, slug, provider=None, provider_type="oauth2", launch_url=None,
            description=None, publisher=None, group=None, open_in_new_tab=None,
            policy_engine_mode="any"):
    """
    Ensure an application exists with these settings.

    name
        Display name.
    slug
        The application's key (``^[-a-zA-Z0-9_]+$``), used in URLs such as
        ``/application/o/<slug>/``.
    provider / provider_type
        The provider's name and kind (``oauth2`` or ``proxy``); unmanaged when omitted.
    launch_url / description / publisher / group / open_in_new_tab
        Shown on the user's dashboard; unmanaged when omitted.
    policy_engine_mode
        ``any`` (default) or ``all``.

    .. code-block:: yaml

        bionicgpt application:
          authentik_application.present:
            - name: BionicGPT
            - slug: bionicgpt
            - provider: BionicGPT OAuth2
            - launch_url: https://chat.example.com
    """
    ret = hecate_state.new(name)
    test = bool(__opts__.get("test"))
    hecate_authentik_client.check_application_slug(slug, f"application '{slug}'")
    kind = PROVIDER_KINDS.get(provider_type)
    if kind is None:
        raise salt.exceptions.SaltInvocationError(
            f"application '{slug}': provider_type must be oauth2 or proxy, not {provider_type!r}"
        )
    client = hecate_clients.authentik(__opts__, __pillar__, __context__, __salt__)
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
    if live is None:
        changes = {"application": {"old": None, "new": slug}}
        changes.update(hecate_state.diff({}, desired))
        if not test:
            client.create("application", dict(body, slug=slug))
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
