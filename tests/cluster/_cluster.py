"""The multi-node harness: real `coffer server` processes forming one Raft cluster."""

import sys
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))

from _procs import SCALE, Server  # noqa: E402


class Cluster:
    """N nodes: node 0 is initialized; the others join it with retry_join and are unsealed
    with the same shares."""

    def __init__(self, tmp_path, n=3, shares=3, threshold=2, hosts=None, netns=None,
                 storage_extra=""):
        """hosts/netns: per node address and network namespace (default: loopback);
        storage_extra: more lines for every node's storage block."""
        self.nodes = []
        self.keys = None
        self.root = None
        self.threshold = threshold
        hosts = hosts or ["127.0.0.1"] * n
        netns = netns or [None] * n
        first = Server(tmp_path / "n1", node_id="n1", host=hosts[0], netns=netns[0],
                       storage_extra=storage_extra)
        self.nodes.append(first)
        for i in range(2, n + 1):
            join = f'  retry_join {{\n    leader_api_addr = "{first.addr}"\n  }}\n'
            self.nodes.append(Server(tmp_path / f"n{i}", node_id=f"n{i}",
                                     storage_extra=storage_extra + join,
                                     host=hosts[i - 1], netns=netns[i - 1]))
        self.shares = shares

    def start(self, stabilization="1s"):
        first = self.nodes[0]
        first.start()
        init = first.init(shares=self.shares, threshold=self.threshold)
        self.keys = init["keys_base64"]
        self.root = init["root_token"]
        first.unseal(self.keys, self.threshold)
        r = requests.post(first.url("sys/storage/raft/autopilot/configuration"),
                          headers=self.h(), json={"server_stabilization_time": stabilization})
        assert r.status_code == 204, r.text
        for node in self.nodes[1:]:
            node.start()
            self.unseal_joiner(node)
        self.wait_voters(len(self.nodes))

    def h(self):
        return {"X-Vault-Token": self.root}

    def unseal_joiner(self, node, timeout=30):
        """Feeds shares once the join has fetched its challenge; waits until unsealed."""
        deadline = time.monotonic() + timeout * SCALE
        while True:
            st = requests.get(node.url("sys/seal-status")).json()
            if st["initialized"] and st["t"] > 0:
                break
            assert time.monotonic() < deadline, f"{node.node_id} never got the challenge: {st}"
            time.sleep(0.05)
        for k in self.keys[: self.threshold]:
            requests.put(node.url("sys/unseal"), json={"key": k})
        self.wait_unsealed(node, deadline)

    def wait_unsealed(self, node, deadline):
        while True:
            st = requests.get(node.url("sys/seal-status")).json()
            if not st["sealed"]:
                return
            assert time.monotonic() < deadline, f"{node.node_id} stays sealed:\n{node.stderr_tail()}"
            time.sleep(0.05)

    def active(self, timeout=15):
        """The node whose sys/health says active (200)."""
        deadline = time.monotonic() + timeout * SCALE
        while True:
            for node in self.nodes:
                if node.proc is None:
                    continue
                try:
                    if requests.get(node.url("sys/health"), timeout=1).status_code == 200:
                        return node
                except requests.RequestException:
                    pass
            assert time.monotonic() < deadline, "no active node"
            time.sleep(0.05)

    def configuration(self):
        a = self.active()
        r = requests.get(a.url("sys/storage/raft/configuration"), headers=self.h())
        assert r.status_code == 200, r.text
        return r.json()["data"]["config"]["servers"]

    def wait_voters(self, n, timeout=30):
        deadline = time.monotonic() + timeout * SCALE
        while True:
            servers = self.configuration()
            if sum(1 for s in servers if s["voter"]) == n:
                return servers
            assert time.monotonic() < deadline, f"voters never reached {n}: {servers}"
            time.sleep(0.2)

    def close(self):
        for node in self.nodes:
            node.close()
