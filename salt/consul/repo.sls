{#- HashiCorp's apt repository (Debian/Ubuntu), shared by consul.agent and nomad.agent. #}
hashicorp apt repository:
  pkgrepo.managed:
    - name: deb [signed-by=/usr/share/keyrings/hashicorp-archive-keyring.gpg] https://apt.releases.hashicorp.com {{ grains.get('oscodename') }} main
    - file: /etc/apt/sources.list.d/hashicorp.list
    - key_url: https://apt.releases.hashicorp.com/gpg
    - aptkey: False
