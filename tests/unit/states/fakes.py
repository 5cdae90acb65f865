"""
In-memory stand-ins for the API clients the states get from ``hecate_clients``: they keep
the objects a real server would, answer the client methods the states call, and record
every write (``writes``), so a test checks what a state would change, what it changes, and
that a second run writes nothing - in milliseconds, without a simulator.

The lookups that carry logic of their own (Authentik's ``find``/``index``/``names_by_pk``,
Vault's ``read_for_update``/``merge``) are the real client's methods.
"""

import copy
import json
import urllib.parse

import salt.exceptions

import hecate_authentik_client as hak
import hecate_caddy_client
import hecate_consul_client
import hecate_nomad_client
import hecate_vault_client


class Recorder:
    def __init__(self):
        self.writes = []

    def wrote(self, *what):
        self.writes.append(what)


class FakeAuthentik(Recorder):
    """Authentik's objects by kind; pks are strings (uuids on the real server)."""

    parents_field = "parents"  # 2025.12+: a group has a list of parents

    find = hak.AuthentikClient.find
    lookup = hak.AuthentikClient.lookup
    require = hak.AuthentikClient.require
    index = hak.AuthentikClient.index
    names_by_pk = hak.AuthentikClient.names_by_pk
    group_parents = hak.AuthentikClient.group_parents
    parents_body = hak.AuthentikClient.parents_body
    patch_policy_binding = hak.AuthentikClient.patch_policy_binding

    def __init__(self):
        super().__init__()
        self.objects = {}  # kind -> {key: object}
        self.passwords = {}
        self._index = {}
        self._next = 0

    def add(self, kind, **obj):
        """Seed an object (not a write)."""
        self._next += 1
        obj.setdefault("pk", f"{kind}-{self._next}")
        self.objects.setdefault(kind, {})[self._key(kind, obj)] = obj
        self._index.pop(kind, None)
        self._derive(kind, obj)
        return obj

    def _derive(self, kind, obj):
        """Read-only fields the server fills in (an application's provider_obj)."""
        if kind == "application":
            provider = next((p for objs in self.objects.values() for p in objs.values()
                             if p.get("pk") == obj.get("provider")), None)
            obj["provider_obj"] = {"name": provider["name"]} if provider else None

    def _key(self, kind, obj):
        return obj[hak.KINDS[kind].key]

    def list(self, kind, **filters):
        found = []
        for obj in self.objects.get(kind, {}).values():
            if all(str(obj.get(k)) == str(v) for k, v in filters.items() if k in obj):
                found.append(copy.deepcopy(obj))
        return found

    def get(self, kind, key):
        obj = self.objects.get(kind, {}).get(key)
        return copy.deepcopy(obj) if obj is not None else None

    def create(self, kind, body):
        obj = self.add(kind, **copy.deepcopy(body))
        self.wrote("create", kind, obj["pk"])
        return copy.deepcopy(obj)

    def patch(self, kind, key, body, old=None):  # pylint: disable=unused-argument
        obj = self.objects[kind][key]
        obj.update(copy.deepcopy(body))
        self._derive(kind, obj)
        self._index.pop(kind, None)
        self.wrote("patch", kind, key, sorted(body))
        return copy.deepcopy(obj)

    def delete(self, kind, key, old=None):  # pylint: disable=unused-argument
        if self.objects.get(kind, {}).pop(key, None) is None:
            raise hak.AuthentikError(f"no {kind} {key}", status=404)
        self._index.pop(kind, None)
        self.wrote("delete", kind, key)
        return True

    def add_user(self, group_pk, user_pk):
        user = self._by_pk("user", user_pk)
        user["groups"] = sorted(set(user.get("groups") or []) | {group_pk})
        self.wrote("add_user", group_pk, user_pk)

    def remove_user(self, group_pk, user_pk):
        user = self._by_pk("user", user_pk)
        user["groups"] = [g for g in user.get("groups") or [] if g != group_pk]
        self.wrote("remove_user", group_pk, user_pk)

    def set_password(self, user_pk, password):
        self.passwords[user_pk] = password.reveal()  # a hecate_secrets.Secret, as the real client takes
        self.wrote("set_password", user_pk)

    def _by_pk(self, kind, pk):
        return next(o for o in self.objects[kind].values() if o["pk"] == pk)


