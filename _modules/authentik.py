"""
Authentik execution module: read and change the objects of an Authentik server through
its REST API v3.

Connection settings come from ``hecate:connections:authentik`` (minion config wins over
pillar): ``url``, ``token`` (a Vault reference such as
``{vault: secret/hecate/authentik, key: api_token}``, an ``sdb://`` URI, or a literal in
minion config only), ``verify``, ``ca_bundle``, ``timeout``, ``retries``, ``page_size``.
The token is never an argument. Returned objects never carry an OAuth2 client secret or
any other secret: those are shown as ``XXX-REDACTED-XXX``.

Objects are named the way operators name them: groups, providers, mappings and stages by
name, users by username, applications and flows by slug.

CLI Example:

.. code-block:: bash

    salt -G 'roles:hecate-edge' authentik.version
    salt -G 'roles:hecate-edge' authentik.group_list
    salt -G 'roles:hecate-edge' authentik.application_get bionicgpt
"""

import copy

import salt.exceptions

import hecate_authentik_client as hak
import hecate_caddy_routes
import hecate_clients
import hecate_loader
import hecate_route_auth
import hecate_secrets

__virtualname__ = "authentik"

SECRET_FIELDS = ("client_secret", "private_key", "key_data", "password", "certificate_data")


def __virtual__():
    return hecate_loader.virtual(__virtualname__)


def _public(obj):
    """A copy safe to return: secret fields redacted, at any depth."""
    if isinstance(obj, list):
        return [_public(o) for o in obj]
    if isinstance(obj, dict):
        return {
            k: (hecate_secrets.REDACTED if k in SECRET_FIELDS and v else _public(v))
            for k, v in obj.items()
        }
    return copy.deepcopy(obj)


def _fields(kwargs):
    """Drop Salt's ``__pub_*`` keys from CLI kwargs."""
    return {k: v for k, v in kwargs.items() if not k.startswith("__")}


def _require(kind, name):
    return hecate_clients.authentik(__opts__, __pillar__, __context__, __salt__).require(kind, name)


# -- server ----------------------------------------------------------------------------------
def version():
    """
    The Authentik server version as ``"YYYY.M.P"`` (asked through ``/admin/version/``).

    CLI Example:

    .. code-block:: bash

        salt -G 'roles:hecate-edge' authentik.version
    """
    return ".".join(str(p) for p in hecate_clients.authentik(__opts__, __pillar__, __context__, __salt__).version())


# -- groups ------------------------------------------------------------------------------------
def group_list(name=None):
    """
    All groups (every page), without their member lists; ``name`` filters exactly.

    CLI Example:

    .. code-block:: bash

        salt -G 'roles:hecate-edge' authentik.group_list
        salt -G 'roles:hecate-edge' authentik.group_list name=bionicgpt-superadmin
    """
    client = hecate_clients.authentik(__opts__, __pillar__, __context__, __salt__)
    if name is not None:
        return _public(client.index("group").get(name, []))
    return _public([g for groups in client.index("group").values() for g in groups])


def group_get(name):
    """
    One group by name, or None.

    CLI Example:

    .. code-block:: bash

        salt -G 'roles:hecate-edge' authentik.group_get bionicgpt-superadmin
    """
    return _public(hecate_clients.authentik(__opts__, __pillar__, __context__, __salt__).find("group", name))


def _group_body(client, attributes=None, is_superuser=None, parent=None, parents=None):
    body = {}
    if attributes is not None:
        if not isinstance(attributes, dict):
            raise salt.exceptions.SaltInvocationError("attributes must be a mapping")
        body["attributes"] = attributes
    if is_superuser is not None:
        body["is_superuser"] = bool(is_superuser)
    if parents is not None:
        names = list(parents)
    elif parent is None:
        names = None  # hierarchy not touched
    else:
        names = [parent] if parent else []  # "" clears the parent
    if names is not None:
        body.update(client.parents_body([client.require("group", n)["pk"] for n in names]))
    return body


def group_create(name, attributes=None, is_superuser=False, parent=None, parents=None):
    """
    Create a group. ``parent`` (one name) or ``parents`` (names; several only from
    Authentik 2025.12) set the hierarchy whatever the server version calls it.

    CLI Example:

    .. code-block:: bash

        salt -G 'roles:hecate-edge' authentik.group_create bionicgpt-demo-tenant attributes='{"tenant": "demo"}'
    """
    client = hecate_clients.authentik(__opts__, __pillar__, __context__, __salt__)
    if client.find("group", name) is not None:
        raise salt.exceptions.CommandExecutionError(f"Authentik group '{name}' already exists")
    body = {"name": name}
    body.update(_group_body(client, attributes, is_superuser, parent, parents))
    return _public(client.create("group", body))


