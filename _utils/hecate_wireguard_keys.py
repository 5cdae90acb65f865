"""
WireGuard key pairs: make one (``wg genkey``), derive the public key (``wg pubkey``), read
and check the key file.

The private key exists in one place, ``<config_dir>/<interface>.key`` (mode 0600). Nothing
here returns, logs or puts the private key in an exception.
"""

import base64
import binascii
import os

import salt.exceptions

try:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import x25519

    HAS_CRYPTOGRAPHY = True
except ImportError:  # pragma: no cover - reported by __virtual__
    HAS_CRYPTOGRAPHY = False

import hecate_files

# -- keys -----------------------------------------------------------------------------------------


def valid_key(value):
    try:
        return len(base64.b64decode(str(value), validate=True)) == 32
    except (binascii.Error, ValueError):
        return False


def _clamp(raw):
    key = bytearray(raw)
    key[0] &= 248
    key[31] = (key[31] & 127) | 64
    return bytes(key)


def public_from_private(private_b64):
    """The base64 public key of a base64 private key (``wg pubkey``)."""
    raw = base64.b64decode(private_b64.strip(), validate=True)
    if len(raw) != 32:
        raise salt.exceptions.CommandExecutionError("the private key is not 32 bytes")
    pub = x25519.X25519PrivateKey.from_private_bytes(raw).public_key()
    return base64.b64encode(
        pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    ).decode()


def new_private_key():
    """A fresh clamped Curve25519 private key, base64 (``wg genkey``)."""
    raw = x25519.X25519PrivateKey.generate().private_bytes(
        serialization.Encoding.Raw,
        serialization.PrivateFormat.Raw,
        serialization.NoEncryption(),
    )
    return base64.b64encode(_clamp(raw)).decode()


def read_public_key(key_file):
    """Public key derived from the private key file, or None when there is no key file."""
    try:
        with open(key_file, encoding="ascii") as fh:
            private = fh.read()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise salt.exceptions.CommandExecutionError(
            f"cannot read the WireGuard key file {key_file}: {exc.strerror}"
        ) from None
    try:
        return public_from_private(private)
    except (binascii.Error, ValueError, salt.exceptions.CommandExecutionError):
        raise salt.exceptions.CommandExecutionError(f"{key_file} does not hold a WireGuard private key") from None


def key_file_problems(key_file):
    """What is wrong with an existing key file's mode (a key readable by others)."""
    st = os.stat(key_file)
    if st.st_mode & 0o077:
        return f"mode {oct(st.st_mode & 0o777)} (should be 0600)"
    return None


def ensure_key(key_file, force=False):
    """
    Make a key pair unless one exists. Returns ``(public_key, created)``; the private
    key goes only into ``key_file`` (0600, its directory 0700 when created here).
    """
    if not force:
        existing = read_public_key(key_file)
        if existing:
            if key_file_problems(key_file):
                os.chmod(key_file, 0o600)
            return existing, False
    hecate_files.ensure_dir(os.path.dirname(key_file), 0o700)
    private = new_private_key()
    hecate_files.write_atomic(key_file, private + "\n", 0o600)
    return public_from_private(private), True
