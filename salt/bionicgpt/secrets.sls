{#- Generated secrets of BionicGPT in Vault (pillar bionicgpt:secrets), run on the local node.
      salt -G roles:bionicgpt-node state.apply bionicgpt.secrets pillar='{"rotate": ["db_password"]}'
    rotates one; nothing else ever changes an existing value. #}
{%- from "hecate/generated_secrets.jinja" import generated_secrets with context %}
{{ generated_secrets((pillar.get('bionicgpt') or {}).get('secrets'), 'bionicgpt') }}