def group_update(name, new_name=None, attributes=None, is_superuser=None, parent=None, parents=None):
    """
    Change the given fields of a group (one PATCH with only those fields).

    CLI Example:

    .. code-block:: bash

        salt -G 'roles:hecate-edge' authentik.group_update bionicgpt-demo-tenant attributes='{"tenant": "demo2"}'
    """
    client = hecate_clients.authentik(__opts__, __pillar__, __context__, __salt__)
    group = client.require("group", name)
    body = _group_body(client, attributes, is_superuser, parent, parents)
    if new_name:
        body["name"] = new_name
    if not body:
        return _public(group)
    return _public(client.patch("group", group["pk"], body, old=group))


def group_delete(name):
    """
    Delete a group by name. Returns True when deleted, False when it did not exist.

    CLI Example:

    .. code-block:: bash

        salt -G 'roles:hecate-edge' authentik.group_delete bionicgpt-old
    """
    client = hecate_clients.authentik(__opts__, __pillar__, __context__, __salt__)
    group = client.find("group", name)
    if group is None:
        return False
    return client.delete("group", group["pk"], old=group)


def add_user(group, username):
    """
    Add a user to a group (``POST /core/groups/<uuid>/add_user/``).

    CLI Example:

    .. code-block:: bash

        salt -G 'roles:hecate-edge' authentik.add_user bionicgpt-superadmin henry
    """
    client = hecate_clients.authentik(__opts__, __pillar__, __context__, __salt__)
    client.add_user(client.require("group", group)["pk"], client.require("user", username)["pk"])
    return True


def remove_user(group, username):
    """
    Remove a user from a group (``POST /core/groups/<uuid>/remove_user/``).

    CLI Example:

    .. code-block:: bash

        salt -G 'roles:hecate-edge' authentik.remove_user bionicgpt-superadmin henry
    """
    client = hecate_clients.authentik(__opts__, __pillar__, __context__, __salt__)
    client.remove_user(client.require("group", group)["pk"], client.require("user", username)["pk"])
    return True


# -- users ---------------------------------------------------------------------------------------
def user_list(username=None, group=None):
    """
    Users (every page); filter by exact ``username`` or by ``group`` name.

    CLI Example:

    .. code-block:: bash

        salt -G 'roles:hecate-edge' authentik.user_list group=bionicgpt-superadmin
    """
    client = hecate_clients.authentik(__opts__, __pillar__, __context__, __salt__)
    filters = {}
    if username:
        filters["username"] = username
    if group:
        # groups_by_name is a ModelMultipleChoiceFilter: an unknown name is a 400
        # (authentik/core/api/users.py UsersFilter); name the missing group instead
        filters["groups_by_pk"] = client.require("group", group)["pk"]
    return _public(client.list("user", **filters))


def user_get(username):
    """
    One user by username, or None.

    CLI Example:

    .. code-block:: bash

        salt -G 'roles:hecate-edge' authentik.user_get henry
    """
    return _public(hecate_clients.authentik(__opts__, __pillar__, __context__, __salt__).find("user", username))


def _password(value, where):
    if value is None:
        return None
    if not hecate_secrets.is_ref(value) and not (isinstance(value, str) and value.startswith("sdb://")):
        raise salt.exceptions.SaltInvocationError(
            f"{where}: give the password as a Vault reference "
            "{vault: <mount>/<path>, key: <key>} or an sdb:// URI, never as a value"
        )
    return hecate_clients.resolver(__opts__, __pillar__, __context__, __salt__)(
        value, where
    )


