"""
Authentik SAML providers, for sites that speak SAML themselves (Wazuh's dashboard), with
what the service provider needs to trust Authentik written to Vault.

Each run compares the normalised desired settings with the live provider and PATCHes only
the fields that differ (flows, key pairs and mappings by name). A PATCH that sets the
signing key pair also sends ``sign_assertion``/``sign_response``: SAMLProviderSerializer.
validate (authentik/providers/saml/api/providers.py) checks them among the SENT fields.

With ``credentials: <mount>/<path>`` the state keeps in Vault: ``metadata_url``
(``<authentik>/application/saml/<application>/metadata/``), ``entity_id``, ``sso_url``
(the redirect binding) and ``certificate`` (the signing key pair's PEM). None of it is
secret; it is where the application's deployment reads its IdP settings. The metadata URL
is reported in the comment.

.. code-block:: yaml

    hecate/prod/app/wazuh:
      authentik_saml_provider.present:
        - application: wazuh
        - acs_url: https://delphi.example.com/_opendistro/_security/saml/acs
        - audience: wazuh-saml
        - credentials: secret/hecate/wazuh-saml
"""

import salt.exceptions

import hecate_clients
import hecate_loader
import hecate_state

__virtualname__ = "authentik_saml_provider"

DEFAULT_SIGNING_KEY = "authentik Self-signed Certificate"
PLAIN = ("acs_url", "audience", "sp_binding", "sign_assertion", "sign_response", "digest_algorithm",
         "signature_algorithm")
MANAGED_PREFIX = "goauthentik.io/providers/saml/"


def __virtual__():
    return hecate_loader.virtual(__virtualname__)


def _issuer_field(client):
    """``issuer`` up to 2026.2; ``issuer_override`` in the 2026.5 schema."""
    return "issuer_override" if client.version()[:2] >= (2026, 5) else "issuer"


@hecate_state.guard
def present(name, application, acs_url, authorization_flow=None,
            invalidation_flow=None, audience=None, issuer=None, sp_binding=None, property_mappings=None,
            name_id_mapping=None, signing_key=DEFAULT_SIGNING_KEY, sign_assertion=True, sign_response=None,
            digest_algorithm=None, signature_algorithm=None, credentials=None):
    """
    Ensure a SAML provider exists with these settings.

    name
        The provider's name (hecate's mark ``hecate/<env>/app/<entry>``).
    application
        The slug of the application it serves (its URLs are under /application/saml/<slug>/).
    acs_url / audience / sp_binding
        The service provider's Assertion Consumer Service URL, audience, binding.
    authorization_flow / invalidation_flow
        Flow slugs (Authentik's default provider flows when omitted).
    issuer
        The entity id Authentik presents (Authentik's default when omitted).
    property_mappings
        SAML property mappings by name (default: Authentik's managed ones).
    name_id_mapping
        The SAML property mapping that makes the NameID (by name).
    signing_key / sign_assertion / sign_response
        The key pair that signs (``""``: none), and what it signs.
    digest_algorithm / signature_algorithm
        Algorithm URIs; unmanaged when omitted.
    credentials
        ``<mount>/<path>`` in Vault KV v2 for metadata_url, entity_id, sso_url, certificate.

    .. code-block:: yaml

        hecate/prod/app/wazuh:
          authentik_saml_provider.present:
            - application: wazuh
            - acs_url: https://delphi.example.com/_opendistro/_security/saml/acs
            - audience: wazuh-saml
            - sp_binding: post
            - name_id_mapping: "authentik default SAML Mapping: Email"
            - signing_key: authentik Self-signed Certificate
            - credentials: secret/hecate/wazuh-saml
    """
    ret = hecate_state.new(name)
    test = bool(__opts__.get("test"))
    client = hecate_clients.authentik(__opts__, __pillar__, __context__, __salt__)
    where = f"SAML provider '{name}'"
    desired, api = {}, {}
    flows = {"authorization_flow": authorization_flow or "default-provider-authorization-implicit-consent",
             "invalidation_flow": invalidation_flow or "default-provider-invalidation-flow"}
    for key, slug in flows.items():
        desired[key] = slug
        api[key] = client.require("flow", slug, where=f"{where}: {key}")["pk"]
    for key, value in (("acs_url", acs_url), ("audience", audience), ("sp_binding", sp_binding),
                       ("sign_assertion", sign_assertion), ("sign_response", sign_response),
                       ("digest_algorithm", digest_algorithm), ("signature_algorithm", signature_algorithm)):
        if value is not None:
            desired[key] = api[key] = value
    issuer_key = _issuer_field(client)
    if issuer is not None:
        desired["issuer"] = api[issuer_key] = issuer
    mappings = [m for ms in client.index("saml_mapping").values() for m in ms]
    by_name = {m["name"]: m for m in mappings}
    if property_mappings is None:
        chosen = [m for m in mappings if str(m.get("managed") or "").startswith(MANAGED_PREFIX)]
    else:
        missing = [n for n in property_mappings if n not in by_name]
        if missing:
            raise salt.exceptions.CommandExecutionError(
                f"{where}: SAML property mapping(s) {', '.join(missing)} do not exist in Authentik")
        chosen = [by_name[n] for n in property_mappings]
    desired["property_mappings"] = sorted(m["name"] for m in chosen)
    api["property_mappings"] = sorted(m["pk"] for m in chosen)
    if name_id_mapping is not None:
        if name_id_mapping and name_id_mapping not in by_name:
            raise salt.exceptions.CommandExecutionError(
                f"{where}: name_id_mapping: Authentik has no SAML property mapping '{name_id_mapping}'")
        desired["name_id_mapping"] = name_id_mapping or None
        api["name_id_mapping"] = by_name[name_id_mapping]["pk"] if name_id_mapping else None
    kp = None
    if signing_key is not None:
        kp = client.require("certificate", signing_key, where=f"{where}: signing_key") if signing_key else None
        desired["signing_key"] = signing_key or None
        api["signing_kp"] = kp["pk"] if kp else None

    live = client.find("provider_saml", name)
    if live is None:
        changes = {"provider": {"old": None, "new": name}}
        changes.update(hecate_state.diff({}, desired))
        body = dict(api, name=name)
        if not test:
            live = client.create("provider_saml", body)
    else:
        current = _current(client, live, desired, issuer_key)
        changes = hecate_state.diff({k: current.get(k) for k in desired}, desired)
        body = {_api_key(k, issuer_key): api[_api_key(k, issuer_key)] for k in desired if current.get(k) != desired[k]}
        if body.get("signing_kp"):
            # validate() reads the sign flags from the sent fields only
            body.setdefault("sign_assertion", desired.get("sign_assertion", live.get("sign_assertion")))
            body.setdefault("sign_response", desired.get("sign_response", live.get("sign_response")))
        if body and not test:
            client.patch("provider_saml", live["pk"], body, old=live)
    idp = _idp(client, application, issuer or (live or {}).get(issuer_key) or None, kp)
    if credentials:
        mount, path = _vault_path(credentials, where)
        vault = hecate_clients.vault(__opts__, __pillar__, __context__, __salt__)
        stored = vault.read_data(mount, path) or {}
        if {k: stored.get(k) for k in idp} != idp:
            changes["credentials"] = {"old": f"vault:{credentials} " + ("missing" if not stored else "different"),
                                      "new": f"{', '.join(sorted(idp))} in vault:{credentials}"}
            if not test:
                vault.merge(mount, path, idp)
    ret = hecate_state.result(ret, changes, test, f"{where} would change", f"{where} changed")
    ret["comment"] += f"; metadata URL: {idp['metadata_url']}"
    return ret


