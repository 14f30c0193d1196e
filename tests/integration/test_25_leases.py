"""Leases (core.md sys/leases, pki.md 3.4): a PKI role with generate_lease hands out a lease with
each certificate; sys/leases lookup, list, renew (refused: PKI leases are not renewable),
revoke, revoke-prefix and revoke-force; an expired lease revokes its certificate by itself;
revoking the token that created leases revokes them; sudo is needed to list and revoke by
prefix. Revocation is checked where it matters: pki/cert/<serial> and the CRL."""
import datetime
import time

from cryptography import x509

from _procs import SCALE


def mount(node, path, ttl="2h"):
    c = node.client()
    c.sys.enable_secrets_engine("pki", path=path, config={"max_lease_ttl": "87600h"})
    c.secrets.pki.generate_root("internal", f"{path} Root", mount_point=path,
                                extra_params={"key_type": "ec"})
    c.secrets.pki.create_or_update_role("web", {"allow_any_name": True, "key_type": "ec",
                                               "ttl": ttl, "generate_lease": True},
                                        mount_point=path)
    c.secrets.pki.create_or_update_role("plain", {"allow_any_name": True, "key_type": "ec",
                                                 "ttl": ttl}, mount_point=path)


def issue(node, path, role="web", token=None, cn="a.example.com"):
    r = node.req("POST", f"{path}/issue/{role}", token=token, json={"common_name": cn})
    assert r.status_code == 200, r.text
    return r.json()


def cert_revoked(node, path, serial):
    d = node.req("GET", f"{path}/cert/{serial}", token="").json()["data"]
    return d["revocation_time"] > 0


def crl_serials(node, path):
    r = node.req("GET", f"{path}/crl", token="")
    assert r.status_code == 200, r.text
    return {format(e.serial_number, "x") for e in x509.load_der_x509_crl(r.content)}


def hexs(serial):
    return serial.replace(":", "").lstrip("0")


def lookup(node, lease_id, token=None):
    return node.req("PUT", "sys/leases/lookup", token=token, json={"lease_id": lease_id})


def lease_list(node, prefix, token=None):
    return node.req("LIST", f"sys/leases/lookup/{prefix}", token=token)


def test_issue_lookup_list_renew_revoke(node):
    mount(node, "pki")
    before = time.time()
    out = issue(node, "pki")
    lease_id = out["lease_id"]
    serial = out["data"]["serial_number"]
    assert lease_id.startswith("pki/issue/web/") and len(lease_id) == len("pki/issue/web/") + 36
    assert out["renewable"] is False
    assert 7100 <= out["lease_duration"] <= 7200
    # A role without generate_lease gives none.
    assert issue(node, "pki", role="plain")["lease_id"] == ""

    r = lookup(node, lease_id)
    assert r.status_code == 200, r.text
    d = r.json()["data"]
    assert d["id"] == lease_id
    assert d["renewable"] is False and d["last_renewal_time"] is None
    assert 7000 <= d["ttl"] <= 7200
    for k in ("issue_time", "expire_time"):
        assert d[k].endswith("Z") and "T" in d[k]
    assert d["issue_time"][:4] == time.strftime("%Y", time.gmtime(before))

    # hvac's helpers speak the same API.
    c = node.client()
    assert c.sys.read_lease(lease_id)["data"]["id"] == lease_id
    keys = c.sys.list_leases("pki/issue/web")["data"]["keys"]
    assert lease_id.rsplit("/", 1)[1] in keys
    top = lease_list(node, "")
    assert top.status_code == 200 and top.json()["data"]["keys"] == ["pki/"]
    assert lease_list(node, "pki/issue/").json()["data"]["keys"] == ["web/"]

    for path, body in (("sys/leases/renew", {"lease_id": lease_id, "increment": 60}),
                       ("sys/renew", {"lease_id": lease_id}),
                       (f"sys/renew/{lease_id}", {})):
        r = node.req("PUT", path, json=body)
        assert r.status_code == 400, r.text
        assert r.json()["errors"] == ["lease is not renewable"]

    assert not cert_revoked(node, "pki", serial)
    r = node.req("PUT", "sys/leases/revoke", json={"lease_id": lease_id})
    assert r.status_code == 204, r.text
    assert cert_revoked(node, "pki", serial)
    assert hexs(serial) in crl_serials(node, "pki")
    r = lookup(node, lease_id)
    assert r.status_code == 400 and r.json()["errors"] == ["invalid lease"]


