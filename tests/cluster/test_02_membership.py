"""Membership and the cluster port: remove and re-add a node, step-down, wrapping through a
standby, and refusal of a client without a cluster certificate."""

import shutil
import socket
import ssl
import time

import hvac
import pytest
import requests

from _procs import SCALE


def wait(cond, what, timeout=30):
    deadline = time.monotonic() + timeout * SCALE
    while True:
        v = cond()
        if v:
            return v
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def test_remove_and_readd_with_wiped_dir(cluster):
    cluster.start()
    n1, n2, n3 = cluster.nodes
    h = cluster.h()
    # Refusals: unknown node, missing id, the active node itself; nothing changes.
    for body, code in (({"server_id": "nope"}, 400), ({}, 400), ({"server_id": "n1"}, 400)):
        r = requests.post(n1.url("sys/storage/raft/remove-peer"), headers=h, json=body)
        assert r.status_code == code, r.text
        assert r.json()["errors"]
    assert len(cluster.configuration()) == 3
    r = requests.post(n1.url("sys/storage/raft/remove-peer"), headers=h, json={"server_id": "n3"})
    assert r.status_code == 204, r.text
    servers = cluster.configuration()
    assert sorted(s["node_id"] for s in servers) == ["n1", "n2"]
    # Writes still commit with two voters.
    c = hvac.Client(url=n1.addr, token=cluster.root)
    c.write("secret/after-remove", value="1")
    # Re-add n3 with a wiped data dir: it joins again and catches up.
    n3.kill9()
    shutil.rmtree(n3.data_dir)
    n3.data_dir.mkdir()
    n3.start()
    cluster.unseal_joiner(n3)
    cluster.wait_voters(3)
    c3 = hvac.Client(url=n3.addr, token=cluster.root)
    assert c3.read("secret/after-remove")["data"]["value"] == "1"
    ha = requests.get(n2.url("sys/ha-status"), headers=h).json()
    assert sorted(x["hostname"] for x in ha["nodes"]) == ["n1", "n2", "n3"]
    assert [x["hostname"] for x in ha["nodes"] if x["active_node"]] == ["n1"]
    assert {x["hostname"]: x["api_address"] for x in ha["nodes"]}["n3"] == n3.addr
    st = requests.get(n1.url("sys/storage/raft/autopilot/state"), headers=h).json()["data"]
    assert st["healthy"] is True
    assert sorted(st["voters"]) == ["n1", "n2", "n3"]
    assert st["failure_tolerance"] == 1
    assert st["servers"]["n1"]["status"] == "leader"


def test_step_down_and_wrapping_through_standbys(cluster):
    cluster.start()
    h = cluster.h()
    old = cluster.active()
    # Response wrapping sent to a standby is forwarded; the token unwraps exactly once.
    standby = next(n for n in cluster.nodes if n is not old)
    r = requests.put(standby.url("secret/wrapped"), headers=h, json={"v": "w"})
    assert r.status_code == 204
    r = requests.get(standby.url("secret/wrapped"), headers=dict(h, **{"X-Vault-Wrap-TTL": "5m"}))
    assert r.status_code == 200, r.text
    wtok = r.json()["wrap_info"]["token"]
    results = []
    for node in cluster.nodes:
        u = requests.post(node.url("sys/wrapping/unwrap"), headers={"X-Vault-Token": wtok})
        results.append(u.status_code)
    assert results.count(200) == 1, results
    # Step-down hands leadership to another voter.
    r = requests.put(old.url("sys/step-down"), headers=h)
    assert r.status_code == 204, r.text
    new = wait(lambda: (lambda a: a if a is not old else None)(cluster.active()), "no new leader")
    assert new is not old
    c = hvac.Client(url=old.addr, token=cluster.root)
    c.write("secret/after-step-down", value="s")
    assert hvac.Client(url=new.addr, token=cluster.root).read(
        "secret/after-step-down")["data"]["value"] == "s"
    # Without a token, step-down and configuration are refused.
    assert requests.put(new.url("sys/step-down")).status_code in (400, 403)
    assert requests.get(new.url("sys/storage/raft/configuration")).status_code in (400, 403)


def test_cluster_port_refuses_clients_without_a_certificate(cluster):
    cluster.start()
    n1 = cluster.nodes[0]
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    for alpn in ("coffer-raft/1", "coffer-fwd/1"):
        ctx.set_alpn_protocols([alpn])
        with socket.create_connection(("127.0.0.1", n1.cluster_port), timeout=5) as raw:
            with pytest.raises((ssl.SSLError, ConnectionResetError, BrokenPipeError)):
                with ctx.wrap_socket(raw) as tls:
                    tls.sendall(b"\x00\x00\x00\x00")
                    data = tls.recv(100)
                    if data == b"":
                        raise ssl.SSLError("closed without serving")
    # The cluster still works.
    assert requests.get(n1.url("sys/health")).status_code == 200


def test_join_refusals(cluster, tmp_path):
    cluster.start()
    n1 = cluster.nodes[0]
    h = cluster.h()
    # An initialized node refuses to join another cluster.
    r = requests.post(n1.url("sys/storage/raft/join"), json={"leader_api_addr": n1.addr})
    assert r.status_code == 400 and "already" in r.json()["errors"][0]
    # A wrong answer to a challenge is refused and adds no member.
    r = requests.post(n1.url("sys/storage/raft/bootstrap/challenge"), json={"server_id": "evil"})
    assert r.status_code == 200, r.text
    r = requests.post(n1.url("sys/storage/raft/bootstrap/answer"),
                      json={"server_id": "evil", "answer": "AAAA", "cluster_addr": "127.0.0.1:1",
                            "csr": "x"})
    assert r.status_code == 400 and r.json()["errors"] == ["invalid answer given"]
    r = requests.post(n1.url("sys/storage/raft/bootstrap/challenge"), json={})
    assert r.status_code == 400
    assert len(cluster.configuration()) == 3
    # Bad autopilot configuration is refused and nothing changes.
    before = requests.get(n1.url("sys/storage/raft/autopilot/configuration"), headers=h).json()
    for body in ({"server_stabilization_time": "soon"}, {"max_trailing_logs": -1},
                 {"cleanup_dead_servers": True}):
        r = requests.post(n1.url("sys/storage/raft/autopilot/configuration"), headers=h, json=body)
        assert r.status_code == 400, r.text
    after = requests.get(n1.url("sys/storage/raft/autopilot/configuration"), headers=h).json()
    assert before["data"] == after["data"]
