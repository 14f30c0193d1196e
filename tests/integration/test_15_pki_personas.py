"""The five personas of Vault's PKI role-based access table, enforced path by path.

The table (Vault docs, "PKI secrets engine considerations", Role-Based Access) says which of
Operator, Agent, Advanced, Requester and Unauthed may do what on a PKI mount. Each persona is
written here as an ACL policy; every row is then checked both through sys/capabilities and with
a real request against a real PKI mount at pki/ (a root CA, a role "web"): a persona the table
allows is never refused with 403, one it does not allow always is. Unauthed is a policy too, so
the ACL side of its rows is checked like the others; test_unauthenticated_paths then sends the
Unauthed rows with no token at all, as Vault serves them, and checks that everything else is
refused without one.
"""
import pytest

ALL = "OGARU"
READ, LIST, WRITE = "read", "list", "write"

# (path under pki/, operation, personas allowed: O=Operator G=aGent A=Advanced R=Requester
# U=Unauthed)
ROWS = [
    ("ca", READ, ALL), ("ca/pem", READ, ALL), ("ca_chain", READ, ALL),
    ("crl", READ, ALL), ("crl/pem", READ, ALL), ("crl/delta", READ, ALL),
    ("crl/delta/pem", READ, ALL), ("cert/1a-2b", READ, ALL), ("cert/1a-2b/raw", READ, ALL),
    ("cert/1a-2b/raw/pem", READ, ALL), ("issuers", LIST, ALL),
    ("issuer/default/json", READ, ALL), ("issuer/default/der", READ, ALL),
    ("issuer/default/pem", READ, ALL), ("issuer/default/crl", READ, ALL),
    ("issuer/default/crl/der", READ, ALL), ("issuer/default/crl/pem", READ, ALL),
    ("issuer/default/crl/delta", READ, ALL), ("issuer/default/crl/delta/pem", READ, ALL),
    ("ocsp/MFQwUjBQ", READ, ALL), ("ocsp", WRITE, ALL),
    ("certs", LIST, "OGAR"), ("revoke-with-key", WRITE, "OGAR"), ("roles", LIST, "OGAR"),
    ("roles/web", READ, "OGAR"), ("issue/web", WRITE, "OGAR"), ("sign/web", WRITE, "OGAR"),
    ("issuer/default/issue/web", WRITE, "OGA"), ("issuer/default/sign/web", WRITE, "OGA"),
    ("config/auto-tidy", READ, "OG"), ("config/ca", READ, "OG"), ("config/crl", READ, "OG"),
    ("config/issuers", READ, "OG"), ("crl/rotate", READ, "OG"),
    ("crl/rotate-delta", READ, "OG"), ("roles/web", WRITE, "OG"),
    ("issuer/default", READ, "OG"), ("sign-verbatim", WRITE, "OG"),
    ("sign-verbatim/web", WRITE, "OG"), ("issuer/default/sign-verbatim", WRITE, "OG"),
    ("issuer/default/sign-verbatim/web", WRITE, "OG"), ("revoke", WRITE, "OG"),
    ("tidy", WRITE, "OG"), ("tidy-cancel", WRITE, "OG"), ("tidy-status", READ, "OG"),
    ("config/auto-tidy", WRITE, "O"), ("config/ca", WRITE, "O"), ("config/crl", WRITE, "O"),
    ("config/issuers", WRITE, "O"), ("config/keys", READ, "O"), ("config/keys", WRITE, "O"),
    ("config/urls", READ, "O"), ("config/urls", WRITE, "O"), ("issuer/default", WRITE, "O"),
    ("issuer/default/revoke", WRITE, "O"), ("issuer/default/sign-intermediate", WRITE, "O"),
    ("issuer/default/sign-self-issued", WRITE, "O"),
    ("issuers/generate/root/internal", WRITE, "O"), ("issuers/import/bundle", WRITE, "O"),
    ("intermediate/generate/internal", WRITE, "O"), ("intermediate/cross-sign", WRITE, "O"),
    ("intermediate/set-signed", WRITE, "O"), ("keys", LIST, "O"), ("key/k1", READ, "O"),
    ("key/k1", WRITE, "O"), ("keys/generate/internal", WRITE, "O"),
    ("keys/import", WRITE, "O"), ("root/generate/internal", WRITE, "O"),
    ("root/sign-intermediate", WRITE, "O"), ("root/sign-self-issued", WRITE, "O"),
    ("root/rotate/internal", WRITE, "O"), ("root/replace", WRITE, "O"),
]