def test_legacy_revoke_paths(node):
    a = issue(node, "pki", cn="b.example.com")
    b = issue(node, "pki", cn="c.example.com")
    assert node.req("PUT", f"sys/leases/revoke/{a['lease_id']}").status_code == 204
    assert node.req("PUT", f"sys/revoke/{b['lease_id']}").status_code == 204
    for o in (a, b):
        assert cert_revoked(node, "pki", o["data"]["serial_number"])
        assert lookup(node, o["lease_id"]).status_code == 400


def test_unknown_leases(node):
    for lid in ("pki/issue/web/00000000-0000-0000-0000-000000000000", "../core/keyring", "x"):
        r = lookup(node, lid)
        assert r.status_code == 400 and r.json()["errors"] == ["invalid lease"], r.text
        r = node.req("PUT", "sys/leases/renew", json={"lease_id": lid})
        assert r.status_code == 400 and r.json()["errors"] == ["lease not found"], r.text
        # Vault answers revocation of an unknown lease with 204.
        assert node.req("PUT", "sys/leases/revoke", json={"lease_id": lid}).status_code == 204
    r = lookup(node, "")
    assert r.status_code == 400 and r.json()["errors"] == ["missing lease id"]
    r = node.req("PUT", "sys/leases/renew", json={})
    assert r.status_code == 400 and r.json()["errors"] == ["lease_id must be specified"]


def test_revoke_prefix_and_force(node):
    mount(node, "pki2")
    outs = [issue(node, "pki2", cn=f"p{i}.example.com") for i in range(3)]
    keep = issue(node, "pki", cn="keep.example.com")
    r = node.req("PUT", "sys/leases/revoke-prefix/pki2/issue/web")
    assert r.status_code == 204, r.text
    for o in outs:
        assert cert_revoked(node, "pki2", o["data"]["serial_number"])
        assert lookup(node, o["lease_id"]).status_code == 400
    assert lookup(node, keep["lease_id"]).status_code == 200
    assert not cert_revoked(node, "pki", keep["data"]["serial_number"])
    crl = crl_serials(node, "pki2")
    assert {hexs(o["data"]["serial_number"]) for o in outs} <= crl

    more = [issue(node, "pki2", cn=f"f{i}.example.com") for i in range(2)]
    r = node.req("PUT", "sys/leases/revoke-force/pki2/")
    assert r.status_code == 204, r.text
    for o in more:
        assert lookup(node, o["lease_id"]).status_code == 400
        assert cert_revoked(node, "pki2", o["data"]["serial_number"])
    # The legacy spelling.
    o = issue(node, "pki2", cn="legacy.example.com")
    assert node.req("PUT", "sys/revoke-prefix/pki2/issue").status_code == 204
    assert lookup(node, o["lease_id"]).status_code == 400


def test_sudo_needed(node):
    c = node.client()
    c.sys.create_or_update_policy("leases-nosudo", """
path "sys/leases/*" { capabilities = ["create", "read", "update", "list"] }
path "sys/revoke-prefix/*" { capabilities = ["update"] }
path "pki/issue/*" { capabilities = ["update"] }
""")
    tok = c.auth.token.create(policies=["leases-nosudo"], ttl="1h")["auth"]["client_token"]
    o = issue(node, "pki", token=tok, cn="nosudo.example.com")
    for method, path in (("LIST", "sys/leases/lookup/pki/issue/web"),
                         ("PUT", "sys/leases/revoke-prefix/pki/issue/web"),
                         ("PUT", "sys/leases/revoke-force/pki/"),
                         ("PUT", "sys/revoke-prefix/pki/")):
        r = node.req(method, path, token=tok)
        assert r.status_code == 403, (path, r.text)
    # Nothing changed.
    assert lookup(node, o["lease_id"]).status_code == 200
    assert not cert_revoked(node, "pki", o["data"]["serial_number"])
    # lookup (no sudo) works for this token.
    assert lookup(node, o["lease_id"], token=tok).status_code == 200


