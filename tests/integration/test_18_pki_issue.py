"""PKI issuers, roles and issuance end to end (pki.md 1-3), checked with hvac's PKI client, the
openssl CLI and python cryptography."""
import datetime
import json
import subprocess

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID


@pytest.fixture(scope="module")
def pki(node):
    c = node.client()
    c.sys.enable_secrets_engine("pki", path="pki", config={"max_lease_ttl": "87600h"})
    return c.secrets.pki


def openssl_verify(tmp_path, chain_pems, leaf_pem):
    ca = tmp_path / "chain.pem"
    ca.write_text("\n".join(chain_pems) + "\n")
    leaf = tmp_path / "leaf.pem"
    leaf.write_text(leaf_pem + "\n")
    return subprocess.run(["openssl", "verify", "-CAfile", str(ca), str(leaf)],
                          capture_output=True, text=True)


def make_csr(cn, key=None, sans=()):
    key = key or ec.generate_private_key(ec.SECP256R1())
    b = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
    if sans:
        b = b.add_extension(x509.SubjectAlternativeName([x509.DNSName(s) for s in sans]), False)
    csr = b.sign(key, hashes.SHA256())
    return csr.public_bytes(serialization.Encoding.PEM).decode(), key


def test_root_intermediate_leaf_chain(node, pki, tmp_path):
    root = pki.generate_root("internal", "Example Root", extra_params={
        "key_type": "ec", "ttl": "87600h", "issuer_name": "root-2026"})["data"]
    assert root["issuer_name"] == "root-2026" and root["key_id"]
    assert root["certificate"] == root["issuing_ca"]
    assert len(root["serial_number"].split(":")) <= 20
    # An intermediate in a second mount, signed by the root.
    node.client().sys.enable_secrets_engine("pki", path="pki-int",
                                            config={"max_lease_ttl": "43800h"})
    csr = pki.generate_intermediate("internal", "Example Intermediate", mount_point="pki-int",
                                    extra_params={"key_type": "rsa", "key_bits": 2048})
    csr = csr["data"]["csr"]
    signed = pki.sign_intermediate(csr, "Example Intermediate",
                                   extra_params={"ttl": "43800h"})["data"]
    assert signed["ca_chain"] and signed["issuing_ca"] == root["certificate"]
    imp = pki.set_signed_intermediate(signed["certificate"], mount_point="pki-int")["data"]
    assert len(imp["imported_issuers"]) == 1 and imp["imported_keys"] is None
    pki.create_or_update_role("web", {"allowed_domains": "example.com", "allow_subdomains": True,
                                      "max_ttl": "72h"}, mount_point="pki-int")
    # hvac's issue; the intermediate's chain is intermediate -> (root not known to pki-int).
    leaf = pki.generate_certificate("web", "www.example.com", extra_params={
        "alt_names": "api.example.com", "ttl": "1h"}, mount_point="pki-int")["data"]
    assert leaf["private_key_type"] == "rsa"
    res = openssl_verify(tmp_path, [signed["certificate"], root["certificate"]],
                         leaf["certificate"])
    assert res.returncode == 0, res.stdout + res.stderr
    cert = x509.load_pem_x509_certificate(leaf["certificate"].encode())
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["www.example.com", "api.example.com"]
    assert format(cert.serial_number, "x").zfill(2) in leaf["serial_number"].replace(":", "")
    exp = cert.not_valid_after.replace(tzinfo=datetime.timezone.utc).timestamp()
    assert leaf["expiration"] == int(exp)


