"""cubbyhole (core.md 5.2): each token's private kv v1 store, lease_duration 0, isolated per
token, gone with its token. Needs the token store to give every token a cubbyhole id (the
root token included); until then the engine answers 400 "client token empty".
"""
import pytest
import requests

from _procs import Server


@pytest.fixture
def node(tmp_path):
    s = Server(tmp_path)
    s.start()
    init = s.init()
    s.unseal(init["keys"])
    s.keys = init["keys"]
    s.token = init["root_token"]
    s.h = {"X-Vault-Token": s.token}
    yield s
    s.stop()


def call(node, method, path, body=None, token=None):
    h = {"X-Vault-Token": token} if token else node.h
    return requests.request(method, node.url(path), headers=h, json=body)


def test_root_token_write_read_list_delete(node):
    r = call(node, "POST", "cubbyhole/app/db", {"user": "u", "password": "p"})
    assert r.status_code == 204, r.text
    call(node, "POST", "cubbyhole/app/api", {"key": "k"})
    call(node, "POST", "cubbyhole/top", {"v": 1})
    r = call(node, "GET", "cubbyhole/app/db")
    body = r.json()
    assert r.status_code == 200, r.text
    assert body["data"] == {"user": "u", "password": "p"}
    assert body["lease_duration"] == 0 and body["lease_id"] == "" and body["renewable"] is False
    assert body["mount_type"] == "cubbyhole"
    r = call(node, "LIST", "cubbyhole/")
    assert r.status_code == 200 and r.json()["data"]["keys"] == ["app/", "top"], r.text
    r = call(node, "LIST", "cubbyhole/app")
    assert r.json()["data"]["keys"] == ["api", "db"]
    # A write replaces the whole object.
    call(node, "POST", "cubbyhole/app/db", {"only": "this"})
    assert call(node, "GET", "cubbyhole/app/db").json()["data"] == {"only": "this"}
    r = call(node, "DELETE", "cubbyhole/app/db")
    assert r.status_code == 204
    r = call(node, "GET", "cubbyhole/app/db")
    assert r.status_code == 404 and r.json() == {"errors": []}
    assert call(node, "DELETE", "cubbyhole/app/db").status_code == 204  # idempotent
    assert call(node, "LIST", "cubbyhole/app").json()["data"]["keys"] == ["api"]
    assert call(node, "LIST", "cubbyhole/none").status_code == 404


def test_bad_requests(node):
    r = call(node, "POST", "cubbyhole/x", {})
    assert r.status_code == 400 and r.json() == {"errors": ["missing data fields"]}
    r = call(node, "POST", "cubbyhole/dir/", {"a": 1})
    assert r.status_code == 400, r.text
    r = call(node, "GET", "cubbyhole/missing")
    assert r.status_code == 404 and r.json() == {"errors": []}
    r = requests.patch(node.url("cubbyhole/x"), headers={**node.h, "Content-Type":
                                                        "application/merge-patch+json"},
                       data="{}")
    assert r.status_code == 405
    assert call(node, "LIST", "cubbyhole/").status_code == 404  # nothing was written


def test_survives_restart(node):
    call(node, "POST", "cubbyhole/keep", {"v": "1"})
    node.stop()
    node.start()
    node.unseal(node.keys)
    assert call(node, "GET", "cubbyhole/keep").json()["data"] == {"v": "1"}


def test_tokens_are_isolated_and_revocation_destroys(node):
    """Another token sees none of root's cubbyhole; revoking it removes its own keys."""
    r = call(node, "POST", "auth/token/create", {"policies": ["default"]})
    assert r.status_code == 200, r.text
    child = r.json()["auth"]["client_token"]
    call(node, "POST", "cubbyhole/mine", {"owner": "root"})
    assert call(node, "GET", "cubbyhole/mine", token=child).status_code == 404
    assert call(node, "POST", "cubbyhole/mine", {"owner": "child"}, token=child).status_code == 204
    assert call(node, "GET", "cubbyhole/mine", token=child).json()["data"] == {"owner": "child"}
    assert call(node, "GET", "cubbyhole/mine").json()["data"] == {"owner": "root"}
    r = call(node, "POST", "auth/token/revoke", {"token": child})
    assert r.status_code == 204, r.text
    # A new token never sees the revoked token's keys.
    r = call(node, "POST", "auth/token/create", {"policies": ["default"]})
    other = r.json()["auth"]["client_token"]
    assert call(node, "LIST", "cubbyhole/", token=other).status_code == 404
