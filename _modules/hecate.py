"""
hecate execution module: the extension's own housekeeping on a minion.

CLI Example:

.. code-block:: bash

    salt '*' hecate.version
    salt '*' hecate.validate_pillar
"""

import datetime
import secrets

try:
    import hecate_config
    import hecate_loader
    import hecate_schema
    import hecate_secrets
except ImportError:  # installed with pip
    from saltext.hecate.utils import hecate_config, hecate_loader, hecate_schema, hecate_secrets

__virtualname__ = "hecate"


def __virtual__():
    return __virtualname__


def version():
    """
    The version of the hecate extension loaded on this minion.

    CLI Example:

    .. code-block:: bash

        salt '*' hecate.version
    """
    return hecate_loader.__version__


def new_run_id():
    """
    A new orchestration run id: UTC time (sortable) and a random suffix. The
    orchestration SLS renders one per run and hands it to every step, so locks, Nomad
    restore marks and deployment records name the same run.

    CLI Example:

    .. code-block:: bash

        salt-call hecate.new_run_id
    """
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return f"{now}-{secrets.token_hex(3)}"


def validate_pillar():
    """
    Validate this minion's pillar against the hecate schema. Returns the list of errors
    (each naming its key path); empty when valid.

    CLI Example:

    .. code-block:: bash

        salt '*' hecate.validate_pillar
    """
    return hecate_schema.validate(dict(__pillar__), __grains__.get("hecate_env"))


def connection(system):
    """
    The effective connection settings for ``system`` (caddy, authentik, nomad, consul,
    vault) as this minion sees them (defaults < pillar < minion config). Secret values
    are shown by reference only.

    CLI Example:

    .. code-block:: bash

        salt cloud hecate.connection caddy
    """
    settings = hecate_config.connection(system, __opts__, __pillar__)
    return _describe_secrets(settings)


def _describe_secrets(node):
    if isinstance(node, dict):
        if hecate_secrets.is_ref(node):
            return hecate_secrets.describe(node)
        return {
            key: (
                hecate_secrets.describe(val)
                if key in hecate_schema.SECRET_KEYS and val
                else _describe_secrets(val)
            )
            for key, val in node.items()
        }
    return node
