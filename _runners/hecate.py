"""
hecate runner: operations across all systems, run on the master.

``validate`` checks the pillar of an environment against the schema before anything is
written; later functions (plan, lock, record, history, rollback, status) build on it.
"""

import logging

try:
    import hecate_pillar
except ImportError:  # installed with pip
    from saltext.hecate.utils import hecate_pillar

log = logging.getLogger(__name__)

__virtualname__ = "hecate"


def __virtual__():
    return __virtualname__


def _finish(ret):
    """
    Signal the outcome both ways Salt reads it: ``__context__["retcode"]`` for
    orchestration (``salt.runner`` steps) and a ``retcode`` key for the exit code of
    ``salt-run`` (as Salt's own orchestrate runner does).
    """
    ret["retcode"] = 0 if ret["result"] else 1
    if not ret["result"]:
        __context__["retcode"] = 1
    return ret


def validate(env=None):
    """
    Validate the pillar of an environment: schema, secrets-as-references and the
    semantic checks of every system. Every error names its key path.

    env
        The environment (``lab``, ``dev``, ``staging``, ``prod``); its overlay is
        ``pillar/env/<env>.sls``.

    CLI Example:

    .. code-block:: bash

        salt-run hecate.validate env=prod
    """
    errors = hecate_pillar.validate_env(__opts__, env)
    if errors:
        log.warning("hecate.validate env=%s: %d error(s)", env, len(errors))
    return _finish({"result": not errors, "env": env, "errors": errors})