def test_issue_formats_and_fetch(node, pki, tmp_path):
    pki.create_or_update_role("ec", {"allowed_domains": "example.com", "allow_subdomains": True,
                                     "key_type": "ec"})
    d = pki.generate_certificate("ec", "a.example.com",
                                 extra_params={"format": "der", "private_key_format": "pkcs8"})
    d = d["data"]
    import base64
    cert = x509.load_der_x509_certificate(base64.b64decode(d["certificate"]))
    assert cert.subject.rfc4514_string() == "CN=a.example.com"
    serialization.load_der_private_key(base64.b64decode(d["private_key"]), None)
    b = pki.generate_certificate("ec", "b.example.com",
                                 extra_params={"format": "pem_bundle"})["data"]
    assert b["certificate"].startswith("-----BEGIN EC PRIVATE KEY-----")
    assert b["certificate"].count("BEGIN CERTIFICATE") == 2
    # Stored: fetchable without a token, listed with one.
    r = node.req("GET", f"pki/cert/{d['serial_number']}", token="")
    assert r.status_code == 200 and r.json()["data"]["revocation_time"] == 0
    raw = node.req("GET", f"pki/cert/{d['serial_number'].replace(':', '-')}/raw", token="")
    assert raw.status_code == 200 and raw.headers["Content-Type"] == "application/pkix-cert"
    assert raw.content == base64.b64decode(d["certificate"])
    keys = pki.list_certificates()["data"]["keys"]
    assert d["serial_number"] in keys and b["serial_number"] in keys
    page = node.req("LIST", "pki/certs", params={"limit": 1}).json()["data"]["keys"]
    assert len(page) == 1
    ca = node.req("GET", "pki/ca/pem", token="")
    assert ca.status_code == 200 and "BEGIN CERTIFICATE" in ca.text


def test_no_store_writes_nothing(node, pki):
    pki.create_or_update_role("ephemeral", {"allow_any_name": True, "no_store": True,
                                            "key_type": "ec"})
    before = pki.list_certificates()["data"]["keys"]
    d = pki.generate_certificate("ephemeral", "anything.test")["data"]
    assert pki.list_certificates()["data"]["keys"] == before
    r = node.req("GET", f"pki/cert/{d['serial_number']}", token="")
    assert r.status_code == 404


def test_sign_with_csr(node, pki, tmp_path):
    pki.create_or_update_role("signer", {"allowed_domains": "example.com",
                                         "allow_subdomains": True, "key_type": "ec"})
    csr, _ = make_csr("svc.example.com", sans=["svc2.example.com"])
    d = pki.sign_certificate("signer", csr, "ignored.example.com")["data"]
    cert = x509.load_pem_x509_certificate(d["certificate"].encode())
    assert cert.subject.rfc4514_string() == "CN=svc.example.com"
    # Wrong key type for the role.
    rsa_csr, _ = make_csr("svc.example.com", key=rsa.generate_private_key(65537, 2048))
    r = node.req("POST", "pki/sign/signer", json={"csr": rsa_csr})
    assert r.status_code == 400 and r.json()["errors"] == ["role requires keys of type ec"]
    # sign-verbatim keeps the CSR's names even outside any role.
    any_csr, _ = make_csr("whatever.internal")
    d = node.req("POST", "pki/sign-verbatim", json={"csr": any_csr}).json()["data"]
    cert = x509.load_pem_x509_certificate(d["certificate"].encode())
    assert cert.subject.rfc4514_string() == "CN=whatever.internal"


