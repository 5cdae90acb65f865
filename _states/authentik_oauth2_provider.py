"""
Authentik OAuth2/OpenID providers, with the generated client credentials kept in Vault.

Each run compares the normalised desired settings with the live provider and PATCHes
only the fields that differ — a full PUT on every run rewrote providers mid-login for
Terraform users (TF#956). Normalisation: flows by slug, redirect URIs as an unordered
set of ``{matching_mode, url}`` (strict unless a regex is asked for; authentik#18765),
token lifetimes in seconds (``hours=1`` equals ``minutes=60``; TF#303), property
mappings as a set (built-in ``openid``/``email``/``profile`` by their managed ids, plus
ours by name).

Authentik generates the client id (40 characters) and secret (128). With
``credentials: <mount>/<path>`` both are written to Vault there as ``client_id`` and
``client_secret`` when the provider is created, and again whenever Vault does not hold
the live values (a wiped or older secret). They never appear in the state return, the
job cache or a log line.

.. code-block:: yaml

    BionicGPT OAuth2:
      authentik_oauth2_provider.present:
        - authorization_flow: default-provider-authorization-implicit-consent
        - invalidation_flow: default-provider-invalidation-flow
        - redirect_uris:
          - https://chat.example.com/oauth2/callback
        - property_mappings: [BionicGPT Groups Mapping]
        - access_token_validity: hours=1
        - refresh_token_validity: days=7
        - credentials: secret/bionicgpt/oauth
"""

import salt.exceptions

import hecate_authentik_client as hak
import hecate_clients
import hecate_loader
import hecate_state

__virtualname__ = "authentik_oauth2_provider"

DURATIONS = ("access_code_validity", "access_token_validity", "refresh_token_validity")
PLAIN = ("client_type", "sub_mode", "issuer_mode", "include_claims_in_id_token")
FLOWS = ("authorization_flow", "invalidation_flow", "authentication_flow")


def __virtual__():
    return hecate_loader.virtual(__virtualname__)


def _vault_path(credentials, name):
    mount, _, path = str(credentials).strip("/").partition("/")
    if not mount or not path:
        raise salt.exceptions.SaltInvocationError(
            f"provider '{name}': credentials must be '<mount>/<path>' "
            f"(e.g. secret/bionicgpt/oauth), got {credentials!r}"
        )
    return mount, path