class FakeConsul(Recorder):
    """Consul KV (with indexes and check-and-set) and the agent's services."""

    def __init__(self):
        super().__init__()
        self.kv = {}
        self.services = {}
        self.checks = {}
        self.index = 10

    def put(self, key, value, flags=0):
        """Seed a key (not a write)."""
        self.index += 1
        self.kv[key] = {"Key": key, "Value": hecate_consul_client.encode_value(value), "Flags": flags,
                        "CreateIndex": self.index, "ModifyIndex": self.index}

    def kv_get(self, key, index=None, wait=None):  # pylint: disable=unused-argument
        return self.index, copy.deepcopy(self.kv.get(key))

    def kv_keys(self, prefix="", separator=None):  # pylint: disable=unused-argument
        return sorted(k for k in self.kv if k.startswith(prefix))

    def kv_put_cas(self, key, value, cas, flags=None):
        now = self.kv.get(key, {}).get("ModifyIndex", 0)
        if now != cas:
            raise hecate_consul_client.CASConflict(f"Consul: key {key} changed (expected {cas}, now {now})")
        self.put(key, value, flags or 0)
        self.wrote("kv_put", key)
        return True

    def kv_delete(self, key, cas=None, recurse=False):
        if recurse:
            for k in [k for k in self.kv if k.startswith(key)]:
                del self.kv[k]
            self.wrote("kv_delete", key, "recurse")
            return True
        if cas is not None and self.kv.get(key, {}).get("ModifyIndex") != cas:
            return False
        self.kv.pop(key, None)
        self.wrote("kv_delete", key)
        return True

    def agent_service(self, service_id):
        return copy.deepcopy(self.services.get(service_id))

    def agent_checks(self, service_id=None):
        return {cid: dict(c) for cid, c in self.checks.items() if c["ServiceID"] == service_id}

    def service_register(self, definition):
        """As the agent stores a registration: its checks get ids, names and types."""
        sid = definition["ID"]
        self.services[sid] = {
            "ID": sid, "Service": definition["Name"], "Address": definition.get("Address", ""),
            "Port": definition.get("Port", 0), "Tags": list(definition.get("Tags") or []),
            "Meta": dict(definition.get("Meta") or {}),
            "Weights": definition.get("Weights") or {"Passing": 1, "Warning": 1},
            "EnableTagOverride": definition.get("EnableTagOverride", False),
        }
        self.checks = {cid: c for cid, c in self.checks.items() if c["ServiceID"] != sid}
        checks = definition.get("Checks") or []
        for pos, chk in enumerate(checks):
            cid = chk.get("CheckID") or f"service:{sid}" + (f":{pos + 1}" if len(checks) > 1 else "")
            kind = next(k for k in ("HTTP", "TCP", "TTL") if chk.get(k)).lower()
            self.checks[cid] = {"ServiceID": sid, "Name": chk.get("Name") or f"Service '{definition['Name']}' check",
                                "Type": kind, "Interval": chk.get("Interval", "") if kind != "ttl" else "",
                                "Timeout": chk.get("Timeout", ""), "Notes": chk.get("Notes", "")}
        self.wrote("service_register", sid)

    def service_deregister(self, service_id):
        self.services.pop(service_id)
        self.checks = {cid: c for cid, c in self.checks.items() if c["ServiceID"] != service_id}
        self.wrote("service_deregister", service_id)


class FakeNomad(Recorder):
    """Nomad variables with check-and-set."""

    def __init__(self):
        super().__init__()
        self.variables = {}
        self.index = 100

    def seed(self, path, items):
        self.index += 1
        self.variables[path] = {"Path": path, "Items": dict(items), "ModifyIndex": self.index}

    def var_get(self, path, namespace=None):  # pylint: disable=unused-argument
        return copy.deepcopy(self.variables.get(path))

    def var_put(self, path, items, cas=None, namespace=None):  # pylint: disable=unused-argument
        now = self.variables.get(path, {}).get("ModifyIndex", 0)
        if cas is not None and cas != now:
            raise hecate_nomad_client.VariableConflict(f"variable {path} changed (index {now})")
        self.seed(path, items)
        self.wrote("var_put", path)
        return self.var_get(path)

    def var_delete(self, path, cas=None, namespace=None):  # pylint: disable=unused-argument
        now = self.variables.get(path, {}).get("ModifyIndex", 0)
        if cas is not None and cas != now:
            raise hecate_nomad_client.VariableConflict(f"variable {path} changed (index {now})")
        self.variables.pop(path, None)
        self.wrote("var_delete", path)


