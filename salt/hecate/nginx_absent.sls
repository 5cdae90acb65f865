{#- Teardown (ensure: absent) of hecate.nginx on the edge: nginx stopped and the configuration
    file hecate rendered (hecate:reverse_proxy:nginx:config_file) removed, only if hecate wrote
    it (its first line says so); a file without that mark is left alone, and nginx with it.
    The packages stay installed.
        salt -G roles:hecate-edge state.apply hecate.nginx_absent [test=True] #}
{%- set nginx = ((pillar.get('hecate') or {}).get('reverse_proxy') or {}).get('nginx') or {} %}

hecate nginx streams removed:
  nginx_config.absent:
    - name: {{ nginx.get('config_file', '/etc/nginx/nginx.conf') | json }}
