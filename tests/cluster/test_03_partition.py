"""Each node in its own network namespace (veth pairs on a bridge, its own address); a
partition (link down) isolates the leader: the minority stops accepting writes with 503, the
majority elects a new leader, and after healing the old leader catches up. Needs root."""

import os
import shutil
import subprocess
import time

import pytest
import requests

from _procs import SCALE
from _cluster import Cluster

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("ip") is None, reason="needs root and iproute2")

NET = "10.203.0"


def ip(*args, check=True):
    return subprocess.run(["ip", *args], check=check, capture_output=True, text=True)


@pytest.fixture
def netns3():
    tag = f"{os.getpid() % 10000}"
    bridge = f"cfbr{tag}"
    names = [f"cfns{tag}x{i}" for i in range(1, 4)]
    hosts = [f"{NET}.{i}" for i in range(1, 4)]
    links = [f"cfv{tag}x{i}" for i in range(1, 4)]
    try:
        ip("link", "add", bridge, "type", "bridge")
        ip("addr", "add", f"{NET}.254/24", "dev", bridge)
        ip("link", "set", bridge, "up")
        for i, (ns, host, link) in enumerate(zip(names, hosts, links), start=1):
            peer = f"cfp{tag}x{i}"
            ip("netns", "add", ns)
            ip("link", "add", link, "type", "veth", "peer", "name", peer)
            ip("link", "set", peer, "netns", ns)
            ip("link", "set", link, "master", bridge, "up")
            ip("-n", ns, "addr", "add", f"{host}/24", "dev", peer)
            ip("-n", ns, "link", "set", peer, "up")
            ip("-n", ns, "link", "set", "lo", "up")
        yield names, hosts, links
    finally:
        for ns, link in zip(names, links):
            ip("link", "del", link, check=False)
            ip("netns", "del", ns, check=False)
        ip("link", "del", bridge, check=False)


def curl_in(ns, method, url, token, body=None, timeout=30):
    """HTTP status of a request made from inside a namespace (the isolated side)."""
    cmd = ["ip", "netns", "exec", ns, "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
           "--max-time", str(timeout), "-X", method, "-H", f"X-Vault-Token: {token}", url]
    if body is not None:
        cmd += ["-d", body]
    r = subprocess.run(cmd, capture_output=True, text=True)
    return int(r.stdout or "0")


def test_partition_isolating_the_leader(tmp_path, netns3):
    names, hosts, links = netns3
    cluster = Cluster(tmp_path, hosts=hosts, netns=names)
    try:
        cluster.start()
        h = cluster.h()
        n1 = cluster.nodes[0]
        assert cluster.active() is n1
        r = requests.put(n1.url("secret/before"), headers=h, json={"v": "1"})
        assert r.status_code == 204
        # Isolate the leader (its veth on the bridge goes down).
        ip("link", "set", links[0], "down")
        t0 = time.monotonic()
        # The majority elects a new leader and keeps accepting writes.
        deadline = time.monotonic() + 15 * SCALE
        new = None
        while new is None:
            for node in cluster.nodes[1:]:
                try:
                    if requests.get(node.url("sys/health"), timeout=1).status_code == 200:
                        new = node
                except requests.RequestException:
                    pass
            assert time.monotonic() < deadline, "the majority elected no leader"
            time.sleep(0.1)
        print(f"new leader {new.node_id} after {time.monotonic() - t0:.2f}s")
        w = requests.put(new.url("secret/majority"), headers=h, json={"v": "2"})
        assert w.status_code == 204, w.text
        index = w.headers["X-Vault-Index"]
        # The minority side refuses writes with 503 (bounded, never a hang, never a 2xx).
        url = f"http://{hosts[0]}:8200/v1/secret/minority"
        code = curl_in(names[0], "PUT", url, cluster.root, '{"v":"3"}')
        assert code == 503, code
        # Heal: the old leader rejoins as a standby and sees the majority's write.
        ip("link", "set", links[0], "up")
        deadline = time.monotonic() + 30 * SCALE
        while True:
            try:
                st = requests.get(n1.url("sys/health"), timeout=1).status_code
            except requests.RequestException:
                st = 0
            try:
                leader = requests.get(n1.url("sys/leader"), timeout=1).json()
            except requests.RequestException:
                leader = {}
            # A standby that follows the majority's active node (473 alone is also what the
            # isolated node says before the link is back).
            if st == 473 and leader.get("leader_address") == new.addr:
                break
            assert time.monotonic() < deadline, f"old leader did not rejoin: {st} {leader}"
            time.sleep(0.2)
        r = requests.get(n1.url("secret/majority"), headers=dict(h, **{"X-Vault-Index": index}))
        assert r.status_code == 200 and r.json()["data"]["v"] == "2", r.text
        # The refused minority write never appeared anywhere.
        for node in cluster.nodes:
            r = requests.get(node.url("secret/minority"), headers=h)
            assert r.status_code == 404, r.text
    finally:
        cluster.close()