def user_create(username, name, email="", groups=None, attributes=None, type="internal",  # pylint: disable=redefined-builtin
                path=None, is_active=True, password=None):
    """
    Create a user; ``groups`` are group names; ``password`` is a Vault reference
    (``{vault: secret/bionicgpt/lab-users, key: henry}``) or ``sdb://`` URI, set with
    ``set_password`` after creation.

    CLI Example:

    .. code-block:: bash

        salt -G 'roles:hecate-edge' authentik.user_create demo "Demo User" \\
            email=demo@example.com groups='[bionicgpt-demo-tenant]'
    """
    client = hecate_clients.authentik(__opts__, __pillar__, __context__, __salt__)
    if client.find("user", username) is not None:
        raise salt.exceptions.CommandExecutionError(f"Authentik user '{username}' already exists")
    secret = _password(password, f"user {username}: password")
    body = {"username": username, "name": name, "is_active": bool(is_active), "type": type}
    if email:
        body["email"] = email
    if attributes is not None:
        body["attributes"] = attributes
    if path:
        body["path"] = path
    if groups:
        body["groups"] = [client.require("group", g)["pk"] for g in groups]
    user = client.create("user", body)
    if secret:
        client.set_password(user["pk"], secret)
    return _public(user)


def user_update(username, **kwargs):
    """
    Change fields of a user (``name``, ``email``, ``attributes``, ``is_active``,
    ``type``, ``path``) with one PATCH.

    CLI Example:

    .. code-block:: bash

        salt -G 'roles:hecate-edge' authentik.user_update demo email=demo@example.org
    """
    client = hecate_clients.authentik(__opts__, __pillar__, __context__, __salt__)
    user = client.require("user", username)
    allowed = {"name", "email", "attributes", "is_active", "type", "path"}
    body = _fields(kwargs)
    unknown = set(body) - allowed
    if unknown:
        raise salt.exceptions.SaltInvocationError(
            f"user_update: unknown field(s) {', '.join(sorted(unknown))}; allowed: {', '.join(sorted(allowed))}"
        )
    if not body:
        return _public(user)
    return _public(client.patch("user", user["pk"], body))


def user_set_password(username, password):
    """
    Set a user's password from a Vault reference or ``sdb://`` URI (never a value).

    CLI Example:

    .. code-block:: bash

        salt -G 'roles:hecate-edge' authentik.user_set_password henry \\
            password='{"vault": "secret/bionicgpt/lab-users", "key": "henry"}'
    """
    client = hecate_clients.authentik(__opts__, __pillar__, __context__, __salt__)
    user = client.require("user", username)
    client.set_password(user["pk"], _password(password, f"user {username}: password"))
    return True


def user_delete(username):
    """
    Delete a user. True when deleted, False when absent.

    CLI Example:

    .. code-block:: bash

        salt -G 'roles:hecate-edge' authentik.user_delete demo
    """
    client = hecate_clients.authentik(__opts__, __pillar__, __context__, __salt__)
    user = client.find("user", username)
    return client.delete("user", user["pk"]) if user else False


# -- providers -------------------------------------------------------------------------------------
def oauth2_provider_list():
    """
    OAuth2/OpenID providers (client secrets redacted).

    CLI Example:

    .. code-block:: bash

        salt -G 'roles:hecate-edge' authentik.oauth2_provider_list
    """
    return _public(hecate_clients.authentik(__opts__, __pillar__, __context__, __salt__).list("provider_oauth2"))


def oauth2_provider_get(name):
    """
    One OAuth2 provider by name (client secret redacted), or None.

    CLI Example:

    .. code-block:: bash

        salt -G 'roles:hecate-edge' authentik.oauth2_provider_get "BionicGPT OAuth2"
    """
    return _public(hecate_clients.authentik(__opts__, __pillar__, __context__, __salt__).find("provider_oauth2", name))


