#!/usr/bin/env bash
# PKI benchmark (issue 4), modelled on the benchmark-vault PKI runs: a dev server with an EC
# P-256 root, roles for P-256 / RSA-2048 / P-521 leaves, driven by h2load over HTTP/2 (h2c).
# Prints side by side, in one run: issue no_store, issue stored, sign with a client CSR, per key
# type; OpenSSL's own P-256 sign rate (openssl speed) x cores as the bound; and cfssl `serve`
# (Debian's golang-cfssl) doing newcert and sign on the same machine.
#
# Env: COFFER_BIN (build/coffer), BENCH_SECONDS (30), BENCH_STREAMS (64 = clients x streams).
set -euo pipefail

COFFER_BIN=${COFFER_BIN:-build/coffer}
SECS=${BENCH_SECONDS:-30}
STREAMS=${BENCH_STREAMS:-64}
CLIENTS=8
PER=$(( STREAMS / CLIENTS ))
TOKEN=bench-root-token
for tool in h2load curl python3 openssl "$COFFER_BIN"; do
    command -v "$tool" >/dev/null || { echo "bench_pki: missing $tool" >&2; exit 1; }
done
TMP=$(mktemp -d /tmp/coffer-pki-bench.XXXXXX)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
    rm -rf "$TMP"
    return 0
}
trap cleanup EXIT
BENCH_NAME=bench_pki
# shellcheck source=tests/bench/lib.sh
. "$(dirname "$0")/lib.sh"

CPORT=$(free_port)
"$COFFER_BIN" server -dev -dev-root-token-id=$TOKEN -dev-listen-address=127.0.0.1:$CPORT \
    > "$TMP/coffer.log" 2>&1 &
PIDS+=($!)
A=http://127.0.0.1:$CPORT/v1
wait_http "$A/sys/health" 200 "$!" coffer
H="X-Vault-Token: $TOKEN"
curl -sf -H "$H" -X POST $A/sys/mounts/pki -d '{"type":"pki","config":{"max_lease_ttl":"87600h"}}'
curl -sf -H "$H" -X POST $A/pki/root/generate/internal \
    -d '{"common_name":"Bench Root","key_type":"ec","ttl":"87600h"}' >/dev/null
role() {
    curl -sf -H "$H" -X POST $A/pki/roles/$1 -d "{\"allow_any_name\":true,\"key_type\":\"$2\",\"key_bits\":$3,\"no_store\":$4,\"ttl\":\"1h\"}" >/dev/null
}
role p256-nostore ec 256 true
role p256-store ec 256 false
role rsa-nostore rsa 2048 true
role rsa-store rsa 2048 false
role p521-nostore ec 521 true
role p521-store ec 521 false
echo '{"common_name":"bench.example.com"}' > "$TMP/issue.json"
for kt in p256:ec:prime256v1 p521:ec:secp521r1 rsa:rsa:2048; do
    IFS=: read -r name kind arg <<<"$kt"
    if [ "$kind" = ec ]; then
        openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:$arg -nodes -keyout /dev/null \
            -subj /CN=bench.example.com -out "$TMP/$name.csr" 2>/dev/null
    else
        openssl req -new -newkey rsa:$arg -nodes -keyout /dev/null -subj /CN=bench.example.com \
            -out "$TMP/$name.csr" 2>/dev/null
    fi
    python3 -c 'import json,sys; print(json.dumps({"csr": open(sys.argv[1]).read()}))' \
        "$TMP/$name.csr" > "$TMP/$name.sign.json"
done

