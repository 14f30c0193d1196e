"""The token store through hvac and raw requests (core.md section 3)."""
import time

import hvac
import pytest


def accessors(node):
    r = node.req("LIST", "auth/token/accessors")
    assert r.status_code == 200, r.text
    return set(r.json()["data"]["keys"])


def test_root_token_lookup_self(node):
    data = node.client().auth.token.lookup_self()["data"]
    assert data["policies"] == ["root"]
    assert data["path"] == "auth/token/root"
    assert data["display_name"] == "root"
    assert data["ttl"] == 0 and data["expire_time"] is None
    assert data["orphan"] is True and data["renewable"] is False
    assert data["id"] == node.root
    assert node.client().is_authenticated()


def test_create_and_lookup_fields(node):
    c = node.client()
    resp = c.auth.token.create(policies=["web", "db"], ttl="1h", meta={"team": "a"},
                               display_name="svc", num_uses=5, explicit_max_ttl="2h")
    auth = resp["auth"]
    assert resp["data"] is None
    assert auth["client_token"].startswith("hvs.") and len(auth["client_token"]) == 28
    assert auth["policies"] == ["db", "default", "web"]
    assert auth["token_policies"] == ["db", "default", "web"]
    assert auth["metadata"] == {"team": "a"}
    assert auth["lease_duration"] == 3600
    assert auth["renewable"] is True and auth["orphan"] is False
    assert auth["token_type"] == "service" and auth["num_uses"] == 5
    assert sorted(resp["warnings"]) == ['Policy "db" does not exist', 'Policy "web" does not exist']
    data = c.auth.token.lookup(auth["client_token"])["data"]
    assert data["id"] == auth["client_token"]
    assert data["accessor"] == auth["accessor"]
    assert data["display_name"] == "token-svc"
    assert data["meta"] == {"team": "a"}
    assert data["explicit_max_ttl"] == 7200 and data["creation_ttl"] == 3600
    assert 3590 <= data["ttl"] <= 3600
    assert data["path"] == "auth/token/create"
    assert data["num_uses"] == 5
    by_acc = c.auth.token.lookup_accessor(auth["accessor"])["data"]
    assert by_acc["id"] == "" and by_acc["accessor"] == auth["accessor"]


def test_default_policy_self_service(node):
    tok = node.client().auth.token.create(policies=["nothing"], ttl="1h")["auth"]["client_token"]
    me = node.client(tok)
    assert me.auth.token.lookup_self()["data"]["policies"] == ["default", "nothing"]
    renewed = me.auth.token.renew_self(increment="2h")["auth"]
    assert renewed["lease_duration"] == 7200
    assert me.auth.token.lookup_self()["data"]["last_renewal_time"] > 0
    # The default policy does not allow creating tokens or reading other paths.
    r = node.req("POST", "auth/token/create", token=tok, json={})
    assert r.status_code == 403 and r.json() == {"errors": ["permission denied"]}
    r = node.req("GET", "secret/anything", token=tok)
    assert r.status_code == 403
    me.auth.token.revoke_self()
    r = node.req("GET", "auth/token/lookup-self", token=tok)
    assert r.status_code == 403


def test_revoke_tree_and_orphan(node):
    root = node.client()
    root.sys.create_or_update_policy(name="creator", policy='path "auth/token/create" '
                                     '{ capabilities = ["update"] }')
    parent = root.auth.token.create(policies=["creator"], ttl="1h")["auth"]["client_token"]
    pc = node.client(parent)
    child = pc.auth.token.create(policies=["creator"], ttl="1h")["auth"]["client_token"]
    grandchild = node.client(child).auth.token.create(ttl="1h")["auth"]["client_token"]
    assert root.auth.token.lookup(grandchild)["data"]["orphan"] is False
    root.auth.token.revoke(parent)
    for t in (parent, child, grandchild):
        r = node.req("POST", "auth/token/lookup", json={"token": t})
        assert r.status_code == 403 and r.json() == {"errors": ["bad token"]}

    parent = root.auth.token.create(policies=["creator"], ttl="1h")["auth"]["client_token"]
    child = node.client(parent).auth.token.create(policies=["creator"],
                                                  ttl="1h")["auth"]["client_token"]
    root.auth.token.revoke_and_orphan_children(parent)
    assert node.req("POST", "auth/token/lookup", json={"token": parent}).status_code == 403
    data = root.auth.token.lookup(child)["data"]
    assert data["orphan"] is True


def test_revoke_accessor_and_unknown(node):
    c = node.client()
    auth = c.auth.token.create(ttl="1h")["auth"]
    assert auth["accessor"] in accessors(node)
    c.auth.token.revoke_accessor(auth["accessor"])
    assert auth["accessor"] not in accessors(node)
    assert node.req("POST", "auth/token/lookup",
                    json={"token": auth["client_token"]}).status_code == 403
    # Revoking an unknown token is not an error (Vault).
    r = node.req("POST", "auth/token/revoke", json={"token": "hvs.doesnotexist0000000000"})
    assert r.status_code == 204
    r = node.req("POST", "auth/token/lookup-accessor", json={"accessor": "nope"})
    assert r.status_code == 400


def test_num_uses_exhausted(node):
    tok = node.client().auth.token.create(num_uses=2, ttl="1h")["auth"]["client_token"]
    assert node.req("GET", "auth/token/lookup-self", token=tok).status_code == 200
    r = node.req("GET", "auth/token/lookup-self", token=tok)
    assert r.status_code == 200 and r.json()["data"]["num_uses"] == 0
    r = node.req("GET", "auth/token/lookup-self", token=tok)
    assert r.status_code == 403
    assert node.req("POST", "auth/token/lookup", json={"token": tok}).status_code == 403


