#!/usr/bin/env bash
# CRL scale benchmark (issue 4): N stored certificates issued (h2load) and revoked through the
# API (curl, parallel), then one complete CRL rebuild timed, the CRL fetched and counted, the
# server's peak memory read; beside it, in the same run, OpenSSL's own CRL generation (`openssl
# ca -gencrl`) over an index of the same N revoked serials.
#
# Usage: tests/bench/bench_crl.sh [N=1000000]. Env: COFFER_BIN (build/coffer).
set -euo pipefail

N=${1:-1000000}
COFFER_BIN=${COFFER_BIN:-build/coffer}
TOKEN=bench-root-token
for tool in h2load curl python3 openssl "$COFFER_BIN"; do
    command -v "$tool" >/dev/null || { echo "bench_crl: missing $tool" >&2; exit 1; }
done
TMP=$(mktemp -d /tmp/coffer-crl-bench.XXXXXX)
PIDS=()
cleanup() {
    # under set -e a killed server's status (143) would end the trap before rm
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
    rm -rf "$TMP"
    return 0
}
trap cleanup EXIT
BENCH_NAME=bench_crl
# shellcheck source=tests/bench/lib.sh
. "$(dirname "$0")/lib.sh"
port=$(free_port)
"$COFFER_BIN" server -dev -dev-root-token-id=$TOKEN -dev-listen-address=127.0.0.1:$port \
    > "$TMP/coffer.log" 2>&1 &
PIDS+=($!)
SPID=$!
A=http://127.0.0.1:$port/v1
wait_http "$A/sys/health" 200 "$SPID" coffer
H="X-Vault-Token: $TOKEN"
curl -sf -H "$H" -X POST $A/sys/mounts/pki -d '{"type":"pki","config":{"max_lease_ttl":"87600h"}}'
curl -sf -H "$H" -X POST $A/pki/root/generate/internal \
    -d '{"common_name":"Bench Root","key_type":"ec","ttl":"87600h"}' >/dev/null
curl -sf -H "$H" -X POST $A/pki/roles/r \
    -d '{"allow_any_name":true,"key_type":"ec","ttl":"720h"}' >/dev/null
# Revocations must not rebuild the CRL each time: that is what auto_rebuild is for.
curl -sf -H "$H" -X POST $A/pki/config/crl -d '{"auto_rebuild":true,"max_crl_entries":-1}' \
    >/dev/null
now() { date +%s.%N; }

echo '{"common_name":"crl-bench.example.com"}' > "$TMP/issue.json"
t0=$(now)
h2load -n "$N" -c 8 -m 8 -H "$H" -d "$TMP/issue.json" "$A/pki/issue/r" > "$TMP/h2load.txt"
t1=$(now)
grep -E 'succeeded' "$TMP/h2load.txt"

# The serials, paged through LIST certs (after/limit).
python3 - "$A" "$TOKEN" "$TMP/serials" <<'EOF'
import json, sys, urllib.request
a, tok, out = sys.argv[1:]
after, n = "", 0
with open(out, "w") as f:
    while True:
        req = urllib.request.Request(f"{a}/pki/certs?list=true&limit=50000&after={after}",
                                     headers={"X-Vault-Token": tok})
        try:
            keys = json.load(urllib.request.urlopen(req))["data"]["keys"]
        except urllib.error.HTTPError:
            break
        for k in keys:
            f.write(k + "\n")
        n += len(keys)
        if len(keys) < 50000:
            break
        after = keys[-1]
print(f"listed {n} stored certificates")
EOF

# Revocations: curl in parallel over keep-alive connections, from config files of 50,000.
t2=$(now)
split -l 50000 "$TMP/serials" "$TMP/part."
for part in "$TMP"/part.*; do
    awk -v a="$A" -v h="$H" '{if (NR > 1) print "next"; printf "url = \"%s/pki/revoke\"\nheader = \"%s\"\ndata = \"{\\\"serial_number\\\":\\\"%s\\\"}\"\noutput = \"/dev/null\"\n", a, h, $1}' \
        "$part" > "$part.cfg"
    curl -s --no-progress-meter -Z --parallel-max 32 -K "$part.cfg" -w '%{http_code}\n' | sort | uniq -c \
        | awk '$2 != 200 {bad += $1} END {if (bad) {print "non-200 revocations: " bad; exit 1}}'
done
t3=$(now)
revoked=$(curl -sf -H "$H" "$A/pki/certs/revoked?list=true" | python3 -c \
    'import json,sys; print(len(json.load(sys.stdin)["data"]["keys"]))')

t4=$(now)
curl -sf -H "$H" "$A/pki/crl/rotate" >/dev/null
t5=$(now)
curl -sf "$A/pki/crl" -o "$TMP/crl.der"
t6=$(now)
entries=$(openssl crl -inform der -in "$TMP/crl.der" -noout -text | grep -c 'Serial Number:')
rss=$(awk '/VmHWM/ {print $2}' /proc/$SPID/status)
pieces=$(( ($(stat -c %s "$TMP/crl.der") + 524287) / 524288 ))

# Reference: openssl ca -gencrl over an index of the same serials.
mkdir -p "$TMP/ca"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 365 \
    -subj /CN=ref -keyout "$TMP/ca/key.pem" -out "$TMP/ca/ca.pem" 2>/dev/null
awk '{s=$1; gsub(":", "", s); printf "R\t301231000000Z\t261101000000Z\t%s\tunknown\t/CN=x\n", toupper(s)}' \
    "$TMP/serials" > "$TMP/ca/index.txt"
echo 01 > "$TMP/ca/crlnumber"
cat > "$TMP/ca/ca.cnf" <<EOF
[ ca ]
default_ca = d
[ d ]
database = $TMP/ca/index.txt
crlnumber = $TMP/ca/crlnumber
certificate = $TMP/ca/ca.pem
private_key = $TMP/ca/key.pem
default_md = sha256
default_crl_days = 3
EOF
t7=$(now)
/usr/bin/time -f '%M' -o "$TMP/ca/rss" openssl ca -gencrl -config "$TMP/ca/ca.cnf" \
    -out "$TMP/ca/crl.pem" 2>/dev/null
t8=$(now)

python3 - <<EOF
n, t = $N, [$t0, $t1, $t2, $t3, $t4, $t5, $t6, $t7, $t8]
print(f"certificates issued (stored)   {n:>10}  in {t[1]-t[0]:7.1f} s  ({n/(t[1]-t[0]):.0f}/s)")
print(f"revocations through the API    {$revoked:>10}  in {t[3]-t[2]:7.1f} s  ({$revoked/(t[3]-t[2]):.0f}/s)")
print(f"coffer complete CRL rebuild    {$entries:>10}  entries in {t[5]-t[4]:6.2f} s, "
      f"{$(stat -c %s "$TMP/crl.der")/1e6:.1f} MB in {$pieces} pieces, fetch {t[6]-t[5]:.2f} s")
print(f"coffer peak RSS                {$rss/1024:10.0f} MiB")
print(f"openssl ca -gencrl (reference) {n:>10}  entries in {t[8]-t[7]:6.2f} s, "
      f"peak RSS {int(open('$TMP/ca/rss').read())/1024:.0f} MiB")
EOF
