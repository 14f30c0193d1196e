"""Telemetry: GET sys/metrics in go-metrics JSON and Prometheus text, with the PKI counters and
durations of issue, sign and revoke (issue 4) and the core's request timer."""

import re

import pytest


def series(body, kind, name, mount):
    for s in body[kind]:
        if s["Name"] == name and s["Labels"].get("mount") == mount:
            return s
    return None


@pytest.fixture(scope="module")
def pki(node):
    r = node.req("POST", "sys/mounts/pki-m", json={"type": "pki"})
    assert r.status_code == 204, r.text
    r = node.req("POST", "pki-m/root/generate/internal",
                 json={"common_name": "metrics root", "key_type": "ec", "ttl": "8760h"})
    assert r.status_code == 200, r.text
    r = node.req("POST", "pki-m/roles/web", json={"allow_any_name": True, "ttl": "1h"})
    assert r.status_code in (200, 204), r.text
    return node


def test_metrics_need_a_token(node):
    assert node.req("GET", "sys/metrics", token="").status_code in (400, 403)
    assert node.req("POST", "sys/metrics", json={}).status_code == 405
    r = node.req("GET", "sys/metrics", params={"format": "xml"})
    assert r.status_code == 400 and "prometheus" in r.text


def test_pki_issue_sign_revoke_metrics(pki):
    before = pki.req("GET", "sys/metrics").json()
    old = series(before, "Samples", "vault.secrets.pki.issue", "pki-m/")
    old_count = old["Count"] if old else 0
    serials = []
    for _ in range(3):
        r = pki.req("POST", "pki-m/issue/web", json={"common_name": "a.example"})
        assert r.status_code == 200, r.text
        serials.append(r.json()["data"]["serial_number"])
    assert pki.req("POST", "pki-m/issue/missing", json={"common_name": "a"}).status_code == 400
    r = pki.req("POST", "pki-m/revoke", json={"serial_number": serials[0]})
    assert r.status_code == 200, r.text

    body = pki.req("GET", "sys/metrics").json()
    assert set(body) >= {"Timestamp", "Gauges", "Counters", "Samples", "Points"}
    issue = series(body, "Samples", "vault.secrets.pki.issue", "pki-m/")
    assert issue["Count"] == old_count + 3
    assert 0 < issue["Min"] <= issue["Mean"] <= issue["Max"]
    assert series(body, "Counters", "vault.secrets.pki.issue.failures", "pki-m/")["Sum"] >= 1
    assert series(body, "Samples", "vault.secrets.pki.revoke", "pki-m/")["Count"] >= 1
    assert any(s["Name"] == "vault.core.handle_request" for s in body["Samples"])

    r = pki.req("GET", "sys/metrics", params={"format": "prometheus"})
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/plain")
    text = r.text
    assert "# TYPE vault_secrets_pki_issue summary" in text
    m = re.search(r'^vault_secrets_pki_issue_count\{mount="pki-m/"\} (\d+)$', text, re.M)
    assert m and int(m.group(1)) == issue["Count"]
    assert re.search(r'^vault_secrets_pki_issue_failures\{mount="pki-m/"\} \d+$', text, re.M)