# The role name-policy matrix (pki.md 2.4), Vault's outcomes.
NAME_CASES = [
    ({"allowed_domains": "example.com", "allow_bare_domains": True}, "example.com", True),
    ({"allowed_domains": "example.com"}, "example.com", False),
    ({"allowed_domains": "example.com", "allow_subdomains": True}, "a.b.example.com", True),
    ({"allowed_domains": "example.com", "allow_subdomains": True}, "example.com", False),
    ({"allowed_domains": "example.com", "allow_subdomains": True}, "*.example.com", True),
    ({"allowed_domains": "example.com", "allow_subdomains": True,
      "allow_wildcard_certificates": False}, "*.example.com", False),
    ({"allowed_domains": "example.com", "allow_subdomains": True}, "badexample.com", False),
    ({"allowed_domains": "*.example.com", "allow_glob_domains": True}, "a.b.example.com", True),
    ({"allowed_domains": "foo-*.example.com", "allow_glob_domains": True},
     "foo-1.example.com", True),
    ({"allowed_domains": "foo-*.example.com", "allow_glob_domains": True},
     "bar-1.example.com", False),
    ({"allow_any_name": True}, "anything.at.all", True),
    ({"allow_any_name": True, "allow_wildcard_certificates": False}, "*.at.all", False),
    ({"allow_any_name": True}, "under_score.test", False),
    ({"allow_any_name": True, "enforce_hostnames": False}, "under_score.test", True),
    ({}, "localhost", True),
    ({"allow_localhost": False}, "localhost", False),
    ({"allowed_domains": "example.com", "allow_subdomains": True}, "a..example.com", False),
    ({"allow_any_name": True}, "*.*.example.com", False),
    ({"allow_any_name": True}, "f*o.example.com", True),
    ({"allow_any_name": True}, "a.*.example.com", False),
    ({"allowed_domains": "example.com", "allow_bare_domains": True}, "user@example.com", True),
    ({"allowed_domains": "example.com", "allow_bare_domains": True,
      "cn_validations": "hostname"}, "user@example.com", False),
    ({"allowed_domains": "example.com", "allow_bare_domains": True,
      "cn_validations": "disabled"}, "not a hostname", True),
    ({"allowed_domains": "xn--bcher-kva.example", "allow_bare_domains": True},
     "bücher.example", False),
]


@pytest.mark.parametrize("role,cn,ok", NAME_CASES)
def test_name_policy_matrix(node, pki, role, cn, ok):
    body = dict(role, key_type="ec", no_store=True)
    r = node.req("POST", "pki/roles/matrix", json=body)
    assert r.status_code == 200, r.text
    r = node.req("POST", "pki/issue/matrix", json={"common_name": cn})
    if ok:
        assert r.status_code == 200, r.text
    else:
        assert r.status_code == 400
        assert r.json()["errors"] == [f"common name {cn} not allowed by this role"]


BAD_ISSUE = [
    ("pki/issue/nope", {"common_name": "a.example.com"}, "unknown role: nope"),
    ("pki/issue/ec", {"common_name": "a.example.com", "ttl": "1h", "not_after":
                      "2030-01-01T00:00:00Z"}, "Either ttl or not_after should be provided"),
    ("pki/issue/ec", {"common_name": "a.example.com", "format": "p12"},
     'the "format" path parameter must be "pem", "der", or "pem_bundle"'),
    ("pki/issue/ec", {"common_name": "a.example.com", "ip_sans": "not-an-ip"},
     'the value "not-an-ip" is not a valid IP address'),
    ("pki/issue/ec", {"common_name": "a.example.com", "uri_sans": "spiffe://x/y"},
     "URI Subject Alternative Names are not allowed in this role, but were provided via the API"),
    ("pki/issue/ec", {"common_name": "a.example.com", "alt_names": "evil.org"},
     "subject alternate name evil.org not allowed by this role"),
    ("pki/issue/ec", {}, "the common_name field is required"),
    ("pki/issuer/no-such/issue/ec", {"common_name": "a.example.com"},
     "unable to find PKI issuer for reference: no-such"),
    ("pki/sign/signer", {"csr": "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n"
                                "-----END CERTIFICATE REQUEST-----"},
     "certificate request could not be parsed"),
    ("pki/sign/signer", {"csr": ""}, '"csr" is empty'),
    ("pki/issue/ec", {"common_name": "a.example.com",
                      "alt_names": ",".join(f"h{i}.evil.org" for i in range(5000))},
     "not allowed by this role"),
]


