#!/usr/bin/python3
"""Cluster benchmark (issue 5), one run, figures side by side:

1. no_store P-256 issuance: one node pinned to core 0 (h2load pinned to core 1), against an
   active node and a performance standby pinned to a core each with the load split between
   them (two h2load processes); the CPU time the active node spends while only its standby
   signs.
2. stored issuance through the active node, sent to every node of a 3-node cluster;
3. kv write latency p50/p99 through Raft on 3 nodes;
4. failover: kill -9 of the active node to the first successful write.

Usage: tests/bench/bench_cluster.py [seconds per run, default 15]
"""

import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "cluster"))
sys.path.insert(0, str(ROOT / "tests" / "integration"))

from _cluster import Cluster  # noqa: E402
from _procs import Server  # noqa: E402

SECS = int(sys.argv[1]) if len(sys.argv) > 1 else 15
STREAMS = 64


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def h2load(url, token, body, secs=SECS, streams=STREAMS, pin=None, conns=4, log=None):
    cmd = (["taskset", "-c", pin] if pin else []) + [
        "h2load", "-c", str(conns), "-m", str(streams // conns), "-D", str(secs),
        "-H", f"X-Vault-Token: {token}", "-H", "Content-Type: application/json"]
    if body is not None:
        bf = Path(tempfile.mktemp())
        bf.write_text(body)
        cmd += ["-d", str(bf)]
    if log:
        cmd += [f"--log-file={log}"]
    return subprocess.Popen(cmd + [url], stdout=subprocess.PIPE, text=True)


def rate_of(out):
    m = re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", out)
    ok = re.search(r"(\d+) succeeded, (\d+) failed, (\d+) errored", out)
    assert m and ok, out
    assert ok.group(2) == "0" and ok.group(3) == "0", out
    return float(m.group(1))


def latency(log):
    durs = sorted(int(line.split("\t")[2]) for line in open(log))
    pct = lambda p: durs[min(len(durs) - 1, int(p / 100 * len(durs)))] / 1000
    return pct(50), pct(99)


def setup_pki(node, token, no_store=True):
    h = {"X-Vault-Token": token}
    requests.post(node.url("sys/mounts/pki"), headers=h, json={"type": "pki"})
    r = requests.post(node.url("pki/root/generate/internal"), headers=h,
                      json={"common_name": "bench.example", "key_type": "ec", "ttl": "8760h"})
    assert r.status_code == 200, r.text
    for name, ns in (("edge", True), ("stored", False)):
        r = requests.post(node.url(f"pki/roles/{name}"), headers=h,
                          json={"allowed_domains": "example.com", "allow_subdomains": True,
                                "key_type": "ec", "ttl": "1h", "no_store": ns})
        assert r.status_code in (200, 204), r.text


BODY = '{"common_name":"a.example.com"}'


def main():
    tmp = Path(tempfile.mkdtemp(prefix="bench-cluster-"))
    rows = []
    # 1a. one node on core 0.
    single = Server(tmp / "single", node_id="s1", prefix=["taskset", "-c", "0"])
    single.start()
    init = single.init()
    single.unseal(init["keys_base64"])
    setup_pki(single, init["root_token"])
    p = h2load(single.url("pki/issue/edge"), init["root_token"], BODY, pin="1")
    r1 = rate_of(p.communicate()[0])
    single.stop()
    rows.append(("no_store issue, 1 node (core 0)", f"{r1:,.0f}/s", ""))

    # 1b. active (core 0) + performance standby (core 1), load split.
    pair = Cluster(tmp / "pair", n=2, shares=1, threshold=1)
    pair.nodes[0].prefix = ["taskset", "-c", "0"]
    pair.nodes[1].prefix = ["taskset", "-c", "1"]
    pair.start()
    active, standby = pair.nodes
    setup_pki(active, pair.root)
    time.sleep(1)
    pa = h2load(active.url("pki/issue/edge"), pair.root, BODY, streams=STREAMS // 2, conns=2)
    pb = h2load(standby.url("pki/issue/edge"), pair.root, BODY, streams=STREAMS // 2, conns=2)
    ra = rate_of(pa.communicate()[0])
    rb = rate_of(pb.communicate()[0])
    rows.append(("no_store issue, active + perf standby (core each)",
                 f"{ra + rb:,.0f}/s", f"{(ra + rb) / r1:.2f}x one node (target 1.4x)"))
    # Load on the standby only: how much CPU does the active spend meanwhile?
    c0 = cpu_seconds(active.proc.pid)
    pb = h2load(standby.url("pki/issue/edge"), pair.root, BODY, secs=10)
    rb_only = rate_of(pb.communicate()[0])
    used = cpu_seconds(active.proc.pid) - c0
    rows.append(("active CPU while only its standby signs (10 s)", f"{used:.2f} s",
                 f"{rb_only * 10:,.0f} certificates signed by the standby"))
    pair.close()

    # 2-4. three nodes.
    c3 = Cluster(tmp / "three", n=3, shares=1, threshold=1)
    c3.start()
    active = c3.active()
    setup_pki(active, c3.root)
    time.sleep(1)
    procs = [h2load(n.url("pki/issue/stored"), c3.root, BODY, streams=STREAMS // 4, conns=2)
             for n in c3.nodes]
    total = sum(rate_of(p.communicate()[0]) for p in procs)
    rows.append(("stored issue via all 3 nodes (active writes)", f"{total:,.0f}/s", ""))
    log = tmp / "kv.tsv"
    p = h2load(active.url("secret/bench"), c3.root, '{"v":"x"}', streams=16, conns=4, log=log)
    kvr = rate_of(p.communicate()[0])
    p50, p99 = latency(log)
    rows.append(("kv write through Raft, 3 nodes, 16 streams",
                 f"{kvr:,.0f}/s", f"p50 {p50:.2f} ms, p99 {p99:.2f} ms"))
    # Failover: kill -9 the active node, then write until a node accepts.
    others = [n for n in c3.nodes if n is not active]
    active.kill9()
    t0 = time.monotonic()
    done = None
    while done is None and time.monotonic() - t0 < 30:
        for n in others:
            try:
                r = requests.put(n.url("secret/failover"), json={"v": "1"}, timeout=2,
                                 headers={"X-Vault-Token": c3.root})
                if r.status_code == 204:
                    done = time.monotonic() - t0
                    break
            except requests.RequestException:
                pass
        time.sleep(0.02)
    rows.append(("failover: kill -9 of the active to the first write", f"{done:.2f} s",
                 "default timeouts (election 1 s)"))
    c3.close()

    print(f"== Coffer cluster benchmark ({SECS}s runs, {STREAMS} streams, h2load on the same "
          f"2 cores)")
    for name, value, note in rows:
        print(f"{name:<52} {value:>14}  {note}")


if __name__ == "__main__":
    main()
