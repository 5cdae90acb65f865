"""Pillar schema, port clashes and rendering of the nginx streams and coturn (no daemons)."""

import copy

import pytest
import salt.exceptions

import hecate_coturn_render
import hecate_coturn_schema
import hecate_nginx_render
import hecate_nginx_schema
import hecate_schema
import hecate_secrets
from tests import pillar_files


@pytest.fixture
def pillar():
    """The lab's hecate.sls (lab/pillar/, a copy of the shipped one) as prod."""
    data = pillar_files.render("hecate.sls")
    data["hecate"]["global"]["environment"] = "prod"
    data["bionicgpt"] = {}
    return data


def proxies(pillar):
    return pillar["hecate"]["reverse_proxy"]["nginx"]["tcp_proxies"]


def errors_for(pillar):
    return hecate_schema.validate(pillar, "prod")


def test_shipped_pillar_is_valid(pillar):
    assert errors_for(pillar) == []
    names = [p["name"] for p in proxies(pillar)]
    assert names == ["wazuh-agent-tcp", "wazuh-agent-udp", "wazuh-api", "jenkins-agent"]
    # the user's compose secret is not in the pillar: only a reference
    assert pillar["hecate"]["reverse_proxy"]["coturn"]["static_auth_secret"] == {
        "vault": "secret/hecate/coturn",
        "key": "static_auth_secret",
    }


def test_stream_clash_same_port_and_protocol(pillar):
    proxies(pillar)[2]["listen_port"] = 1515
    errors = errors_for(pillar)
    assert len(errors) == 1, errors
    assert errors[0].startswith("hecate:reverse_proxy:nginx:tcp_proxies:2:listen_port: 1515/tcp")
    assert "stream 'wazuh-agent-tcp' (hecate:reverse_proxy:nginx:tcp_proxies:0:listen_port" in errors[0]


def test_same_port_other_protocol_or_address_is_fine(pillar):
    proxies(pillar)[1]["listen_port"] = 1515  # udp next to tcp 1515
    assert errors_for(pillar) == []
    proxies(pillar)[2].update(listen_port=1515, listen_address="127.0.0.1")
    # 127.0.0.1:1515/tcp overlaps the wildcard 1515/tcp of stream 0
    assert any("tcp_proxies:2:listen_port" in e for e in errors_for(pillar))
    proxies(pillar)[0]["listen_address"] = "10.0.0.1"
    assert errors_for(pillar) == []


@pytest.mark.parametrize(
    "port,protocol,owner",
    [
        (80, "tcp", "Caddy's http port (hecate:reverse_proxy:caddy:ports:http"),
        (443, "udp", "Caddy's https port (hecate:reverse_proxy:caddy:ports:https"),
        (2019, "tcp", "Caddy's admin port (hecate:reverse_proxy:caddy:ports:admin"),
        (3478, "udp", "coturn's listening port (hecate:reverse_proxy:coturn:ports:listening"),
        (5349, "tcp", "coturn's TLS/DTLS port (hecate:reverse_proxy:coturn:ports:tls_listening"),
        (49170, "udp", "coturn's relay port range (hecate:reverse_proxy:coturn:ports:relay_min"),
    ],
)
def test_clash_with_caddy_and_coturn(pillar, port, protocol, owner):
    proxies(pillar)[3].update(listen_port=port, protocol=protocol)
    errors = errors_for(pillar)
    assert len(errors) == 1, errors
    assert errors[0].startswith(
        f"hecate:reverse_proxy:nginx:tcp_proxies:3:listen_port: {port}/{protocol} of stream "
        "'jenkins-agent' clashes with "
    ), errors
    assert owner in errors[0]


def test_caddy_ports_come_from_its_pillar(pillar):
    pillar["hecate"]["reverse_proxy"]["caddy"] = {"ports": {"http": 8080}}
    proxies(pillar)[3]["listen_port"] = 80
    assert errors_for(pillar) == []
    proxies(pillar)[3]["listen_port"] = 8080
    assert any("Caddy's http port" in e for e in errors_for(pillar))
    # https keeps its default when not given
    proxies(pillar)[3]["listen_port"] = 443
    assert any("Caddy's https port" in e for e in errors_for(pillar))


