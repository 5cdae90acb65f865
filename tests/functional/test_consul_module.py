"""
hecate_consul execution module functions through Salt's loaders against the Consul
simulator (ACLs on): keys, deletes with check-and-set, the catalog, sessions.
"""

import uuid

import pytest


def test_kv_keys_and_delete_with_cas(loaders):
    mod = loaders.modules.hecate_consul
    base = f"func/module/{uuid.uuid4().hex[:6]}"
    assert mod.kv_put(f"{base}/a", "1") is True
    assert mod.kv_put(f"{base}/sub/b", "2") is True
    assert mod.kv_keys(f"{base}/") == [f"{base}/a", f"{base}/sub/b"]
    assert mod.kv_keys(f"{base}/", separator="/") == [f"{base}/a", f"{base}/sub/"]
    index = mod.kv_get(f"{base}/a", meta=True)["ModifyIndex"]
    # a stale index deletes nothing and says so
    with pytest.raises(Exception, match=f"key {base}/a changed since ModifyIndex {index - 1}; not deleted"):
        mod.kv_delete(f"{base}/a", cas=index - 1)
    assert mod.kv_get(f"{base}/a") == "1"
    assert mod.kv_delete(f"{base}/a", cas=index) is True
    assert mod.kv_get(f"{base}/a") is None
    assert mod.kv_delete(f"{base}", recurse=True) is True
    assert mod.kv_keys(f"{base}/") == []


def test_catalog_services(loaders):
    mod = loaders.modules.hecate_consul
    sid = f"func-catalog-{uuid.uuid4().hex[:6]}"
    mod.service_register(sid, name=sid, address="127.0.0.1", port=8080, tags=["hecate", "web"])
    try:
        catalog = mod.catalog_services()
        assert sorted(catalog[sid]) == ["hecate", "web"]
    finally:
        mod.service_deregister(sid)
    assert sid not in mod.catalog_services()


def test_sessions(loaders):
    mod = loaders.modules.hecate_consul
    name = f"func-session-{uuid.uuid4().hex[:6]}"
    session = mod.session_create(name, ttl="30s", lock_delay="0s")
    assert isinstance(session, str) and len(session) == 36
    info = mod.session_info(session)
    assert info["Name"] == name and info["TTL"] == "30s" and info["Behavior"] == "release"
    assert session in {s["ID"] for s in mod.session_list()}
    assert mod.session_renew(session)["ID"] == session
    assert mod.session_destroy(session) is True
    assert mod.session_info(session) is None
    assert session not in {s["ID"] for s in mod.session_list()}
    with pytest.raises(Exception, match=f"session {session} has expired or was destroyed"):
        mod.session_renew(session)
    with pytest.raises(Exception, match="behavior must be 'release' or 'delete'"):
        mod.session_create(name, behavior="keep")
