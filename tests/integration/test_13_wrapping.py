"""Response wrapping through hvac and raw requests (core.md section 6)."""
import concurrent.futures
import time

import pytest
import requests

INVALID = {"errors": ["wrapping token is not valid or does not exist"]}


def wrap(node, method, path, ttl="60", token=None, **kw):
    r = node.req(method, path, token=token, headers={"X-Vault-Wrap-TTL": ttl}, **kw)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["data"] is None and body["auth"] is None and body["request_id"] == ""
    return body["wrap_info"]


def lookup(node, tok):
    return requests.post(node.url("sys/wrapping/lookup"), json={"token": tok}, timeout=10)


def unwrap(node, tok):
    return requests.post(node.url("sys/wrapping/unwrap"), headers={"X-Vault-Token": tok},
                         timeout=30)


def test_wrap_kv_read_lookup_unwrap_once(node):
    c = node.client()
    c.write("secret/wrapped", value="s3cret", ttl="1h")
    direct = node.req("GET", "secret/wrapped").json()
    info = c.read("secret/wrapped", wrap_ttl="90s")["wrap_info"]
    assert set(info) >= {"token", "accessor", "ttl", "creation_time", "creation_path"}
    assert info["ttl"] == 90 and info["creation_path"] == "secret/wrapped"
    assert "wrapped_accessor" not in info
    look = lookup(node, info["token"])
    assert look.status_code == 200, look.text
    assert look.json()["data"] == {"creation_path": "secret/wrapped",
                                   "creation_time": info["creation_time"], "creation_ttl": 90}
    first = unwrap(node, info["token"])
    assert first.status_code == 200 and first.headers["content-type"] == "application/json"
    env = first.json()
    assert env["data"] == direct["data"] == {"value": "s3cret", "ttl": "1h"}
    assert env["lease_duration"] == 3600 and env["wrap_info"] is None
    assert env["request_id"] and env["request_id"] != direct["request_id"]
    second = unwrap(node, info["token"])
    assert second.status_code == 400 and second.json() == INVALID
    assert lookup(node, info["token"]).json() == INVALID


def test_hvac_unwrap_with_body_token(node):
    c = node.client()
    c.write("secret/viahvac", k="v")
    info = c.read("secret/viahvac", wrap_ttl="1m")["wrap_info"]
    got = c.sys.unwrap(token=info["token"])
    assert got["data"] == {"k": "v"}
    r = node.req("POST", "sys/wrapping/unwrap", json={"token": info["token"]})
    assert r.status_code == 400 and r.json() == INVALID


def test_fifty_parallel_unwraps_exactly_one_wins(node):
    node.client().write("secret/race", v="1")
    info = wrap(node, "GET", "secret/race")

    def one(_):
        return unwrap(node, info["token"]).status_code

    with concurrent.futures.ThreadPoolExecutor(max_workers=50) as ex:
        codes = list(ex.map(one, range(50)))
    assert codes.count(200) == 1, codes
    assert set(codes) == {200, 400}, codes


def test_ttl_expiry_refused_and_purged(node):
    node.client().write("secret/short", v="1")
    info = wrap(node, "GET", "secret/short", ttl="2s")
    assert lookup(node, info["token"]).status_code == 200
    time.sleep(2.5)
    assert lookup(node, info["token"]).json() == INVALID
    assert unwrap(node, info["token"]).json() == INVALID
    deadline = time.monotonic() + 5
    while True:
        keys = node.req("LIST", "auth/token/accessors").json()["data"]["keys"]
        if info["accessor"] not in keys:
            break
        assert time.monotonic() < deadline, "expired wrapping token not purged"
        time.sleep(0.2)


def test_rewrap_invalidates_old(node):
    node.client().write("secret/rw", v="x")
    info = wrap(node, "GET", "secret/rw", ttl="5m")
    r = node.req("POST", "sys/wrapping/rewrap", json={"token": info["token"]})
    assert r.status_code == 200, r.text
    new = r.json()["wrap_info"]
    assert new["token"] != info["token"]
    assert new["creation_path"] == "secret/rw" and new["ttl"] == 300
    assert unwrap(node, info["token"]).json() == INVALID
    got = unwrap(node, new["token"])
    assert got.status_code == 200 and got.json()["data"] == {"v": "x"}