class FakeVault(Recorder):
    """Vault KV v2: versions per secret, check-and-set writes, soft delete of the latest."""

    read_for_update = hecate_vault_client.VaultKV.read_for_update
    merge = hecate_vault_client.VaultKV.merge

    def __init__(self):
        super().__init__()
        self.secrets = {}  # "mount/path" -> [versions: {"data": dict | None}]

    def seed(self, path, data):
        self.secrets.setdefault(path, []).append({"data": dict(data)})

    def read(self, mount, path, version=None):
        versions = self.secrets.get(f"{mount}/{path}") or []
        if not versions:
            return None, None
        number = version or len(versions)
        data = versions[number - 1]["data"]
        return (copy.deepcopy(data) if data is not None else None), {"version": number}

    def read_data(self, mount, path):
        return self.read(mount, path)[0]

    def _version(self, mount, path):
        return len(self.secrets.get(f"{mount}/{path}") or [])

    def write(self, mount, path, data, cas=None):
        now = self._version(mount, path)
        if cas is not None and cas != now:
            raise hecate_vault_client.CASConflict(f"Vault: {mount}/{path} changed (version {now})")
        self.secrets.setdefault(f"{mount}/{path}", []).append({"data": dict(data)})
        self.wrote("write", f"{mount}/{path}", sorted(data))
        return {"data": {"version": now + 1}}  # hvac returns the response body

    def delete_latest(self, mount, path):
        self.secrets[f"{mount}/{path}"][-1]["data"] = None
        self.wrote("delete_latest", f"{mount}/{path}")


class FakeResolver(hecate_vault_client.Resolver):
    """The real Resolver (references, sdb:// URIs, literals) over a :class:`FakeVault`."""

    def __init__(self, vault, sdb=None):
        super().__init__({}, {}, (sdb or {}).get, {})
        self._vault = vault

    def vault(self):
        return self._vault


def snapshot(fake):
    """Everything a fake holds, to compare before and after a run that must not write."""
    state = {k: v for k, v in vars(fake).items() if k not in ("writes", "_index")}
    return json.dumps(state, sort_keys=True, default=str)


def refuse(*args, **kwargs):
    """A client builder for states that must not connect at all."""
    raise salt.exceptions.CommandExecutionError("unexpected connection")


class FakeCaddyAdmin(Recorder):
    """Caddy's admin API over one config document: ETag per version, If-Match enforced."""

    def __init__(self, config):
        super().__init__()
        self.config = copy.deepcopy(config)
        self.version = 1

    @property
    def etag(self):
        return f'"v{self.version}"'

    def get(self, *parts, known=None):
        value = hecate_caddy_client.traverse(self.config, parts) if parts else self.config
        # as the real client parses Caddy's answer: a copy, holding the caller's ``known`` objects
        return hecate_caddy_client.shared_loads(json.dumps(value), known), self.etag

    def write(self, method, path, value=None, etag=None, data=None):
        assert data is None or json.loads(data) == value, "the encoded body must be the value"
        if etag and etag != self.etag:
            raise hecate_caddy_client.PreconditionFailed("412 Precondition Failed", status=412)
        parts = [urllib.parse.unquote(p) for p in path[len("/config/"):].split("/") if p]
        parent = hecate_caddy_client.traverse(self.config, parts[:-1])
        key = int(parts[-1]) if isinstance(parent, list) else parts[-1]
        if method == "DELETE":
            del parent[key]
        elif method == "PUT" and isinstance(parent, list):
            parent.insert(key, copy.deepcopy(value))
        else:
            parent[key] = copy.deepcopy(value)
        self.version += 1
        self.wrote(method, path)


class FileBackend:
    """A file a state owns, seen as a backend: ``writes`` changes whenever it is (re)written."""

    def __init__(self, path):
        self.path = path

    @property
    def writes(self):
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return []
        return [(st.st_ino, st.st_mtime_ns)]  # an atomic rewrite is a new inode
