"""
The Authentik side of identity-aware routes: for every Caddy route in pillar
``hecate:reverse_proxy:caddy`` with ``auth`` (or ``forward_auth: true``), a proxy provider
for its domain, an application, the group bindings and the provider on the outpost
(``hecate_route_auth`` says what and why).

.. code-block:: yaml

    hecate route auth:
      authentik_route_auth.managed: []      # before the Caddy routes (hecate.route_auth)

    hecate route auth removed:
      authentik_route_auth.pruned: []       # after the Caddy routes (hecate.authentik_prune)

    hecate route auth gone:
      authentik_route_auth.absent: []       # teardown: every route's objects (hecate.authentik_absent)

Everything hecate makes is marked ``hecate/<env>/route/<route>`` (the provider's name, the
application's publisher); objects without the mark are never changed or deleted.
"""

import hecate_caddy_routes
import hecate_clients
import hecate_config
import hecate_loader
import hecate_route_auth
import hecate_state

__virtualname__ = "authentik_route_auth"


def __virtual__():
    return hecate_loader.virtual(__virtualname__)


def _desired(pillar_key):
    data = hecate_caddy_routes.caddy_data(__pillar__, pillar_key)
    settings = data.get("forward_auth") if isinstance(data, dict) and isinstance(data.get("forward_auth"), dict) else {}
    if settings.get("manage_authentik") is False:
        return None, settings
    return hecate_caddy_routes.route_auths(data, base=pillar_key), settings


@hecate_state.guard
def managed(name, pillar_key=hecate_caddy_routes.PILLAR_PATH):
    """
    Make the Authentik side of every protected route in pillar (``<pillar_key>:routes``):
    proxy provider, application, group bindings, outpost attachment. Routes are made one
    by one: a route that fails is named in the comment (result False) and the others are
    still made. Nothing is deleted here except bindings and outpost attachments of hecate's
    own objects; routes that lost their protection are cleaned up by :func:`pruned`.

    name
        State ID (free text).
    pillar_key
        Where the Caddy block lives in pillar (default ``hecate:reverse_proxy:caddy``).

    .. code-block:: yaml

        hecate route auth:
          authentik_route_auth.managed:
            - pillar_key: hecate:reverse_proxy:caddy
    """
    ret = hecate_state.new(name)
    test = bool(__opts__.get("test"))
    auths, settings = _desired(pillar_key)
    if auths is None:
        ret["comment"] = f"{pillar_key}:forward_auth:manage_authentik is false: Authentik is managed elsewhere"
        return ret
    if not auths:
        ret["comment"] = "no protected route in pillar"
        return ret
    env = hecate_route_auth.environment(__pillar__, __grains__)
    host = settings.get("authentik_host") or hecate_config.connection("authentik", __opts__, __pillar__).get("url")
    client = hecate_clients.authentik(__opts__, __pillar__, __context__, __salt__)
    changes, errors = hecate_route_auth.managed(client, auths, env, test, authentik_host=host)
    names = ", ".join(sorted(k for k in changes if not k.startswith("embedded outpost")))
    ret = hecate_state.result(
        ret, changes, test,
        would=f"the Authentik side of route(s) {names or '-'} would change",
        did=f"the Authentik side of route(s) {names or '-'} changed",
    )
    if not changes:
        ret["comment"] = f"the Authentik side of {len(auths)} protected route(s) is in place"
    if errors:
        ret["result"] = False
        ret["comment"] += "\n" + "\n".join(f"route '{r}': {msg}" for r, msg in sorted(errors.items()))
    return ret


@hecate_state.guard
def pruned(name, pillar_key=hecate_caddy_routes.PILLAR_PATH):
    """
    Delete what hecate made in Authentik for routes that are no longer protected (or no
    longer exist) in this environment: the provider taken off its outposts, its
    application (and the application's bindings), the provider. Run it after the Caddy
    routes, so that Caddy no longer asks the outpost about those hosts.

    name
        State ID (free text).
    pillar_key
        Where the Caddy block lives in pillar (default ``hecate:reverse_proxy:caddy``).

    .. code-block:: yaml

        hecate route auth removed:
          authentik_route_auth.pruned:
            - pillar_key: hecate:reverse_proxy:caddy
            - require:
              - caddy_routes: hecate caddy routes
    """
    ret = hecate_state.new(name, "no Authentik object of a removed route is left")
    test = bool(__opts__.get("test"))
    auths, _ = _desired(pillar_key)
    if auths is None:
        ret["comment"] = f"{pillar_key}:forward_auth:manage_authentik is false: Authentik is managed elsewhere"
        return ret
    env = hecate_route_auth.environment(__pillar__, __grains__)
    client = hecate_clients.authentik(__opts__, __pillar__, __context__, __salt__)
    changes = hecate_route_auth.prune(client, auths, env, test)
    names = ", ".join(sorted(changes))
    return hecate_state.result(
        ret, changes, test,
        would=f"the Authentik objects of route(s) {names} would be removed",
        did=f"the Authentik objects of route(s) {names} removed",
    )


@hecate_state.guard
def absent(name, pillar_key=hecate_caddy_routes.PILLAR_PATH):
    """
    Delete everything hecate made in Authentik for the routes of this environment (objects
    marked ``hecate/<env>/route/``), whatever pillar says: each provider taken off its
    outposts, its application (with its bindings), the provider. The teardown of an
    environment (``ensure: absent``), after the Caddy routes are gone. Objects without the
    mark, or with another environment's, are never touched.

    name
        State ID (free text).
    pillar_key
        Where the Caddy block lives in pillar (default ``hecate:reverse_proxy:caddy``); with
        ``forward_auth:manage_authentik: false`` Authentik is left alone.

    .. code-block:: yaml

        hecate route auth gone:
          authentik_route_auth.absent
    """
    ret = hecate_state.new(name, "no Authentik object of a hecate route is left")
    test = bool(__opts__.get("test"))
    data = hecate_caddy_routes.caddy_data(__pillar__, pillar_key)
    settings = (data.get("forward_auth") if isinstance(data, dict) else None) or {}
    if isinstance(settings, dict) and settings.get("manage_authentik") is False:
        ret["comment"] = f"{pillar_key}:forward_auth:manage_authentik is false: Authentik is managed elsewhere"
        return ret
    env = hecate_route_auth.environment(__pillar__, __grains__)
    client = hecate_clients.authentik(__opts__, __pillar__, __context__, __salt__)
    changes = hecate_route_auth.prune(client, [], env, test)
    names = ", ".join(sorted(changes))
    return hecate_state.result(
        ret, changes, test,
        would=f"the Authentik objects of route(s) {names} would be removed",
        did=f"the Authentik objects of route(s) {names} removed",
    )
