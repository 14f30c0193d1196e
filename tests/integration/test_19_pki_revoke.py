"""PKI revocation, CRLs, delta CRLs and OCSP (pki.md 4), checked with the openssl CLI and python
cryptography: CRL signatures and entries, `openssl verify -crl_check`, `openssl ocsp` against
the responder for good, revoked and unknown certificates. The node runs with CRL pieces of
4 KiB (COFFER_PKI_CRL_CHUNK_BYTES) so that CRLs of a few hundred entries are stored in many
pieces, as a CRL of a million entries is with the real 512 KiB pieces."""
import base64
import datetime
import os
import subprocess
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtensionOID

from _procs import SCALE, Server
from conftest import Node


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    os.environ["COFFER_PKI_CRL_CHUNK_BYTES"] = "4096"
    s = Server(tmp_path_factory.mktemp("node"))
    try:
        s.start()
    finally:
        del os.environ["COFFER_PKI_CRL_CHUNK_BYTES"]
    init = s.init()
    s.unseal(init["keys_base64"])
    n = Node(s, init["root_token"], init["keys_base64"])
    yield n
    s.stop()
    s.close()


def mount(node, path, key_type="ec"):
    c = node.client()
    c.sys.enable_secrets_engine("pki", path=path, config={"max_lease_ttl": "87600h"})
    root = c.secrets.pki.generate_root("internal", f"{path} Root", mount_point=path,
                                       extra_params={"key_type": key_type})["data"]
    c.secrets.pki.create_or_update_role("r", {"allow_any_name": True, "key_type": "ec",
                                             "ttl": "2h"}, mount_point=path)
    return root


def issue(node, path, cn="a.example.com", **extra):
    r = node.req("POST", f"{path}/issue/r", json={"common_name": cn, **extra})
    assert r.status_code == 200, r.text
    return r.json()["data"]


def revoke(node, path, **body):
    return node.req("POST", f"{path}/revoke", json=body)


def get_crl(node, path, which="crl"):
    r = node.req("GET", f"{path}/{which}", token="")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/pkix-crl"
    return x509.load_der_x509_crl(r.content)


def serials(crl):
    return {format(e.serial_number, "x") for e in crl}


def hexs(serial):
    return serial.replace(":", "").lstrip("0")


def crl_number(crl):
    return crl.extensions.get_extension_for_oid(ExtensionOID.CRL_NUMBER).value.crl_number


def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text if text.endswith("\n") else text + "\n")
    return str(p)


def test_revoke_by_serial_crl_and_openssl_verify(node, tmp_path):
    root = mount(node, "pki")
    a = issue(node, "pki")
    b = issue(node, "pki")
    r = revoke(node, "pki", serial_number=a["serial_number"])
    assert r.status_code == 200, r.text
    d = r.json()["data"]
    assert d["state"] == "revoked" and d["revocation_time"] > 0
    assert d["revocation_time_rfc3339"].endswith("Z")
    # Revoking twice answers the first revocation time, and changes nothing.
    r2 = revoke(node, "pki", serial_number=a["serial_number"].replace(":", "-").upper())
    assert r2.status_code == 200 and r2.json()["data"]["revocation_time"] == d["revocation_time"]

    crl = get_crl(node, "pki")
    ca = x509.load_pem_x509_certificate(root["certificate"].encode())
    assert crl.is_signature_valid(ca.public_key())
    assert serials(crl) == {hexs(a["serial_number"])}
    assert crl_number(crl) >= 1
    entry = crl.get_revoked_certificate_by_serial_number(int(hexs(a["serial_number"]), 16))
    when = entry.revocation_date.replace(tzinfo=datetime.timezone.utc).timestamp()
    assert when == d["revocation_time"]
    aki = crl.extensions.get_extension_for_oid(ExtensionOID.AUTHORITY_KEY_IDENTIFIER).value
    ski = ca.extensions.get_extension_for_oid(ExtensionOID.SUBJECT_KEY_IDENTIFIER).value
    assert aki.key_identifier == ski.digest
    assert crl.issuer == ca.subject

    # openssl: the revoked leaf fails a CRL check, the other passes.
    pem = node.req("GET", "pki/crl/pem", token="")
    assert pem.headers["content-type"] == "application/x-pem-file"
    crlf = write(tmp_path, "crl.pem", pem.text)
    caf = write(tmp_path, "ca.pem", root["certificate"])
    out = subprocess.run(["openssl", "crl", "-in", crlf, "-CAfile", caf, "-noout"],
                         capture_output=True, text=True)
    assert "verify OK" in out.stdout + out.stderr
    for leaf, ok in ((a, False), (b, True)):
        lf = write(tmp_path, "leaf.pem", leaf["certificate"])
        v = subprocess.run(["openssl", "verify", "-crl_check", "-CAfile", caf, "-CRLfile", crlf,
                            lf], capture_output=True, text=True)
        assert (v.returncode == 0) == ok, v.stdout + v.stderr
        if not ok:
            assert "certificate revoked" in v.stdout + v.stderr

    # The stored cert shows the revocation; certs/revoked lists it.
    c = node.req("GET", f"pki/cert/{a['serial_number']}", token="").json()["data"]
    assert c["revocation_time"] == d["revocation_time"] and c["issuer_id"] == root["issuer_id"]
    lst = node.req("LIST", "pki/certs/revoked").json()["data"]["keys"]
    assert lst == [a["serial_number"]]


