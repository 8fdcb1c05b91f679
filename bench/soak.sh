#!/usr/bin/env bash
# Soak (issue 20.5): measure the mint capacity of a release `keyward serve`, then hold 70 % of it
# for SOAK_SECONDS (default 600) as open-loop load — eight in ten requests mint a workload token,
# one asks for a kickoff plan (a direct and a secret variable resolved), one reads the API —
# sampling the server's RSS and open file descriptors every WINDOW seconds beside each window's
# p50/p99. Prints figures and a verdict: zero errors, RSS and descriptors flat after the first
# minute (RSS within 5 % early to late), p99 of the last windows within 2x of the first ones.
#   bash bench/soak.sh        (SOAK_SECONDS=600 WINDOW=10 LOAD=0.7 CAPACITY_SECONDS=10 DB=sqlite|postgres)
set -euo pipefail
cd "$(dirname "$0")/.."

SOAK_SECONDS=${SOAK_SECONDS:-600}
WINDOW=${WINDOW:-10}
LOAD=${LOAD:-0.7}
CAPACITY_SECONDS=${CAPACITY_SECONDS:-10}
DB=${DB:-sqlite}
TARGET=${CARGO_TARGET_DIR:-$PWD/target}

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
if ! command -v wrk >/dev/null; then
    echo "installing wrk (Debian)…" >&2
    as_root apt-get update -q >/dev/null && as_root apt-get install -y -q wrk >/dev/null
fi

echo "building (release)…" >&2
cargo build -q --release -p keyward --bin keyward --example soak_load

