"""Rolling upgrade with two real builds: a 3-node cluster of build A (this build) and a client
writing and issuing through every node; the nodes are replaced one at a time by build B
(COFFER_VERSION_BUMP_FOR_TESTS: a higher version and one more raft entry format), the active
node last. No acknowledged write is lost, no request gets a 5xx outside the leadership change
caused by replacing the active node (the client retries on another node, as Vault clients do
when a node goes away), and the new entry format is used only once every node runs B."""

import os
import threading
import time
from pathlib import Path

import pytest
import requests

from _cluster import Cluster
from _procs import REPO, SCALE, Server

BUILD_B = os.environ.get("COFFER_BIN_B", str(REPO / "build-bump" / "coffer"))
FORMAT_A = 2
FORMAT_B = 3
VERSION_B = "0.1.1"
CHANGE_WINDOW_S = 15 * SCALE  # a leadership change: election, reload, forwarding resumes


def wait(cond, what, timeout=30):
    deadline = time.monotonic() + timeout * SCALE
    while True:
        v = cond()
        if v:
            return v
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


class Client(threading.Thread):
    """Writes kv values and issues no_store certificates round-robin over the running nodes;
    on a refused connection it moves to the next node. Records what was acknowledged and every
    5xx with its time."""

    def __init__(self, cluster):
        super().__init__(daemon=True)
        self.cluster = cluster
        self.stop = threading.Event()
        self.acked = []
        self.errors = []  # (monotonic time, node, status, body)
        self.sealed = []  # (monotonic time, node): a restarted node before its unseal
        self.issued = 0
        self.session = requests.Session()

    def run(self):
        i = 0
        n = 0
        while not self.stop.is_set():
            node = self.cluster.nodes[n % len(self.cluster.nodes)]
            n += 1
            try:
                if i % 4 == 3:
                    r = self.session.post(node.url("pki/issue/edge"), headers=self.cluster.h(),
                                          json={"common_name": f"c{i}.example.com"}, timeout=30)
                else:
                    r = self.session.put(node.url(f"secret/up/{i}"), headers=self.cluster.h(),
                                         json={"v": str(i)}, timeout=30)
            except requests.RequestException:
                continue  # the node is down: the next one
            if r.status_code == 503 and "Vault is sealed" in r.text:
                # A node being replaced, before the operator unseals it: a load balancer
                # checking sys/health would not route here; the next node serves.
                self.sealed.append((time.monotonic(), node.node_id))
                continue
            if r.status_code >= 500:
                self.errors.append((time.monotonic(), node.node_id, r.status_code, r.text[:200]))
                continue
            assert r.status_code in (200, 204), r.text
            if i % 4 == 3:
                self.issued += 1
            else:
                self.acked.append(i)
            i += 1


def autopilot(cluster):
    a = cluster.active()
    r = requests.get(a.url("sys/storage/raft/autopilot/state"), headers=cluster.h(), timeout=5)
    assert r.status_code == 200, r.text
    return r.json()["data"]


