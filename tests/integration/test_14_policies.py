"""ACL policies: the store endpoints, matching and precedence (core.md section 4)."""
import base64

import pytest


def caps(node, token, path):
    r = node.req("POST", "sys/capabilities", json={"token": token, "path": path})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["capabilities"] == body["data"]["capabilities"] == body["data"][path]
    return body["capabilities"]


def token_with(node, *policies):
    return node.client().auth.token.create(policies=list(policies),
                                           ttl="1h")["auth"]["client_token"]


def test_crud_hcl_json_base64_and_legacy(node):
    c = node.client()
    hcl = 'path "secret/a/*" {\n  capabilities = ["read", "list"]\n}\n'
    c.sys.create_or_update_policy(name="Reader", policy=hcl)
    assert c.sys.read_policy("reader")["data"] == {"name": "reader", "rules": hcl}
    r = node.req("GET", "sys/policies/acl/reader")
    assert r.json()["data"] == {"name": "reader", "policy": hcl}
    js = '{"path": {"secret/b": {"capabilities": ["update"]}}}'
    assert node.req("PUT", "sys/policies/acl/jsonpol", json={"policy": js}).status_code == 204
    b64 = base64.b64encode(b'path "secret/c" { capabilities = ["read"] }').decode()
    assert node.req("PUT", "sys/policies/acl/b64pol", json={"policy": b64}).status_code == 204
    keys = node.req("LIST", "sys/policies/acl").json()["data"]["keys"]
    assert {"default", "root", "reader", "jsonpol", "b64pol"} <= set(keys)
    legacy = node.req("GET", "sys/policy").json()
    assert set(legacy["policies"]) == set(legacy["keys"]) == set(legacy["data"]["keys"])
    assert "reader" in c.sys.list_policies()["data"]["policies"]
    tok = token_with(node, "jsonpol", "b64pol")
    assert caps(node, tok, "secret/b") == ["update"]
    assert caps(node, tok, "secret/c") == ["read"]
    c.sys.delete_policy("jsonpol")
    assert node.req("GET", "sys/policies/acl/jsonpol").status_code == 404
    # A token that names a deleted policy simply loses what it granted.
    assert caps(node, tok, "secret/b") == ["deny"]
    assert node.req("DELETE", "sys/policies/acl/never-existed").status_code == 204


@pytest.mark.parametrize("name,status,msg", [
    ("default", 400, "cannot delete default policy"),
    ("root", 400, 'cannot delete "root" policy'),
    ("response-wrapping", 400, 'cannot delete "response-wrapping" policy'),
])
def test_builtin_policies_not_deletable(node, name, status, msg):
    r = node.req("DELETE", f"sys/policies/acl/{name}")
    assert r.status_code == status and r.json() == {"errors": [msg]}


def test_root_policy_not_updatable(node):
    r = node.req("PUT", "sys/policies/acl/root", json={"policy": 'path "x" {}'})
    assert r.status_code == 400 and r.json() == {"errors": ['cannot update "root" policy']}


@pytest.mark.parametrize("text,needle", [
    ('path "secret/x" {\n  capabilities = ["reed"]\n}\n', "line 2"),
    ('path "secret/x" {\n  capabilities = ["read"\n', "line"),
    ('path "secret/x" {\n  capabilities = "read"\n}\n', "line 2"),
    ('path "secret/x" {\n  capabilities = ["read"]\n  max_wrapping_ttl = "ten"\n}\n', "line 3"),
    ('path "secret/x" {\n  capabilities = ["read"]\n  colour = "red"\n}\n', "line 3"),
    ('bogus "secret/x" {\n  capabilities = ["read"]\n}\n', "line 1"),
])
def test_malformed_policies_refused_with_line(node, text, needle):
    r = node.req("PUT", "sys/policies/acl/broken", json={"policy": text})
    assert r.status_code == 400, r.text
    err = r.json()["errors"][0]
    assert err.startswith("failed to parse policy") and needle in err, err
    assert node.req("GET", "sys/policies/acl/broken").status_code == 404


def test_unknown_capability_named(node):
    r = node.req("PUT", "sys/policies/acl/broken2",
                 json={"policy": 'path "a" { capabilities = ["fly"] }'})
    assert r.status_code == 400 and "fly" in r.json()["errors"][0]


def test_precedence(node):
    c = node.client()
    c.sys.create_or_update_policy(name="prec", policy="""
path "secret/*" { capabilities = ["read"] }
path "secret/team/*" { capabilities = ["list"] }
path "secret/team/exact" { capabilities = ["update"] }
path "secret/+/shared" { capabilities = ["create"] }
path "secret/team/+" { capabilities = ["delete"] }
path "secret/locked/*" { capabilities = ["deny"] }
path "secret/zip-*" { capabilities = ["patch"] }
""")
    c.sys.create_or_update_policy(name="prec2", policy="""
path "secret/team/exact" { capabilities = ["read"] }
path "secret/locked/*" { capabilities = ["sudo", "read"] }
""")
    tok = token_with(node, "prec", "prec2")
    assert caps(node, tok, "secret/other") == ["read"]
    # Exact beats every glob; the same pattern in two policies is a union.
    assert caps(node, tok, "secret/team/exact") == ["read", "update"]
    # '+' patterns: the first wildcard later wins ("secret/team/+" over "secret/+/shared").
    assert caps(node, tok, "secret/team/shared") == ["delete"]
    assert caps(node, tok, "secret/ops/shared") == ["create"]
    # A non-'*' pattern beats a '*' one at the same wildcard position.
    assert caps(node, tok, "secret/team/one") == ["delete"]
    assert caps(node, tok, "secret/team/one/two") == ["list"]
    # deny wins over everything, sudo included.
    assert caps(node, tok, "secret/locked/x") == ["deny"]
    assert caps(node, tok, "secret/zip-zap/x") == ["patch"]
    assert node.req("GET", "secret/locked/x", token=tok).status_code == 403


