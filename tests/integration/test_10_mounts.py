"""The mount table API (core.md 5.1) through hvac and raw requests: enable, read, tune, move,
disable; the default table; every refusal leaves the table unchanged; a disabled mount's data
is gone; concurrent changes do not undo each other; the table survives a restart.
"""
import threading

import hvac
import pytest
import requests

from _procs import Server

INFO_KEYS = {"accessor", "config", "description", "external_entropy_access", "local", "options",
             "plugin_version", "running_plugin_version", "running_sha256", "seal_wrap", "type",
             "uuid"}


@pytest.fixture
def node(tmp_path):
    """An initialized and unsealed server with an hvac client on the root token."""
    s = Server(tmp_path)
    s.start()
    init = s.init()
    s.unseal(init["keys"])
    s.keys = init["keys"]
    s.token = init["root_token"]
    s.h = {"X-Vault-Token": s.token}
    s.client = hvac.Client(url=s.addr, token=s.token)
    yield s
    s.stop()


def call(node, method, path, body=None):
    return requests.request(method, node.url(path), headers=node.h, json=body)


def table(node):
    r = call(node, "GET", "sys/mounts")
    assert r.status_code == 200, r.text
    return r.json()["data"]


def refused(r, status, text):
    assert r.status_code == status, (r.status_code, r.text)
    body = r.json()
    assert list(body) == ["errors"], body
    if text is None:
        assert body["errors"] == [], body
    else:
        assert any(text in e for e in body["errors"]), body


def test_default_table_shape(node):
    r = call(node, "GET", "sys/mounts")
    body = r.json()
    assert r.status_code == 200 and body["mount_type"] == "system"
    data = body["data"]
    assert sorted(data) == ["cubbyhole/", "secret/", "sys/"]
    for path, info in data.items():
        assert body[path] == info  # top-level injection
        assert INFO_KEYS <= set(info), info
        assert info["config"] == {"default_lease_ttl": 0, "max_lease_ttl": 0,
                                  "force_no_cache": False}
    cub = data["cubbyhole/"]
    assert cub["type"] == "cubbyhole" and cub["local"] is True
    assert cub["description"] == "per-token private secret storage"
    assert cub["accessor"].startswith("cubbyhole_") and len(cub["accessor"]) == 18
    assert data["secret/"]["type"] == "kv" and data["secret/"]["local"] is False
    assert data["sys/"]["type"] == "system"
    listed = node.client.sys.list_mounted_secrets_engines()
    assert sorted(listed["data"]) == ["cubbyhole/", "secret/", "sys/"]


def test_enable_read_tune_disable_through_hvac(node):
    c = node.client
    c.sys.enable_secrets_engine("kv", path="app", description="app secrets",
                                config={"default_lease_ttl": "1h", "max_lease_ttl": 7200})
    info = table(node)["app/"]
    assert info["type"] == "kv" and info["description"] == "app secrets"
    assert info["config"]["default_lease_ttl"] == 3600 and info["config"]["max_lease_ttl"] == 7200
    assert info["accessor"].startswith("kv_") and info["local"] is False

    r = call(node, "GET", "sys/mounts/app")
    assert r.status_code == 200 and r.json()["data"] == info and r.json()["uuid"] == info["uuid"]
    r = call(node, "GET", "sys/mounts/app/deeper/path")  # the mount the path falls in
    assert r.json()["data"]["uuid"] == info["uuid"]

    tune = c.sys.read_mount_configuration("app")
    assert tune["data"]["default_lease_ttl"] == 3600 and tune["data"]["max_lease_ttl"] == 7200
    assert tune["data"]["description"] == "app secrets" and tune["default_lease_ttl"] == 3600

    kv = c.secrets.kv.v1
    kv.create_or_update_secret(path="db", secret={"pw": "x"}, mount_point="app")
    assert kv.read_secret(path="db", mount_point="app")["lease_duration"] == 3600
    c.sys.tune_mount_configuration("app", default_lease_ttl="30m", description="tuned",
                                   audit_non_hmac_request_keys=["a", "b"],
                                   listing_visibility="unauth",
                                   passthrough_request_headers=["X-Custom"])
    assert kv.read_secret(path="db", mount_point="app")["lease_duration"] == 1800
    tune = c.sys.read_mount_configuration("app")["data"]
    assert tune["default_lease_ttl"] == 1800 and tune["max_lease_ttl"] == 7200
    assert tune["description"] == "tuned"
    assert tune["audit_non_hmac_request_keys"] == ["a", "b"]
    assert tune["listing_visibility"] == "unauth"
    assert tune["passthrough_request_headers"] == ["X-Custom"]
    cfg = table(node)["app/"]["config"]
    assert cfg["audit_non_hmac_request_keys"] == ["a", "b"] and cfg["default_lease_ttl"] == 1800
    # "system" resets a TTL to the system default; a comma string is a list; [] removes it.
    c.sys.tune_mount_configuration("app", default_lease_ttl="system",
                                   allowed_response_headers="X-A, X-B",
                                   audit_non_hmac_request_keys=[])
    tune = c.sys.read_mount_configuration("app")["data"]
    assert tune["default_lease_ttl"] == 2764800
    assert tune["allowed_response_headers"] == ["X-A", "X-B"]
    assert "audit_non_hmac_request_keys" not in tune
    assert kv.read_secret(path="db", mount_point="app")["lease_duration"] == 2764800
    # The item's own ttl still wins over the mount default.
    kv.create_or_update_secret(path="short", secret={"ttl": "90s"}, mount_point="app")
    assert kv.read_secret(path="short", mount_point="app")["lease_duration"] == 90

    c.sys.disable_secrets_engine("app")
    assert "app/" not in table(node)
    r = call(node, "GET", "app/db")
    refused(r, 404, 'no handler for route "app/db"')