def test_coturn_clash_with_caddy_is_reported_on_coturn(pillar):
    pillar["hecate"]["reverse_proxy"]["coturn"]["ports"]["tls_listening"] = 443
    errors = errors_for(pillar)
    assert len(errors) == 1
    assert errors[0].startswith("hecate:reverse_proxy:coturn:ports:tls_listening: 443/tcp+udp")


def test_stream_shape_errors_name_the_key(pillar):
    p = proxies(pillar)
    p[0]["backends"] = ["10.0.0.1:1515"]  # with backend too
    p[1]["consul_service"] = "wazuh agents"
    p[2]["proxy_responses"] = 1  # a tcp stream
    p[3]["backend"] = "http://100.65.138.128:50000"
    p.append({"name": "wazuh-api", "listen_port": 1600, "backend": "10.0.0.1:99999"})
    p.append({"name": "x", "listen_port": 1601})
    p.append({"name": "y", "listen_port": 1602, "backend": "10.0.0.1:1", "listen_address": "300.1.1.1"})
    errors = errors_for(pillar)
    key = "hecate:reverse_proxy:nginx:tcp_proxies"
    expected = [
        f"{key}:0: give exactly one of backend, backends, consul_service (got backend, backends)",
        f"{key}:1: give exactly one of backend, backends, consul_service (got backend, consul_service)",
        f"{key}:1:consul_service: 'wazuh agents' does not match the expected format",
        f"{key}:2:proxy_responses: only applies to protocol udp",
        f"{key}:3:backend: 'http://100.65.138.128:50000' does not match the expected format",
        f"{key}:4:backend: port 99999 of '10.0.0.1:99999' is out of range (1-65535)",
        f"{key}:4:name: stream name 'wazuh-api' is already used by {key}:2",
        f"{key}:5: give exactly one of backend, backends, consul_service",
        f"{key}:6:listen_address: '300.1.1.1' is not an IP address",
    ]
    for line in expected:
        assert line in errors, (line, errors)


def test_coturn_errors(pillar):
    coturn = pillar["hecate"]["reverse_proxy"]["coturn"]
    coturn["static_auth_secret"] = "yets-EIGHT-Bluk-Ep-Oc-LEFT_BRACKET"
    coturn["ports"]["relay_min"] = 50000
    coturn["ports"]["relay_max"] = 49000
    coturn["file_mode"] = "0644"
    coturn["denied_peer_ips"] = ["10.0.0.0/8", "10.0.0.1/8"]
    del coturn["pkey"]
    errors = errors_for(pillar)
    key = "hecate:reverse_proxy:coturn"
    assert any(
        e.startswith(f"{key}:static_auth_secret: secret given as a literal") for e in errors
    ), errors
    assert f"{key}:ports:relay_min: relay_min 50000 is above relay_max 49000" in errors
    assert f"{key}:file_mode: 0644 lets every user read the TURN secret; use 0640 or 0600" in errors
    assert f"{key}:pkey: cert and pkey go together (TLS needs both)" in errors
    assert any(e.startswith(f"{key}:denied_peer_ips:1: '10.0.0.1/8'") for e in errors), errors
    # the literal never appears in the messages
    assert not any("yets-EIGHT" in e for e in errors)


def test_coturn_requires_realm_and_secret(pillar):
    coturn = pillar["hecate"]["reverse_proxy"]["coturn"]
    del coturn["realm"], coturn["static_auth_secret"]
    errors = errors_for(pillar)
    assert "hecate:reverse_proxy:coturn:realm: required key is missing" in errors
    assert "hecate:reverse_proxy:coturn:static_auth_secret: required key is missing" in errors


def test_normalise_reports_every_error_with_key_paths(pillar):
    raw = pillar["hecate"]["reverse_proxy"]["nginx"]
    raw["tcp_proxies"][0]["protocol"] = "sctp"
    raw["colour"] = "blue"
    with pytest.raises(salt.exceptions.SaltInvocationError) as exc:
        hecate_nginx_schema.normalise(raw, pillar)
    text = str(exc.value)
    assert "hecate:reverse_proxy:nginx:colour: unknown key (not in the schema)" in text
    assert "hecate:reverse_proxy:nginx:tcp_proxies:0:protocol: 'sctp' is not one of" in text