def oauth2_provider_create(name, authorization_flow, invalidation_flow, redirect_uris,
                           credentials=None, client_type="confidential", scopes=None,
                           property_mappings=None, **kwargs):
    """
    Create an OAuth2 provider: flows by slug, redirect URIs as strict matches (or
    ``{url, matching_mode: regex}``), the built-in mappings of ``scopes`` plus
    ``property_mappings`` by name. Authentik generates the client id and secret; with
    ``credentials`` (``<mount>/<path>``) both are written to Vault there
    (``client_id``, ``client_secret``). The secret is never returned.

    CLI Example:

    .. code-block:: bash

        salt -G 'roles:hecate-edge' authentik.oauth2_provider_create "BionicGPT OAuth2" \\
            default-provider-authorization-implicit-consent default-provider-invalidation-flow \\
            '["https://chat.example.com/oauth2/callback"]' credentials=secret/bionicgpt/oauth
    """
    client = hecate_clients.authentik(__opts__, __pillar__, __context__, __salt__)
    if client.find("provider_oauth2", name) is not None:
        raise salt.exceptions.CommandExecutionError(f"Authentik OAuth2 provider '{name}' already exists")
    scopes = ["openid", "email", "profile"] if scopes is None else list(scopes)
    mappings = [client.managed_scope_mapping(s) for s in scopes or ()]
    missing = [s for s, m in zip(scopes or (), mappings) if m is None]
    if missing:
        raise salt.exceptions.CommandExecutionError(
            f"Authentik has no built-in scope mapping for {', '.join(missing)}"
        )
    pks = [m["pk"] for m in mappings] + [client.require("scope_mapping", n)["pk"] for n in property_mappings or ()]
    body = {
        "name": name,
        "authorization_flow": client.require("flow", authorization_flow)["pk"],
        "invalidation_flow": client.require("flow", invalidation_flow)["pk"],
        "redirect_uris": hak.redirect_uris(redirect_uris),
        "client_type": client_type,
        "property_mappings": pks,
    }
    extra = _fields(kwargs)
    for key in ("access_code_validity", "access_token_validity", "refresh_token_validity"):
        if key in extra:
            extra[key] = hak.duration_text(extra[key], key)
    body.update(extra)
    provider = client.create("provider_oauth2", body)
    if credentials:
        store_credentials(provider, credentials)
    return _public(provider)


def store_credentials(provider, credentials):
    """
    Write an OAuth2 provider's ``client_id``/``client_secret`` to Vault at
    ``credentials`` (``<mount>/<path>``), keeping the secret's other keys (CAS-guarded).
    ``provider`` is the provider's name or its API object. Returns True when Vault
    changed. Nothing secret is returned or logged.

    CLI Example:

    .. code-block:: bash

        salt -G 'roles:hecate-edge' authentik.store_credentials "BionicGPT OAuth2" secret/bionicgpt/oauth
    """
    if isinstance(provider, str):
        client = hecate_clients.authentik(__opts__, __pillar__, __context__, __salt__)
        provider = client.require("provider_oauth2", provider)
    mount, _, path = str(credentials).partition("/")
    if not mount or not path:
        raise salt.exceptions.SaltInvocationError(
            f"credentials: expected '<mount>/<path>' (e.g. secret/bionicgpt/oauth), got {credentials!r}"
        )
    vault = hecate_clients.vault(__opts__, __pillar__, __context__, __salt__)
    return vault.merge(mount, path, {"client_id": provider["client_id"],
                                     "client_secret": provider["client_secret"]})


def oauth2_provider_update(name, **kwargs):
    """
    Change the given fields of an OAuth2 provider with one PATCH (API field names;
    flows may be given by slug).

    CLI Example:

    .. code-block:: bash

        salt -G 'roles:hecate-edge' authentik.oauth2_provider_update "BionicGPT OAuth2" access_token_validity=hours=2
    """
    client = hecate_clients.authentik(__opts__, __pillar__, __context__, __salt__)
    provider = client.require("provider_oauth2", name)
    body = _fields(kwargs)
    if "client_secret" in body:
        raise salt.exceptions.SaltInvocationError("the client secret is generated by Authentik; it is not an argument")
    for key in ("authorization_flow", "invalidation_flow", "authentication_flow"):
        if body.get(key):
            body[key] = client.require("flow", body[key])["pk"]
    if "redirect_uris" in body:
        body["redirect_uris"] = hak.redirect_uris(body["redirect_uris"])
    if not body:
        return _public(provider)
    return _public(client.patch("provider_oauth2", provider["pk"], body, old=provider))


def oauth2_provider_delete(name):
    """
    Delete an OAuth2 provider by name. True when deleted, False when absent.

    CLI Example:

    .. code-block:: bash

        salt -G 'roles:hecate-edge' authentik.oauth2_provider_delete "BionicGPT OAuth2"
    """
    client = hecate_clients.authentik(__opts__, __pillar__, __context__, __salt__)
    provider = client.find("provider_oauth2", name)
    return client.delete("provider_oauth2", provider["pk"], old=provider) if provider else False


def proxy_provider_list():
    """
    Proxy providers.

    CLI Example:

    .. code-block:: bash

        salt -G 'roles:hecate-edge' authentik.proxy_provider_list
    """
    return _public(hecate_clients.authentik(__opts__, __pillar__, __context__, __salt__).list("provider_proxy"))


