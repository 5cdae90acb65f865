"""
The SAML identity provider side of the Authentik simulator: the URLs a SAML provider's API
object reports, its metadata, and certificate key pairs' PEM certificates.

What the real server does (goauthentik/authentik, tag version/2025.10.4):

- ``SAMLProviderSerializer`` (authentik/providers/saml/api/providers.py) computes
  ``url_download_metadata`` (``/application/saml/<slug>/metadata/`` once the provider has an
  application, else ``/api/v3/providers/saml/<pk>/metadata/?download``), ``url_sso_post``,
  ``url_sso_redirect``, ``url_sso_init``, ``url_slo_post``, ``url_slo_redirect``
  (``/application/saml/<slug>/sso|slo/binding/...``, ``-`` without an application), all
  absolute to the request's host (authentik/providers/saml/urls.py, mounted at
  /application/saml/);
- ``SAMLProviderSerializer.validate``: a signing key pair needs sign_assertion or
  sign_response among the SENT attributes (a PATCH is validated on what it sends);
- ``GET /api/v3/providers/saml/<pk>/metadata/`` is AllowAny: ``{"metadata": "<xml>"}``, the
  XML itself with ``?download`` (``{"metadata": ""}`` without an application); the
  application URL serves the XML (MetadataProcessor.build_entity_descriptor: entityID the
  issuer, the signing certificate in a ``use="signing"`` KeyDescriptor, the SSO services);
- ``GET /api/v3/crypto/certificatekeypairs/<kp>/view_certificate/`` answers
  ``{"data": "<PEM>"}`` (authentik/crypto/api.py CertificateKeyPairViewSet.view_certificate).

The lab's key pairs get a real self-signed certificate (made on first use), so what a
client reads is a certificate it can load; the metadata is reduced to the elements above.
"""

import datetime
import html

from werkzeug.wrappers import Response

SAML_PREFIX = "/application/saml"
MD = "urn:oasis:names:tc:SAML:2.0:metadata"
DS = "http://www.w3.org/2000/09/xmldsig#"
BINDINGS = {"redirect": "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect",
            "post": "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"}
NAME_ID_FORMATS = (
    "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress",
    "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent",
    "urn:oasis:names:tc:SAML:1.1:nameid-format:X509SubjectName",
    "urn:oasis:names:tc:SAML:2.0:nameid-format:WindowsDomainQualifiedName",
    "urn:oasis:names:tc:SAML:2.0:nameid-format:transient",
)
# blueprints/system/providers-saml.yaml: the managed SAML property mappings
MANAGED_MAPPINGS = (
    ("upn", "authentik default SAML Mapping: UPN", "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn"),
    ("name", "authentik default SAML Mapping: Name", "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name"),
    ("email", "authentik default SAML Mapping: Email",
     "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress"),
    ("username", "authentik default SAML Mapping: Username", "http://schemas.goauthentik.io/2021/02/saml/username"),
    ("uid", "authentik default SAML Mapping: User ID", "http://schemas.goauthentik.io/2021/02/saml/uid"),
    ("groups", "authentik default SAML Mapping: Groups", "http://schemas.xmlsoap.org/claims/Group"),
    ("ms-windowsaccountname", "authentik default SAML Mapping: WindowsAccountname (Username)",
     "http://schemas.microsoft.com/ws/2008/06/identity/claims/windowsaccountname"),
)


def self_signed_pem(common_name):
    """A self-signed certificate (PEM) for a lab key pair."""
    # pylint: disable=import-outside-toplevel
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "authentik"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now)
            .not_valid_after(now + datetime.timedelta(days=3650)).sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM).decode("ascii")