def test_ttl_expiry_purged_without_requests(node):
    auth = node.client().auth.token.create(ttl="2s")["auth"]
    assert auth["lease_duration"] == 2
    time.sleep(3.5)
    assert auth["accessor"] not in accessors(node)
    r = node.req("GET", "auth/token/lookup-self", token=auth["client_token"])
    assert r.status_code == 403


def test_renew_rules(node):
    c = node.client()
    auth = c.auth.token.create(ttl="1h", explicit_max_ttl="90m")["auth"]
    got = c.auth.token.renew(auth["client_token"], increment="10h")
    assert 5390 <= got["auth"]["lease_duration"] <= 5400
    assert got["warnings"]
    fixed = c.auth.token.create(ttl="1h", renewable=False)["auth"]["client_token"]
    r = node.req("POST", "auth/token/renew", json={"token": fixed})
    assert r.status_code == 400 and "not renewable" in r.json()["errors"][0]
    r = node.req("POST", "auth/token/renew", json={"token": "hvs.unknown000000000000000"})
    assert r.status_code == 400 and r.json()["errors"] == ["token not found"]
    periodic = c.auth.token.create(period="30m")["auth"]
    assert periodic["lease_duration"] == 1800
    got = c.auth.token.renew(periodic["client_token"], increment="5h")
    assert got["auth"]["lease_duration"] == 1800


def test_orphan_create_and_custom_id(node):
    c = node.client()
    auth = node.req("POST", "auth/token/create-orphan", json={"ttl": "1h"}).json()["auth"]
    assert auth["orphan"] is True
    auth = c.auth.token.create(id="my-own-token", ttl="1h")["auth"]
    assert auth["client_token"] == "my-own-token"
    assert c.auth.token.lookup("my-own-token")["data"]["id"] == "my-own-token"


@pytest.mark.parametrize("body,needle", [
    ({"num_uses": -1}, "number of uses cannot be negative"),
    ({"ttl": "abc"}, "ttl"),
    ({"explicit_max_ttl": "1x"}, "explicit_max_ttl"),
    ({"type": "batch"}, "batch"),
    ({"meta": {"a": 1}}, "meta"),
    ({"policies": [1]}, "policies"),
    ({"id": "hvs.mine"}, "prefix"),
    ({"renewable": "yes"}, "renewable"),
])
def test_bad_create_refused_and_nothing_created(node, body, needle):
    before = accessors(node)
    r = node.req("POST", "auth/token/create", json=body)
    assert r.status_code == 400, r.text
    assert needle in r.json()["errors"][0]
    assert accessors(node) == before


def test_child_policies_must_be_subset(node):
    root = node.client()
    root.sys.create_or_update_policy(name="creator2", policy='path "auth/token/create" '
                                     '{ capabilities = ["update"] }')
    parent = root.auth.token.create(policies=["creator2"], ttl="1h")["auth"]["client_token"]
    before = accessors(node)
    r = node.req("POST", "auth/token/create", token=parent, json={"policies": ["admin"]})
    assert r.status_code == 400
    assert r.json()["errors"] == ["child policies must be subset of parent"]
    r = node.req("POST", "auth/token/create", token=parent, json={"policies": ["root"]})
    assert r.status_code == 400
    r = node.req("POST", "auth/token/create", token=parent, json={"no_parent": True})
    assert r.status_code == 400
    assert accessors(node) == before
    with pytest.raises(hvac.exceptions.InvalidRequest):
        node.client(parent).auth.token.create(policies=["other"])


def test_expired_token_purged_after_restart(node):
    auth = node.client().auth.token.create(ttl="3s")["auth"]
    keep = node.client().auth.token.create(ttl="1h")["auth"]
    node.server.stop()
    time.sleep(3.5)
    node.server.start()
    node.server.unseal(node.keys)
    deadline = time.monotonic() + 10
    while auth["accessor"] in accessors(node):
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert keep["accessor"] in accessors(node)
    assert node.req("GET", "auth/token/lookup-self", token=keep["client_token"]).status_code == 200


def test_tokens_not_in_plaintext_on_disk(node):
    tok = node.client().auth.token.create(ttl="1h")["auth"]["client_token"]
    node.server.stop()
    blob = b"".join(p.read_bytes() for p in node.server.data_dir.rglob("*") if p.is_file())
    node.server.start()
    node.server.unseal(node.keys)
    assert tok.encode() not in blob and node.root.encode() not in blob
    assert node.req("GET", "auth/token/lookup-self", token=tok).status_code == 200


def test_hvac_client_token_methods(node):
    """The legacy hvac.Client helpers named by the issue: create/lookup/renew/revoke_token."""
    c = node.client()
    auth = c.create_token(policies=["x"], ttl="1h", display_name="legacy")["auth"]
    tok, acc = auth["client_token"], auth["accessor"]
    assert c.lookup_token(tok)["data"]["display_name"] == "token-legacy"
    assert c.lookup_token(acc, accessor=True)["data"]["id"] == ""
    assert node.client(tok).lookup_token()["data"]["id"] == tok
    assert c.renew_token(tok, increment="2h")["auth"]["lease_duration"] == 7200
    orphan = c.create_token(ttl="1h", orphan=True)["auth"]
    assert orphan["orphan"] is True
    c.revoke_token(acc, accessor=True)
    assert node.req("POST", "auth/token/lookup", json={"token": tok}).status_code == 403
    c.revoke_token(orphan["client_token"], orphan=True)
    assert node.req("POST", "auth/token/lookup",
                    json={"token": orphan["client_token"]}).status_code == 403