def test_enable_variants(node):
    r = call(node, "POST", "sys/mounts/v1", {"type": "kv-v1"})
    assert r.status_code == 204, r.text
    assert table(node)["v1/"]["options"] == {"version": "1"}
    r = call(node, "POST", "sys/mounts/gen", {"type": "generic", "local": True,
                                              "seal_wrap": False, "description": None,
                                              "config": None, "options": None})
    assert r.status_code == 204, r.text
    info = table(node)["gen/"]
    assert info["type"] == "kv" and info["local"] is True and info["options"] is None
    r = call(node, "POST", "sys/mounts/plug", {"type": "plugin", "plugin_name": "kv"})
    assert r.status_code == 204, r.text
    assert table(node)["plug/"]["type"] == "kv"
    # "sec/" shares a text prefix with "secret/" but is not nested in it.
    r = call(node, "POST", "sys/mounts/sec", {"type": "kv"})
    assert r.status_code == 204, r.text
    r = call(node, "POST", "sys/mounts//lead/", {"type": "kv"})
    assert r.status_code == 204, r.text
    assert "lead/" in table(node)


def test_refusals_change_nothing(node):
    call(node, "POST", "sys/mounts/a/b", {"type": "kv"})
    before = table(node)
    cases = [
        ("POST", "sys/mounts/x", {}, 400, "backend type must be specified as a string"),
        ("POST", "sys/mounts/x", {"type": ""}, 400, "backend type must be specified"),
        ("POST", "sys/mounts/x", {"type": 5}, 400, "must be strings"),
        ("POST", "sys/mounts/x", {"type": "nope"}, 400, "plugin not found in the catalog: nope"),
        ("POST", "sys/mounts/x", {"type": "plugin"}, 400, "plugin_name must be provided"),
        ("POST", "sys/mounts/x", {"type": "kv-v2"}, 400, "kv version 2 is not supported yet"),
        ("POST", "sys/mounts/x", {"type": "kv", "options": {"version": "2"}}, 400,
         "kv version 2 is not supported yet"),
        ("POST", "sys/mounts/x", {"type": "kv", "options": {"version": {"a": 1}}}, 400,
         "options must be a map of strings"),
        ("POST", "sys/mounts/x", {"type": "kv", "options": "v2"}, 400, "options must be a map"),
        ("POST", "sys/mounts/x", {"type": "kv", "local": "maybe"}, 400, "must be booleans"),
        ("POST", "sys/mounts/secret", {"type": "kv"}, 409, "path is already in use at secret/"),
        ("POST", "sys/mounts/secret/sub", {"type": "kv"}, 409,
         "path is already in use at secret/"),
        ("POST", "sys/mounts/a", {"type": "kv"}, 409, "path is already in use at a/b/"),
        ("POST", "sys/mounts/sys/foo", {"type": "kv"}, 403, 'cannot mount "sys/foo/"'),
        ("POST", "sys/mounts/cubbyhole", {"type": "kv"}, 403, 'cannot mount "cubbyhole/"'),
        ("POST", "sys/mounts/auth/x", {"type": "kv"}, 403, 'cannot mount "auth/x/"'),
        ("POST", "sys/mounts/audit/x", {"type": "kv"}, 403, 'cannot mount "audit/x/"'),
        ("POST", "sys/mounts/identity", {"type": "kv"}, 403, 'cannot mount "identity/"'),
        ("POST", "sys/mounts/c2", {"type": "cubbyhole"}, 403,
         'mount type of "cubbyhole" is not mountable'),
        ("POST", "sys/mounts/s2", {"type": "system"}, 403, 'mount type of "system" is not'),
        ("POST", "sys/mounts/t2", {"type": "token"}, 403, 'mount type of "token" is not'),
        ("POST", "sys/mounts/i2", {"type": "identity"}, 403, 'mount type of "identity" is not'),
        ("POST", "sys/mounts/x", {"type": "kv", "config": {"default_lease_ttl": "2h",
                                                          "max_lease_ttl": "1h"}}, 400,
         "given default lease TTL greater than given max lease TTL"),
        ("POST", "sys/mounts/x", {"type": "kv", "config": {"default_lease_ttl": "800h"}}, 400,
         "given default lease TTL greater than system max lease TTL of 2764800"),
        ("POST", "sys/mounts/x", {"type": "kv", "config": {"default_lease_ttl": "abc"}}, 400,
         "unable to parse default TTL of abc"),
        ("POST", "sys/mounts/x", {"type": "kv", "config": {"max_lease_ttl": "-5s"}}, 400,
         "unable to parse max TTL of -5s"),
        ("POST", "sys/mounts/x", {"type": "kv", "config": {"max_lease_ttl": -5}}, 400,
         "unable to parse max TTL of -5"),
        ("POST", "sys/mounts/x", {"type": "kv", "config": "1h"}, 400,
         "unable to convert given mount config information"),
        ("POST", "sys/mounts/x", {"type": "kv", "config": {"listing_visibility": "bogus"}}, 400,
         "invalid listing_visibility bogus"),
        ("POST", "sys/mounts/x", {"type": "kv", "config": {"audit_non_hmac_request_keys": [1]}},
         400, "unable to parse given mount config information"),
        ("DELETE", "sys/mounts/sys", None, 400, 'cannot unmount "sys/"'),
        ("DELETE", "sys/mounts/cubbyhole", None, 400, 'cannot unmount "cubbyhole/"'),
        ("POST", "sys/remount", {"from": "sys", "to": "x"}, 400, 'cannot remount "sys/"'),
        ("POST", "sys/remount", {"from": "cubbyhole", "to": "x"}, 400,
         'cannot remount "cubbyhole/"'),
        ("POST", "sys/remount", {"from": "secret", "to": "auth/x"}, 400,
         "cannot remount to destination auth/x/"),
        ("POST", "sys/remount", {"from": "secret", "to": "identity"}, 400,
         "cannot remount to destination identity/"),
        ("POST", "sys/remount", {"from": "nope", "to": "x"}, 400, 'no matching mount at "nope/"'),
        ("POST", "sys/remount", {"from": "secret/sub", "to": "x"}, 400,
         'no matching mount at "secret/sub/"'),
        ("POST", "sys/remount", {"from": "secret", "to": "secret"}, 400,
         'path already in use at "secret/"'),
        ("POST", "sys/remount", {"from": "secret", "to": "a/b/c"}, 400,
         'path already in use at "a/b/"'),
        ("POST", "sys/remount", {"from": "secret", "to": "a"}, 400,
         'path already in use at "a/b/"'),
        ("POST", "sys/remount", {"from": "secret", "to": "x//y"}, 400,
         "invalid destination mount"),
        ("POST", "sys/remount", {"from": "secret", "to": "x/../y"}, 400,
         "invalid destination mount"),
        ("POST", "sys/remount", {"from": "secret", "to": "x/\u0001"}, 400,
         "invalid destination mount"),
        ("POST", "sys/remount", {"from": "secret"}, 400, "both 'from' and 'to' path must be"),
        ("POST", "sys/remount", {"from": "secret", "to": 7}, 400, "both 'from' and 'to'"),
        ("POST", "sys/remount", {"from": "secret", "to": "x "}, 400,
         "'to' path cannot contain trailing whitespace"),
        ("GET", "sys/remount", None, 405, "unsupported operation"),
        ("POST", "sys/mounts/sys/tune", {"default_lease_ttl": "1h"}, 400,
         "cannot tune parameter default_lease_ttl of sys/"),
        ("POST", "sys/mounts/cubbyhole/tune", {"description": "x"}, 400,
         "cannot tune parameter description of cubbyhole/"),
        ("POST", "sys/mounts/secret/tune", {"default_lease_ttl": "2h", "max_lease_ttl": "1h"},
         400, "backend max lease TTL of 3600 would be less than backend default lease TTL of 7200"),
        ("POST", "sys/mounts/secret/tune", {"default_lease_ttl": "soon"}, 400,
         "unable to parse default lease TTL soon"),
        ("POST", "sys/mounts/secret/tune", {"max_lease_ttl": True}, 400,
         "unable to parse max lease TTL"),
        ("POST", "sys/mounts/secret/tune", {"listing_visibility": "all"}, 400,
         "invalid listing_visibility all"),
        ("POST", "sys/mounts/secret/tune", {"options": {"version": "2"}}, 400,
         "kv version 2 is not supported yet"),
        ("POST", "sys/mounts/secret/tune", {"options": {"version": "3"}}, 400,
         "invalid version provided: 3"),
        ("POST", "sys/mounts/secret/tune", {"description": ["x"]}, 400,
         "description must be a string"),
        ("POST", "sys/mounts/secret/tune", {"token_type": "batch"}, 400,
         "'token_type' can only be modified on auth mounts"),
        ("POST", "sys/mounts/secret/tune", {"plugin_version": "v9.9.9"}, 400,
         "not found in the catalog"),
        ("POST", "sys/mounts/nope/tune", {"description": "x"}, 400,
         'tune of path "nope/" failed: no mount entry found'),
        ("DELETE", "sys/mounts/secret/tune", None, 405, "unsupported operation"),
        ("GET", "sys/mounts/nope/tune", None, 400, 'cannot fetch sysview for path "nope/"'),
        ("GET", "sys/mounts/nope", None, 400, "No secret engine mount at nope/"),
        ("LIST", "sys/mounts", None, 405, "unsupported operation"),
        ("GET", "sys/internal/ui/mounts/nope/deep", None, 403,
         'please ensure client\'s policies grant access to path "nope/deep/"'),
    ]
    for method, path, body, status, text in cases:
        r = call(node, method, path, body)
        refused(r, status, text)
        assert table(node) == before, (method, path, body)


