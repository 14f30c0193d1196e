"""Autopilot's dead server cleanup: with cleanup_dead_servers, a voter that has been failed for
dead_server_last_contact_threshold is removed, one at a time, never below min_quorum voters."""

import time

import requests

from _cluster import Cluster
from _procs import SCALE


def test_dead_server_cleanup(tmp_path):
    cl = Cluster(tmp_path, n=5)
    try:
        cl.start()
        a = cl.active()
        h = cl.h()
        # Refused, nothing changed: cleanup without a min_quorum of at least 3.
        r = requests.post(a.url("sys/storage/raft/autopilot/configuration"), headers=h,
                          json={"cleanup_dead_servers": True, "min_quorum": 2})
        assert r.status_code == 400 and "min_quorum" in r.text, r.text
        r = requests.get(a.url("sys/storage/raft/autopilot/configuration"), headers=h)
        assert r.json()["data"]["cleanup_dead_servers"] is False
        r = requests.post(a.url("sys/storage/raft/autopilot/configuration"), headers=h,
                          json={"cleanup_dead_servers": True, "min_quorum": 4,
                                "dead_server_last_contact_threshold": "1m"})
        assert r.status_code == 204, r.text

        dead = [n for n in cl.nodes if n is not a][-2:]
        for n in dead:
            n.kill9()
        killed = time.monotonic()
        # Still there before the threshold.
        time.sleep(20)
        assert len(cl.configuration()) == 5
        # After it, exactly one of the two is removed: a second removal would leave fewer than
        # min_quorum = 4 voters.
        deadline = killed + 120 * SCALE
        while len(cl.configuration()) != 4:
            assert time.monotonic() < deadline, cl.configuration()
            time.sleep(1)
        assert time.monotonic() - killed >= 60
        time.sleep(10)
        servers = cl.configuration()
        assert len(servers) == 4, servers
        ids = {s["node_id"] for s in servers}
        gone = [n.node_id for n in dead if n.node_id not in ids]
        assert len(gone) == 1, servers
        st = requests.get(a.url("sys/storage/raft/autopilot/state"), headers=h).json()["data"]
        assert gone[0] not in st["servers"]
        # The cluster still takes writes.
        r = requests.put(cl.active().url("secret/after-cleanup"), headers=h, json={"v": "1"})
        assert r.status_code == 204, r.text
    finally:
        cl.close()