def proxy_provider_get(name):
    """
    One proxy provider by name, or None.

    CLI Example:

    .. code-block:: bash

        salt -G 'roles:hecate-edge' authentik.proxy_provider_get "Grafana forward auth"
    """
    return _public(hecate_clients.authentik(__opts__, __pillar__, __context__, __salt__).find("provider_proxy", name))


def _proxy_body(client, fields, name):
    """
    API fields of a proxy provider from module arguments: flows by slug, property
    mappings by name. ``redirect_uris`` is not an argument: Authentik derives a proxy
    provider's redirect URIs from ``external_host`` on every write (set_oauth_defaults).
    """
    body = dict(fields)
    if "redirect_uris" in body:
        raise salt.exceptions.SaltInvocationError(
            f"proxy provider '{name}': redirect_uris are set by Authentik from external_host "
            "(<external_host>/outpost.goauthentik.io/callback); they are not an argument"
        )
    for key in ("authorization_flow", "invalidation_flow", "authentication_flow"):
        if body.get(key):
            body[key] = client.require("flow", body[key])["pk"]
    if "property_mappings" in body:
        body["property_mappings"] = [client.require("scope_mapping", m)["pk"]
                                     for m in body["property_mappings"] or []]
    return body


def proxy_provider_create(name, external_host, authorization_flow, invalidation_flow,
                          mode="forward_single", internal_host=None, **kwargs):
    """
    Create a proxy provider (``mode`` proxy, forward_single or forward_domain; flows by
    slug; ``property_mappings`` by name). Authentik adds its managed openid, profile,
    email, entitlements and proxy scope mappings and sets the redirect URIs itself.
    Attach it to the embedded outpost with ``outpost_attach_provider``.

    CLI Example:

    .. code-block:: bash

        salt -G 'roles:hecate-edge' authentik.proxy_provider_create "Grafana" https://grafana.example.com \\
            default-provider-authorization-implicit-consent default-provider-invalidation-flow
    """
    client = hecate_clients.authentik(__opts__, __pillar__, __context__, __salt__)
    if client.find("provider_proxy", name) is not None:
        raise salt.exceptions.CommandExecutionError(f"Authentik proxy provider '{name}' already exists")
    body = {
        "name": name,
        "external_host": external_host,
        "mode": mode,
        "authorization_flow": authorization_flow,
        "invalidation_flow": invalidation_flow,
    }
    if internal_host:
        body["internal_host"] = internal_host
    body.update(_fields(kwargs))
    return _public(client.create("provider_proxy", _proxy_body(client, body, name)))


def proxy_provider_update(name, **kwargs):
    """
    Change the given fields of a proxy provider with one PATCH of the fields that
    differ (none: no write). Flows by slug, ``property_mappings`` by name, compared with
    the managed mappings Authentik adds to every proxy provider. The PATCH carries the
    provider's ``mode``, and in proxy mode its ``internal_host``, unless given:
    Authentik validates a PATCH on the fields sent and takes an unsent mode for "proxy".

    CLI Example:

    .. code-block:: bash

        salt -G 'roles:hecate-edge' authentik.proxy_provider_update "Grafana" external_host=https://grafana2.example.com
    """
    client = hecate_clients.authentik(__opts__, __pillar__, __context__, __salt__)
    provider = client.require("provider_proxy", name)
    body = client.proxy_provider_changes(provider, _proxy_body(client, _fields(kwargs), name))
    return _public(client.patch_proxy_provider(provider, body) if body else provider)


def proxy_provider_delete(name):
    """
    Delete a proxy provider by name. True when deleted, False when absent.

    CLI Example:

    .. code-block:: bash

        salt -G 'roles:hecate-edge' authentik.proxy_provider_delete "Grafana"
    """
    client = hecate_clients.authentik(__opts__, __pillar__, __context__, __salt__)
    provider = client.find("provider_proxy", name)
    return client.delete("provider_proxy", provider["pk"]) if provider else False


# -- applications -----------------------------------------------------------------------------------
def application_list():
    """
    All applications (``superuser_full_list=true``: the plain list is filtered by the
    token user's policies and cached).

    CLI Example:

    .. code-block:: bash

        salt -G 'roles:hecate-edge' authentik.application_list
    """
    return _public(hecate_clients.authentik(__opts__, __pillar__, __context__, __salt__).list("application"))