def test_tune_untunable_audit_keys_allowed(node):
    r = call(node, "POST", "sys/mounts/sys/tune", {"audit_non_hmac_request_keys": ["k"]})
    assert r.status_code == 204, r.text
    assert table(node)["sys/"]["config"]["audit_non_hmac_request_keys"] == ["k"]
    r = call(node, "POST", "sys/mounts/cubbyhole/tune", {"audit_non_hmac_response_keys": "a,b"})
    assert r.status_code == 204, r.text
    assert table(node)["cubbyhole/"]["config"]["audit_non_hmac_response_keys"] == ["a", "b"]


def test_tune_options_merge(node):
    r = call(node, "POST", "sys/mounts/secret/tune", {"options": {"version": "1", "x": "y"}})
    assert r.status_code == 200, r.text  # Vault's 0 -> 1 upgrade warning
    assert "Upgrading mount from version 0 to version 1" in r.json()["warnings"][0]
    assert table(node)["secret/"]["options"] == {"version": "1", "x": "y"}
    r = call(node, "POST", "sys/mounts/secret/tune", {"options": {"x": ""}})
    assert r.status_code == 204, r.text
    assert table(node)["secret/"]["options"] == {"version": "1"}
    refused(call(node, "POST", "sys/mounts/secret/tune", {"options": {"version": "0"}}), 400,
            "invalid version provided: 0")
    assert call(node, "GET", "sys/mounts/secret/tune").json()["data"]["options"] == \
        {"version": "1"}


