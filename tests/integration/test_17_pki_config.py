"""PKI mount configuration: config/crl, config/urls, config/cluster (pki.md 4.3, 4.6)."""
import pytest

CRL_DEFAULTS = {
    "expiry": "72h", "disable": False, "ocsp_disable": False, "ocsp_expiry": "12h",
    "auto_rebuild": False, "auto_rebuild_grace_period": "12h", "enable_delta": False,
    "delta_rebuild_interval": "15m", "cross_cluster_revocation": False, "unified_crl": False,
    "unified_crl_on_existing_paths": False, "max_crl_entries": 100000,
}


@pytest.fixture(scope="module")
def pki(node):
    node.client().sys.enable_secrets_engine("pki", path="pki")
    return node.client().secrets.pki


def test_crl_defaults_and_partial_update(node, pki):
    got = pki.read_crl_configuration()
    assert got["data"] == CRL_DEFAULTS and got["mount_type"] == "pki"
    pki.set_crl_configuration(expiry="48h", extra_params={"auto_rebuild": "true",
                                                          "enable_delta": True,
                                                          "max_crl_entries": -1})
    data = pki.read_crl_configuration()["data"]
    assert data["expiry"] == "48h" and data["auto_rebuild"] is True
    assert data["enable_delta"] is True and data["max_crl_entries"] == -1
    assert data["ocsp_expiry"] == "12h"
    r = node.req("POST", "pki/config/crl", json={"ocsp_disable": True})
    assert r.status_code == 200 and r.json()["data"]["ocsp_disable"] is True
    assert r.json()["data"]["expiry"] == "48h"
    # Enterprise-only fields are accepted and stored (cross-cluster issue gives them behaviour).
    r = node.req("POST", "pki/config/crl", json={"cross_cluster_revocation": True,
                                                 "unified_crl": True,
                                                 "unified_crl_on_existing_paths": True})
    assert r.status_code == 200, r.text


@pytest.mark.parametrize("body,needle", [
    ({"expiry": "soon"}, "given expiry could not be decoded"),
    ({"disable": "maybe"}, "disable"),
    ({"max_crl_entries": 0}, "max_crl_entries"),
    ({"auto_rebuild": False, "enable_delta": True}, "Delta CRLs cannot be enabled"),
    ({"auto_rebuild": True, "auto_rebuild_grace_period": "100h"},
     "grace period (100h0m0s) must be strictly shorter than CRL expiry"),
    ({"auto_rebuild": True, "enable_delta": True, "delta_rebuild_interval": "80h",
      "auto_rebuild_grace_period": "1h"}, "CRL delta rebuild window"),
    ({"auto_rebuild": False, "enable_delta": False, "cross_cluster_revocation": False,
      "unified_crl": True},
     "unified_crl=true requires auto_rebuild"),
    ({"auto_rebuild": False, "enable_delta": False, "cross_cluster_revocation": True},
     "cross-cluster revocation"),
    ({"unified_crl": False, "unified_crl_on_existing_paths": True},
     "unified_crl_on_existing_paths cannot be enabled"),
])
def test_crl_refusals_change_nothing(node, pki, body, needle):
    before = node.req("GET", "pki/config/crl").json()["data"]
    r = node.req("POST", "pki/config/crl", json=body)
    assert r.status_code == 400, r.text
    assert needle in r.json()["errors"][0]
    assert node.req("GET", "pki/config/crl").json()["data"] == before


def test_urls(node, pki):
    assert pki.read_urls()["data"] == {
        "issuing_certificates": [], "crl_distribution_points": [],
        "delta_crl_distribution_points": [], "ocsp_servers": [], "enable_templating": False}
    pki.set_urls({"issuing_certificates": "http://a.example/ca, http://b.example/ca",
                  "ocsp_servers": ["http://ocsp.example"]})
    data = pki.read_urls()["data"]
    assert data["issuing_certificates"] == ["http://a.example/ca", "http://b.example/ca"]
    assert data["ocsp_servers"] == ["http://ocsp.example"]
    r = node.req("POST", "pki/config/urls", json={"crl_distribution_points": ["not a url"]})
    assert r.status_code == 400
    assert r.json()["errors"] == ["invalid URL found in Authority Information Access (AIA) "
                                  "parameter crl_distribution_points: not a url"]
    assert node.req("GET", "pki/config/urls").json()["data"] == data
    r = node.req("POST", "pki/config/urls", json={
        "enable_templating": True,
        "issuing_certificates": ["{{cluster_aia_path}}/issuer/{{issuer_id}}/der"]})
    assert r.status_code == 204, r.text
    r = node.req("POST", "pki/config/urls", json={"ocsp_servers": 5})
    assert r.status_code == 400