def test_render_static_streams(pillar):
    settings = hecate_nginx_schema.normalise(pillar["hecate"]["reverse_proxy"]["nginx"], pillar)
    text = hecate_nginx_render.render(
        settings, hecate_nginx_render.resolve_streams(settings), "/usr/lib/nginx/modules/ngx_stream_module.so"
    )
    assert text.startswith("# Managed by Salt")
    assert "load_module /usr/lib/nginx/modules/ngx_stream_module.so;" in text
    assert "http {" not in text
    assert (
        "    upstream hecate_wazuh_agent_tcp {\n"
        "        server 100.88.163.85:1515 max_fails=3 fail_timeout=30s;\n"
        "    }\n"
        "    server {\n"
        "        listen 1515;\n"
        "        proxy_pass hecate_wazuh_agent_tcp;\n"
        "        proxy_connect_timeout 30s;\n"
        "        proxy_timeout 300s;\n"
        "    }\n"
    ) in text
    assert "        listen 1514 udp reuseport;\n" in text
    # no transparent proxy_bind (needs root workers and TPROXY routing), no proxy_responses 0
    assert "transparent" not in text and "proxy_responses" not in text


def test_render_options():
    settings = hecate_nginx_schema.normalise(
        {
            "user": None,
            "access_log": None,
            "worker_processes": 2,
            "tcp_proxies": [
                {
                    "name": "dns",
                    "listen_port": 5353,
                    "listen_address": "::1",
                    "protocol": "udp",
                    "proxy_responses": 1,
                    "balance": "hash",
                    "access_log": False,
                    "timeouts": {"connect": 5, "proxy": "2s"},
                    "backends": [
                        "127.0.0.1:53",
                        {"address": "[::1]:53", "weight": 2, "backup": True, "fail_timeout": 10},
                    ],
                }
            ],
        }
    )
    text = hecate_nginx_render.render(settings, hecate_nginx_render.resolve_streams(settings))
    assert "user " not in text and "load_module" not in text
    assert "    access_log off;\n" in text
    assert "worker_processes 2;" in text
    assert "        hash $remote_addr consistent;\n" in text
    assert "        server 127.0.0.1:53;\n        server [::1]:53 weight=2 fail_timeout=10s backup;\n" in text
    assert "        listen [::1]:5353 udp reuseport;\n" in text
    assert "        proxy_connect_timeout 5s;\n        proxy_timeout 2s;\n" in text
    assert "        proxy_responses 1;\n        access_log off;\n" in text


def consul_settings(service):
    return hecate_nginx_schema.normalise(
        {"tcp_proxies": [{"name": "jenkins-agent", "listen_port": 50000, "consul_service": service}]}
    )


def test_consul_upstreams_sorted_with_port_override():
    calls = []

    def service_addresses(name, passing=True):
        calls.append((name, passing))
        return ["10.0.0.9:8059", "10.0.0.2:8059", "10.0.0.2:8059", "fd00::5:8059"]

    settings = consul_settings({"name": "jenkins-master", "port": 50000})
    (stream,) = hecate_nginx_render.resolve_streams(settings, service_addresses)
    assert calls == [("jenkins-master", True)]
    assert [s[0] for s in stream["servers"]] == ["10.0.0.2:50000", "10.0.0.9:50000", "[fd00::5]:50000"]
    assert stream["source"] == "consul service 'jenkins-master' (passing)"
    # a re-ordered answer renders the same text
    text = hecate_nginx_render.render(settings, [stream])
    again = hecate_nginx_render.resolve_streams(
        settings, lambda n, passing=True: ["10.0.0.9:8059", "10.0.0.2:8059", "fd00::5:8059"]
    )
    assert hecate_nginx_render.render(settings, again) == text


