{#- Teardown (ensure: absent) of hecate.coturn on the edge: coturn stopped and disabled (when
    hecate manages its service) and the turnserver.conf hecate rendered
    (hecate:reverse_proxy:coturn:config_file, with the TURN secret) removed, only if hecate wrote
    it (its first line says so); a file without that mark is left alone, and coturn with it.
    The secret stays in Vault (hecate:secrets) and the packages stay installed.
        salt -G roles:hecate-edge state.apply hecate.coturn_absent [test=True] #}
{%- set coturn = ((pillar.get('hecate') or {}).get('reverse_proxy') or {}).get('coturn') or {} %}

hecate coturn config removed:
  coturn_config.absent:
    - name: {{ coturn.get('config_file', '/etc/turnserver.conf') | json }}
