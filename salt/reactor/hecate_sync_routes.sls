{#- Reactor: bring the routes of an environment in line when its Consul services change
    (docs/systems/caddy.md, "Keeping routes in line with Consul").

    Master config (e.g. /etc/salt/master.d/hecate-reactor.conf):

        reactor:
          - 'hecate/routes/sync':
            - salt://reactor/hecate_sync_routes.sls

    Sent from a minion (a Consul watch handler on an edge, or by hand):

        salt-call event.send hecate/routes/sync env=prod

    Any minion can send the event, so the environment is only a name to check, never trusted
    further: sync_routes previews first and writes only what differs, under the
    environment's lock. #}
{%- set env = (data.get('data') or {}).get('env') %}
{%- if env is string and env | regex_match('^([a-z][a-z0-9-]{1,30})$') %}
hecate sync routes of {{ env }}:
  runner.hecate.sync_routes:
    - args:
      - env: {{ env }}
{%- endif %}