work=$(mktemp -d)
server=
cleanup() {
    [ -n "$server" ] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "before: load average $(cut -d' ' -f1-3 /proc/loadavg); compiler processes: $(pgrep -c -f '(^|/)(rustc|cc1|ld|cargo) ' || true)"

db_env=()
if [ "$DB" = postgres ]; then
    url=${KEYWARD_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
    name="keyward_soak_$$"
    psql "$url" -qc "CREATE DATABASE $name" >/dev/null
    db_env=(KEYWARD_DATABASE_URL="${url%/*}/$name")
fi

admin="kwp_soak-$(openssl rand -hex 20)"
env "${db_env[@]}" KEYWARD_BOOTSTRAP_ORG=Soak KEYWARD_BOOTSTRAP_ADMIN_EMAIL=soak@example.com \
    KEYWARD_BOOTSTRAP_TOKEN="$admin" KEYWARD_LOG=warn \
    "$TARGET/release/keyward" serve --data-dir "$work/kw" --listen 127.0.0.1:0 >"$work/kw.out" 2>"$work/kw.err" &
server=$!
for _ in $(seq 1 150); do grep -q '^Ready\.$' "$work/kw.out" 2>/dev/null && break; sleep 0.2; done
grep -q '^Ready\.$' "$work/kw.out" || { echo "keyward did not start:" >&2; cat "$work/kw.out" "$work/kw.err" >&2; exit 1; }
kw=$(sed -nE 's/^Keyward is listening on (https:[^ ]+)$/\1/p' "$work/kw.out")
ca=$(sed -nE 's/^TLS CA certificate: (.+)$/\1/p' "$work/kw.out")

api() { # method path [json]
    curl -sf --cacert "$ca" -X "$1" -H "Authorization: Bearer $admin" -H 'Content-Type: application/json' \
        ${3:+-d "$3"} "$kw/api/v1$2"
}
json() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }
api POST /automations '{"name":"soak"}' >/dev/null
automation=$(api POST /automations/soak/tokens '{"name":"soak"}' | json '["token"]')
api POST /environment-variables '{"key":"LOG_LEVEL","value":"info"}' >/dev/null
api POST /environment-variables '{"key":"API_TOKEN","value":"soak-secret-value","secret":true}' >/dev/null
api PUT /automations/soak/environment-variables '{"environment_variables":["LOG_LEVEL","API_TOKEN"]}' >/dev/null

# --- capacity: closed-loop mints, as bench/mint.sh measures them -----------------------------------
cat >"$work/mint.lua" <<LUA
wrk.method = "POST"
wrk.body = '{"audience":"sts.amazonaws.com"}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $automation"
LUA
wrk -t2 -c16 -d"${CAPACITY_SECONDS}s" -s "$work/mint.lua" "$kw/api/v1/workload-identity/token" >"$work/capacity.wrk"
capacity=$(awk '/Requests\/sec/ {print int($2)}' "$work/capacity.wrk")
rate=$(python3 -c "print(max(1, int($capacity * $LOAD)))")
echo "mint capacity: $capacity/s; soaking at $rate/s ($LOAD) for ${SOAK_SECONDS}s, windows of ${WINDOW}s"

# --- soak, sampling the server --------------------------------------------------------------------
# RSS splits into the heap (RssAnon) and mapped files (RssFile + RssShmem: SQLite's WAL index).
sample() {
    local rss anon fds
    rss=$(awk '/^VmRSS/ {printf "%.1f", $2/1024}' "/proc/$server/status")
    anon=$(awk '/^RssAnon/ {printf "%.1f", $2/1024}' "/proc/$server/status")
    fds=$(ls "/proc/$server/fd" | wc -l)
    echo "$1 $rss $fds $anon"
}
(
    sleep "$WINDOW"
    for i in $(seq 1 $((SOAK_SECONDS / WINDOW))); do
        sample "$i" >>"$work/samples"
        sleep "$WINDOW"
    done
) &
sampler=$!
status=0
"$TARGET/release/examples/soak_load" "$kw" "$ca" "$automation" "$admin" "$rate" "$SOAK_SECONDS" "$WINDOW" \
    >"$work/load.out" || status=$?
wait "$sampler" 2>/dev/null || true

echo
printf '%-7s %9s %8s %8s %9s %8s %8s %5s\n' window requests errors p50_ms p99_ms rss_mb anon_mb fds
python3 - "$work/load.out" "$work/samples" <<'PY'
import re, sys
windows = {}
for line in open(sys.argv[1]):
    if line.startswith("window="):
        f = dict(kv.split("=") for kv in line.split())
        windows[int(f["window"])] = f
samples = {}
for line in open(sys.argv[2]):
    i, rss, fds, anon = line.split()
    samples[int(i)] = (float(rss), int(fds), float(anon))
for i in sorted(windows):
    f = windows[i]
    rss, fds, anon = samples.get(i, (float("nan"), -1, float("nan")))
    print(f"{i:<7} {f['requests']:>9} {f['errors']:>8} {f['p50_ms']:>8} {f['p99_ms']:>9} {rss:>8.1f} {anon:>8.1f} {fds:>5}")
PY
grep -E '^(summary|  first error)' "$work/load.out" || true
flat=0
python3 - "$work/load.out" "$work/samples" "$WINDOW" <<'PY' || flat=$?
import sys
window = int(sys.argv[3])
p99 = [float(dict(kv.split("=") for kv in l.split())["p99_ms"]) for l in open(sys.argv[1]) if l.startswith("window=")]
samples = [l.split() for l in open(sys.argv[2])]
rss = [float(s[1]) for s in samples]
fds = [int(s[2]) for s in samples]
warm = max(1, 60 // window)            # the first minute fills caches and pools
third = max(1, (len(rss) - warm) // 3)
early, late = rss[warm:warm + third], rss[-third:]
growth = (sum(late) / len(late)) / (sum(early) / len(early)) - 1 if early and late else 0
fd_spread = max(fds[warm:]) - min(fds[warm:]) if len(fds) > warm else 0
p99_early = sorted(p99[warm:warm + third])[len(p99[warm:warm + third]) // 2] if len(p99) > warm else 0
p99_late = sorted(p99[-third:])[len(p99[-third:]) // 2] if p99 else 0
print(f"RSS after warm-up: {min(rss[warm:] or rss):.1f}–{max(rss[warm:] or rss):.1f} MB, growth early→late third {growth*100:+.1f} %")
minutes = (len(rss) - warm) * window / 60
if minutes > 0 and len(rss) > warm:
    print(f"RSS slope after warm-up: {(rss[-1] - rss[warm]) / minutes:+.2f} MB/min")
print(f"open descriptors after warm-up: {min(fds[warm:] or fds)}–{max(fds[warm:] or fds)}")
print(f"p99 median of the early third {p99_early:.2f} ms, of the late third {p99_late:.2f} ms")
ok = growth < 0.05 and fd_spread <= 16 and (p99_early == 0 or p99_late <= 2 * p99_early)
print("verdict:", "flat" if ok else "NOT flat")
sys.exit(0 if ok else 1)
PY
echo "after: load average $(cut -d' ' -f1-3 /proc/loadavg)"
[ "$status" -eq 0 ] && [ "$flat" -eq 0 ]
