{#- Generated secrets of the Hecate edge in Vault (pillar hecate:secrets: the Consul gossip key,
    the coturn static auth secret), run on the cloud node.
      salt -G roles:hecate-edge state.apply hecate.secrets pillar='{"rotate": ["coturn_static_auth_secret"]}' #}
{%- from "hecate/generated_secrets.jinja" import generated_secrets with context %}
{{ generated_secrets((pillar.get('hecate') or {}).get('secrets'), 'hecate') }}