def test_cluster_and_restart(node, pki):
    r = node.req("POST", "pki/config/cluster", json={"path": "https://a.example:8200/v1/pki",
                                                     "aia_path": "http://cdn.example/pki"})
    assert r.status_code == 200, r.text
    r = node.req("POST", "pki/config/cluster", json={"path": "ftp:/x"})
    assert r.status_code == 400
    node.restart()
    assert node.req("GET", "pki/config/cluster").json()["data"] == {
        "path": "https://a.example:8200/v1/pki", "aia_path": "http://cdn.example/pki"}
    assert node.req("GET", "pki/config/crl").json()["data"]["expiry"] == "48h"
    assert node.req("GET", "pki/nothing-here").status_code == 404


def test_issued_aia_follows_config_urls_and_cluster(node):
    """Each issued certificate carries the AIA and CRL distribution points of config/urls as
    they are at that moment (the engine caches the decoded config by storage version), and
    templated URLs take config/cluster's values as they are then."""
    from cryptography import x509
    from cryptography.x509.oid import AuthorityInformationAccessOID, ExtensionOID
    c = node.client()
    c.sys.enable_secrets_engine("pki", path="pki-aia", config={"max_lease_ttl": "87600h"})
    c.write("pki-aia/root/generate/internal", common_name="AIA Root", ttl="87600h", key_type="ec")
    c.write("pki-aia/roles/r", allow_any_name=True, ttl="1h", key_type="ec")

    def urls():
        pem = node.req("POST", "pki-aia/issue/r", json={"common_name": "a.example.com"}).json()
        cert = x509.load_pem_x509_certificate(pem["data"]["certificate"].encode())
        try:
            aia = cert.extensions.get_extension_for_oid(
                ExtensionOID.AUTHORITY_INFORMATION_ACCESS).value
            ca = [d.access_location.value for d in aia
                  if d.access_method == AuthorityInformationAccessOID.CA_ISSUERS]
        except x509.ExtensionNotFound:
            ca = []
        try:
            cdp = cert.extensions.get_extension_for_oid(
                ExtensionOID.CRL_DISTRIBUTION_POINTS).value
            crl = [n.value for p in cdp for n in p.full_name]
        except x509.ExtensionNotFound:
            crl = []
        return ca, crl

    assert urls() == ([], [])
    assert node.req("POST", "pki-aia/config/urls", json={
        "issuing_certificates": ["http://one.example/ca"],
        "crl_distribution_points": ["http://one.example/crl"]}).status_code in (200, 204)
    assert urls() == (["http://one.example/ca"], ["http://one.example/crl"])
    assert node.req("POST", "pki-aia/config/urls", json={
        "issuing_certificates": ["http://two.example/ca"],
        "crl_distribution_points": []}).status_code in (200, 204)
    assert urls() == (["http://two.example/ca"], [])
    assert node.req("POST", "pki-aia/config/cluster",
                    json={"path": "http://c1.example/v1/pki-aia"}).status_code in (200, 204)
    assert node.req("POST", "pki-aia/config/urls", json={
        "issuing_certificates": ["{{cluster_path}}/ca"], "crl_distribution_points": [],
        "enable_templating": True}).status_code in (200, 204)
    assert urls() == (["http://c1.example/v1/pki-aia/ca"], [])
    assert node.req("POST", "pki-aia/config/cluster",
                    json={"path": "http://c2.example/v1/pki-aia"}).status_code in (200, 204)
    assert urls() == (["http://c2.example/v1/pki-aia/ca"], [])
