{#- hecate.nginx: nginx TCP/UDP stream proxies on the edge, from pillar hecate:reverse_proxy:nginx.
    Standalone:   salt -G 'roles:hecate-edge' state.apply hecate.nginx [test=True]
    The rendered config is checked with `nginx -t` before it replaces the live file; nginx is
    reloaded (never restarted) when it changed. #}
{%- set nginx = pillar.get('hecate', {}).get('reverse_proxy', {}).get('nginx', {}) %}
{%- set packages = nginx.get('packages', []) %}
{%- if packages %}

hecate nginx packages:
  pkg.installed:
    - pkgs: {{ packages | json }}
    - install_recommends: False
{%- endif %}

hecate nginx streams:
  nginx_config.managed:
    - name: {{ nginx.get('config_file', '/etc/nginx/nginx.conf') | json }}
{%- if packages %}
    - require:
      - pkg: hecate nginx packages
{%- endif %}
