#!/usr/bin/env bash
# Seal benchmark (issue 6): a config-file server with the PKCS#11 seal on a SoftHSM2 token.
# kv v1 reads and writes on a seal-wrapped mount against an unwrapped one, same node, same run,
# with h2load (HTTP/2 h2c); then the unseal time after a restart (process start to the first 200
# from sys/health) for the PKCS#11 seal, the static seal, and Shamir (one unseal request sent as
# soon as the node answers) as the reference.
#
# Env: COFFER_BIN (default build/coffer), BENCH_CLIENTS (32), BENCH_SECONDS (~7 per run),
#      BENCH_RESTARTS (5 restarts per seal for the unseal time).
set -euo pipefail

COFFER_BIN=${COFFER_BIN:-build/coffer}
CLIENTS=${BENCH_CLIENTS:-32}
SECONDS_PER_RUN=${BENCH_SECONDS:-7}
RESTARTS=${BENCH_RESTARTS:-5}
SOFTHSM=/usr/lib/softhsm/libsofthsm2.so

for tool in h2load curl python3 softhsm2-util "$COFFER_BIN" "$SOFTHSM"; do
    command -v "$tool" >/dev/null || [ -e "$tool" ] || { echo "bench_seal: missing $tool" >&2; exit 1; }
done

TMP=$(mktemp -d /tmp/coffer-bench-seal.XXXXXX)
COFFER_PID=
cleanup() {
    [ -n "$COFFER_PID" ] && kill "$COFFER_PID" 2>/dev/null && wait "$COFFER_PID" 2>/dev/null
    rm -rf "$TMP"
    return 0
}
trap cleanup EXIT
trap 'exit 130' INT TERM
BENCH_NAME=bench_seal
# shellcheck source=tests/bench/lib.sh
. "$(dirname "$0")/lib.sh"

# A SoftHSM2 token store of this run's own.
mkdir -p "$TMP/tokens"
printf 'directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n' \
    "$TMP/tokens" > "$TMP/softhsm2.conf"
export SOFTHSM2_CONF=$TMP/softhsm2.conf
softhsm2-util --init-token --free --label bench --pin 1234 --so-pin 5678 > /dev/null

# write_config NAME SEAL_BLOCK: a config file for a node with its own data dir and port.
write_config() {
    local name=$1 seal=$2 port
    port=$(free_port)
    mkdir -p "$TMP/$name/data"
    cat > "$TMP/$name/coffer.hcl" <<EOF
storage "raft" {
  path = "$TMP/$name/data"
}
listener "tcp" {
  address = "127.0.0.1:$port"
  tls_disable = true
}
disable_mlock = true
$seal
EOF
    echo "$port"
}

# start NAME PORT: starts the node, returns once sys/health answers at all.
start() {
    "$COFFER_BIN" server -config="$TMP/$1/coffer.hcl" >> "$TMP/$1.log" 2>&1 &
    COFFER_PID=$!
    for _ in $(seq 400); do
        code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$2/v1/sys/health" || true)
        [ "$code" != "000" ] && return 0
        kill -0 "$COFFER_PID" 2>/dev/null || { echo "bench_seal: $1 exited" >&2; tail -20 "$TMP/$1.log" >&2; exit 1; }
        sleep 0.02
    done
    echo "bench_seal: $1 did not start" >&2
    exit 1
}

stop() {
    kill "$COFFER_PID"
    wait "$COFFER_PID" || true
    COFFER_PID=
}

PKCS11_SEAL="seal \"pkcs11\" {
  lib = \"$SOFTHSM\"
  token_label = \"bench\"
  pin = \"1234\"
  key_label = \"bench-seal-key\"
  generate_key = \"true\"
}"

echo "machine: $(nproc) CPUs, $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)"
echo "coffer:  $COFFER_BIN ($(git -C "$(dirname "$0")" rev-parse --short HEAD 2>/dev/null || echo '?')); SoftHSM2 $(softhsm2-util --version)"
echo "clients: $CLIENTS, ~${SECONDS_PER_RUN}s per run"

# 1. kv on a seal-wrapped mount against an unwrapped one, PKCS#11 seal.
CPORT=$(write_config hsm "$PKCS11_SEAL")
start hsm "$CPORT"
BASE="http://127.0.0.1:$CPORT/v1"
TOKEN=$(curl -sf -X PUT -d '{"recovery_shares":1,"recovery_threshold":1}' "$BASE/sys/init" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["root_token"])')
CURL=(curl -sf -H "X-Vault-Token: $TOKEN" -H "Content-Type: application/json")
for m in kv-unwrapped:false kv-seal-wrapped:true; do
    "${CURL[@]}" -X POST -d "{\"type\":\"kv\",\"options\":{\"version\":\"1\"},\"seal_wrap\":${m#*:}}" \
        "$BASE/sys/mounts/${m%%:*}"
