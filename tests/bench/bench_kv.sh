#!/usr/bin/env bash
# kv benchmark: Coffer (dev server) reads and writes over HTTP/1.1 and HTTP/2 (h2c), against
# etcd's v3 put on the same machine, with h2load. Prints req/s, p50 and p99 latency per case.
#
# Env: COFFER_BIN (default build/coffer), ETCD_BIN (default /usr/bin/etcd), BENCH_CLIENTS (32),
#      BENCH_SECONDS (target length of each measured run, 7).
set -euo pipefail

COFFER_BIN=${COFFER_BIN:-build/coffer}
ETCD_BIN=${ETCD_BIN:-/usr/bin/etcd}
CLIENTS=${BENCH_CLIENTS:-32}
SECONDS_PER_RUN=${BENCH_SECONDS:-7}
TOKEN=bench-root-token

for tool in h2load curl python3 "$COFFER_BIN" "$ETCD_BIN"; do
    command -v "$tool" >/dev/null || { echo "bench_kv: missing $tool" >&2; exit 1; }
done

TMP=$(mktemp -d /tmp/coffer-bench.XXXXXX)
COFFER_PID=
ETCD_PID=
cleanup() {
    [ -n "$COFFER_PID" ] && kill "$COFFER_PID" 2>/dev/null && wait "$COFFER_PID" 2>/dev/null
    [ -n "$ETCD_PID" ] && kill "$ETCD_PID" 2>/dev/null && wait "$ETCD_PID" 2>/dev/null
    rm -rf "$TMP"
    return 0
}
trap cleanup EXIT
trap 'exit 130' INT TERM
BENCH_NAME=bench_kv
# shellcheck source=tests/bench/lib.sh
. "$(dirname "$0")/lib.sh"

echo "machine: $(nproc) CPUs, $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)"
echo "kernel:  $(uname -sr); h2load: $(h2load --version | head -1); etcd: $("$ETCD_BIN" --version | head -1)"
echo "coffer:  $COFFER_BIN ($(git -C "$(dirname "$0")" rev-parse --short HEAD 2>/dev/null || echo '?'))"
echo "storage: $(df --output=fstype /tmp | tail -1) (/tmp holds both data dirs)"
echo "clients: $CLIENTS, ~${SECONDS_PER_RUN}s per run"

# Coffer dev server.
CPORT=$(free_port)
"$COFFER_BIN" server -dev -dev-root-token-id="$TOKEN" -dev-listen-address="127.0.0.1:$CPORT" \
    > "$TMP/coffer.log" 2>&1 &
COFFER_PID=$!
wait_http "http://127.0.0.1:$CPORT/v1/sys/health" 200 "$COFFER_PID" coffer
CURL=(curl -sf -H "X-Vault-Token: $TOKEN" -H "Content-Type: application/json")
echo '{"user":"bench","password":"correct-horse-battery-staple","n":1}' > "$TMP/body.json"
"${CURL[@]}" -X POST --data-binary @"$TMP/body.json" "http://127.0.0.1:$CPORT/v1/secret/bench"
"${CURL[@]}" "http://127.0.0.1:$CPORT/v1/secret/bench" | grep -q correct-horse \
    || { echo "bench_kv: seed read failed" >&2; exit 1; }

CURL_URL="http://127.0.0.1:$CPORT/v1/secret/bench"
AUTH=(-H "X-Vault-Token: $TOKEN")
WRITE=(-d "$TMP/body.json" -H "X-Vault-Token: $TOKEN" -H "Content-Type: application/json")
: > "$TMP/results"
measure coffer_read_h1 "$CURL_URL" --h1 "${AUTH[@]}"
measure coffer_read_h2 "$CURL_URL" "${AUTH[@]}"
IDX0=$(coffer_index)
measure coffer_write_h1 "$CURL_URL" --h1 "${WRITE[@]}"
measure coffer_write_h2 "$CURL_URL" "${WRITE[@]}"
IDX1=$(coffer_index)
WRITES=$(( $(cat "$TMP/coffer_write_h1.total") + $(cat "$TMP/coffer_write_h2.total") ))
echo "grouping $WRITES $(( IDX1 - IDX0 ))" >> "$TMP/results"
kill "$COFFER_PID"
wait "$COFFER_PID" || true
COFFER_PID=

# etcd, single member, default durability (fsync per batch).
EPORT=$(free_port)
EPEER=$(free_port)
"$ETCD_BIN" --data-dir "$TMP/etcd" --name bench \
    --listen-client-urls "http://127.0.0.1:$EPORT" --advertise-client-urls "http://127.0.0.1:$EPORT" \
    --listen-peer-urls "http://127.0.0.1:$EPEER" --initial-advertise-peer-urls "http://127.0.0.1:$EPEER" \
    --initial-cluster "bench=http://127.0.0.1:$EPEER" > "$TMP/etcd.log" 2>&1 &
ETCD_PID=$!
wait_http "http://127.0.0.1:$EPORT/health" 200 "$ETCD_PID" etcd
echo '{"key":"Zm9v","value":"YmFy"}' > "$TMP/put.json"
curl -sf -X POST --data-binary @"$TMP/put.json" "http://127.0.0.1:$EPORT/v3/kv/put" | grep -q header \
    || { echo "bench_kv: etcd put failed" >&2; exit 1; }
measure etcd_put_h1 "http://127.0.0.1:$EPORT/v3/kv/put" --h1 -d "$TMP/put.json" \
    -H "Content-Type: application/json"

echo
python3 - "$TMP/results" <<'EOF'
import sys
rows = {}
grouping = None
for line in open(sys.argv[1]):
    if line.startswith("grouping "):
        grouping = [int(x) for x in line.split()[1:]]
        continue
    name, rps, p50, p99, n, bad = line.split()
    rows[name] = (float(rps), float(p50), float(p99), int(n), int(bad))
labels = [("coffer_read_h1", "coffer read  HTTP/1.1"), ("coffer_read_h2", "coffer read  HTTP/2"),
          ("coffer_write_h1", "coffer write HTTP/1.1"), ("coffer_write_h2", "coffer write HTTP/2"),
          ("etcd_put_h1", "etcd put     HTTP/1.1")]
print(f"| {'case':<22}| {'req/s':>9} | {'p50 ms':>7} | {'p99 ms':>7} | {'requests':>8} | {'non-2xx':>7} |")
print(f"|{'-' * 23}|{'-' * 11}|{'-' * 9}|{'-' * 9}|{'-' * 10}|{'-' * 9}|")
for key, label in labels:
    rps, p50, p99, n, bad = rows[key]
    print(f"| {label:<22}| {rps:>9.0f} | {p50:>7.2f} | {p99:>7.2f} | {n:>8} | {bad:>7} |")
ratio = rows["coffer_write_h1"][0] / rows["etcd_put_h1"][0]
print(f"\ncoffer write HTTP/1.1 / etcd put: {ratio:.2f}x")
writes, entries = grouping
print(f"coffer writes (probes included): {writes} acknowledged in {entries} raft entries, "
      f"{writes / max(entries, 1):.1f} writes per entry (one durable append each)")
print(f"targets: reads >= 20000/s: {'met' if min(rows['coffer_read_h1'][0], rows['coffer_read_h2'][0]) >= 20000 else 'NOT met'}; "
      f"writes >= etcd put: {'met' if ratio >= 1 else 'NOT met'}")
EOF