def test_token_revocation_revokes_leases(node):
    c = node.client()
    parent = c.auth.token.create(policies=["root"], ttl="1h")["auth"]["client_token"]
    child = node.client(parent).auth.token.create(policies=["root"], ttl="1h")["auth"][
        "client_token"]
    a = issue(node, "pki", token=parent, cn="tok-a.example.com")
    b = issue(node, "pki", token=child, cn="tok-b.example.com")
    other = issue(node, "pki", cn="tok-other.example.com")
    r = node.req("POST", "auth/token/revoke", json={"token": parent})
    assert r.status_code == 204, r.text
    deadline = time.time() + 10 * SCALE
    while time.time() < deadline and not all(
            cert_revoked(node, "pki", o["data"]["serial_number"]) for o in (a, b)):
        time.sleep(0.1)
    for o in (a, b):
        assert cert_revoked(node, "pki", o["data"]["serial_number"])
        assert lookup(node, o["lease_id"]).status_code == 400
    assert lookup(node, other["lease_id"]).status_code == 200


def test_short_lease_expires(node):
    mount(node, "pki3", ttl="3s")
    o = issue(node, "pki3")
    assert 1 <= o["lease_duration"] <= 3
    serial = o["data"]["serial_number"]
    assert lookup(node, o["lease_id"]).status_code == 200
    assert not cert_revoked(node, "pki3", serial)
    deadline = time.time() + 15 * SCALE
    while time.time() < deadline and lookup(node, o["lease_id"]).status_code == 200:
        time.sleep(0.2)
    assert lookup(node, o["lease_id"]).status_code == 400
    # The lease ends at NotAfter: the certificate is revoked then, unless it had already
    # expired (Vault keeps expired certificates off the CRL), when only the lease goes.
    if cert_revoked(node, "pki3", serial):
        assert hexs(serial) in crl_serials(node, "pki3")
    else:
        pem = node.req("GET", "pki3/cert/" + serial, token="").json()["data"]["certificate"]
        cert = x509.load_pem_x509_certificate(pem.encode())
        not_after = cert.not_valid_after.replace(tzinfo=datetime.timezone.utc).timestamp()
        assert time.time() >= not_after


def test_lease_survives_restart(node):
    o = issue(node, "pki", cn="restart.example.com")
    node.restart()
    assert lookup(node, o["lease_id"]).status_code == 200
    assert node.req("PUT", "sys/leases/revoke", json={"lease_id": o["lease_id"]}).status_code == 204
    assert cert_revoked(node, "pki", o["data"]["serial_number"])


def test_unmount_revokes_leases(node):
    mount(node, "pki4")
    o = issue(node, "pki4")
    node.client().sys.disable_secrets_engine("pki4")
    assert lookup(node, o["lease_id"]).status_code == 400


def num_leases(node):
    body = node.req("GET", "sys/metrics").json()
    g = [x for x in body["Gauges"] if x["Name"] == "vault.expire.num_leases"]
    assert len(g) == 1, body["Gauges"]
    text = node.req("GET", "sys/metrics", params={"format": "prometheus"}).text
    line = [ln for ln in text.splitlines() if ln.startswith("vault_expire_num_leases ")]
    assert line == [f"vault_expire_num_leases {g[0]['Value']}"]
    return g[0]["Value"]