def test_enforced_on_requests_create_vs_update(node):
    c = node.client()
    c.sys.create_or_update_policy(name="creator-only", policy="""
path "secret/cu/*" { capabilities = ["create", "read"] }
""")
    tok = token_with(node, "creator-only")
    assert node.req("POST", "secret/cu/new", token=tok, json={"a": 1}).status_code == 204
    # The item now exists: a second write is an update, which is not granted.
    r = node.req("POST", "secret/cu/new", token=tok, json={"a": 2})
    assert r.status_code == 403
    assert node.req("GET", "secret/cu/new", token=tok).json()["data"] == {"a": 1}
    assert node.req("DELETE", "secret/cu/new", token=tok).status_code == 403
    assert node.req("LIST", "secret/cu", token=tok).status_code == 403


def test_parameters(node):
    c = node.client()
    c.sys.create_or_update_policy(name="params", policy="""
path "secret/p/allowed" {
  capabilities = ["create", "update"]
  allowed_parameters = { "color" = ["red", "gr*"], "size" = [] }
}
path "secret/p/denied" {
  capabilities = ["create", "update"]
  denied_parameters = { "admin" = [] }
}
path "secret/p/required" {
  capabilities = ["create", "update"]
  required_parameters = ["owner"]
}
""")
    tok = token_with(node, "params")

    def w(path, body):
        return node.req("POST", path, token=tok, json=body).status_code

    assert w("secret/p/allowed", {"color": "red", "size": "9"}) == 204
    assert w("secret/p/allowed", {"color": "green"}) == 204
    assert w("secret/p/allowed", {"color": "blue"}) == 403
    assert w("secret/p/allowed", {"shape": "x"}) == 403
    assert w("secret/p/denied", {"admin": "yes"}) == 403
    assert w("secret/p/denied", {"user": "yes"}) == 204
    assert w("secret/p/required", {"x": "1"}) == 403
    assert w("secret/p/required", {"owner": "me"}) == 204


def test_sudo_paths(node):
    c = node.client()
    c.sys.create_or_update_policy(name="rot", policy='path "sys/rotate" { capabilities = ["update"] }')
    c.sys.create_or_update_policy(name="rotsudo",
                                  policy='path "sys/rotate" { capabilities = ["update", "sudo"] }')
    assert node.req("POST", "sys/rotate", token=token_with(node, "rot")).status_code == 403
    assert node.req("POST", "sys/rotate", token=token_with(node, "rotsudo")).status_code == 204
    r = node.req("LIST", "auth/token/accessors", token=token_with(node, "rot"))
    assert r.status_code == 403


def test_capabilities_self_and_root(node):
    r = node.req("POST", "sys/capabilities-self", json={"path": "secret/anything"})
    assert r.json()["capabilities"] == ["root"]
    tok = token_with(node, "nothing-here")
    r = node.req("POST", "sys/capabilities-self", token=tok,
                 json={"paths": ["secret/x", "cubbyhole/x"]})
    assert r.status_code == 200, r.text
    assert r.json()["data"]["secret/x"] == ["deny"]
    assert r.json()["data"]["cubbyhole/x"] == ["create", "delete", "list", "read", "update"]


def test_unknown_path_permission_before_routing(node):
    tok = token_with(node, "nothing-here")
    assert node.req("GET", "nosuchmount/x", token=tok).status_code == 403
    assert node.req("GET", "nosuchmount/x").status_code == 404


def test_ui_mounts_follow_the_callers_access(node):
    """sys/internal/ui/mounts needs no ACL rule of its own (the vault CLI's kv preflight), but a
    caller sees only the mounts it has some access to (Vault's hasMountAccess)."""
    c = node.client()
    c.sys.enable_secrets_engine("kv", path="hidden-kv")
    c.sys.create_or_update_policy(name="kvonly", policy='path "secret/app/*" '
                                  '{ capabilities = ["read"] }')
    tok = token_with(node, "kvonly")
    r = node.req("GET", "sys/internal/ui/mounts/secret/app/db", token=tok)
    assert r.status_code == 200, r.text
    assert r.json()["data"]["type"] == "kv" and r.json()["data"]["path"] == "secret/"
    r = node.req("GET", "sys/internal/ui/mounts/hidden-kv/x", token=tok)
    assert r.status_code == 403
    listed = node.req("GET", "sys/internal/ui/mounts", token=tok).json()["data"]["secret"]
    assert "secret/" in listed and "hidden-kv/" not in listed
    assert "hidden-kv/" in node.req("GET", "sys/internal/ui/mounts").json()["data"]["secret"]
    # Without a token only listing_visibility=unauth mounts show.
    r = node.req("GET", "sys/internal/ui/mounts/secret/app/db", token="")
    assert r.status_code == 403
    c.sys.tune_mount_configuration("hidden-kv", listing_visibility="unauth")
    r = node.req("GET", "sys/internal/ui/mounts/hidden-kv/x", token="")
    assert r.status_code == 200 and r.json()["data"]["type"] == "kv"