def test_disabled_mount_data_is_gone(node):
    kv = node.client.secrets.kv.v1
    node.client.sys.enable_secrets_engine("kv", path="gone")
    for i in range(20):
        kv.create_or_update_secret(path=f"d{i % 3}/k{i}", secret={"v": i}, mount_point="gone")
    old = table(node)["gone/"]["uuid"]
    r = call(node, "DELETE", "sys/mounts/gone")
    assert r.status_code == 204 and r.content == b""
    r = call(node, "DELETE", "sys/mounts/gone")  # not mounted: still 204
    assert r.status_code == 204
    r = call(node, "DELETE", "sys/mounts/secret/inner")  # inside a mount, not one: 204, no-op
    assert r.status_code == 204 and "secret/" in table(node)
    node.client.sys.enable_secrets_engine("kv", path="gone")
    assert table(node)["gone/"]["uuid"] != old
    refused(call(node, "LIST", "gone/"), 404, None)
    refused(call(node, "GET", "gone/d0/k0"), 404, None)
    refused(call(node, "LIST", "gone/d1"), 404, None)


def test_remount_keeps_uuid_and_data(node):
    c = node.client
    c.sys.enable_secrets_engine("kv", path="src", config={"default_lease_ttl": "10m"})
    c.secrets.kv.v1.create_or_update_secret(path="k", secret={"v": 1}, mount_point="src")
    before = table(node)["src/"]
    r = c.sys.move_backend("src", "dst/nested")
    mid = r["data"]["migration_id"]
    assert r["migration_id"] == mid and r["warnings"]
    after = table(node)
    assert "src/" not in after and after["dst/nested/"] == before
    got = c.secrets.kv.v1.read_secret(path="k", mount_point="dst/nested")
    assert got["data"] == {"v": 1} and got["lease_duration"] == 600
    refused(call(node, "GET", "src/k"), 404, "no handler for route")
    st = call(node, "GET", f"sys/remount/status/{mid}").json()["data"]
    assert st["migration_id"] == mid
    assert st["migration_info"]["source_mount"] == "src/"
    assert st["migration_info"]["target_mount"] == "dst/nested/"
    assert st["migration_info"]["status"] == "success"
    assert call(node, "GET", "sys/remount/status/not-an-id").status_code == 404


