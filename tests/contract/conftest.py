"""
Contract tests: the same assertions run against the lab simulator and, when the
environment names a real server, against that server. A simulator that drifts from
the real API fails here first.
"""

import os

import pytest


def real_or_skip(*env_vars):
    missing = [v for v in env_vars if not os.environ.get(v)]
    if missing:
        pytest.skip(f"real server not configured ({', '.join(missing)} unset)")
    return {v: os.environ[v] for v in env_vars}
