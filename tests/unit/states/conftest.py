"""
State modules under test with Salt's loader dunders (``configure_loader_modules``, the
pytest-salt-factories loader mock, as saltext-vault's unit tests do) and fake clients
(``fakes.py``) in place of ``hecate_clients``.
"""

import importlib.util
import os
import sys

from tests.unit.states.fakes import snapshot

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


def load(kind, name):
    """The loader module ``_<kind>/<name>.py`` (kind: states, modules), imported once."""
    modname = f"hecate_unit_{kind}_{name}"
    if modname not in sys.modules:
        spec = importlib.util.spec_from_file_location(modname, os.path.join(REPO, f"_{kind}", f"{name}.py"))
        mod = importlib.util.module_from_spec(spec)
        sys.modules[modname] = mod
        spec.loader.exec_module(mod)
    return sys.modules[modname]


def converges(func, opts, fake, **kwargs):
    """
    The contract of every state: ``test=True`` returns result None with the changes and
    writes nothing; the real run returns result True with the same changes and writes;
    the next run changes and writes nothing. Returns ``(preview, applied)``.
    """
    before = snapshot(fake)
    opts["test"] = True
    preview = func(**kwargs)
    assert preview["result"] is None and preview["changes"], preview
    assert not fake.writes and snapshot(fake) == before, fake.writes
    opts["test"] = False
    applied = func(**kwargs)
    assert applied["result"] is True, applied
    # what the preview announced is what was done (the run may add details, e.g. a version)
    assert {k: v for k, v in applied["changes"].items() if k in preview["changes"]} == preview["changes"]
    assert fake.writes, "the real run wrote nothing"
    writes = list(fake.writes)
    again = func(**kwargs)
    assert again["result"] is True and again["changes"] == {}, again
    assert fake.writes == writes, "the second run wrote again"
    return preview, applied


def unchanged(func, opts, fake, **kwargs):
    """Both modes: result True, no changes, no writes. Returns the real run's return."""
    for test in (True, False):
        opts["test"] = test
        ret = func(**kwargs)
        assert ret["result"] is True and ret["changes"] == {}, ret
    assert not fake.writes
    return ret


def fails(func, opts, fake, **kwargs):
    """Both modes: result False with a comment, no changes, no writes. Returns the comment."""
    for test in (True, False):
        opts["test"] = test
        ret = func(**kwargs)
        assert ret["result"] is False and ret["changes"] == {} and ret["comment"], ret
    assert not fake.writes
    return ret["comment"]
