"""A follower that falls behind the leader's compacted log catches up from an InstallSnapshot:
storage "raft" snapshot_threshold and trailing_logs are honoured (a small threshold here), the
leader drops the log segments the stopped node lacks, and once restarted and unsealed that node
serves the last write (read with X-Vault-Index)."""

import re
import time

import pytest
import requests

from _cluster import Cluster
from _procs import SCALE


def segments(node):
    """(first, last) indexes of the closed raft log segments in node's data dir."""
    out = []
    for f in node.data_dir.rglob("*"):
        m = re.fullmatch(r"(\d{16})-(\d{16})", f.name)
        if m:
            out.append((int(m.group(1)), int(m.group(2))))
    return out


@pytest.fixture
def small_snapshots(tmp_path):
    c = Cluster(tmp_path, storage_extra="  snapshot_threshold = 64\n  trailing_logs = 16\n")
    yield c
    c.close()


def test_lagging_follower_installs_snapshot(small_snapshots):
    cluster = small_snapshots
    cluster.start()
    n1, _, n3 = cluster.nodes
    assert cluster.active() is n1
    h = cluster.h()
    behind = requests.get(n3.url("sys/health"), params={"perfstandbyok": "true"}).json()
    behind = behind["raft_applied_index"]
    n3.stop()

    # Write until the leader has compacted away every entry after n3's last one.
    index = None
    deadline = time.monotonic() + 60 * SCALE
    i = 0
    while True:
        for _ in range(50):
            w = requests.put(n1.url(f"secret/k{i}"), headers=h, json={"v": str(i)})
            assert w.status_code == 204, w.text
            index = w.headers["X-Vault-Index"]
            i += 1
        segs = segments(n1)
        if segs and min(first for first, _ in segs) > behind + 1:
            break
        assert time.monotonic() < deadline, f"the leader kept its old segments: {segs}"
    assert list(n1.data_dir.rglob("snapshot-*")), "no snapshot with snapshot_threshold = 64"

    # n3 restores its own latest snapshot (if it took one) when it starts, then the leader's.
    own = 1 if list(n3.data_dir.rglob("snapshot-*")) else 0
    n3.start()
    cluster.unseal_joiner(n3)
    r = requests.get(n3.url(f"secret/k{i - 1}"), headers=dict(h, **{"X-Vault-Index": index}))
    assert r.status_code == 200 and r.json()["data"]["v"] == str(i - 1), r.text
    r = requests.get(n3.url("secret/k0"), headers=h)
    assert r.status_code == 200 and r.json()["data"]["v"] == "0", r.text
    assert n3.stderr().count("restored a snapshot") >= own + 1, n3.stderr_tail()
    for node in cluster.nodes:
        node.stop()