W = '["create", "update"]'
UNAUTHED = "\n".join(
    [f'path "pki/{p}" {{ capabilities = ["read"] }}' for p in (
        "ca", "ca/pem", "ca_chain", "crl", "crl/pem", "crl/delta", "crl/delta/pem", "cert/+",
        "cert/+/raw", "cert/+/raw/pem", "issuer/+/json", "issuer/+/der", "issuer/+/pem",
        "issuer/+/crl", "issuer/+/crl/der", "issuer/+/crl/pem", "issuer/+/crl/delta",
        "issuer/+/crl/delta/der", "issuer/+/crl/delta/pem", "ocsp/*")]
    + ['path "pki/issuers" { capabilities = ["list"] }',
       f'path "pki/ocsp" {{ capabilities = {W} }}'])
REQUESTER = UNAUTHED + "\n" + "\n".join([
    'path "pki/certs" { capabilities = ["list"] }',
    'path "pki/roles" { capabilities = ["list"] }',
    'path "pki/roles/+" { capabilities = ["read"] }',
    f'path "pki/revoke-with-key" {{ capabilities = {W} }}',
    f'path "pki/issue/+" {{ capabilities = {W} }}',
    f'path "pki/sign/+" {{ capabilities = {W} }}'])
ADVANCED = REQUESTER + "\n" + "\n".join([
    f'path "pki/issuer/+/issue/+" {{ capabilities = {W} }}',
    f'path "pki/issuer/+/sign/+" {{ capabilities = {W} }}'])
AGENT = ADVANCED.replace('path "pki/roles/+" { capabilities = ["read"] }',
                         'path "pki/roles/+" { capabilities = ["read", "create", "update"] }') \
    + "\n" + "\n".join(
    [f'path "pki/{p}" {{ capabilities = ["read"] }}' for p in (
        "config/auto-tidy", "config/ca", "config/crl", "config/issuers", "crl/rotate",
        "crl/rotate-delta", "issuer/+", "tidy-status")]
    + [f'path "pki/{p}" {{ capabilities = {W} }}' for p in (
        "sign-verbatim", "sign-verbatim/+", "issuer/+/sign-verbatim",
        "issuer/+/sign-verbatim/+", "revoke", "tidy", "tidy-cancel")])
OPERATOR = 'path "pki/*" { capabilities = ["create", "read", "update", "delete", "list"] }\n' \
    + '\n'.join(f'path "pki/{p}" {{ capabilities = ["create", "update", "delete", "sudo"] }}'
                for p in ("root", "root/sign-self-issued"))

PERSONAS = {"O": OPERATOR, "G": AGENT, "A": ADVANCED, "R": REQUESTER, "U": UNAUTHED}


@pytest.fixture(scope="module")
def tokens(node):
    c = node.client()
    c.sys.enable_secrets_engine("pki", path="pki", config={"max_lease_ttl": "87600h"})
    c.write("pki/root/generate/internal", common_name="Persona Root", ttl="87600h",
            key_type="ec")
    c.write("pki/roles/web", allow_any_name=True, ttl="1h", key_type="ec")
    out = {}
    for key, text in PERSONAS.items():
        c.sys.create_or_update_policy(name=f"pki-{key}", policy=text)
        out[key] = c.auth.token.create(policies=[f"pki-{key}"], ttl="1h",
                                       no_default_policy=True)["auth"]["client_token"]
    return out


