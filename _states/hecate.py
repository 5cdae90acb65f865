"""
hecate state module: checks the orchestration runs before it writes anything.

Runs anywhere a state runs; in an orchestration SLS it runs on the master, where it
compiles the pillar of the requested environment. It writes nothing, so it runs (and
can fail) under ``test=True`` too — unlike ``salt.runner`` steps.
"""

try:
    import hecate_pillar
    import hecate_schema
    import hecate_state
except ImportError:  # installed with pip
    from saltext.hecate.utils import hecate_pillar, hecate_schema, hecate_state

__virtualname__ = "hecate"


def __virtual__():
    return __virtualname__


def validated(name, env=None):
    """
    Fail unless the pillar passes the hecate schema and checks.

    env
        Given (orchestration, on the master): compile and check the pillar a minion of
        that environment gets. Not given (on a minion): check this minion's own pillar
        for its ``hecate_env`` grain.

    .. code-block:: yaml

        validate pillar:
          hecate.validated:
            - env: prod
    """
    if env is None:
        env = __grains__.get("hecate_env")
        errors = hecate_schema.validate(dict(__pillar__), env)
    else:
        errors = hecate_pillar.validate_env(__opts__, env)
    ret = hecate_state.new(name, f"pillar for environment '{env}' is valid")
    if errors:
        ret["result"] = False
        ret["comment"] = f"pillar for environment '{env}' is invalid:\n" + "\n".join(errors)
    return ret