def test_crl_fetch_forms_and_rotate(node):
    r = node.req("GET", "pki/issuer/default/crl", token="")
    assert r.status_code == 200 and "BEGIN X509 CRL" in r.json()["data"]["crl"]
    der = node.req("GET", "pki/issuer/default/crl/der", token="")
    assert der.headers["content-type"] == "application/pkix-crl"
    assert node.req("GET", "pki/issuer/default/crl/pem", token="").text.startswith(
        "-----BEGIN X509 CRL-----")
    cc = node.req("GET", "pki/cert/crl", token="").json()["data"]
    assert cc["certificate"].startswith("-----BEGIN X509 CRL-----")
    assert node.req("GET", "pki/cert/crl/raw", token="").content == der.content
    before = crl_number(get_crl(node, "pki"))
    rot = node.req("GET", "pki/crl/rotate")
    assert rot.status_code == 200 and rot.json()["data"] == {"success": True}
    assert crl_number(get_crl(node, "pki")) == before + 1
    # rotate needs a token; delta rotation without delta CRLs is a no-op with Vault's warning.
    assert node.req("GET", "pki/crl/rotate", token="").status_code in (401, 403)
    rd = node.req("GET", "pki/crl/rotate-delta").json()
    assert rd["data"] == {"success": True}
    assert "this is a no-op" in rd["warnings"][0]
    # No delta CRL while deltas are off: 204.
    assert node.req("GET", "pki/crl/delta", token="").status_code == 204
    assert node.req("GET", "pki/issuer/nope/crl", token="").status_code == 404


def test_if_modified_since(node):
    """CRL and CA fetches carry Last-Modified; If-Modified-Since at or after it gives 304 with
    no body; an earlier date, a garbled one or none gives the full answer."""
    mount(node, "pki-ims")
    from email.utils import formatdate, parsedate_to_datetime

    def body(r):
        json_answer = r.headers.get("content-type") == "application/json"
        return r.json()["data"] if json_answer else r.content
    for path in ("pki-ims/crl", "pki-ims/crl/pem", "pki-ims/cert/crl", "pki-ims/issuer/default/crl/der",
                 "pki-ims/ca", "pki-ims/ca/pem", "pki-ims/ca_chain", "pki-ims/cert/ca",
                 "pki-ims/issuer/default/json", "pki-ims/issuer/default/pem"):
        full = node.req("GET", path, token="")
        assert full.status_code == 200, (path, full.text)
        lm = full.headers["Last-Modified"]
        when = parsedate_to_datetime(lm).timestamp()
        assert abs(when - time.time()) < 600, (path, lm)
        same = node.req("GET", path, token="", headers={"If-Modified-Since": lm})
        assert same.status_code == 304 and same.content == b"", (path, same.status_code)
        assert same.headers["Last-Modified"] == lm
        later = formatdate(when + 3600, usegmt=True)
        assert node.req("GET", path, token="",
                        headers={"If-Modified-Since": later}).status_code == 304
        earlier = formatdate(when - 1, usegmt=True)
        again = node.req("GET", path, token="", headers={"If-Modified-Since": earlier})
        assert again.status_code == 200 and body(again) == body(full), path
        for bad in ("yesterday", "Mon, 32 Nov 2026 10:00:00 GMT", lm.replace("GMT", "UTC")):
            r = node.req("GET", path, token="", headers={"If-Modified-Since": bad})
            assert r.status_code == 200 and body(r) == body(full), (path, bad)
    # A new CRL is newer than the old one's date once a second has passed.
    old = node.req("GET", "pki-ims/crl", token="").headers["Last-Modified"]
    time.sleep(1.1)
    assert node.req("GET", "pki-ims/crl/rotate").status_code == 200
    r = node.req("GET", "pki-ims/crl", token="", headers={"If-Modified-Since": old})
    assert r.status_code == 200 and parsedate_to_datetime(r.headers["Last-Modified"]) > \
        parsedate_to_datetime(old)