@hecate_state.guard
def present(name, authorization_flow, invalidation_flow, redirect_uris, credentials=None,
            authentication_flow=None, client_type="confidential", scopes=None,
            property_mappings=None, access_code_validity=None, access_token_validity=None,
            refresh_token_validity=None, sub_mode=None, issuer_mode=None,
            include_claims_in_id_token=None, signing_key=None):
    """
    Ensure an OAuth2/OpenID provider exists with these settings.

    name
        The provider's name (unique in Authentik).
    authorization_flow / invalidation_flow / authentication_flow
        Flow slugs (e.g. ``default-provider-authorization-implicit-consent``,
        ``default-provider-invalidation-flow``).
    redirect_uris
        URLs matched strictly, or ``{url: <regex>, matching_mode: regex}``.
    credentials
        ``<mount>/<path>`` in Vault KV v2 where ``client_id``/``client_secret`` go.
    client_type
        ``confidential`` (default) or ``public``.
    scopes
        Built-in scope mappings to attach (default openid, email, profile).
    property_mappings
        Further scope mappings by name (e.g. the group mapping).
    access_code_validity / access_token_validity / refresh_token_validity
        Authentik durations (``hours=1``, ``days=7``) or seconds.
    sub_mode / issuer_mode / include_claims_in_id_token
        Passed through when given.
    signing_key
        Name of a certificate key pair to sign tokens (RS256); ``""`` for none (HS256
        with the client secret). Unmanaged when omitted.

    .. code-block:: yaml

        BionicGPT OAuth2:
          authentik_oauth2_provider.present:
            - authorization_flow: default-provider-authorization-implicit-consent
            - invalidation_flow: default-provider-invalidation-flow
            - redirect_uris: [https://chat.example.com/oauth2/callback]
            - credentials: secret/bionicgpt/oauth
            - scopes: [openid, email, profile, groups]
    """
    ret = hecate_state.new(name)
    test = bool(__opts__.get("test"))
    client = hecate_clients.authentik(__opts__, __pillar__, __context__, __salt__)
    where = f"provider '{name}'"
    scopes = ["openid", "email", "profile"] if scopes is None else list(scopes)
    desired, pks = {}, {}

    # flows, by slug (Authentik's own flows: they must exist, in test mode too)
    flows = {"authorization_flow": authorization_flow, "invalidation_flow": invalidation_flow}
    if authentication_flow is not None:
        flows["authentication_flow"] = authentication_flow or None
    for key, slug in flows.items():
        desired[key] = slug
        pks[key] = client.require("flow", slug, where=f"{where}: {key}")["pk"] if slug else None

    desired["redirect_uris"] = hak.redirect_uris(redirect_uris, f"{where}: redirect_uris")
    pks["redirect_uris"] = desired["redirect_uris"]
    desired["client_type"] = client_type
    pks["client_type"] = client_type
    for key, value in (("sub_mode", sub_mode), ("issuer_mode", issuer_mode),
                       ("include_claims_in_id_token", include_claims_in_id_token)):
        if value is not None:
            desired[key] = value
            pks[key] = value
    for key, value in (("access_code_validity", access_code_validity),
                       ("access_token_validity", access_token_validity),
                       ("refresh_token_validity", refresh_token_validity)):
        if value is not None:
            desired[key] = hak.duration_text(value, f"{where}: {key}")
            pks[key] = desired[key]

    # property mappings: built-in ones by managed id, ours by name; compared by name
    mapping_names, mapping_pks, missing = [], [], []
    all_mappings = [m for ms in client.index("scope_mapping").values() for m in ms]
    for scope in scopes:
        managed = hak.MANAGED_SCOPE.format(scope)
        found = next((m for m in all_mappings if m.get("managed") == managed), None)
        if found is None:
            raise salt.exceptions.CommandExecutionError(
                f"{where}: Authentik has no built-in scope mapping for '{scope}' ({managed})"
            )
        mapping_names.append(found["name"])
        mapping_pks.append(found["pk"])
    for mname in property_mappings or []:
        found = client.find("scope_mapping", mname)
        mapping_names.append(mname)
        if found is None:
            missing.append(mname)
        else:
            mapping_pks.append(found["pk"])
    if missing and not test:
        raise salt.exceptions.CommandExecutionError(
            f"{where}: scope mapping(s) {', '.join(missing)} do not exist "
            "(authentik_scope_mapping.present must run first)"
        )
    desired["property_mappings"] = sorted(set(mapping_names))
    pks["property_mappings"] = sorted(set(mapping_pks))

    if signing_key is not None:
        desired["signing_key"] = signing_key or None
        pks["signing_key"] = (
            client.require("certificate", signing_key, where=f"{where}: signing_key")["pk"]
            if signing_key else None
        )

    live = client.find("provider_oauth2", name)
    if live is None:
        changes = {"provider": {"old": None, "new": name}}
        changes.update(hecate_state.diff({}, desired))
        if credentials:
            changes["credentials"] = {
                "old": None,
                "new": f"client_id, client_secret in vault:{credentials}",
            }
        if test:
            return hecate_state.result(ret, changes, test, f"{where} would be created", "")
        if credentials:
            mount, path = _vault_path(credentials, name)
            vault = hecate_clients.vault(
                __opts__, __pillar__, __context__, __salt__
            )  # connect before creating: fail early, not after the POST
        body = dict(pks, name=name)
        created = client.create("provider_oauth2", body)
        if credentials:
            try:
                vault.merge(mount, path, {"client_id": created["client_id"],
                                          "client_secret": created["client_secret"]})
            except salt.exceptions.CommandExecutionError as exc:
                ret.update(result=False, changes=changes,
                           comment=f"{where} created, but storing its credentials in "
                                   f"vault:{credentials} failed ({exc}); the next run stores them")
                return ret
        return hecate_state.result(ret, changes, test, "", f"{where} created")

    current, body = _compare(client, live, desired, pks)
    changes = hecate_state.diff({k: current[k] for k in desired}, desired)
    # durations that differ in text only (hours=1 vs minutes=60) are not changes
    for key in DURATIONS:
        if key in desired and key not in body:
            changes.pop(key, None)
    vault_write = None
    if credentials:
        mount, path = _vault_path(credentials, name)
        stored = hecate_clients.vault(__opts__, __pillar__, __context__, __salt__).read_data(mount, path) or {}
        if (stored.get("client_id"), stored.get("client_secret")) != (
            live.get("client_id"), live.get("client_secret")
        ):
            state = "missing" if not stored.get("client_secret") else "different from the provider"
            changes["credentials"] = {"old": f"vault:{credentials} {state}",
                                      "new": f"client_id, client_secret in vault:{credentials}"}
            vault_write = (mount, path)
    if not test:
        if body:
            client.patch("provider_oauth2", live["pk"], body, old=live)
        if vault_write:
            client = hecate_clients.vault(__opts__, __pillar__, __context__, __salt__)
            client.merge(vault_write[0], vault_write[1], {"client_id": live["client_id"],
                                                            "client_secret": live["client_secret"]})
    fields = ", ".join(sorted({k.split(":")[0] for k in changes}))
    return hecate_state.result(ret, changes, test,
                               f"{where} would be updated ({fields})",
                               f"{where} updated ({fields})")


def _compare(client, live, desired, pks):
    """``(current, patch_body)``: live values shaped like ``desired``; the fields to send."""
    flow_slugs = client.names_by_pk("flow")
    mapping_names = client.names_by_pk("scope_mapping")
    current = {}
    for key in FLOWS:
        current[key] = flow_slugs.get(live.get(key), live.get(key)) if live.get(key) else None
    current["redirect_uris"] = hak.live_redirect_uris(live.get("redirect_uris"))
    for key in PLAIN:
        current[key] = live.get(key)
    for key in DURATIONS:
        current[key] = live.get(key)
    current["property_mappings"] = sorted({mapping_names.get(pk, pk) for pk in live.get("property_mappings") or []})
    if "signing_key" in desired:
        certs = client.names_by_pk("certificate")
        current["signing_key"] = certs.get(live.get("signing_key"), live.get("signing_key")) \
            if live.get("signing_key") else None
    body = {}
    for key in desired:
        if key in DURATIONS:
            if live.get(key) is None or hak.duration_seconds(live[key]) != hak.duration_seconds(desired[key]):
                body[key] = pks[key]
        elif current[key] != desired[key]:
            body[key] = pks[key]
    return current, body


@hecate_state.guard
def absent(name):
    """
    Ensure an OAuth2 provider does not exist (its application loses the provider).

    .. code-block:: yaml

        Old OAuth2 provider:
          authentik_oauth2_provider.absent
    """
    ret = hecate_state.new(name, f"provider '{name}' is already absent")
    test = bool(__opts__.get("test"))
    if __salt__["authentik.oauth2_provider_get"](name) is None:
        return ret
    changes = {"provider": {"old": name, "new": None}}
    if not test:
        __salt__["authentik.oauth2_provider_delete"](name)
    return hecate_state.result(ret, changes, test,
                               f"provider '{name}' would be deleted",
                               f"provider '{name}' deleted")