# run NAME URL BODY [extra h2load args]: prints "NAME req/s p50 p99 n".
run() {
    local name=$1 url=$2 body=$3 file
    shift 3
    file=$TMP/$(tr -c 'A-Za-z0-9\n' _ <<<"$name").tsv
    out=$(h2load -c $CLIENTS -m $PER -D "$SECS" -d "$body" -H "$H" "$@" \
        --log-file="$file" "$url" 2>&1) || true
    if ! grep -q " 0 failed, 0 errored" <<<"$out"; then
        echo "bench_pki: $name had failures" >&2; echo "$out" | tail -8 >&2; exit 1
    fi
    python3 - "$name" "$file" "$SECS" <<'PY'
import sys
name, path, secs = sys.argv[1], sys.argv[2], float(sys.argv[3])
rows = [l.split("\t") for l in open(path) if l.strip()]
ok = [int(r[2]) / 1000.0 for r in rows if r[1].startswith("2")]
ok.sort()
p = lambda q: ok[min(len(ok) - 1, int(q * len(ok)))] if ok else 0.0
print(f"{name:34s} {len(ok)/secs:10.0f}/s  p50 {p(0.50):7.2f} ms  p99 {p(0.99):7.2f} ms  n={len(ok)}")
PY
}

# drain: when h2load stops, the requests it abandoned are still queued on the server's worker
# pool (64 RSA key generations are seconds of work). One more issuance queues behind them and
# returns once they are done, so the next case starts on an idle server.
drain() {
    curl -sf -o /dev/null -H "X-Vault-Token: $TOKEN" -X POST $A/pki/issue/p256-nostore \
        -d @"$TMP/issue.json"
}

echo "== Coffer ($STREAMS concurrent streams, ${SECS}s each, h2load on the same 2 cores)"
for k in p256 rsa p521; do
    run "issue/$k no_store=true" $A/pki/issue/$k-nostore "$TMP/issue.json"
    drain
    run "issue/$k no_store=false" $A/pki/issue/$k-store "$TMP/issue.json"
    drain
    run "sign/$k (client CSR) no_store=true" $A/pki/sign/$k-nostore "$TMP/$k.sign.json"
    drain
done

echo "== Bound: OpenSSL's own ECDSA P-256 sign rate"
SPEED=$(openssl speed -seconds 3 ecdsap256 2>/dev/null | awk '/256 bits ecdsa/ {print $(NF-1)}')
CORES=$(nproc)
python3 -c "s=float('$SPEED'); print(f'openssl speed ecdsap256: {s:.0f} sign/s per core x $CORES cores = {s*$CORES:.0f}/s')"

if command -v cfssl >/dev/null; then
    echo "== Reference: cfssl serve (golang-cfssl) on the same machine"
    openssl ecparam -name prime256v1 -genkey -noout -out "$TMP/cfssl-ca-key.pem" 2>/dev/null
    openssl req -x509 -new -key "$TMP/cfssl-ca-key.pem" -subj /CN=cfssl-bench-root -days 3650 \
        -out "$TMP/cfssl-ca.pem" 2>/dev/null
    cat > "$TMP/cfssl.json" <<'J'
{"signing":{"default":{"expiry":"1h","usages":["digital signature","key encipherment","server auth"]}}}
J
    FPORT=$(free_port)
    cfssl serve -address 127.0.0.1 -port "$FPORT" -ca "$TMP/cfssl-ca.pem" \
        -ca-key "$TMP/cfssl-ca-key.pem" -config "$TMP/cfssl.json" > "$TMP/cfssl.log" 2>&1 &
    PIDS+=($!)
    for _ in $(seq 200); do curl -s -o /dev/null "http://127.0.0.1:$FPORT/api/v1/cfssl/info" -d '{}' && break; sleep 0.05; done
    echo '{"request":{"CN":"bench.example.com","hosts":["bench.example.com"],"key":{"algo":"ecdsa","size":256}}}' > "$TMP/newcert.json"
    python3 -c 'import json,sys; print(json.dumps({"certificate_request": open(sys.argv[1]).read()}))' \
        "$TMP/p256.csr" > "$TMP/cfssl-sign.json"
    H="X-Bench: 1"
    run "cfssl newcert P-256" "http://127.0.0.1:$FPORT/api/v1/cfssl/newcert" "$TMP/newcert.json" \
        --h1
    run "cfssl sign P-256 CSR" "http://127.0.0.1:$FPORT/api/v1/cfssl/sign" "$TMP/cfssl-sign.json" \
        --h1
fi
