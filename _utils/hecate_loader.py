"""
Where hecate's shared code is found, in both packagings.

Every loader module (``_modules``, ``_states``, ``_runners``) and every util imports the
utils the same way, as top-level modules::

    import hecate_http
    import hecate_nginx_schema

That works because the utils directory is on ``sys.path`` whenever a loader module is
imported:

- **file_roots tree** (``saltutil.sync_all``, or ``module_dirs`` pointing at the repo):
  Salt's LazyLoader puts the utils directories (``extmods/utils``, ``<module_dir>/_utils``)
  on ``sys.path`` while it imports a module (``extra_module_dirs`` in ``salt.loader``), so
  the utils import as top-level modules from there;
- **pip package**: Salt calls :func:`get_loader_dirs` (the ``salt.loader`` entry point in
  setup.cfg) before it loads any module of ours. It returns our module directories and puts
  the package's utils directory on ``sys.path`` - Salt does not do that for an extension's
  utils itself: ``salt.loader.utils`` reads no entry points (``load_extensions=False``).

Code that imports a util later, at run time, when the loader no longer holds the
directory on ``sys.path`` (``hecate_schema`` importing the system schema modules, which
import it in turn), uses :func:`import_util`; nothing else does.
"""

import importlib
import importlib.util
import os
import sys

__version__ = "0.1.0"

UTILS_DIR = os.path.dirname(os.path.abspath(__file__))
_PKG = os.path.dirname(UTILS_DIR)


def get_loader_dirs():
    """The package's loader directories by kind; puts its utils directory on ``sys.path``."""
    if UTILS_DIR not in sys.path:
        sys.path.append(UTILS_DIR)
    return {
        kind: [os.path.join(_PKG, kind)]
        for kind in ("modules", "states", "runners", "utils")
        if os.path.isdir(os.path.join(_PKG, kind))
    }


def import_util(name):
    """The util ``name`` (``"hecate_nginx_schema"``), imported from this directory at run time."""
    if name in sys.modules:
        return sys.modules[name]
    added = UTILS_DIR not in sys.path
    if added:
        sys.path.insert(0, UTILS_DIR)
    try:
        return importlib.import_module(name)
    finally:
        if added and UTILS_DIR in sys.path:
            sys.path.remove(UTILS_DIR)



class LazyModule:
    """
    A third-party library imported on first use instead of when the util naming it is
    imported. Every Salt job runs in a new process that imports the loader modules it
    uses again (nothing of a job's imports outlives it), and the libraries behind the
    clients (``hcloud``, ``hvac``, ``consul``, ``jsonschema``) take tens of milliseconds
    each to import: a step that never makes a DNS client should not pay for ``hcloud``.

    ``lazy("hvac", "hvac.exceptions")`` stands for ``import hvac; import hvac.exceptions``;
    attribute access (``hvac.Client``, ``hvac.exceptions.Forbidden``) imports them, once.
    Whether the library is installed is :func:`available` (no import), which is what the
    loader modules' ``__virtual__`` ask (:func:`virtual`).
    """

    def __init__(self, name, *submodules):
        self.__dict__["_lazy_names"] = (name,) + submodules
        self.__dict__["_lazy_module"] = None

    def __getattr__(self, attr):
        module = self.__dict__["_lazy_module"]
        if module is None:
            for name in self.__dict__["_lazy_names"]:
                importlib.import_module(name)
            module = sys.modules[self.__dict__["_lazy_names"][0]]
            self.__dict__["_lazy_module"] = module
        return getattr(module, attr)

    def __repr__(self):
        return f"<hecate_loader.LazyModule {self.__dict__['_lazy_names'][0]}>"


def lazy(name, *submodules):
    """A :class:`LazyModule` for the library ``name`` (and its ``submodules``)."""
    return LazyModule(name, *submodules)


def available(name):
    """Whether the library ``name`` can be imported, without importing it."""
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


# pip names of the libraries hecate needs beyond Salt's own dependencies, by import name
LIBRARIES = {"consul": "py-consul", "cryptography": "cryptography", "hcloud": "hcloud>=2.27", "hvac": "hvac",
             "jsonschema": "jsonschema", "requests": "requests"}


def virtual(name, libs=(), salt_funcs=None, functions=()):
    """
    A loader module's ``__virtual__`` answer: ``name`` when what it needs is there, else
    ``(False, "<name>: <what is missing>")``. ``libs`` are import names (``"hvac"``);
    ``functions`` are execution module functions it calls, looked up in ``salt_funcs``.

    Binaries (``wg``, ``nginx``, ``turnserver``) are not checked here: the SLS files install
    them in the same run, after the state modules are loaded; the functions that run them
    name the missing binary instead.
    """
    absent = [LIBRARIES.get(lib, lib) for lib in libs if not available(lib)]
    missing = [f"the {lib} library is not installed" for lib in absent]
    missing += [f"the execution module function {fun} is not available" for fun in functions
                if salt_funcs is None or fun not in salt_funcs]
    if missing:
        hint = f" (pip install {' '.join(absent)})" if absent else ""
        return False, f"{name}: {'; '.join(missing)}{hint}"
    return name
