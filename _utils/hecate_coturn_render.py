"""
coturn's ``turnserver.conf`` from normalised settings (``hecate_coturn_schema.normalise``):
:func:`render` writes it (the shared secret revealed there only, after :func:`check_secret`
made sure the file can hold it), :func:`parse` reads one back for the comparison.
"""

import re

import salt.exceptions

import hecate_coturn_schema

SECRET_KEY = "static-auth-secret"


_SAFE_SECRET = re.compile(r"^[!$-&(-~]+$")  # printable ASCII without space, quotes and '#'


def check_secret(secret, where):
    """The secret must survive coturn's ``key=value`` parser unchanged."""
    value = secret.reveal() if hasattr(secret, "reveal") else secret
    if not isinstance(value, str) or not value:
        raise salt.exceptions.CommandExecutionError(f"{where}: the secret is empty")
    if not _SAFE_SECRET.match(value):
        raise salt.exceptions.CommandExecutionError(
            f"{where}: the secret contains whitespace, quotes, '#' or non-ASCII characters, "
            "which turnserver.conf cannot hold; store a hex or base64url secret in Vault"
        )


HEADER = (
    "# Managed by Salt (hecate: coturn_config.managed, pillar hecate:reverse_proxy:coturn).\n"
    "# Holds the TURN REST API shared secret: readable by root and the coturn daemon only.\n"
    "# Local changes are overwritten.\n"
)


def render(settings, secret):
    """turnserver.conf text; ``secret`` is a :class:`hecate_secrets.Secret` (revealed here only)."""
    ports = settings["ports"]
    tls = bool(settings["cert"] and settings["pkey"])
    lines = [HEADER.rstrip("\n"), ""]
    lines.append(f"listening-port={ports['listening']}")
    if tls:
        lines.append(f"tls-listening-port={ports['tls_listening']}")
    lines += [f"listening-ip={ip}" for ip in settings["listening_ips"]]
    lines += [f"relay-ip={ip}" for ip in settings["relay_ips"]]
    if settings["external_ip"]:
        lines.append(f"external-ip={settings['external_ip']}")
    lines.append(f"min-port={ports['relay_min']}")
    lines.append(f"max-port={ports['relay_max']}")
    lines.append("")
    lines.append(f"realm={settings['realm']}")
    if settings["fingerprint"]:
        lines.append("fingerprint")
    lines.append("use-auth-secret")
    lines.append(f"{SECRET_KEY}={secret.reveal() if hasattr(secret, 'reveal') else secret}")
    if settings["stale_nonce"]:
        lines.append(f"stale-nonce={settings['stale_nonce']}")
    lines.append("")
    if tls:
        lines += [f"cert={settings['cert']}", f"pkey={settings['pkey']}", "no-tlsv1", "no-tlsv1_1"]
    else:
        lines += ["no-tls", "no-dtls"]
    lines.append("")
    lines += [
        "no-cli",
        "no-multicast-peers",
        "no-rfc5780",
        "no-stun-backward-compatibility",
        "response-origin-only-with-rfc5780",
    ]
    lines += [f"denied-peer-ip={hecate_coturn_schema.peer_range(p)}" for p in settings["denied_peer_ips"]]
    lines += [f"allowed-peer-ip={hecate_coturn_schema.peer_range(p)}" for p in settings["allowed_peer_ips"]]
    lines.append("")
    if settings["log_file"] == "syslog":
        lines.append("syslog")
    else:
        lines += [f"log-file={settings['log_file']}", "simple-log"]
    if settings["verbose"]:
        lines.append("verbose")
    if settings["pidfile"]:
        lines.append(f"pidfile={settings['pidfile']}")
    return "\n".join(lines) + "\n"


def parse(text):
    """``{option: value | True | [values]}`` of a turnserver.conf (comments dropped)."""
    out = {}
    for line in (text or "").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        value = value if sep else True
        if key in out:
            prev = out[key]
            out[key] = (prev if isinstance(prev, list) else [prev]) + [value]
        else:
            out[key] = value
    return out
