"""
Test helpers for the edge's non-HTTP services: loopback TCP/UDP echo servers, clients that
go through nginx's streams, and a minimal STUN/TURN client (RFC 5389/5766) to talk to a
real coturn with TURN REST API credentials (draft-uberti-behave-turn-rest).
"""

import base64
import contextlib
import hashlib
import hmac
import os
import socket
import socketserver
import struct
import threading
import time
import zlib

from lab import procs

REPO = procs.REPO


class _TCPHandler(socketserver.BaseRequestHandler):
    def handle(self):
        while True:
            data = self.request.recv(4096)
            if not data:
                return
            self.request.sendall(self.server.prefix + data)


class _UDPHandler(socketserver.BaseRequestHandler):
    def handle(self):
        data, sock = self.request
        sock.sendto(self.server.prefix + data, self.client_address)


class _TCPServer(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


class _UDPServer(socketserver.ThreadingUDPServer):
    daemon_threads = True


class Echo:
    """An echo server on 127.0.0.1 that prefixes every answer (to tell backends apart)."""

    def __init__(self, protocol, prefix, port=None):
        kind = socket.SOCK_STREAM if protocol == "tcp" else socket.SOCK_DGRAM
        self.port = port or procs.free_port(kind)
        cls, handler = (_TCPServer, _TCPHandler) if protocol == "tcp" else (_UDPServer, _UDPHandler)
        self.server = cls(("127.0.0.1", self.port), handler)
        self.server.prefix = prefix.encode()
        self.protocol = protocol
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def address(self):
        return f"127.0.0.1:{self.port}"

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def tcp_roundtrip(port, payload=b"ping", timeout=5.0):
    """Send ``payload`` through a TCP port; return the answer (retries while nginx binds)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
                sock.sendall(payload)
                return sock.recv(4096)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def udp_roundtrip(port, payload=b"ping", timeout=5.0):
    """One datagram through a UDP port and its answer (retries: UDP may drop the first)."""
    deadline = time.monotonic() + timeout
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_DGRAM)) as sock:
        sock.settimeout(0.5)
        while True:
            sock.sendto(payload, ("127.0.0.1", port))
            try:
                return sock.recvfrom(4096)[0]
            except OSError:
                if time.monotonic() > deadline:
                    raise
                # a fresh source port: nginx may have bound the session to a failing backend
                sock.close()
                sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                sock.settimeout(0.5)


def tree(path):
    """Every file under ``path`` with its content hash and mode (to prove nothing changed)."""
    out = {}
    for root, _, files in os.walk(path):
        for name in files:
            full = os.path.join(root, name)
            with open(full, "rb") as fh:
                out[os.path.relpath(full, path)] = (hashlib.sha256(fh.read()).hexdigest(),
                                                    os.stat(full).st_mode)
    return out


# -- STUN / TURN (enough to prove coturn runs with our config and our secret) --------------
MAGIC = 0x2112A442
BINDING, ALLOCATE = 0x0001, 0x0003
SUCCESS, ERROR = 0x0100, 0x0110
ATTR = {
    "USERNAME": 0x0006,
    "MESSAGE-INTEGRITY": 0x0008,
    "ERROR-CODE": 0x0009,
    "REALM": 0x0014,
    "NONCE": 0x0015,
    "XOR-RELAYED-ADDRESS": 0x0016,
    "REQUESTED-TRANSPORT": 0x0019,
    "XOR-MAPPED-ADDRESS": 0x0020,
    "FINGERPRINT": 0x8028,
}


def _attr(kind, value):
    pad = (4 - len(value) % 4) % 4
    return struct.pack("!HH", kind, len(value)) + value + b"\0" * pad


def _message(method, attrs, txid, key=None):
    body = b"".join(_attr(k, v) for k, v in attrs)
    if key is not None:
        # MESSAGE-INTEGRITY covers the header with a length that includes it (24 bytes)
        header = struct.pack("!HHI", method, len(body) + 24, MAGIC) + txid
        mac = hmac.new(key, header + body, hashlib.sha1).digest()
        body += _attr(ATTR["MESSAGE-INTEGRITY"], mac)
    # FINGERPRINT last (coturn runs with `fingerprint`)
    header = struct.pack("!HHI", method, len(body) + 8, MAGIC) + txid
    crc = (zlib.crc32(header + body) ^ 0x5354554E) & 0xFFFFFFFF
    body += _attr(ATTR["FINGERPRINT"], struct.pack("!I", crc))
    return struct.pack("!HHI", method, len(body), MAGIC) + txid + body


def _parse(data):
    kind, length, _ = struct.unpack("!HHI", data[:8])
    attrs, pos = {}, 20
    while pos < 20 + length:
        akind, alen = struct.unpack("!HH", data[pos:pos + 4])
        attrs[akind] = data[pos + 4:pos + 4 + alen]
        pos += 4 + alen + (4 - alen % 4) % 4
    return kind, attrs


def _error_code(attrs):
    raw = attrs.get(ATTR["ERROR-CODE"])
    if not raw:
        return None
    return (raw[2] & 0x7) * 100 + raw[3]


class TurnClient:
    """A UDP STUN/TURN client for one server address."""

    def __init__(self, port, host="127.0.0.1"):
        self.addr = (host, port)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.settimeout(1.0)

    def close(self):
        self.sock.close()

    def request(self, method, attrs=(), key=None, timeout=10.0):
        txid = os.urandom(12)
        msg = _message(method, list(attrs), txid, key)
        deadline = time.monotonic() + timeout
        while True:
            self.sock.sendto(msg, self.addr)
            try:
                data = self.sock.recvfrom(4096)[0]
            except OSError:
                if time.monotonic() > deadline:
                    raise
                continue
            if data[8:20] == txid:
                return _parse(data)

    def binding(self):
        """A Binding request: ``(ok, mapped_port)``."""
        kind, attrs = self.request(BINDING)
        mapped = attrs.get(ATTR["XOR-MAPPED-ADDRESS"])
        port = (struct.unpack("!H", mapped[2:4])[0] ^ (MAGIC >> 16)) if mapped else None
        return kind == BINDING | SUCCESS, port

    def allocate(self, username, password):
        """
        The long-term-credential Allocate dance: unauthenticated request -> 401 with
        realm/nonce -> authenticated request. Returns ``(status, relayed_port)`` where
        status is 200 or the error code.
        """
        transport = b"\x11\x00\x00\x00"  # UDP
        kind, attrs = self.request(ALLOCATE, [(ATTR["REQUESTED-TRANSPORT"], transport)])
        if kind != ALLOCATE | ERROR or _error_code(attrs) != 401:
            return _error_code(attrs) or 200, None
        realm, nonce = attrs[ATTR["REALM"]], attrs[ATTR["NONCE"]]
        key = hashlib.md5(username.encode() + b":" + realm + b":" + password.encode()).digest()
        kind, attrs = self.request(
            ALLOCATE,
            [
                (ATTR["REQUESTED-TRANSPORT"], transport),
                (ATTR["USERNAME"], username.encode()),
                (ATTR["REALM"], realm),
                (ATTR["NONCE"], nonce),
            ],
            key=key,
        )
        if kind == ALLOCATE | SUCCESS:
            relayed = attrs[ATTR["XOR-RELAYED-ADDRESS"]]
            return 200, struct.unpack("!H", relayed[2:4])[0] ^ (MAGIC >> 16)
        return _error_code(attrs), None


def turn_rest_credentials(secret, user="hecate-test", ttl=600):
    """TURN REST API credentials: ``<expiry>:<user>`` and base64(HMAC-SHA1(secret, username))."""
    username = f"{int(time.time()) + ttl}:{user}"
    password = base64.b64encode(
        hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    ).decode()
    return username, password
