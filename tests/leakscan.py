"""
The secret leak scan shared by the integration tests: collect everything Salt printed,
stored or logged (CLI output, the master's job cache, daemon log files, ...) and look for
known secret values in it - as written, and in the forms a value takes on its way out
(JSON- or URL-escaped, base64, cut short).

    scan = LeakScan()
    scan.add("CLI output", transcript.text())
    scan.add_daemon_logs([salt_master, cloud_minion, local_minion])   # asserts DEBUG lines
    scan.add_tree("master job cache", os.path.join(salt_master.config["cachedir"], "jobs"))
    assert scan.hits({"db password": value, ...}) == []
"""

import base64
import json
import os
import urllib.parse

# Values shorter than this could match by chance; every needle must be at least this long.
MIN_NEEDLE = 12
# Needles at least this long are also searched as their first and last FRAGMENT characters
# (a value cut short in a log line or an error message is still a leak).
FRAGMENT = 16


class Transcript:
    """Everything a CLI printed (stdout and stderr of each call), for the leak scan."""

    def __init__(self):
        self.chunks = []

    def run(self, cli, *args, **kwargs):
        ret = cli.run(*args, **kwargs)
        self.chunks.append(f"{ret.stdout}\n{ret.stderr}")
        return ret

    def add(self, text):
        self.chunks.append(text)

    def text(self):
        return "\n".join(self.chunks)


def variants(value):
    """The forms a secret value may take in output: ``{label: bytes}``."""
    raw = value.encode()
    forms = {
        "as is": raw,
        "JSON-escaped": json.dumps(value)[1:-1].encode(),
        "URL-encoded": urllib.parse.quote(value, safe="").encode(),
        "base64": base64.b64encode(raw),
        "base64url": base64.urlsafe_b64encode(raw),
    }
    if len(value) >= FRAGMENT + 8:
        forms["first chars"] = raw[:FRAGMENT]
        forms["last chars"] = raw[-FRAGMENT:]
    out = {}
    for label, blob in forms.items():
        if blob not in out.values():
            out[label] = blob
    return out


class LeakScan:
    """Places (name -> bytes) to search for secret values."""

    def __init__(self):
        self.places = {}

    def add(self, name, data):
        self.places[name] = data.encode() if isinstance(data, str) else bytes(data)

    def add_file(self, name, path):
        with open(path, "rb") as fh:
            self.add(name, fh.read())

    def add_tree(self, name, top):
        """Every file under ``top``; returns how many were added."""
        count = 0
        for root, _, files in os.walk(top):
            for fname in files:
                path = os.path.join(root, fname)
                if os.path.isfile(path) and not os.path.islink(path):
                    self.add_file(f"{name} {path}", path)
                    count += 1
        return count

    def add_daemon_logs(self, daemons):
        """
        The log file of each salt-factories daemon. Asserts that each exists and holds
        DEBUG lines, so that a clean scan means something.
        """
        added = {}
        for daemon in daemons:
            log_file = daemon.config.get("log_file")
            assert log_file and os.path.exists(log_file), f"{daemon.id} has no log file ({log_file})"
            self.add_file(f"log {log_file}", log_file)
            added[log_file] = self.places[f"log {log_file}"]
        undebugged = [path for path, blob in added.items() if b"[DEBUG" not in blob]
        assert not undebugged, f"no DEBUG lines in {undebugged}: the scan would be vacuous"
        return added

    def contains(self, prefix, fragment):
        """Whether a place whose name starts with ``prefix`` contains ``fragment``."""
        fragment = fragment.encode() if isinstance(fragment, str) else fragment
        return any(fragment in blob for name, blob in self.places.items() if name.startswith(prefix))

    def hits(self, needles):
        """``["<what> (<form>) in <where>", ...]`` for every needle found anywhere."""
        short = {what: value for what, value in needles.items() if len(value) < MIN_NEEDLE}
        assert not short, f"needles too short to scan for reliably: {sorted(short)}"
        found = []
        for what, value in needles.items():
            for form, blob in variants(value).items():
                for where, data in self.places.items():
                    if blob in data:
                        found.append(f"{what} ({form}) in {where}")
        return found
