"""Raft snapshots: save on a cluster and restore into it (every node returns to the snapshot's
state), and restore into a fresh cluster made with other keys (refused without force; forced, the
nodes seal and open with the old cluster's keys, and all data is there). Damaged files and
tokens without sudo are refused and nothing changes."""

import time

import hvac
import requests

from _cluster import Cluster
from _procs import SCALE


def wait(cond, what, timeout=30):
    deadline = time.monotonic() + timeout * SCALE
    while True:
        v = cond()
        if v:
            return v
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def kv_value(node, token, path):
    r = requests.get(node.url(f"secret/{path}"), headers={"X-Vault-Token": token}, timeout=5)
    if r.status_code != 200:
        return r.status_code
    return r.json()["data"]["v"]


def test_snapshot_restore_same_cluster(cluster):
    cluster.start()
    active = cluster.active()
    standby = next(n for n in cluster.nodes if n is not active)
    c = hvac.Client(url=standby.addr, token=cluster.root)  # forwarded to the active node
    c.secrets.kv.v1.create_or_update_secret(path="keep", secret={"v": "before"})
    c.sys.enable_secrets_engine("pki", path="pki")
    root = c.write("pki/root/generate/internal", common_name="snap root", ttl="8760h")
    c.write("pki/roles/web", allowed_domains="example.com", allow_subdomains=True, ttl="1h")

    snap = c.sys.take_raft_snapshot()
    assert snap.status_code == 200
    data = snap.content
    assert data[:8] == b"COFFSNAP"

    # Changes after the snapshot.
    c.secrets.kv.v1.create_or_update_secret(path="keep", secret={"v": "after"})
    c.secrets.kv.v1.create_or_update_secret(path="later", secret={"v": "x"})
    c.sys.create_or_update_policy("after", 'path "secret/*" { capabilities = ["read"] }')

    # Refused, nothing changed: a damaged file, something else, no body, a token without sudo.
    bad = bytearray(data)
    bad[len(bad) // 2] ^= 0xFF
    h = cluster.h()
    r = requests.post(active.url("sys/storage/raft/snapshot"), headers=h, data=bytes(bad))
    assert r.status_code == 400 and "checksum" in r.text, r.text
    r = requests.post(active.url("sys/storage/raft/snapshot"), headers=h, data=b"x" * 100)
    assert r.status_code == 400 and "not a Coffer raft snapshot" in r.text, r.text
    r = requests.post(active.url("sys/storage/raft/snapshot"), headers=h, data=b"")
    assert r.status_code == 400 and "no snapshot" in r.text, r.text
    nosudo = c.auth.token.create(policies=["after"], ttl="1h")["auth"]["client_token"]
    r = requests.post(active.url("sys/storage/raft/snapshot"),
                      headers={"X-Vault-Token": nosudo}, data=data)
    assert r.status_code == 403, r.text
    r = requests.get(active.url("sys/storage/raft/snapshot"), headers={"X-Vault-Token": nosudo})
    assert r.status_code == 403, r.text
    assert kv_value(active, cluster.root, "keep") == "after"
    assert kv_value(active, cluster.root, "later") == "x"

    # Restore through a standby with hvac: every node returns to the snapshot's state.
    r = c.sys.restore_raft_snapshot(data)
    assert r.status_code == 204, r.text
    for node in cluster.nodes:
        wait(lambda n=node: kv_value(n, cluster.root, "keep") == "before",
             f"{node.node_id} never showed the restored value")
        assert kv_value(node, cluster.root, "later") == 404
    assert "after" not in c.sys.list_policies()["data"]["policies"]
    # The token made after the snapshot is gone with it.
    r = requests.get(active.url("auth/token/lookup-self"), headers={"X-Vault-Token": nosudo})
    assert r.status_code == 403, r.text
    # The restored PKI still issues under the restored root, on every node.
    for node in cluster.nodes:
        ca = requests.get(node.url("pki/ca/pem")).text
        assert ca.strip() == root["data"]["certificate"].strip()
    cert = hvac.Client(url=active.addr, token=cluster.root).write(
        "pki/issue/web", common_name="a.example.com")
    assert cert["data"]["issuing_ca"].strip() == root["data"]["certificate"].strip()
    # The cluster itself is untouched: three voters, and it still takes writes.
    assert sum(1 for s in cluster.configuration() if s["voter"]) == 3
    c.secrets.kv.v1.create_or_update_secret(path="again", secret={"v": "y"})


def test_snapshot_into_fresh_cluster(tmp_path):
    a = Cluster(tmp_path / "a", n=1)
    b = Cluster(tmp_path / "b", n=3)
    try:
        a.start()
        ca = hvac.Client(url=a.nodes[0].addr, token=a.root)
        for i in range(50):
            ca.secrets.kv.v1.create_or_update_secret(path=f"k{i}", secret={"v": f"v{i}"})
        ca.sys.enable_secrets_engine("pki", path="pki")
        ca.write("pki/root/generate/internal", common_name="a root", ttl="8760h")
        ca.write("pki/roles/web", allowed_domains="example.com", allow_subdomains=True, ttl="1h")
        serial = ca.write("pki/issue/web", common_name="x.example.com")["data"]["serial_number"]
        snap = ca.sys.take_raft_snapshot().content
        a.close()

        b.start()
        active = b.active()
        cb = hvac.Client(url=active.addr, token=b.root)
        cb.secrets.kv.v1.create_or_update_secret(path="b-only", secret={"v": "b"})

        # Without force: refused (other keys), nothing changed.
        r = requests.post(active.url("sys/storage/raft/snapshot"), headers=b.h(), data=snap)
        assert r.status_code == 400 and "other keys" in r.text, r.text
        assert kv_value(active, b.root, "b-only") == "b"

        r = requests.post(active.url("sys/storage/raft/snapshot-force"), headers=b.h(), data=snap)
        assert r.status_code == 204, r.text
        # Every node seals: the restored keys open only with the old cluster's shares.
        for node in b.nodes:
            wait(lambda n=node: requests.get(n.url("sys/seal-status")).json()["sealed"],
                 f"{node.node_id} did not seal after the forced restore")
        for node in b.nodes:
            for k in a.keys[: a.threshold]:
                r = requests.put(node.url("sys/unseal"), json={"key": k})
                assert r.status_code == 200, r.text
            assert r.json()["sealed"] is False, r.text
        active = b.active(timeout=30)
        c = hvac.Client(url=active.addr, token=a.root)  # the old cluster's root token
        for i in range(50):
            assert c.secrets.kv.v1.read_secret(path=f"k{i}")["data"]["v"] == f"v{i}"
        assert kv_value(active, a.root, "b-only") == 404
        assert serial in c.list("pki/certs")["data"]["keys"]
        c.write("pki/issue/web", common_name="y.example.com")
        # The cluster that received the snapshot keeps its own membership.
        b.root = a.root  # the old cluster's tokens are the ones that exist now
        assert sum(1 for s in b.configuration() if s["voter"]) == 3
        for node in b.nodes:
            wait(lambda n=node: kv_value(n, a.root, "k7") == "v7",
                 f"{node.node_id} does not serve the restored data")
    finally:
        a.close()
        b.close()