def needed(op):
    return {READ: {"read"}, LIST: {"list"}, WRITE: {"create", "update"}}[op]


@pytest.mark.parametrize("persona", list(PERSONAS))
def test_persona_table(node, tokens, persona):
    tok = tokens[persona]
    wrong = []
    for path, op, allowed in ROWS:
        want = persona in allowed
        full = f"pki/{path}"
        r = node.req("POST", "sys/capabilities", json={"token": tok, "path": full})
        have = set(r.json()["data"][full])
        cap_ok = needed(op) <= have
        if op == READ:
            resp = node.req("GET", full, token=tok)
        elif op == LIST:
            resp = node.req("LIST", full, token=tok)
        else:
            resp = node.req("POST", full, token=tok, json={"probe": "1"})
        req_ok = resp.status_code != 403
        if cap_ok != want or req_ok != want:
            wrong.append((path, op, want, sorted(have), resp.status_code))
    assert not wrong, wrong


def test_unauthenticated_paths(node, tokens):
    """Vault serves the Unauthed rows without a token; everything else needs one."""
    wrong = []
    for path, op, allowed in ROWS:
        full = f"pki/{path}"
        if op == READ:
            resp = node.req("GET", full, token="")
        elif op == LIST:
            resp = node.req("LIST", full, token="")
        else:
            resp = node.req("POST", full, token="", json={"probe": "1"})
        if ("U" in allowed) != (resp.status_code != 403):
            wrong.append((path, op, resp.status_code))
    assert not wrong, wrong
    ca = node.req("GET", "pki/ca/pem", token="")
    assert ca.status_code == 200 and ca.text.startswith("-----BEGIN CERTIFICATE-----")
    issued = node.req("POST", "pki/issue/web", token="",
                      json={"common_name": "a.example.com"})
    assert issued.status_code == 403


def test_sudo_paths(node):
    """root/sign-self-issued and DELETE root need sudo on top of the operation's capability,
    as Vault marks them; everything else under the mount does not."""
    c = node.client()
    c.sys.enable_secrets_engine("pki", path="pki-sudo", config={"max_lease_ttl": "87600h"})
    c.write("pki-sudo/root/generate/internal", common_name="Sudo Root", ttl="87600h", key_type="ec")
    plain = 'path "pki-sudo/*" { capabilities = ["create", "read", "update", "delete", "list"] }'
    c.sys.create_or_update_policy(name="pki-nosudo", policy=plain)
    c.sys.create_or_update_policy(
        name="pki-sudo", policy=plain + '\npath "pki-sudo/root*" { capabilities = '
        '["create", "update", "delete", "sudo"] }')
    nosudo = c.auth.token.create(policies=["pki-nosudo"], ttl="1h")["auth"]["client_token"]
    sudo = c.auth.token.create(policies=["pki-sudo"], ttl="1h")["auth"]["client_token"]
    ca = node.req("GET", "pki-sudo/ca/pem", token="").text
    for tok in (nosudo, sudo):
        r = node.req("POST", "pki-sudo/root/sign-self-issued", token=tok,
                     json={"certificate": ca})
        assert (r.status_code == 403) == (tok == nosudo), r.text
    # sudo is not needed elsewhere: issuer/:ref/sign-self-issued works without it
    r = node.req("POST", "pki-sudo/issuer/default/sign-self-issued", token=nosudo,
                 json={"certificate": ca})
    assert r.status_code == 200, r.text
    assert node.req("DELETE", "pki-sudo/root", token=nosudo).status_code == 403
    assert node.req("GET", "pki-sudo/issuers", token=nosudo, params={"list": "true"}).json()[
        "data"]["keys"], "refused DELETE root must not delete anything"
    assert node.req("DELETE", "pki-sudo/root", token=sudo).status_code in (200, 204)
    assert node.req("LIST", "pki-sudo/issuers", token=nosudo).status_code == 404