def _api_key(key, issuer_key):
    return {"signing_key": "signing_kp", "issuer": issuer_key}.get(key, key)


def _current(client, live, desired, issuer_key):
    flows = client.names_by_pk("flow")
    names = client.names_by_pk("saml_mapping")
    current = {k: live.get(k) for k in PLAIN}
    for key in ("authorization_flow", "invalidation_flow"):
        current[key] = flows.get(live.get(key), live.get(key))
    current["issuer"] = live.get(issuer_key)
    current["property_mappings"] = sorted(names.get(pk, pk) for pk in live.get("property_mappings") or [])
    current["name_id_mapping"] = names.get(live.get("name_id_mapping")) if live.get("name_id_mapping") else None
    if "signing_key" in desired:
        certs = client.names_by_pk("certificate")
        current["signing_key"] = certs.get(live.get("signing_kp"), live.get("signing_kp")) \
            if live.get("signing_kp") else None
    return current


def _idp(client, application, issuer, kp):
    """What the service provider reads: metadata URL, entity id, SSO URL, certificate."""
    base = f"{client.url}/application/saml/{application}"
    out = {"metadata_url": f"{base}/metadata/", "sso_url": f"{base}/sso/binding/redirect/",
           "entity_id": issuer or ("authentik" if _issuer_field(client) == "issuer" else f"{base}/")}
    if kp is not None:
        data = client.call("GET", f"{client.item_path('certificate', kp['pk'])}view_certificate/")
        out["certificate"] = (data or {}).get("data") or ""
    return out


def _vault_path(credentials, where):
    mount, _, path = str(credentials).strip("/").partition("/")
    if not mount or not path:
        raise salt.exceptions.SaltInvocationError(
            f"{where}: credentials must be '<mount>/<path>', got {credentials!r}")
    return mount, path


@hecate_state.guard
def absent(name):
    """
    Ensure a SAML provider does not exist (its application is removed separately, by
    ``authentik_application.absent``).

    name
        The provider's name.

    .. code-block:: yaml

        hecate/prod/app/wazuh:
          authentik_saml_provider.absent: []
    """
    ret = hecate_state.new(name, f"SAML provider '{name}' is already absent")
    test = bool(__opts__.get("test"))
    client = hecate_clients.authentik(__opts__, __pillar__, __context__, __salt__)
    live = client.find("provider_saml", name)
    if live is None:
        return ret
    changes = {"provider": {"old": name, "new": None}}
    if not test:
        client.delete("provider_saml", live["pk"], old=live)
    return hecate_state.result(ret, changes, test, f"SAML provider '{name}' would be deleted",
                               f"SAML provider '{name}' deleted")