def test_revoke_bad_input_changes_nothing(node):
    before = node.req("LIST", "pki/certs/revoked").json()["data"]["keys"]
    crl_before = get_crl(node, "pki")
    root_serial = node.req("GET", "pki/issuer/default/json", token="").json()["data"]
    issuer = x509.load_pem_x509_certificate(root_serial["certificate"].encode())
    sn = issuer.serial_number
    iss_serial = ":".join(f"{b:02x}" for b in sn.to_bytes((sn.bit_length() + 7) // 8, "big"))
    cases = [
        ({}, "The serial number or certificate to revoke must be provided."),
        ({"serial_number": "11:22", "certificate": "x" * 100},
         "Must provide either the certificate or the serial to revoke; not both."),
        ({"serial_number": "aa:bb:cc"}, "certificate with serial aa:bb:cc not found."),
        ({"serial_number": "zz:zz"}, "invalid serial number"),
        ({"certificate": "short"}, "too short"),
        ({"certificate": "-----BEGIN CERTIFICATE-----\n" + "A" * 80 + "\n-----END "
                         "CERTIFICATE-----"}, "certificate"),
    ]
    for body, msg in cases:
        r = revoke(node, "pki", **body)
        assert r.status_code == 400, (body, r.text)
        assert msg in r.json()["errors"][0], (body, r.text)
    r = revoke(node, "pki", serial_number=iss_serial)
    assert r.status_code == 400 and "to its own CRL is not allowed" in r.json()["errors"][0]
    # A certificate of another CA.
    other = mount(node, "pki-other")
    leaf = issue(node, "pki-other")
    r = revoke(node, "pki", certificate=leaf["certificate"])
    assert r.status_code == 400
    assert "unable to verify signature on presented cert" in r.json()["errors"][0]
    assert other["issuer_id"]
    assert node.req("LIST", "pki/certs/revoked").json()["data"]["keys"] == before
    assert serials(get_crl(node, "pki")) == serials(crl_before)


def test_revoke_byoc_no_store(node):
    node.client().secrets.pki.create_or_update_role(
        "nostore", {"allow_any_name": True, "key_type": "ec", "no_store": True, "ttl": "1h"},
        mount_point="pki")
    r = node.req("POST", "pki/issue/nostore", json={"common_name": "n.example.com"})
    assert r.status_code == 200, r.text
    leaf = r.json()["data"]
    assert node.req("GET", f"pki/cert/{leaf['serial_number']}", token="").status_code == 404
    # By serial it is unknown; by certificate (BYOC) it is accepted and stored.
    assert revoke(node, "pki", serial_number=leaf["serial_number"]).status_code == 400
    r = revoke(node, "pki", certificate=leaf["certificate"])
    assert r.status_code == 200, r.text
    stored = node.req("GET", f"pki/cert/{leaf['serial_number']}", token="").json()["data"]
    assert stored["certificate"].strip() == leaf["certificate"].strip()
    assert stored["revocation_time"] == r.json()["data"]["revocation_time"]
    assert hexs(leaf["serial_number"]) in serials(get_crl(node, "pki"))


def test_revoke_with_key(node):
    a = issue(node, "pki", "k.example.com")
    b = issue(node, "pki", "k2.example.com")
    r = node.req("POST", "pki/revoke-with-key", json={"serial_number": a["serial_number"]})
    assert r.status_code == 400
    assert "Must have private key" in r.json()["errors"][0]
    r = node.req("POST", "pki/revoke-with-key", json={"serial_number": a["serial_number"],
                                                      "private_key": b["private_key"]})
    assert r.status_code == 400
    assert "does not match certificate's public key" in r.json()["errors"][0]
    assert node.req("GET", f"pki/cert/{a['serial_number']}", token="").json()[
        "data"]["revocation_time"] == 0
    r = node.req("POST", "pki/revoke-with-key", json={"certificate": a["certificate"],
                                                      "private_key": a["private_key"]})
    assert r.status_code == 200, r.text
    assert hexs(a["serial_number"]) in serials(get_crl(node, "pki"))


def test_revoke_expired_refused_with_warning(node):
    a = issue(node, "pki", "x.example.com", ttl="1s")
    time.sleep(2.2)
    r = revoke(node, "pki", serial_number=a["serial_number"])
    assert r.status_code == 200
    body = r.json()
    assert "already expired; refusing to add to CRL" in body["warnings"][0]
    assert not body.get("data")
    assert node.req("GET", f"pki/cert/{a['serial_number']}", token="").json()[
        "data"]["revocation_time"] == 0


def ocsp_cli(tmp_path, node, path, ca_pem, leaf_pem, extra=()):
    caf = write(tmp_path, "oca.pem", ca_pem)
    lf = write(tmp_path, "oleaf.pem", leaf_pem)
    return subprocess.run(["openssl", "ocsp", "-issuer", caf, "-cert", lf, "-CAfile", caf,
                           "-url", node.url(f"{path}/ocsp"), "-resp_text", *extra],
                          capture_output=True, text=True, timeout=30)


def test_ocsp_good_revoked_nonce(node, tmp_path):
    ca = node.req("GET", "pki/issuer/default/json", token="").json()["data"]["certificate"]
    good = issue(node, "pki", "o1.example.com")
    bad = issue(node, "pki", "o2.example.com")
    assert revoke(node, "pki", serial_number=bad["serial_number"]).status_code == 200
    out = ocsp_cli(tmp_path, node, "pki", ca, good["certificate"])
    assert out.returncode == 0, out.stderr
    assert "Response verify OK" in out.stderr + out.stdout
    assert ": good" in out.stdout and "WARNING: no nonce" not in out.stdout + out.stderr
    assert "OCSP Nonce" in out.stdout and "Next Update" in out.stdout
    out = ocsp_cli(tmp_path, node, "pki", ca, bad["certificate"])
    assert ": revoked" in out.stdout and "Response verify OK" in out.stderr + out.stdout
    assert "Revocation Time" in out.stdout


def der_request(leaf_pem, ca_pem, nonce=False):
    leaf = x509.load_pem_x509_certificate(leaf_pem.encode())
    ca = x509.load_pem_x509_certificate(ca_pem.encode())
    b = ocsp.OCSPRequestBuilder().add_certificate(leaf, ca, hashes.SHA256())
    if nonce:
        b = b.add_extension(x509.OCSPNonce(b"0123456789abcdef"), critical=False)
    return b.build().public_bytes(serialization.Encoding.DER)


def test_ocsp_get_form_and_sha256(node):
    ca = node.req("GET", "pki/issuer/default/json", token="").json()["data"]["certificate"]
    leaf = issue(node, "pki", "g.example.com")
    req = der_request(leaf["certificate"], ca, nonce=True)
    for enc in (base64.b64encode(req).decode(), base64.urlsafe_b64encode(req).decode().rstrip("=")):
        r = requests.get(node.url("pki/ocsp/" + urllib.parse.quote(enc, safe="")), timeout=10)
        assert r.status_code == 200 and r.headers["content-type"] == "application/ocsp-response"
        resp = ocsp.load_der_ocsp_response(r.content)
        assert resp.response_status == ocsp.OCSPResponseStatus.SUCCESSFUL
        assert resp.certificate_status == ocsp.OCSPCertStatus.GOOD
        assert resp.hash_algorithm.name == "sha256"
        assert resp.serial_number == x509.load_pem_x509_certificate(
            leaf["certificate"].encode()).serial_number
        nonce = resp.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce
        assert nonce == b"0123456789abcdef"
        cacert = x509.load_pem_x509_certificate(ca.encode())
        cacert.public_key().verify(resp.signature, resp.tbs_response_bytes,
                                   ec.ECDSA(resp.signature_hash_algorithm))
        assert resp.certificates == []


def test_ocsp_unknown_issuer_and_bad_requests(node, tmp_path):
    other_ca = node.req("GET", "pki-other/issuer/default/json", token="").json()["data"][
        "certificate"]
    leaf = issue(node, "pki-other", "u.example.com")
    r = requests.post(node.url("pki/ocsp"), data=der_request(leaf["certificate"], other_ca),
                      headers={"Content-Type": "application/ocsp-request"}, timeout=10)
    assert r.status_code == 200
    assert ocsp.load_der_ocsp_response(r.content).certificate_status == \
        ocsp.OCSPCertStatus.UNKNOWN
    for body in (b"garbage", b"\x30\x03\x02\x01\x01", b"\x30" + b"\x00" * 3000):
        r = requests.post(node.url("pki/ocsp"), data=body,
                          headers={"Content-Type": "application/ocsp-request"}, timeout=10)
        assert r.status_code == 400
        assert ocsp.load_der_ocsp_response(r.content).response_status == \
            ocsp.OCSPResponseStatus.MALFORMED_REQUEST
    r = requests.get(node.url("pki/ocsp/%%%not-base64!!"), timeout=10)
    assert r.status_code == 400
    # ocsp_disable: 401 with an "unauthorized" OCSP answer. The responder keeps config/crl
    # decoded between requests: each change must still take effect at once.
    def other_ocsp():
        return requests.post(node.url("pki-other/ocsp"),
                             data=der_request(leaf["certificate"], other_ca),
                             headers={"Content-Type": "application/ocsp-request"}, timeout=10)
    r = other_ocsp()
    assert r.status_code == 200
    assert ocsp.load_der_ocsp_response(r.content).certificate_status == \
        ocsp.OCSPCertStatus.GOOD
    assert node.req("POST", "pki-other/config/crl", json={"ocsp_disable": True}).ok
    r = other_ocsp()
    assert r.status_code == 401
    assert ocsp.load_der_ocsp_response(r.content).response_status == \
        ocsp.OCSPResponseStatus.UNAUTHORIZED
    assert node.req("POST", "pki-other/config/crl", json={"ocsp_disable": False}).ok
    assert other_ocsp().status_code == 200
    assert node.req("POST", "pki-other/config/crl", json={"ocsp_disable": True}).ok
    assert other_ocsp().status_code == 401


def test_issuer_revoke_goes_on_parent_crl(node):
    c = node.client()
    c.sys.enable_secrets_engine("pki", path="pki-chain", config={"max_lease_ttl": "87600h"})
    root = c.secrets.pki.generate_root("internal", "Chain Root", mount_point="pki-chain",
                                       extra_params={"key_type": "ec"})["data"]
    csr = c.secrets.pki.generate_intermediate("internal", "Chain Int", mount_point="pki-chain",
                                              extra_params={"key_type": "ec"})["data"]["csr"]
    signed = c.secrets.pki.sign_intermediate(csr, "Chain Int", mount_point="pki-chain")["data"]
    imp = node.req("POST", "pki-chain/intermediate/set-signed",
                   json={"certificate": signed["certificate"]}).json()["data"]
    int_id = imp["imported_issuers"][0]
    r = node.req("POST", f"pki-chain/issuer/{int_id}/revoke")
    assert r.status_code == 200, r.text
    d = r.json()["data"]
    assert d["revoked"] is True and d["revocation_time"] > 0
    assert "issuing-certificates" not in d["usage"]
    # It is on the root's CRL, not on its own.
    rc = x509.load_der_x509_crl(node.req("GET", f"pki-chain/issuer/{root['issuer_id']}/crl/der",
                                         token="").content)
    ic = x509.load_der_x509_crl(node.req("GET", f"pki-chain/issuer/{int_id}/crl/der",
                                         token="").content)
    assert hexs(signed["serial_number"]) in serials(rc)
    assert hexs(signed["serial_number"]) not in serials(ic)
    # Revoking again answers the issuer unchanged.
    r2 = node.req("POST", f"pki-chain/issuer/{int_id}/revoke").json()["data"]
    assert r2["revocation_time"] == d["revocation_time"]


def wait_for(fn, timeout):
    end = time.time() + timeout * SCALE
    while time.time() < end:
        v = fn()
        if v:
            return v
        time.sleep(0.3)
    return fn()


def test_delta_crl_and_auto_rebuild(node):
    mount(node, "pki-delta")
    r = node.req("POST", "pki-delta/config/crl", json={
        "auto_rebuild": True, "enable_delta": True, "delta_rebuild_interval": "1s",
        "expiry": "1h", "auto_rebuild_grace_period": "5m"})
    assert r.status_code in (200, 204), r.text
    node.req("GET", "pki-delta/crl/rotate")
    complete0 = get_crl(node, "pki-delta")
    leaf = issue(node, "pki-delta")
    assert revoke(node, "pki-delta", serial_number=leaf["serial_number"]).status_code == 200
    # With auto_rebuild the complete CRL is not rebuilt on revocation; the delta picks it up.
    def delta_has():
        r = node.req("GET", "pki-delta/crl/delta", token="")
        if r.status_code != 200:
            return None
        d = x509.load_der_x509_crl(r.content)
        return d if hexs(leaf["serial_number"]) in serials(d) else None
    delta = wait_for(delta_has, 15)
    assert delta is not None
    ind = delta.extensions.get_extension_for_oid(ExtensionOID.DELTA_CRL_INDICATOR)
    assert ind.critical and ind.value.crl_number == crl_number(complete0)
    assert crl_number(delta) > crl_number(complete0)
    assert hexs(leaf["serial_number"]) not in serials(get_crl(node, "pki-delta"))
    assert node.req("GET", "pki-delta/crl/delta/pem", token="").text.startswith("-----BEGIN")
    # A complete rebuild takes it in and starts an empty delta.
    node.req("GET", "pki-delta/crl/rotate")
    full = get_crl(node, "pki-delta")
    assert hexs(leaf["serial_number"]) in serials(full)
    d2 = x509.load_der_x509_crl(node.req("GET", "pki-delta/crl/delta", token="").content)
    assert len(list(d2)) == 0
    assert d2.extensions.get_extension_for_oid(
        ExtensionOID.DELTA_CRL_INDICATOR).value.crl_number == crl_number(full)


def test_auto_rebuild_before_expiry(node):
    mount(node, "pki-auto")
    assert node.req("POST", "pki-auto/config/crl", json={
        "auto_rebuild": True, "expiry": "10s", "auto_rebuild_grace_period": "8s"}).ok
    node.req("GET", "pki-auto/crl/rotate")
    first = crl_number(get_crl(node, "pki-auto"))
    # Within the grace period (after 2 s) the scheduler rebuilds by itself.
    assert wait_for(lambda: crl_number(get_crl(node, "pki-auto")) > first, 15)


def test_crl_disable_gives_empty_crl(node):
    mount(node, "pki-dis")
    leaf = issue(node, "pki-dis")
    assert revoke(node, "pki-dis", serial_number=leaf["serial_number"]).status_code == 200
    assert len(serials(get_crl(node, "pki-dis"))) == 1
    assert node.req("POST", "pki-dis/config/crl", json={"disable": True}).ok
    assert wait_for(lambda: len(serials(get_crl(node, "pki-dis"))) == 0, 10)


def test_many_revocations_many_pieces_and_restart(node):
    mount(node, "pki-many")
    assert node.req("POST", "pki-many/config/crl", json={"auto_rebuild": True}).ok
    n = 600 if not os.environ.get("COFFER_SANITIZED") else 250
    sess = requests.Session()
    hdr = {"X-Vault-Token": node.root}

    def one(i):
        r = sess.post(node.url("pki-many/issue/r"), headers=hdr,
                      json={"common_name": f"m{i}.example.com"}, timeout=60)
        s = r.json()["data"]["serial_number"]
        rv = sess.post(node.url("pki-many/revoke"), headers=hdr, json={"serial_number": s},
                       timeout=60)
        assert rv.status_code == 200, rv.text
        return hexs(s)

    with ThreadPoolExecutor(4) as ex:
        want = set(ex.map(one, range(n)))
    assert node.req("GET", "pki-many/crl/rotate").status_code == 200
    crl = get_crl(node, "pki-many")
    assert serials(crl) == want
    # ~40 bytes an entry, 4 KiB pieces: the CRL is stored in several pieces.
    assert len(crl.public_bytes(serialization.Encoding.DER)) > 2 * 4096
    node.restart()
    again = get_crl(node, "pki-many")
    assert again.public_bytes(serialization.Encoding.DER) == crl.public_bytes(
        serialization.Encoding.DER)
    # The OCSP responder still answers from storage after the restart.
    assert revoke(node, "pki-many", serial_number="aa:bb").status_code == 400


def tidy_status(node, path):
    return node.req("GET", f"{path}/tidy-status").json()["data"]


def test_tidy_removes_expired_certs_and_revocations(node):
    mount(node, "pki-tidy")
    st = tidy_status(node, "pki-tidy")
    assert st["state"] == "Inactive" and st["tidy_cert_store"] is None
    short = issue(node, "pki-tidy", "t1.example.com", ttl="1s")
    rev = issue(node, "pki-tidy", "t2.example.com", ttl="3s")
    keep = issue(node, "pki-tidy", "t3.example.com")
    assert revoke(node, "pki-tidy", serial_number=rev["serial_number"]).status_code == 200
    assert hexs(rev["serial_number"]) in serials(get_crl(node, "pki-tidy"))
    time.sleep(5.5)
    # Bad input is refused and starts nothing.
    for body, msg in (({"tidy_cert_store": True, "safety_buffer": 0},
                       "safety_buffer must be greater than zero"),
                      ({"tidy_cert_store": True, "pause_duration": "-1s"}, "pause")):
        r = node.req("POST", "pki-tidy/tidy", json=body)
        assert r.status_code == 400 and msg in r.json()["errors"][0], r.text
    assert tidy_status(node, "pki-tidy")["state"] == "Inactive"
    r = node.req("POST", "pki-tidy/tidy", json={})
    assert r.status_code == 202 and "no tidy operations were set" in r.json()["warnings"][0]
    c = node.req("POST", "pki-tidy/tidy-cancel").json()
    assert "cannot be cancelled" in c["warnings"][0]

    r = node.req("POST", "pki-tidy/tidy", json={"tidy_cert_store": True,
                                                 "tidy_revoked_certs": True,
                                                 "safety_buffer": "1s"})
    assert r.status_code == 202 and "successfully started" in r.json()["warnings"][0]
    st = wait_for(lambda: (lambda s: s if s["state"] == "Finished" else None)(
        tidy_status(node, "pki-tidy")), 15)
    assert st and st["cert_store_deleted_count"] >= 2 and st["revoked_cert_deleted_count"] == 1
    assert st["safety_buffer"] == 1 and st["tidy_cert_store"] is True
    assert st["time_started"] and st["time_finished"]
    keys = node.req("LIST", "pki-tidy/certs").json()["data"]["keys"]
    assert keep["serial_number"] in keys
    assert short["serial_number"] not in keys and rev["serial_number"] not in keys
    assert node.req("LIST", "pki-tidy/certs/revoked").status_code == 404
    # auto_rebuild is off: the CRL was rebuilt without the tidied revocation.
    assert wait_for(lambda: hexs(rev["serial_number"]) not in serials(get_crl(node, "pki-tidy")),
                    10)


def test_auto_tidy(node):
    mount(node, "pki-at")
    d = node.req("GET", "pki-at/config/auto-tidy").json()["data"]
    assert d["enabled"] is False and d["interval_duration"] == 43200
    assert d["safety_buffer"] == 259200 and d["pause_duration"] == "0s"
    bad = node.req("POST", "pki-at/config/auto-tidy",
                   json={"publish_stored_certificate_count_metrics": True})
    assert bad.status_code == 400
    issue(node, "pki-at", "a1.example.com", ttl="1s")
    time.sleep(2)
    r = node.req("POST", "pki-at/config/auto-tidy", json={
        "enabled": True, "interval_duration": "1h", "tidy_cert_store": True,
        "safety_buffer": "1s"})
    assert r.status_code == 200 and r.json()["data"]["enabled"] is True
    st = wait_for(lambda: (lambda s: s if s["state"] == "Finished" else None)(
        tidy_status(node, "pki-at")), 20)
    assert st and st["cert_store_deleted_count"] == 1


def test_resign_crls_and_sign_revocation_list(node):
    """issuer/:ref/resign-crls merges CRLs the issuer signed into one new CRL;
    issuer/:ref/sign-revocation-list signs given entries and extensions. Both check their
    input with Vault's texts and store nothing."""
    def utc(naive):
        return naive.replace(tzinfo=datetime.timezone.utc).timestamp()

    root = mount(node, "pki-rs")
    ca = x509.load_pem_x509_certificate(root["certificate"].encode())
    leafs = [issue(node, "pki-rs", cn=f"rs{i}.example.com") for i in range(3)]
    for leaf in leafs[:2]:
        assert revoke(node, "pki-rs", serial_number=leaf["serial_number"]).status_code == 200
    crl_a = node.req("GET", "pki-rs/crl/pem", token="").text
    assert revoke(node, "pki-rs", serial_number=leafs[2]["serial_number"]).status_code == 200
    crl_b = node.req("GET", "pki-rs/crl/pem", token="").text

    r = node.req("POST", "pki-rs/issuer/default/resign-crls",
                 json={"crls": [crl_a, crl_b], "crl_number": 42, "next_update": "1h"})
    assert r.status_code == 200, r.text
    merged = x509.load_pem_x509_crl(r.json()["data"]["crl"].encode())
    assert merged.is_signature_valid(ca.public_key())
    assert serials(merged) == {hexs(leaf["serial_number"]) for leaf in leafs}
    assert crl_number(merged) == 42
    span = merged.next_update - merged.last_update
    assert span.total_seconds() == 3600
    r = node.req("POST", "pki-rs/issuer/default/resign-crls",
                 json={"crls": [crl_a], "crl_number": 7, "delta_crl_base_number": 5,
                       "format": "DER"})
    assert r.status_code == 200, r.text
    delta = x509.load_der_x509_crl(base64.b64decode(r.json()["data"]["crl"]))
    ind = delta.extensions.get_extension_for_oid(ExtensionOID.DELTA_CRL_INDICATOR)
    assert ind.critical and ind.value.crl_number == 5

    reason = base64.b64encode(bytes([0x0a, 0x01, 0x01])).decode()  # ENUMERATED keyCompromise
    body = {"crl_number": 9, "next_update": "2h",
            "revoked_certs": [
                {"serial_number": "01:02:03", "revocation_time": 1700000000,
                 "extensions": [{"id": "2.5.29.21", "critical": False, "value": reason}]},
                {"serial_number": "0a-0b-0c", "revocation_time": "2024-01-02T03:04:05Z"}],
            "extensions": [{"id": "1.2.3.4.5", "critical": False, "value": "BQA="}]}
    r = node.req("POST", "pki-rs/issuer/default/sign-revocation-list", json=body)
    assert r.status_code == 200, r.text
    signed = x509.load_pem_x509_crl(r.json()["data"]["crl"].encode())
    assert signed.is_signature_valid(ca.public_key())
    assert crl_number(signed) == 9
    first = signed.get_revoked_certificate_by_serial_number(0x010203)
    assert utc(first.revocation_date) == 1700000000
    assert first.extensions.get_extension_for_class(x509.CRLReason).value.reason == \
        x509.ReasonFlags.key_compromise
    second = signed.get_revoked_certificate_by_serial_number(0x0a0b0c)
    assert second.revocation_date.isoformat() == "2024-01-02T03:04:05"
    assert signed.extensions.get_extension_for_oid(x509.ObjectIdentifier("1.2.3.4.5"))
    # openssl reads it too
    out = subprocess.run(["openssl", "crl", "-noout", "-text"], input=r.json()["data"]["crl"],
                         capture_output=True, text=True, check=True).stdout
    assert "Key Compromise" in out and "01020" in out.replace(":", "")

    # The same serial at two times in two CRLs: the oldest wins, with Vault's warning.
    def one(t):
        rr = node.req("POST", "pki-rs/issuer/default/sign-revocation-list",
                      json={"revoked_certs": [{"serial_number": "77", "revocation_time": t}]})
        return rr.json()["data"]["crl"]
    r = node.req("POST", "pki-rs/issuer/default/resign-crls",
                 json={"crls": [one(1700000500), one(1700000100)]})
    assert r.status_code == 200, r.text
    assert "using oldest revocation time" in r.json()["warnings"][0]
    got = x509.load_pem_x509_crl(r.json()["data"]["crl"].encode())
    assert utc(got.get_revoked_certificate_by_serial_number(0x77).revocation_date) == 1700000100

    # Refusals: Vault's texts, 400, and nothing stored (the CRL is unchanged).
    other = mount(node, "pki-rs2")
    other_crl = node.req("GET", "pki-rs2/crl/pem", token="").text
    assert other["certificate"]
    before = node.req("GET", "pki-rs/crl", token="").content
    keys_before = node.req("LIST", "pki-rs/certs").json()["data"]["keys"]
    bad = [
        ("resign-crls", {"crls": [other_crl]}, "CRL index: 0 was not signed by requested issuer"),
        ("resign-crls", {"crls": ["garbage"]}, "failed decoding crl 0"),
        ("resign-crls", {"crls": [crl_a + crl_b]}, "failed decoding crl 0"),
        ("resign-crls", {"crls": [crl_a], "crl_number": -1},
         "crl_number parameter must be 0 or greater"),
        ("resign-crls", {"crls": [crl_a], "delta_crl_base_number": -2},
         "delta_crl_base_number parameter must be -1 or greater"),
        ("resign-crls", {"crls": [crl_a], "next_update": "0s"},
         "next_update parameter must be greater than 0"),
        ("resign-crls", {"crls": [crl_a], "next_update": "soon"}, "invalid value for next_update"),
        ("resign-crls", {"crls": [crl_a], "format": "xml"}, "unknown format value of xml"),
        ("sign-revocation-list", {"revoked_certs": [
            {"serial_number": "01", "revocation_time": 1}, {"serial_number": "0:1",
                                                            "revocation_time": 2}]},
         "duplicate serial number: 0:1, original entry 0 and 1"),
        ("sign-revocation-list", {"revoked_certs": [{"serial_number": "zz",
                                                     "revocation_time": 1}]},
         "failed parsing serial_number from entry 0"),
        ("sign-revocation-list", {"revoked_certs": [{"serial_number": "01"}]},
         "failed parsing revocation_time from entry 0: missing 'revocation_time' field"),
        ("sign-revocation-list", {"extensions": [{"id": "2.5.29.20", "value": ""}]},
         "crl number object identifier (2.5.29.20) is reserved"),
        ("sign-revocation-list", {"extensions": [{"id": "2.5.29.35", "value": ""}]},
         "authority key object identifier (2.5.29.35) is reserved"),
        ("sign-revocation-list", {"extensions": [{"id": "1.2.3", "value": "!!"}]},
         "failed base64 decoding 'value' field"),
        ("sign-revocation-list", {"extensions": [{"id": "1.2.3", "value": ""},
                                                 {"id": "1.2.3", "value": ""}]},
         "duplicate extension id: 1.2.3"),
        ("sign-revocation-list", {"extensions": ["x"]}, "extension entry 0 not a map"),
    ]
    for path, body, msg in bad:
        r = node.req("POST", f"pki-rs/issuer/default/{path}", json=body)
        assert r.status_code == 400 and msg in r.json()["errors"][0], (path, body, r.text)
    r = node.req("POST", "pki-rs/issuer/nope/sign-revocation-list", json={})
    assert r.status_code == 400 and "unable to find PKI issuer for reference: nope" in r.text
    assert node.req("GET", "pki-rs/issuer/default/resign-crls").status_code == 405
    assert node.req("GET", "pki-rs/crl", token="").content == before
    assert node.req("LIST", "pki-rs/certs").json()["data"]["keys"] == keys_before