def test_internal_ui_mounts(node):
    r = call(node, "GET", "sys/internal/ui/mounts")
    body = r.json()
    assert r.status_code == 200 and body["data"]["auth"] == {}
    assert sorted(body["data"]["secret"]) == ["cubbyhole/", "secret/", "sys/"]
    assert "secret" not in body  # not a top-level injection path
    r = call(node, "GET", "sys/internal/ui/mounts/secret/app/db")
    data = r.json()["data"]
    assert r.status_code == 200 and data["path"] == "secret/" and data["type"] == "kv"
    assert data["options"] is None and data["uuid"] == table(node)["secret/"]["uuid"]
    assert INFO_KEYS <= set(data)


def test_concurrent_changes_all_land(node):
    results = {}

    def enable(name):
        r = requests.post(node.url(f"sys/mounts/{name}"), headers=node.h, json={"type": "kv"})
        results[name] = r.status_code

    threads = [threading.Thread(target=enable, args=(f"m{i}",)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(code == 204 for code in results.values()), results
    data = table(node)
    assert all(f"m{i}/" in data for i in range(12))

    same = []

    def enable_same():
        r = requests.post(node.url("sys/mounts/one"), headers=node.h, json={"type": "kv"})
        same.append(r.status_code)

    threads = [threading.Thread(target=enable_same) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(same) == [204] + [409] * 7, same


def test_table_survives_restart(node):
    c = node.client
    c.sys.enable_secrets_engine("kv", path="rep", config={"max_lease_ttl": "2h"})
    c.sys.enable_secrets_engine("kv", path="loc", local=True, description="local one")
    c.sys.tune_mount_configuration("loc", default_lease_ttl="5m",
                                   audit_non_hmac_response_keys=["r"])
    c.sys.move_backend("rep", "rep2")
    c.secrets.kv.v1.create_or_update_secret(path="a", secret={"x": 1}, mount_point="rep2")
    c.secrets.kv.v1.create_or_update_secret(path="b", secret={"y": 2}, mount_point="loc")
    c.sys.disable_secrets_engine("secret")
    before = table(node)
    node.stop()
    node.start()
    node.unseal(node.keys)
    after = table(node)
    assert after == before
    assert sorted(after) == ["cubbyhole/", "loc/", "rep2/", "sys/"]
    assert after["loc/"]["local"] is True and after["loc/"]["config"]["default_lease_ttl"] == 300
    assert c.secrets.kv.v1.read_secret(path="a", mount_point="rep2")["data"] == {"x": 1}
    got = c.secrets.kv.v1.read_secret(path="b", mount_point="loc")
    assert got["data"] == {"y": 2} and got["lease_duration"] == 300
    # Sealing and unsealing reloads the same table.
    c.sys.seal()
    c.sys.submit_unseal_keys(node.keys)
    assert table(node) == before
