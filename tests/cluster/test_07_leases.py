"""Leases in a cluster: issuance with generate_lease through a performance standby is served by
the active node (a lease is a write); lookups through standbys; after a failover the new active
node's expiration manager revokes the leases that come due, and revocation works there."""

import time

import requests

from _procs import SCALE


def test_leases_across_failover(cluster):
    cluster.start()
    nodes = cluster.nodes
    assert cluster.active() is nodes[0]
    h = cluster.h()

    def req(node, method, path, **kw):
        return requests.request(method, node.url(path), headers=h, timeout=30, **kw)

    assert req(nodes[1], "POST", "sys/mounts/pki", json={"type": "pki"}).status_code == 204
    r = req(nodes[1], "POST", "pki/root/generate/internal",
            json={"common_name": "Root", "ttl": "8760h", "key_type": "ec"})
    assert r.status_code == 200, r.text
    for role, ttl in (("web", "1h"), ("short", "8s")):
        r = req(nodes[2], "POST", f"pki/roles/{role}",
                json={"allow_any_name": True, "key_type": "ec", "ttl": ttl,
                      "generate_lease": True})
        assert r.status_code in (200, 204), r.text

    r = req(nodes[1], "POST", "pki/issue/web", json={"common_name": "a.example.com"})
    assert r.status_code == 200, r.text
    web = r.json()
    assert web["lease_id"].startswith("pki/issue/web/")
    r = req(nodes[2], "PUT", "sys/leases/lookup", json={"lease_id": web["lease_id"]})
    assert r.status_code == 200, r.text
    assert r.json()["data"]["id"] == web["lease_id"]

    r = req(nodes[2], "POST", "pki/issue/short", json={"common_name": "s.example.com"})
    assert r.status_code == 200, r.text
    short = r.json()

    nodes[0].kill9()
    new = cluster.active(timeout=10)
    assert new is not nodes[0]
    deadline = time.monotonic() + 30 * SCALE
    while req(new, "PUT", "sys/leases/lookup",
              json={"lease_id": short["lease_id"]}).status_code == 200:
        assert time.monotonic() < deadline, "the short lease never expired after failover"
        time.sleep(0.2)
    d = req(new, "GET", f"pki/cert/{short['data']['serial_number']}").json()["data"]
    assert "revocation_time" in d

    r = req(new, "PUT", "sys/leases/lookup", json={"lease_id": web["lease_id"]})
    assert r.status_code == 200, r.text
    assert req(new, "PUT", f"sys/leases/revoke/{web['lease_id']}").status_code == 204
    d = req(new, "GET", f"pki/cert/{web['data']['serial_number']}").json()["data"]
    assert d["revocation_time"] > 0
    for node in nodes[1:]:
        node.stop()
