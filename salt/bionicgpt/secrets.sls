{#- Generated secrets of BionicGPT in Vault (pillar bionicgpt:secrets), run on the local node.
    A missing key gets a random value; an existing one is never changed, unless this run
    names it in pillar `rotate`:
      salt -G roles:bionicgpt-node state.apply bionicgpt.secrets pillar='{"rotate": ["db_password"]}'
    Returns name the Vault path and key, never a value. #}
{%- set specs = (pillar.get('bionicgpt') or {}).get('secrets') or {} %}
{%- set rotate = pillar.get('rotate') or [] %}
{%- for name, spec in specs | dictsort %}

bionicgpt secret {{ name }}:
  hecate_secret.generated:
    - name: {{ spec.path | json }}
    - key: {{ spec.key | json }}
    - length: {{ spec.get('length', 32) | int }}
    - alphabet: {{ spec.get('alphabet', 'alnum') | json }}
    - prefix: {{ spec.get('prefix', '') | json }}
    - rotate: {{ (name in rotate) | json }}
{%- endfor %}
{%- if not specs %}

bionicgpt secrets (none in pillar):
  test.nop: []
{%- endif %}