def application_get(slug):
    """
    One application by slug, or None.

    CLI Example:

    .. code-block:: bash

        salt -G 'roles:hecate-edge' authentik.application_get bionicgpt
    """
    return _public(hecate_clients.authentik(__opts__, __pillar__, __context__, __salt__).get("application", slug))


def _provider_pk(client, provider, provider_type):
    if provider is None:
        return None
    kind = {"oauth2": "provider_oauth2", "proxy": "provider_proxy"}.get(provider_type)
    if kind is None:
        raise salt.exceptions.SaltInvocationError("provider_type must be oauth2 or proxy")
    return client.require(kind, provider)["pk"]


def application_create(name, slug, provider=None, provider_type="oauth2", **kwargs):
    """
    Create an application; ``provider`` is the provider's name.

    CLI Example:

    .. code-block:: bash

        salt -G 'roles:hecate-edge' authentik.application_create BionicGPT bionicgpt provider="BionicGPT OAuth2" \\
            meta_launch_url=https://chat.example.com
    """
    hak.check_application_slug(slug, f"application '{slug}'")
    client = hecate_clients.authentik(__opts__, __pillar__, __context__, __salt__)
    if client.get("application", slug) is not None:
        raise salt.exceptions.CommandExecutionError(f"Authentik application '{slug}' already exists")
    body = {"name": name, "slug": slug, "provider": _provider_pk(client, provider, provider_type)}
    body.update(_fields(kwargs))
    return _public(client.create("application", body))


def application_update(slug, provider=None, provider_type="oauth2", **kwargs):
    """
    Change the given fields of an application with one PATCH.

    CLI Example:

    .. code-block:: bash

        salt -G 'roles:hecate-edge' authentik.application_update bionicgpt meta_launch_url=https://chat.example.org
    """
    client = hecate_clients.authentik(__opts__, __pillar__, __context__, __salt__)
    app = client.require("application", slug)
    body = _fields(kwargs)
    if provider is not None:
        body["provider"] = _provider_pk(client, provider, provider_type)
    return _public(client.patch("application", slug, body) if body else app)


def application_delete(slug):
    """
    Delete an application (its policy bindings go with it). True when deleted.

    CLI Example:

    .. code-block:: bash

        salt -G 'roles:hecate-edge' authentik.application_delete bionicgpt
    """
    return hecate_clients.authentik(__opts__, __pillar__, __context__, __salt__).delete("application", slug)


# -- scope mappings ----------------------------------------------------------------------------------
def scope_mapping_list(managed=None):
    """
    OAuth2 scope mappings; ``managed`` filters by the built-in identifier.

    CLI Example:

    .. code-block:: bash

        salt -G 'roles:hecate-edge' authentik.scope_mapping_list
    """
    client = hecate_clients.authentik(__opts__, __pillar__, __context__, __salt__)
    everything = [m for ms in client.index("scope_mapping").values() for m in ms]
    # filtered here: the API's managed filter answers 400 for a value no mapping has
    return _public([m for m in everything if not managed or m.get("managed") == managed])


def scope_mapping_get(name):
    """
    One scope mapping by name, or None.

    CLI Example:

    .. code-block:: bash

        salt -G 'roles:hecate-edge' authentik.scope_mapping_get "BionicGPT Groups Mapping"
    """
    return _public(hecate_clients.authentik(__opts__, __pillar__, __context__, __salt__).find("scope_mapping", name))


def scope_mapping_create(name, scope_name, expression, description=""):
    """
    Create a scope mapping.

    CLI Example:

    .. code-block:: bash

        salt -G 'roles:hecate-edge' authentik.scope_mapping_create "Groups" groups 'return {"groups": []}'
    """
    client = hecate_clients.authentik(__opts__, __pillar__, __context__, __salt__)
    if client.find("scope_mapping", name) is not None:
        raise salt.exceptions.CommandExecutionError(f"Authentik scope mapping '{name}' already exists")
    return _public(client.create("scope_mapping", {"name": name, "scope_name": scope_name,
                                                   "expression": expression,
                                                   "description": description}))


def scope_mapping_delete(name):
    """
    Delete a scope mapping by name (never a built-in one). True when deleted.

    CLI Example:

    .. code-block:: bash

        salt -G 'roles:hecate-edge' authentik.scope_mapping_delete "Groups"
    """
    client = hecate_clients.authentik(__opts__, __pillar__, __context__, __salt__)
    mapping = client.find("scope_mapping", name)
    if mapping is None:
        return False
    hak.check_deletable_scope_mapping(mapping)
    return client.delete("scope_mapping", mapping["pk"], old=mapping)