def test_consul_service_string_keeps_ports_and_can_include_failing():
    seen = []
    settings = consul_settings({"name": "wazuh", "passing": False})
    (stream,) = hecate_nginx_render.resolve_streams(
        settings, lambda n, passing=True: seen.append(passing) or ["10.0.0.1:1515"]
    )
    assert seen == [False] and stream["servers"] == [("10.0.0.1:1515", [])]


def test_consul_errors_are_clear():
    settings = consul_settings("wazuh-registration")
    key = "hecate:reverse_proxy:nginx:tcp_proxies:0"
    with pytest.raises(salt.exceptions.CommandExecutionError) as exc:
        hecate_nginx_render.resolve_streams(settings, None)
    assert str(exc.value).startswith(f"{key}: stream 'jenkins-agent' takes its backends from Consul")
    assert "hecate_consul.service_addresses is not available" in str(exc.value)
    with pytest.raises(salt.exceptions.CommandExecutionError) as exc:
        hecate_nginx_render.resolve_streams(settings, lambda n, passing=True: [])
    assert "Consul service 'wazuh-registration' has no passing instances" in str(exc.value)
    with pytest.raises(salt.exceptions.CommandExecutionError) as exc:
        hecate_nginx_render.resolve_streams(settings, lambda n, passing=True: ["10.0.0.1"])
    assert "not 'address:port'" in str(exc.value)

    def unreachable(name, passing=True):
        raise salt.exceptions.CommandExecutionError("Consul at http://127.0.0.1:8500 is unreachable")

    with pytest.raises(salt.exceptions.CommandExecutionError) as exc:
        hecate_nginx_render.resolve_streams(settings, unreachable)
    assert "looking up Consul service 'wazuh-registration' failed: Consul at" in str(exc.value)


def test_coturn_render_and_parse(pillar):
    settings = hecate_coturn_schema.normalise(pillar["hecate"]["reverse_proxy"]["coturn"])
    secret = hecate_secrets.Secret("Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MA")
    text = hecate_coturn_render.render(settings, secret)
    opts = hecate_coturn_render.parse(text)
    assert opts["listening-port"] == "3478" and opts["tls-listening-port"] == "5349"
    assert opts["min-port"] == "49160" and opts["max-port"] == "49200"
    assert opts["realm"] == "cybermonkey.dev"
    assert opts["use-auth-secret"] is True and opts["fingerprint"] is True
    assert opts["static-auth-secret"] == secret.reveal()
    assert opts["cert"] == "/etc/coturn/certs/hecate.fullchain.pem"
    assert opts["no-cli"] is True and opts["syslog"] is True
    # private networks behind the edge (WireGuard, Tailscale's 100.64/10) are not relayed to
    assert "100.64.0.0-100.127.255.255" in opts["denied-peer-ip"]
    assert "10.0.0.0-10.255.255.255" in opts["denied-peer-ip"]
    settings["denied_peer_ips"] = []
    settings["cert"] = settings["pkey"] = None
    opts = hecate_coturn_render.parse(hecate_coturn_render.render(settings, secret))
    assert "denied-peer-ip" not in opts and opts["no-tls"] is True and "tls-listening-port" not in opts


@pytest.mark.parametrize("value", ["", "has space", 'quo"te', "hash#tag", "line\nbreak", "ünï"])
def test_coturn_rejects_secrets_the_file_cannot_hold(value):
    with pytest.raises(salt.exceptions.CommandExecutionError) as exc:
        hecate_coturn_render.check_secret(hecate_secrets.Secret(value), "where")
    assert value not in str(exc.value) or value == ""


def test_listeners_default_coturn_relay_range():
    pillar = {"hecate": {"reverse_proxy": {"coturn": {"realm": "x.dev"}}}}
    relay = [e for e in hecate_nginx_schema.listeners(pillar) if e["key"].endswith("relay_min")]
    assert relay[0]["low"] == 49152 and relay[0]["high"] == 65535
    pillar["hecate"]["reverse_proxy"]["nginx"] = {
        "tcp_proxies": [{"name": "a", "listen_port": 50000, "protocol": "udp", "backend": "1.2.3.4:5"}]
    }
    assert hecate_nginx_schema.port_clashes(copy.deepcopy(pillar))
