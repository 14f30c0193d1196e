"""Three nodes on loopback: join, unseal, forwarding from standbys, failover, catch-up."""

import time

import hvac
import requests

from _procs import SCALE


def test_join_forward_failover(cluster):
    cluster.start()
    nodes = cluster.nodes
    active = cluster.active()
    assert active is nodes[0]
    servers = cluster.configuration()
    assert sorted(s["node_id"] for s in servers) == ["n1", "n2", "n3"]
    assert sum(1 for s in servers if s["leader"]) == 1

    # Standbys report themselves and the active node.
    for node in nodes[1:]:
        r = requests.get(node.url("sys/health"))
        assert r.status_code == 473, r.text
        assert r.json()["standby"] is True
        assert r.json()["performance_standby"] is True
        assert requests.get(node.url("sys/health?perfstandbyok=true")).status_code == 429
        ok = requests.get(node.url("sys/health?perfstandbyok=true&standbyok=true"))
        assert ok.status_code == 200
        leader = requests.get(node.url("sys/leader")).json()
        assert leader["is_self"] is False
        assert leader["leader_address"] == nodes[0].addr

    # hvac pointed at a standby works as at the active node (forwarded).
    c = hvac.Client(url=nodes[2].addr, token=cluster.root)
    c.write("secret/from-standby", value="v1")
    assert c.read("secret/from-standby")["data"]["value"] == "v1"
    c.sys.create_or_update_policy("readers", 'path "secret/*" { capabilities = ["read"] }')
    tok = c.auth.token.create(policies=["readers"], ttl="1h")["auth"]["client_token"]
    reader = hvac.Client(url=nodes[1].addr, token=tok)
    assert reader.read("secret/from-standby")["data"]["value"] == "v1"
    c.sys.enable_secrets_engine("pki", path="pki")
    c.secrets.pki.generate_root("internal", "example.com", extra_params={"ttl": "8760h", "key_type": "ec"})
    c.secrets.pki.create_or_update_role("web", {"allowed_domains": "example.com",
                                                "allow_subdomains": True, "ttl": "1h",
                                                "key_type": "ec"})
    cert = c.secrets.pki.generate_certificate("web", "a.example.com")
    assert "BEGIN CERTIFICATE" in cert["data"]["certificate"]

    # A write with X-Vault-No-Request-Forwarding: a 307 to the active node instead (reads are
    # served by the performance standby itself, as in Vault).
    r = requests.post(nodes[1].url("secret/redirected"), json={"value": "r"}, headers={
        "X-Vault-Token": cluster.root, "X-Vault-No-Request-Forwarding": "true"},
        allow_redirects=False)
    assert r.status_code == 307, r.text
    assert r.headers["Location"] == nodes[0].url("secret/redirected")
    r = requests.get(nodes[1].url("secret/from-standby"), headers={
        "X-Vault-Token": cluster.root, "X-Vault-No-Request-Forwarding": "true"})
    assert r.status_code == 200, r.text

    # no_store issuance on a performance standby is served there: its own metrics count it.
    c.secrets.pki.create_or_update_role("edge", {"allowed_domains": "example.com",
                                                 "allow_subdomains": True, "ttl": "1h",
                                                 "key_type": "ec", "no_store": True})
    def issued(node):
        m = requests.get(node.url("sys/metrics"), headers=cluster.h()).json()
        return sum(s["Count"] for s in m["Samples"] if s["Name"] == "vault.secrets.pki.issue")
    before = (issued(nodes[0]), issued(nodes[1]))
    for _ in range(5):
        r = requests.post(nodes[1].url("pki/issue/edge"), headers=cluster.h(),
                          json={"common_name": "b.example.com"})
        assert r.status_code == 200, r.text
    assert issued(nodes[1]) == before[1] + 5
    assert issued(nodes[0]) == before[0]

    # Acknowledged writes, then kill -9 of the active node.
    acked = []
    for i in range(50):
        c.write(f"secret/k{i}", value=str(i))
        acked.append(i)
    nodes[0].kill9()
    t0 = time.monotonic()
    new = cluster.active(timeout=10)
    elapsed = time.monotonic() - t0
    assert new is not nodes[0]
    assert elapsed < 5 * SCALE, f"failover took {elapsed:.2f}s"
    c2 = hvac.Client(url=new.addr, token=cluster.root)
    for i in acked:
        assert c2.read(f"secret/k{i}")["data"]["value"] == str(i)
    w = requests.put(new.url("secret/after-failover"), headers=cluster.h(), json={"value": "x"})
    assert w.status_code == 204, w.text
    index = w.headers["X-Vault-Index"]

    # The old node restarts sealed, is unsealed, catches up and follows.
    nodes[0].start()
    deadline = time.monotonic() + 30 * SCALE
    while not requests.get(nodes[0].url("sys/seal-status")).json()["initialized"]:
        assert time.monotonic() < deadline, "the restarted node never caught up"
        time.sleep(0.05)
    for k in cluster.keys[: cluster.threshold]:
        requests.put(nodes[0].url("sys/unseal"), json={"key": k})
    deadline = time.monotonic() + 30 * SCALE
    while True:
        r = requests.get(nodes[0].url("sys/health"))
        if r.status_code == 473:
            break
        assert time.monotonic() < deadline, f"old node: {r.status_code} {r.text}"
        time.sleep(0.1)
    # A performance standby is eventually consistent, as in Vault: 473 says it serves reads,
    # not that it has applied everything yet. X-Vault-Index makes it wait for the write.
    r = requests.get(nodes[0].url("secret/after-failover"),
                     headers=dict(cluster.h(), **{"X-Vault-Index": index}))
    assert r.status_code == 200 and r.json()["data"]["value"] == "x", r.text
    for node in nodes:
        node.stop()