# -- flows, stages, brands ----------------------------------------------------------------------------
def flow_list(designation=None):
    """
    Flows; ``designation`` filters (authentication, authorization, enrollment, ...).

    CLI Example:

    .. code-block:: bash

        salt -G 'roles:hecate-edge' authentik.flow_list designation=enrollment
    """
    client = hecate_clients.authentik(__opts__, __pillar__, __context__, __salt__)
    return _public(client.list("flow", **({"designation": designation} if designation else {})))


def flow_get(slug):
    """
    One flow by slug, or None.

    CLI Example:

    .. code-block:: bash

        salt -G 'roles:hecate-edge' authentik.flow_get default-provider-authorization-implicit-consent
    """
    return _public(hecate_clients.authentik(__opts__, __pillar__, __context__, __salt__).get("flow", slug))


def identification_stage_get(name="default-authentication-identification"):
    """
    An identification stage by name (its ``enrollment_flow`` links self-enrollment).

    CLI Example:

    .. code-block:: bash

        salt -G 'roles:hecate-edge' authentik.identification_stage_get
    """
    client = hecate_clients.authentik(__opts__, __pillar__, __context__, __salt__)
    return _public(client.find("stage_identification", name))


def identification_stage_set_enrollment(flow=None, name="default-authentication-identification"):
    """
    Link (``flow`` = an enrollment flow's slug) or unlink (``flow`` empty) self-enrollment
    on an identification stage. Written only when it differs, with the stage's own
    ``user_fields`` and ``sources`` unchanged (Authentik validates a PATCH on the fields
    sent, and a stage body without either is refused). Returns True when it changed.

    CLI Example:

    .. code-block:: bash

        salt -G 'roles:hecate-edge' authentik.identification_stage_set_enrollment flow=bionicgpt-enrollment
    """
    client = hecate_clients.authentik(__opts__, __pillar__, __context__, __salt__)
    stage = client.require("stage_identification", name)
    target = client.require("flow", flow)["pk"] if flow else None
    if stage.get("enrollment_flow") == target:
        return False
    client.set_enrollment_flow(stage, target)
    return True


def brand_list():
    """
    Brands.

    CLI Example:

    .. code-block:: bash

        salt -G 'roles:hecate-edge' authentik.brand_list
    """
    return _public(hecate_clients.authentik(__opts__, __pillar__, __context__, __salt__).list("brand"))


def brand_get(domain="authentik-default"):
    """
    One brand by domain, or None.

    CLI Example:

    .. code-block:: bash

        salt -G 'roles:hecate-edge' authentik.brand_get
    """
    return _public(hecate_clients.authentik(__opts__, __pillar__, __context__, __salt__).find("brand", domain))


def brand_update(domain="authentik-default", **kwargs):
    """
    Change fields of a brand with one PATCH; ``flow_*`` fields may be flow slugs.
    (Brands have no enrollment flow: see ``identification_stage_set_enrollment``.)

    CLI Example:

    .. code-block:: bash

        salt -G 'roles:hecate-edge' authentik.brand_update branding_title="Cybermonkey SSO"
    """
    client = hecate_clients.authentik(__opts__, __pillar__, __context__, __salt__)
    brand = client.require("brand", domain)
    body = _fields(kwargs)
    for key, val in list(body.items()):
        if key.startswith("flow_") and val:
            body[key] = client.require("flow", val)["pk"]
    # brands are keyed by brand_uuid and carry no pk (BrandSerializer, authentik/brands/api.py)
    return _public(client.patch("brand", brand["brand_uuid"], body) if body else brand)


# -- policy bindings, outposts ---------------------------------------------------------------------------
def policy_binding_list(application=None):
    """
    Policy bindings; ``application`` (a slug) lists those targeting it.

    CLI Example:

    .. code-block:: bash

        salt -G 'roles:hecate-edge' authentik.policy_binding_list application=bionicgpt
    """
    client = hecate_clients.authentik(__opts__, __pillar__, __context__, __salt__)
    if application:
        return _public(client.list("policy_binding", target=client.require("application", application)["pk"]))
    return _public(client.list("policy_binding"))