@pytest.mark.skipif(not Path(BUILD_B).exists(), reason=f"no version-bumped build at {BUILD_B}")
def test_rolling_upgrade(tmp_path):
    cl = Cluster(tmp_path, n=3)
    client = None
    try:
        cl.start()
        st = autopilot(cl)
        assert st["entry_format"] == FORMAT_A
        assert st["upgrade_info"]["status"] == "idle"
        assert all(s["version"] == "0.1.0" and s["entry_format"] == FORMAT_A
                   for s in st["servers"].values()), st
        h = cl.h()
        requests.post(cl.active().url("sys/mounts/pki"), headers=h, json={"type": "pki"})
        r = requests.post(cl.active().url("pki/root/generate/internal"), headers=h,
                          json={"common_name": "upgrade root", "ttl": "8760h"})
        assert r.status_code == 200, r.text
        r = requests.post(cl.active().url("pki/roles/edge"), headers=h,
                          json={"allowed_domains": "example.com", "allow_subdomains": True,
                                "ttl": "1h", "key_type": "ec", "no_store": True})
        assert r.status_code in (200, 204), r.text

        client = Client(cl)
        client.start()
        time.sleep(1)
        formats_seen = []  # (nodes running B, entry format the active node writes)
        windows = []
        node_windows = {}  # node id -> (stopped, unsealed) while it was replaced
        active = cl.active()
        order = [n for n in cl.nodes if n is not active] + [active]
        for k, node in enumerate(order, start=1):
            start = time.monotonic()
            node.stop()
            node.binary = BUILD_B
            node.start()
            cl.unseal_joiner(node)
            node_windows[node.node_id] = (start, time.monotonic() + 1)
            if node is active:
                cl.active(timeout=30)
                windows.append((start, time.monotonic() + CHANGE_WINDOW_S))
            # Its report reaches the active node and its member record shows build B.
            wait(lambda n=node: autopilot(cl)["servers"][n.node_id]["version"] == VERSION_B,
                 f"{node.node_id} never reported version {VERSION_B}")
            for _ in range(10 if k < 3 else 0):
                formats_seen.append((k, autopilot(cl)["entry_format"]))
                time.sleep(0.3)
        wait(lambda: autopilot(cl)["entry_format"] == FORMAT_B,
             "the new entry format was never used after the last node ran build B")
        formats_seen.append((3, FORMAT_B))
        st = autopilot(cl)
        assert st["upgrade_info"]["status"] == "idle", st["upgrade_info"]
        assert st["upgrade_info"]["target_version"] == VERSION_B
        assert sorted(st["upgrade_info"]["target_version_voters"]) == ["n1", "n2", "n3"]
        time.sleep(2)  # entries in the new format flow to every node
        client.stop.set()
        client.join(60)

        # The new format appeared only once all three ran B.
        assert all(f == FORMAT_A for k, f in formats_seen if k < 3), formats_seen
        # No 5xx outside the active node's replacement.
        stray = [e for e in client.errors if not any(a <= e[0] <= b for a, b in windows)]
        assert stray == [], stray
        # "sealed" answers came only from a node while it was being replaced, or were forwarded
        # from the active node while it shut down (the leadership change).
        stray = [e for e in client.sealed
                 if not node_windows[e[1]][0] <= e[0] <= node_windows[e[1]][1]
                 and not any(a <= e[0] <= b for a, b in windows)]
        assert stray == [], stray
        assert len(client.acked) > 50 and client.issued > 10, (len(client.acked), client.issued)
        # Every acknowledged write is there, on every node.
        for node in cl.nodes:
            for i in client.acked:
                r = requests.get(node.url(f"secret/up/{i}"), headers=h, timeout=5)
                assert r.status_code == 200 and r.json()["data"]["v"] == str(i), (node.node_id, i)
        # The cluster keeps working on build B.
        r = requests.put(cl.active().url("secret/after"), headers=h, json={"v": "b"})
        assert r.status_code == 204, r.text
        # A new node on build A may not join a cluster that writes format 3.
        first = cl.active()
        join = f'  retry_join {{\n    leader_api_addr = "{first.addr}"\n  }}\n'
        n4 = Server(tmp_path / "n4", node_id="n4", storage_extra=join)
        cl.nodes.append(n4)
        n4.start()
        wait(lambda: requests.get(n4.url("sys/seal-status")).json()["t"] > 0,
             "n4 never got the join challenge")
        for key in cl.keys[: cl.threshold]:
            requests.put(n4.url("sys/unseal"), json={"key": key})
        wait(lambda: "run a newer build to join" in n4.stderr(),
             "the old build's join was not refused by name")
        assert len(cl.configuration()) == 3
        n4.kill9()
        cl.nodes.remove(n4)
        # A standby put back on build A meets entries in format 3: it stops applying and says
        # which format it needs, instead of guessing; the other two carry on.
        back = next(n for n in cl.nodes if n is not cl.active())
        back.stop()
        back.binary = None
        back.start()
        wait(lambda: f"has format version {FORMAT_B}" in back.stderr()
             and "upgrade this node" in back.stderr(),
             f"build A on {back.node_id} did not report the unknown entry format")
        r = requests.put(cl.active().url("secret/after2"), headers=h, json={"v": "b"})
        assert r.status_code == 204, r.text
    finally:
        if client is not None:
            client.stop.set()
        cl.close()
