#!/usr/bin/env bash
# PKI benchmark (issue 4), modelled on the benchmark-vault PKI runs: a dev server with an EC
# P-256 root, roles for P-256 / RSA-2048 / P-521 leaves, driven by h2load over HTTP/2 (h2c).
# Prints side by side, in one run: issue no_store, issue stored, sign with a client CSR, per key
# type; OpenSSL's own P-256 sign rate (openssl speed) x cores as the bound; and cfssl `serve`
# (Debian's golang-cfssl) doing newcert and sign on the same machine.
#
# This machine's speed drifts by tens of percent within minutes, so the P-256 cases and cfssl's
# are measured back to back, BENCH_ROUNDS times (Coffer issue no_store, cfssl newcert, Coffer
# issue stored, Coffer sign, cfssl sign), and the summary gives each round's ratios against the
# issue's targets.
#
# Env: COFFER_BIN (build/coffer), BENCH_SECONDS (30), BENCH_STREAMS (64 = clients x streams),
# BENCH_ROUNDS (2).
set -euo pipefail

COFFER_BIN=${COFFER_BIN:-build/coffer}
SECS=${BENCH_SECONDS:-30}
STREAMS=${BENCH_STREAMS:-64}
ROUNDS=${BENCH_ROUNDS:-2}
CLIENTS=8
PER=$(( STREAMS / CLIENTS ))
TOKEN=bench-root-token
for tool in h2load curl python3 openssl "$COFFER_BIN"; do
    command -v "$tool" >/dev/null || { echo "bench_pki: missing $tool" >&2; exit 1; }
done
TMP=$(mktemp -d /tmp/coffer-pki-bench.XXXXXX)
PIDS=()
cleanup() {
    # under set -e a killed server's status (143) would end the trap before rm
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
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
with open(path.rsplit("/", 1)[0] + "/results.tsv", "a") as f:
    f.write(f"{name}\t{len(ok)/secs:.1f}\t{p(0.99):.2f}\n")
PY
}

# drain: when h2load stops, the requests it abandoned are still queued on the server's worker
# pool (64 RSA key generations are seconds of work). One more issuance queues behind them and
# returns once they are done, so the next case starts on an idle server.
drain() {
    curl -sf -o /dev/null -H "X-Vault-Token: $TOKEN" -X POST $A/pki/issue/p256-nostore \
        -d @"$TMP/issue.json"
}

cfssl_start() {
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
}

# cfssl_run NAME PATH BODY: one cfssl case over HTTP/1.1 (cfssl serve has no h2c).
cfssl_run() {
    local saved=$H
    H="X-Bench: 1"
    run "$1" "http://127.0.0.1:$FPORT/api/v1/cfssl/$2" "$3" --h1
    H=$saved
}

HAVE_CFSSL=false
if command -v cfssl >/dev/null; then
    HAVE_CFSSL=true
    cfssl_start
fi

echo "== P-256 ($STREAMS concurrent streams, ${SECS}s each, h2load on the same 2 cores), $ROUNDS rounds back to back with cfssl serve (golang-cfssl, HTTP/1.1)"
for r in $(seq "$ROUNDS"); do
    run "issue/p256 no_store=true #$r" $A/pki/issue/p256-nostore "$TMP/issue.json"
    drain
    if $HAVE_CFSSL; then cfssl_run "cfssl newcert P-256 #$r" newcert "$TMP/newcert.json"; fi
    run "issue/p256 no_store=false #$r" $A/pki/issue/p256-store "$TMP/issue.json"
    drain
    run "sign/p256 (client CSR) #$r" $A/pki/sign/p256-nostore "$TMP/p256.sign.json"
    drain
    if $HAVE_CFSSL; then cfssl_run "cfssl sign P-256 CSR #$r" sign "$TMP/cfssl-sign.json"; fi
done

echo "== OCSP: POST of one request (with a nonce) for a stored, known serial; each answer is signed"
curl -sf -H "$H" -X POST $A/pki/issue/p256-store -d @"$TMP/issue.json" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["certificate"])' > "$TMP/ocsp-leaf.pem"
curl -sf $A/pki/ca/pem > "$TMP/ocsp-ca.pem"
openssl ocsp -issuer "$TMP/ocsp-ca.pem" -cert "$TMP/ocsp-leaf.pem" -reqout "$TMP/ocsp.der" >/dev/null
run "ocsp POST (known serial)" $A/pki/ocsp "$TMP/ocsp.der" -H "Content-Type: application/ocsp-request"
curl -sf -X POST -H "Content-Type: application/ocsp-request" --data-binary @"$TMP/ocsp.der" \
    -o "$TMP/ocsp-resp.der" $A/pki/ocsp
# The answer must verify as good. -no_nonce: with -cert, openssl checks the answer against a
# request it builds afresh, whose own new nonce could not match the one echoed.
openssl ocsp -respin "$TMP/ocsp-resp.der" -issuer "$TMP/ocsp-ca.pem" -cert "$TMP/ocsp-leaf.pem" \
    -no_nonce -CAfile "$TMP/ocsp-ca.pem" 2>&1 | grep -q ": good" ||
    { echo "bench_pki: the OCSP answer did not verify as good" >&2; exit 1; }

echo "== RSA-2048 and P-521 leaves"
for k in rsa p521; do
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

echo "== Targets, per round"
python3 - "$TMP/results.tsv" "$SPEED" "$CORES" "$ROUNDS" <<'PY'
import sys
path, speed, cores, rounds = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
res = {}
for line in open(path):
    name, rate, p99 = line.rstrip("\n").split("\t")
    res[name] = (float(rate), float(p99))
bound = speed * cores
for r in range(1, rounds + 1):
    g = lambda n: res.get(f"{n} #{r}")
    ns, st, sg = g("issue/p256 no_store=true"), g("issue/p256 no_store=false"), g("sign/p256 (client CSR)")
    nc = g("cfssl newcert P-256")
    out = [f"round {r}:"]
    if nc:
        out.append(f"no_store/cfssl newcert {ns[0] / nc[0]:.2f}x (>= 5)")
    out.append(f"no_store/OpenSSL bound {100 * ns[0] / bound:.1f}% (>= 40)")
    out.append(f"stored/no_store {100 * st[0] / ns[0]:.0f}% (>= 50)")
    out.append(f"p99 no_store {ns[1]:.1f} / stored {st[1]:.1f} / sign {sg[1]:.1f} ms (< 20)")
    print("  ".join(out))
oc = res.get("ocsp POST (known serial)")
if oc:
    print(f"ocsp: {oc[0]:.0f}/s (>= 20000), p99 {oc[1]:.1f} ms")
PY