def policy_binding_create(application, group=None, user=None, order=0, enabled=True, negate=False):
    """
    Bind a group (by name) or a user (by username) to an application: only bound
    groups/users may then use it. Exactly one of ``group``/``user``.

    CLI Example:

    .. code-block:: bash

        salt -G 'roles:hecate-edge' authentik.policy_binding_create bionicgpt group=bionicgpt-superadmin
    """
    if bool(group) == bool(user):
        raise salt.exceptions.SaltInvocationError("give exactly one of group or user")
    client = hecate_clients.authentik(__opts__, __pillar__, __context__, __salt__)
    body = {"target": client.require("application", application)["pk"], "order": int(order),
            "enabled": bool(enabled), "negate": bool(negate)}
    if group:
        body["group"] = client.require("group", group)["pk"]
    else:
        body["user"] = client.require("user", user)["pk"]
    return _public(client.create("policy_binding", body))


def policy_binding_delete(pk):
    """
    Delete a policy binding by its uuid. True when deleted.

    CLI Example:

    .. code-block:: bash

        salt -G 'roles:hecate-edge' authentik.policy_binding_delete 0b5b7d1e-...
    """
    return hecate_clients.authentik(__opts__, __pillar__, __context__, __salt__).delete("policy_binding", pk)


def outpost_list():
    """
    Outposts.

    CLI Example:

    .. code-block:: bash

        salt -G 'roles:hecate-edge' authentik.outpost_list
    """
    return _public(hecate_clients.authentik(__opts__, __pillar__, __context__, __salt__).list("outpost"))


def outpost_embedded():
    """
    The embedded outpost (``managed: goauthentik.io/outposts/embedded``).

    CLI Example:

    .. code-block:: bash

        salt -G 'roles:hecate-edge' authentik.outpost_embedded
    """
    return _public(hecate_clients.authentik(__opts__, __pillar__, __context__, __salt__).embedded_outpost())


def _outpost(client, outpost):
    if outpost:
        return client.require("outpost", outpost)
    return client.embedded_outpost()


def outpost_attach_provider(provider, provider_type="proxy", outpost=None):
    """
    Attach a provider (by name) to an outpost (the embedded one by default): read,
    append, PATCH ``providers`` only when missing. Returns True when it changed.

    CLI Example:

    .. code-block:: bash

        salt -G 'roles:hecate-edge' authentik.outpost_attach_provider "Grafana"
    """
    client = hecate_clients.authentik(__opts__, __pillar__, __context__, __salt__)
    pk = _provider_pk(client, provider, provider_type)
    old, new = client.outpost_providers(_outpost(client, outpost)["pk"], add=[pk])
    return old != new


def outpost_detach_provider(provider, provider_type="proxy", outpost=None):
    """
    Detach a provider from an outpost (the embedded one by default). True when it changed.

    CLI Example:

    .. code-block:: bash

        salt -G 'roles:hecate-edge' authentik.outpost_detach_provider "Grafana"
    """
    client = hecate_clients.authentik(__opts__, __pillar__, __context__, __salt__)
    pk = _provider_pk(client, provider, provider_type)
    old, new = client.outpost_providers(_outpost(client, outpost)["pk"], remove=[pk])
    return old != new


# -- identity-aware routes ----------------------------------------------------------------------------
def route_auth_status(pillar_key="hecate:reverse_proxy:caddy"):
    """
    The protected routes in pillar (``auth`` or ``forward_auth``) and whether each one's
    Authentik side is in place (the proxy provider for its domain, assigned to hecate's
    application, attached to the outpost): what ``caddy_routes.managed`` checks before it
    switches a route to forward auth. Reads only.

    CLI Example:

    .. code-block:: bash

        salt -G roles:hecate-edge authentik.route_auth_status
    """
    data = hecate_caddy_routes.caddy_data(__pillar__, pillar_key)
    settings = data.get("forward_auth") if isinstance(data, dict) and isinstance(data.get("forward_auth"), dict) else {}
    if settings.get("manage_authentik") is False:
        return {}
    auths = hecate_caddy_routes.route_auths(data, base=pillar_key)
    env = hecate_route_auth.environment(__pillar__, __grains__)
    client = hecate_clients.authentik(__opts__, __pillar__, __context__, __salt__)
    missing = hecate_route_auth.readiness(client, auths, env) if auths else {}
    return {
        a.route: {"ready": a.route not in missing, "reason": missing.get(a.route),
                  "provider": a.provider_name(env), "application": a.slug, "groups": list(a.groups),
                  "mode": a.mode, "external_host": a.external_host}
        for a in auths
    }