done
echo '{"user":"bench","password":"correct-horse-battery-staple","n":1}' > "$TMP/body.json"
for m in kv-unwrapped kv-seal-wrapped; do
    "${CURL[@]}" -X POST --data-binary @"$TMP/body.json" "$BASE/$m/bench"
    "${CURL[@]}" "$BASE/$m/bench" | grep -q correct-horse || { echo "bench_seal: seed read failed" >&2; exit 1; }
done
AUTH=(-H "X-Vault-Token: $TOKEN")
WRITE=(-d "$TMP/body.json" -H "X-Vault-Token: $TOKEN" -H "Content-Type: application/json")
: > "$TMP/results"
measure read_unwrapped "$BASE/kv-unwrapped/bench" "${AUTH[@]}"
measure read_wrapped "$BASE/kv-seal-wrapped/bench" "${AUTH[@]}"
measure write_unwrapped "$BASE/kv-unwrapped/bench" "${WRITE[@]}"
measure write_wrapped "$BASE/kv-seal-wrapped/bench" "${WRITE[@]}"
stop

# 2. Unseal time after a restart: process start to the first 200 from sys/health.
# time_to_active NAME PORT [UNSEAL_KEY]: milliseconds; with a key, posts it once health answers.
time_to_active() {
    local t0 t1
    t0=$(date +%s%N)
    "$COFFER_BIN" server -config="$TMP/$1/coffer.hcl" >> "$TMP/$1.log" 2>&1 &
    COFFER_PID=$!
    local sent=0
    for _ in $(seq 2000); do
        code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$2/v1/sys/health" || true)
        if [ "$code" = 200 ]; then
            t1=$(date +%s%N)
            echo $(( (t1 - t0) / 1000000 ))
            stop
            return 0
        fi
        if [ -n "${3:-}" ] && [ "$sent" = 0 ] && [ "$code" = 503 ]; then
            curl -sf -X PUT -d "{\"key\":\"$3\"}" "http://127.0.0.1:$2/v1/sys/unseal" > /dev/null
            sent=1
        fi
        sleep 0.005
    done
    echo "bench_seal: $1 never became active" >&2
    exit 1
}

PHRASE=$("$COFFER_BIN" operator generate-seal-key | sed -n 's/^Seal key (24-word phrase): //p')
export SEAL_UNSEAL_KEY=$PHRASE
SPORT=$(write_config static 'seal "static" {
  provider = "environment"
}')
start static "$SPORT"
curl -sf -X PUT -d '{"recovery_shares":1,"recovery_threshold":1}' "http://127.0.0.1:$SPORT/v1/sys/init" > /dev/null
stop
MPORT=$(write_config shamir "")
start shamir "$MPORT"
UNSEAL=$(curl -sf -X PUT -d '{"secret_shares":1,"secret_threshold":1}' "http://127.0.0.1:$MPORT/v1/sys/init" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["keys_base64"][0])')
stop
for i in $(seq "$RESTARTS"); do
    echo "unseal pkcs11 $(time_to_active hsm "$CPORT")" >> "$TMP/results"
    echo "unseal static $(time_to_active static "$SPORT")" >> "$TMP/results"
    echo "unseal shamir $(time_to_active shamir "$MPORT" "$UNSEAL")" >> "$TMP/results"
done

echo
python3 - "$TMP/results" <<'EOF'
import statistics, sys
rows, unseal = {}, {}
for line in open(sys.argv[1]):
    f = line.split()
    if f[0] == "unseal":
        unseal.setdefault(f[1], []).append(int(f[2]))
        continue
    rows[f[0]] = (float(f[1]), float(f[2]), float(f[3]), int(f[4]))
print(f"| {'kv v1 (HTTP/2)':<16}| {'unwrapped req/s':>15} | {'p99 ms':>7} | {'seal-wrapped req/s':>18} | {'p99 ms':>7} | {'wrapped/unwrapped':>17} |")
print(f"|{'-' * 17}|{'-' * 17}|{'-' * 9}|{'-' * 20}|{'-' * 9}|{'-' * 19}|")
worst = 0
for op in ("read", "write"):
    u, w = rows[f"{op}_unwrapped"], rows[f"{op}_wrapped"]
    slow = u[0] / w[0]
    worst = max(worst, slow)
    print(f"| {op:<16}| {u[0]:>15.0f} | {u[2]:>7.2f} | {w[0]:>18.0f} | {w[2]:>7.2f} | {1 / slow:>16.2f}x |")
print(f"\nseal-wrapped path within 3x of the unwrapped one: {'met' if worst <= 3 else 'NOT met'} "
      f"(slowest ratio {worst:.2f}x)")
print(f"\n| {'seal':<8}| {'process start to first 200 (ms), median':>40} | {'min':>5} | {'max':>5} |")
print(f"|{'-' * 9}|{'-' * 42}|{'-' * 7}|{'-' * 7}|")
for seal in ("pkcs11", "static", "shamir"):
    v = unseal[seal]
    print(f"| {seal:<8}| {statistics.median(v):>40.0f} | {min(v):>5} | {max(v):>5} |")
print("(shamir: one unseal request sent as soon as the sealed node answers)")
EOF