@pytest.mark.parametrize("path,body,needle", BAD_ISSUE)
def test_bad_issue_requests_refused_and_nothing_stored(node, pki, path, body, needle):
    before = node.req("LIST", "pki/certs").json()["data"]["keys"]
    r = node.req("POST", path, json=body)
    assert r.status_code == 400, r.text
    assert needle in r.json()["errors"][0]
    assert node.req("LIST", "pki/certs").json()["data"]["keys"] == before


def test_csr_with_bad_signature_refused(node, pki):
    csr, _ = make_csr("svc.example.com")
    der = x509.load_pem_x509_csr(csr.encode()).public_bytes(serialization.Encoding.DER)
    broken = bytearray(der)
    broken[-5] ^= 0xFF
    import base64
    pem = ("-----BEGIN CERTIFICATE REQUEST-----\n" + base64.encodebytes(bytes(broken)).decode() +
           "-----END CERTIFICATE REQUEST-----\n")
    r = node.req("POST", "pki/sign/signer", json={"csr": pem})
    assert r.status_code == 400 and r.json()["errors"] == ["request signature invalid"]


@pytest.mark.parametrize("body,needle", [
    ({"key_type": "rsa", "key_bits": 1024}, "RSA keys < 2048 bits are unsafe"),
    ({"key_type": "dsa"}, "unknown key type dsa"),
    ({"key_type": "ec", "key_bits": 255}, "unsupported bit length for EC key: 255"),
    ({"key_type": "rsa", "signature_bits": 160}, "unsupported hash signature algorithm: 160"),
    ({"ttl": "10h", "max_ttl": "1h"}, '"ttl" value must be less than "max_ttl" value'),
    ({"cn_validations": "disabled,email"}, "cn_validations value incorrect"),
    ({"ext_key_usage_oids": "1.x"}, "could not be parsed as a valid oid"),
    ({"key_usage": "Teleport"}, "unknown key usage"),
])
def test_bad_roles_refused_and_unchanged(node, pki, body, needle):
    r = node.req("POST", "pki/roles/strict", json=body)
    assert r.status_code == 400 and needle in r.json()["errors"][0], r.text
    assert node.req("GET", "pki/roles/strict").status_code == 404


def test_ttl_capped_by_role_with_warning(node, pki):
    pki.create_or_update_role("short", {"allow_any_name": True, "key_type": "ec",
                                        "max_ttl": "1h"})
    r = node.req("POST", "pki/issue/short", json={"common_name": "x.test", "ttl": "5h"})
    body = r.json()
    assert r.status_code == 200
    assert any("longer than permitted maxTTL" in w for w in body["warnings"])
    cert = x509.load_pem_x509_certificate(body["data"]["certificate"].encode())
    life = cert.not_valid_after - cert.not_valid_before
    assert life <= datetime.timedelta(hours=1, seconds=31)


def test_leaf_not_after_behavior(node, pki):
    node.client().sys.enable_secrets_engine("pki", path="pki-short",
                                            config={"max_lease_ttl": "87600h"})
    pki.generate_root("internal", "Short Root", mount_point="pki-short",
                      extra_params={"key_type": "ec", "ttl": "2h"})
    pki.create_or_update_role("r", {"allow_any_name": True, "key_type": "ec"},
                              mount_point="pki-short")
    r = node.req("POST", "pki-short/issue/r", json={"common_name": "x.test", "ttl": "5h"})
    assert r.status_code == 400
    assert "beyond the expiration of the CA certificate" in r.json()["errors"][0]
    issuer = node.req("GET", "pki-short/issuer/default").json()["data"]
    r = node.req("PATCH", "pki-short/issuer/default", json={"leaf_not_after_behavior": "truncate"},
                 headers={"Content-Type": "application/merge-patch+json"})
    assert r.status_code == 200, r.text
    d = node.req("POST", "pki-short/issue/r", json={"common_name": "x.test", "ttl": "5h"})
    assert d.status_code == 200
    leaf = x509.load_pem_x509_certificate(d.json()["data"]["certificate"].encode())
    root = x509.load_pem_x509_certificate(issuer["certificate"].encode())
    assert leaf.not_valid_after == root.not_valid_after
    r = node.req("POST", "pki-short/issuer/default", json={"leaf_not_after_behavior": "later"})
    assert r.status_code == 400 and "leaf_not_after_behavior" in r.json()["errors"][0]


