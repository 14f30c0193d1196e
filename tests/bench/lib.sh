# Shared helpers of the benchmark scripts (sourced). The caller sets TMP (a scratch dir),
# CLIENTS, SECONDS_PER_RUN and BENCH_NAME (the prefix of error messages).

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# wait_http URL EXPECTED_STATUS PID NAME: poll until URL answers with the status.
wait_http() {
    for _ in $(seq 200); do
        kill -0 "$3" 2>/dev/null || { echo "$BENCH_NAME: $4 exited during start" >&2; tail -20 "$TMP/$4.log" >&2; exit 1; }
        code=$(curl -s -o /dev/null -w '%{http_code}' "$1" || true)
        [ "$code" = "$2" ] && return 0
        sleep 0.05
    done
    echo "$BENCH_NAME: $4 did not answer $1 with $2" >&2
    tail -20 "$TMP/$4.log" >&2
    exit 1
}

# succeeded H2LOAD_OUTPUT...: total of the "N succeeded" counts.
succeeded() {
    printf '%s\n' "$@" | awk '/^requests:/ {for (i = 1; i < NF; i++) if ($(i + 1) ~ /^succeeded/) t += $i} END {print t}'
}

# coffer_index: the raft commit index of the node on CPORT (GET sys/leader).
coffer_index() {
    curl -sf "http://127.0.0.1:$CPORT/v1/sys/leader" |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["raft_committed_index"])'
}

# measure NAME URL [h2load args...]: a 1 s probe sizes -n for ~SECONDS_PER_RUN, then the
# measured run logs every request; appends "NAME req/s p50_ms p99_ms n non2xx" to results.
measure() {
    local name=$1 url=$2
    shift 2
    local probe rate n out
    probe=$(h2load -c "$CLIENTS" -D 1 "$@" "$url")
    rate=$(awk '/^finished in/ {print int($4)}' <<<"$probe")
    n=$(( rate * SECONDS_PER_RUN ))
    [ "$n" -lt 2000 ] && n=2000
    out=$(h2load -c "$CLIENTS" -n "$n" --log-file="$TMP/$name.tsv" "$@" "$url")
    echo "$out" > "$TMP/$name.h2load"
    succeeded "$probe" "$out" > "$TMP/$name.total"
    if ! grep -q " 0 failed, 0 errored" <<<"$out"; then
        echo "$BENCH_NAME: $name had failed requests:" >&2
        echo "$out" >&2
        exit 1
    fi
    python3 - "$name" "$TMP/$name.tsv" "$out" "$BENCH_NAME" >> "$TMP/results" <<'EOF'
import re, sys
name, path, out = sys.argv[1], sys.argv[2], sys.argv[3]
durs, bad = [], 0
with open(path) as f:
    for line in f:
        start, status, dur = line.split("\t")[:3]
        durs.append(int(dur))
        bad += not (200 <= int(status) < 300)
durs.sort()
pct = lambda p: durs[min(len(durs) - 1, int(p / 100 * len(durs)))] / 1000
rps = float(re.search(r"finished in [^,]+, ([0-9.]+) req/s", out).group(1))
if bad:
    sys.exit(f"{sys.argv[4]}: {name}: {bad} of {len(durs)} responses were not 2xx")
print(f"{name} {rps:.0f} {pct(50):.2f} {pct(99):.2f} {len(durs)} {bad}")
EOF
}

