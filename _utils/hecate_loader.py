"""
Entry point for the pip-installed package (``salt.loader`` in setup.cfg).

Salt calls :func:`get_loader_dirs` and loads execution modules, states and runners from
the returned directories. Utils are not loader-managed: modules import them as
``saltext.hecate.utils.<name>`` (or as top-level ``<name>`` when synced from file_roots).
"""

import os

__version__ = "0.1.0"

_PKG = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def get_loader_dirs():
    return {
        kind: [os.path.join(_PKG, kind)]
        for kind in ("modules", "states", "runners")
        if os.path.isdir(os.path.join(_PKG, kind))
    }