def test_wrapped_token_creation_has_wrapped_accessor(node):
    info = wrap(node, "POST", "auth/token/create", json={"ttl": "1h"})
    assert info["creation_path"] == "auth/token/create"
    env = unwrap(node, info["token"]).json()
    assert info["wrapped_accessor"] == env["auth"]["accessor"]
    tok = env["auth"]["client_token"]
    assert node.req("GET", "auth/token/lookup-self", token=tok).status_code == 200


def test_sys_wrapping_wrap(node):
    r = node.req("POST", "sys/wrapping/wrap", json={"a": "b"})
    assert r.status_code == 400
    assert r.json() == {"errors": ["endpoint requires response wrapping to be used"]}
    info = wrap(node, "POST", "sys/wrapping/wrap", json={"a": "b", "n": 1})
    assert info["creation_path"] == "sys/wrapping/wrap"
    assert unwrap(node, info["token"]).json()["data"] == {"a": "b", "n": 1}


def test_unwrap_of_non_wrapping_token(node):
    tok = node.client().auth.token.create(ttl="1h")["auth"]["client_token"]
    assert unwrap(node, tok).json() == INVALID
    r = node.req("POST", "sys/wrapping/unwrap", json={"token": tok})
    assert r.status_code == 400 and r.json() == INVALID
    assert lookup(node, tok).json() == INVALID
    assert lookup(node, "hvs.garbage").json() == INVALID
    r = requests.post(node.url("sys/wrapping/lookup"), json={}, timeout=10)
    assert r.status_code == 400
    r = node.req("POST", "sys/wrapping/unwrap", json={"token": ""})
    assert r.status_code == 400
    # The non-wrapping token still works: nothing was consumed.
    assert node.req("GET", "auth/token/lookup-self", token=tok).status_code == 200


@pytest.mark.parametrize("ttl", ["abc", "-5", "10q", "1h-"])
def test_bad_wrap_ttl_header(node, ttl):
    node.client().write("secret/badttl", v="1")
    before = node.req("LIST", "auth/token/accessors").json()["data"]["keys"]
    r = node.req("GET", "secret/badttl", headers={"X-Vault-Wrap-TTL": ttl})
    assert r.status_code == 400, r.text
    assert node.req("LIST", "auth/token/accessors").json()["data"]["keys"] == before


def test_duration_forms_accepted(node):
    node.client().write("secret/durs", v="1")
    for ttl, secs in (("15s", 15), ("20m", 1200), ("25h", 90000), ("300", 300)):
        assert wrap(node, "GET", "secret/durs", ttl=ttl)["ttl"] == secs


def test_policy_wrapping_bounds(node):
    c = node.client()
    c.write("secret/bounded", v="1")
    c.sys.create_or_update_policy(name="bounded", policy=(
        'path "secret/bounded" {\n capabilities = ["read"]\n'
        ' min_wrapping_ttl = "1m"\n max_wrapping_ttl = "10m"\n}\n'))
    tok = c.auth.token.create(policies=["bounded"], ttl="1h")["auth"]["client_token"]
    for ttl in (None, "30s", "11m"):
        headers = {"X-Vault-Wrap-TTL": ttl} if ttl else {}
        r = node.req("GET", "secret/bounded", token=tok, headers=headers)
        assert r.status_code == 403 and r.json() == {"errors": ["permission denied"]}, (ttl, r.text)
    info = wrap(node, "GET", "secret/bounded", ttl="5m", token=tok)
    assert unwrap(node, info["token"]).json()["data"] == {"v": "1"}


def test_single_use_survives_restart(node):
    node.client().write("secret/persist", v="p")
    used = wrap(node, "GET", "secret/persist", ttl="10m")
    fresh = wrap(node, "GET", "secret/persist", ttl="10m")
    assert unwrap(node, used["token"]).status_code == 200
    node.restart()
    assert unwrap(node, used["token"]).json() == INVALID
    got = unwrap(node, fresh["token"])
    assert got.status_code == 200 and got.json()["data"] == {"v": "p"}


def test_wrapped_response_is_not_in_plaintext_on_disk(node):
    node.client().write("secret/plain-check", marker="zz-unique-marker-zz")
    wrap(node, "GET", "secret/plain-check", ttl="10m")
    node.server.stop()
    blob = b"".join(p.read_bytes() for p in node.server.data_dir.rglob("*") if p.is_file())
    node.server.start()
    node.server.unseal(node.keys)
    assert b"zz-unique-marker-zz" not in blob