def test_num_leases_gauge(node):
    n0 = num_leases(node)
    a = issue(node, "pki", cn="g1.example.com")
    issue(node, "pki", cn="g2.example.com")
    issue(node, "pki", role="plain", cn="g3.example.com")
    assert num_leases(node) == n0 + 2
    assert node.req("PUT", "sys/leases/revoke", json={"lease_id": a["lease_id"]}).status_code == 204
    assert num_leases(node) == n0 + 1


def test_sign_gives_a_lease(node):
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    key = ec.generate_private_key(ec.SECP256R1())
    csr = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "signed.example.com")])).sign(
            key, hashes.SHA256())
    pem = csr.public_bytes(serialization.Encoding.PEM).decode()
    r = node.req("POST", "pki/sign/web", json={"csr": pem, "common_name": "signed.example.com"})
    assert r.status_code == 200, r.text
    o = r.json()
    assert o["lease_id"].startswith("pki/sign/web/")
    r = node.req("POST", "pki/sign-verbatim/web", json={"csr": pem})
    assert r.status_code == 200, r.text
    v = r.json()
    assert v["lease_id"].startswith("pki/sign-verbatim/web/")
    # sign-verbatim without a role never leases (pki.md 3.3).
    r = node.req("POST", "pki/sign-verbatim", json={"csr": pem, "ttl": "1h"})
    assert r.status_code == 200, r.text
    assert r.json()["lease_id"] == ""
    for x in (o, v):
        assert node.req("PUT", f"sys/leases/revoke/{x['lease_id']}").status_code == 204
        assert cert_revoked(node, "pki", x["data"]["serial_number"])


def test_expiry_scheduled_again_after_seal(node):
    """The schedule is rebuilt from storage at unseal: a lease issued before a seal still
    expires by itself afterwards."""
    c = node.client()
    c.secrets.pki.create_or_update_role("short", {"allow_any_name": True, "key_type": "ec",
                                                 "ttl": "4s", "generate_lease": True},
                                        mount_point="pki")
    o = issue(node, "pki", role="short", cn="sealed.example.com")
    assert node.req("PUT", "sys/seal").status_code == 204
    node.server.unseal(node.keys)
    assert lookup(node, o["lease_id"]).status_code == 200
    deadline = time.time() + 15 * SCALE
    while time.time() < deadline and lookup(node, o["lease_id"]).status_code == 200:
        time.sleep(0.2)
    assert lookup(node, o["lease_id"]).status_code == 400


def test_revoke_after_remount(node):
    """The lease finds its engine by the mount's uuid: after a remount, revoking it still
    revokes the certificate (at its new path)."""
    mount(node, "pki5")
    o = issue(node, "pki5", cn="moved.example.com")
    r = node.req("POST", "sys/remount", json={"from": "pki5", "to": "pki6"})
    assert r.status_code in (200, 204), r.text
    assert node.req("PUT", "sys/leases/revoke", json={"lease_id": o["lease_id"]}).status_code == 204
    assert cert_revoked(node, "pki6", o["data"]["serial_number"])
    assert lookup(node, o["lease_id"]).status_code == 400


def test_revoke_sync_false_is_accepted(node):
    """Vault's sync=false: 202 at once, the revocation completes in the background."""
    o = issue(node, "pki", cn="async.example.com")
    r = node.req("PUT", "sys/leases/revoke", json={"lease_id": o["lease_id"], "sync": False})
    assert r.status_code == 202, r.text
    deadline = time.time() + 10 * SCALE
    while time.time() < deadline and lookup(node, o["lease_id"]).status_code == 200:
        time.sleep(0.1)
    assert lookup(node, o["lease_id"]).status_code == 400
    assert cert_revoked(node, "pki", o["data"]["serial_number"])
    p = issue(node, "pki", role="web", cn="async2.example.com")
    r = node.req("PUT", "sys/leases/revoke-prefix/pki/issue/web", json={"sync": False})
    assert r.status_code == 202, r.text
    deadline = time.time() + 10 * SCALE
    while time.time() < deadline and lookup(node, p["lease_id"]).status_code == 200:
        time.sleep(0.1)
    assert lookup(node, p["lease_id"]).status_code == 400