class SAMLIdP:
    """Mixin of :class:`lab.sim.authentik.AuthentikSim`."""

    def certificate_pem(self, kp_pk):
        kp = self.db["certificate"].get(kp_pk)
        if kp is None:
            return None
        if not kp.get("lab_pem"):
            kp["lab_pem"] = self_signed_pem(kp["name"])
        return kp["lab_pem"]

    def seed_saml(self):
        for managed, name, saml_name in MANAGED_MAPPINGS:
            self.create(self.resource("saml_mapping"), {
                "name": name, "saml_name": saml_name, "expression": "return None",
                "managed": f"goauthentik.io/providers/saml/{managed}"})

    @staticmethod
    def _validate_provider_saml(attrs, current):
        if attrs.get("signing_kp") and not attrs.get("sign_assertion") and not attrs.get("sign_response"):
            return {"non_field_errors": ["With a signing keypair selected, at least one of 'Sign assertion' "
                                         "and 'Sign Response' must be selected."]}
        return {}

    def _saml_app(self, prov):
        return next((a for a in self.db["application"].values() if a.get("provider") == prov["pk"]), None)

    def _repr_provider_saml(self, obj, out, request):
        self._repr_provider(obj, out)
        base = request.host_url.rstrip("/") if request is not None else ""
        app = self._saml_app(obj)
        urls = {"url_sso_post": "sso/binding/post/", "url_sso_redirect": "sso/binding/redirect/",
                "url_sso_init": "sso/binding/init/", "url_slo_post": "slo/binding/post/",
                "url_slo_redirect": "slo/binding/redirect/", "url_unified": "", "url_unified_init": "init/",
                "url_issuer": ""}
        for key, tail in urls.items():
            if key in out:
                out[key] = f"{base}{SAML_PREFIX}/{app['slug']}/{tail}" if app else "-"
        out["url_download_metadata"] = (f"{base}{SAML_PREFIX}/{app['slug']}/metadata/" if app
                                        else f"{base}/api/v3/providers/saml/{obj['pk']}/metadata/?download")

    def metadata_xml(self, prov, base):
        app = self._saml_app(prov)
        issuer = prov.get("issuer_override") or prov.get("issuer") or "authentik"
        if "issuer_override" in self.validator.resolve({"$ref": "#/components/schemas/SAMLProvider"})["properties"]:
            issuer = prov.get("issuer_override") or f"{base}{SAML_PREFIX}/{app['slug']}/"
        parts = [f'<md:EntityDescriptor xmlns:md="{MD}" xmlns:ds="{DS}" entityID="{html.escape(issuer)}">',
                 '<md:IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">']
        pem = self.certificate_pem(prov.get("signing_kp")) if prov.get("signing_kp") else None
        if pem:
            body = "".join(line for line in pem.splitlines() if "CERTIFICATE" not in line)
            parts.append(f'<md:KeyDescriptor use="signing"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>{body}'
                         "</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>")
        parts.extend(f"<md:NameIDFormat>{fmt}</md:NameIDFormat>" for fmt in NAME_ID_FORMATS)
        for kind, binding in BINDINGS.items():
            parts.append(f'<md:SingleSignOnService Binding="{binding}" '
                         f'Location="{base}{SAML_PREFIX}/{app["slug"]}/sso/binding/{kind}/"/>')
        parts.append("</md:IDPSSODescriptor></md:EntityDescriptor>")
        return "".join(parts)

    def on_saml_metadata(self, request, key):
        """SAMLProviderViewSet.metadata: AllowAny; JSON, or the XML with ?download."""
        prov = self.lookup(self.resource("provider_saml"), key)
        if prov is None:
            return self._no_match(self.resource("provider_saml"), key)
        if self._saml_app(prov) is None:
            return self.json({"metadata": ""})
        xml = self.metadata_xml(prov, request.host_url.rstrip("/"))
        if "download" in request.args:
            return Response(xml, mimetype="application/xml", headers={
                "Content-Disposition": f'attachment; filename="{prov["name"]}_authentik_meta.xml"'})
        return self.json({"metadata": xml})

    def on_saml_app_metadata(self, request, slug):
        """MetadataDownload (providers/saml/views/metadata.py): the XML of the app's provider."""
        app = next((a for a in self.db["application"].values() if a["slug"] == slug), None)
        prov = self.db["provider_saml"].get((app or {}).get("provider"))
        if prov is None:
            return self.not_found(request)
        return Response(self.metadata_xml(prov, request.host_url.rstrip("/")), mimetype="application/xml")

    def on_view_certificate(self, request, key):
        kp = self.lookup(self.resource("certificate"), key)
        if kp is None:
            return self._no_match(self.resource("certificate"), key)
        return self.json({"data": self.certificate_pem(kp["pk"])})