def test_issuers_keys_and_defaults(node, pki):
    c = node.client()
    c.sys.enable_secrets_engine("pki", path="pki-multi", config={"max_lease_ttl": "87600h"})
    a = node.req("POST", "pki-multi/root/generate/internal",
                 json={"common_name": "A", "key_type": "ec", "issuer_name": "a"}).json()["data"]
    b = node.req("POST", "pki-multi/issuers/generate/root/exported",
                 json={"common_name": "B", "key_type": "ed25519", "issuer_name": "b",
                       "key_name": "bkey"}).json()["data"]
    assert "BEGIN PRIVATE KEY" in b["private_key"] and b["private_key_type"] == "ed25519"
    lst = node.req("LIST", "pki-multi/issuers", token="").json()["data"]
    assert set(lst["keys"]) == {a["issuer_id"], b["issuer_id"]}
    assert lst["key_info"][a["issuer_id"]]["is_default"] is True
    r = node.req("POST", "pki-multi/root/generate/internal",
                 json={"common_name": "C", "issuer_name": "a"})
    assert r.status_code == 400 and r.json()["errors"] == ["issuer name already in use"]
    r = node.req("POST", "pki-multi/root/generate/internal",
                 json={"common_name": "C", "issuer_name": "default"})
    assert r.json()["errors"] == ["reserved keyword 'default' can not be used as issuer name"]
    r = node.req("POST", "pki-multi/config/issuers", json={"default": "b"})
    assert r.status_code == 200 and r.json()["data"]["default"] == b["issuer_id"]
    assert node.req("GET", "pki-multi/issuer/default").json()["data"]["issuer_name"] == "b"
    r = node.req("POST", "pki-multi/config/issuers", json={"default": "default"})
    assert r.status_code == 400
    r = node.req("DELETE", "pki-multi/key/bkey")
    assert r.status_code == 400 and "Key in Use by Issuer" in r.json()["errors"][0]
    keys = node.req("LIST", "pki-multi/keys").json()["data"]["keys"]
    assert b["key_id"] in keys and a["key_id"] in keys
    # A key generated on its own, then used by root/generate/existing.
    k = node.req("POST", "pki-multi/keys/generate/internal",
                 json={"key_type": "ec", "key_bits": 384, "key_name": "spare"}).json()["data"]
    assert k["key_type"] == "ec" and "private_key" not in k
    r = node.req("POST", "pki-multi/root/generate/existing",
                 json={"common_name": "D", "key_ref": "spare"}).json()["data"]
    assert r["key_id"] == k["key_id"]
    # The json/der/pem fetches need no token.
    j = node.req("GET", f"pki-multi/issuer/{a['issuer_id']}/json", token="")
    assert j.status_code == 200 and j.json()["data"]["issuer_name"] == "a"
    der = node.req("GET", "pki-multi/issuer/a/der", token="")
    x509.load_der_x509_certificate(der.content)
    r = node.req("DELETE", "pki-multi/issuer/b")
    assert r.status_code == 200 and r.json()["warnings"]
    assert node.req("GET", "pki-multi/issuer/b").status_code == 404
    assert node.req("GET", "pki-multi/ca", token="").status_code == 204


def test_issuance_survives_restart(node, pki):
    d = pki.generate_certificate("ec", "r.example.com")["data"]
    node.restart()
    r = node.req("GET", f"pki/cert/{d['serial_number']}", token="")
    assert r.status_code == 200
    d2 = pki.generate_certificate("ec", "s.example.com")["data"]
    assert d2["issuing_ca"] == d["issuing_ca"]
