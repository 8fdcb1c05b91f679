#!/usr/bin/env bash
# What running `keyward serve` costs an operator (issue 19, point 6): resident memory at idle,
# the time from process start to /readyz answering 200, and how fast it serves the two documents
# every verifier fetches, the JWKS and the OIDC discovery, with the Cache-Control they carry.
# SQLite, HTTPS with the generated certificate, audit on. Prints figures; it is not a pass/fail test.
#   bash bench/ops.sh        (RUNS=7 IDLE_SECONDS=60 DURATION=10 CONNECTIONS=16 WRK_THREADS=2;
#                             KEYWARD_BIN=<binary> skips the release build, for checking the script)
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${RUNS:-7}
IDLE_SECONDS=${IDLE_SECONDS:-60}
DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-16}
WRK_THREADS=${WRK_THREADS:-2}

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
if ! command -v wrk >/dev/null; then
    echo "installing wrk (Debian)…" >&2
    as_root apt-get update -q >/dev/null && as_root apt-get install -y -q wrk >/dev/null
fi
for tool in curl python3; do
    command -v "$tool" >/dev/null || { echo "bench/ops.sh needs $tool" >&2; exit 1; }
done

if [ -n "${KEYWARD_BIN:-}" ]; then
    # A quick check of the script itself with another build; figures come from the release build.
    bin=$(realpath "$KEYWARD_BIN")
    profile="$bin (not built here)"
    echo "using $profile" >&2
else
    echo "building keyward (release)…" >&2
    cargo build -q --release -p keyward --bin keyward
    bin=${CARGO_TARGET_DIR:-$PWD/target}/release/keyward
    profile="release build"
fi

work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
busy() {
    local compilers
    compilers=$(pgrep -c -f '(^|/)(rustc|cc1|cc1plus|ld|cargo) ' || true)
    echo "load average $(cut -d' ' -f1-3 /proc/loadavg); compiler processes running: ${compilers:-0}"
}
median() { python3 -c 'import statistics, sys; print(f"{statistics.median(float(x) for x in sys.argv[1:]):.1f}")' "$@"; }
kb_to_mb() { python3 -c "print(f'{$1 / 1024:.1f}')"; }
status_kb() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"; } # $1 = pid, $2 = field
before=$(busy)

# --- 1. start to /readyz: a first start (empty data directory: database, master key, signing key
# and TLS certificate created) and a restart on the same directory ---------------------------------
first=()
again=()
for i in $(seq 1 "$RUNS"); do
    port=$(free_port)
    first+=("$(python3 bench/ops/ready.py "$bin" "$work/ready-$i" "$port")")
    again+=("$(python3 bench/ops/ready.py "$bin" "$work/ready-$i" "$port")")
    echo "start to ready, run $i: first start ${first[-1]} ms, restart ${again[-1]} ms" >&2
done

# --- 2. idle RSS ----------------------------------------------------------------------------------
port=$(free_port)
KEYWARD_LOG=warn "$bin" serve --data-dir "$work/kw" --listen "127.0.0.1:$port" >"$work/kw.out" 2>"$work/kw.err" &
kw_pid=$!
pids+=("$kw_pid")
for _ in $(seq 1 150); do grep -q '^Ready\.$' "$work/kw.out" 2>/dev/null && break; sleep 0.2; done
grep -q '^Ready\.$' "$work/kw.out" || { echo "keyward did not start:" >&2; cat "$work/kw.out" "$work/kw.err" >&2; exit 1; }
url="https://127.0.0.1:$port"
ca=$(sed -nE 's/^TLS CA certificate: (.*)$/\1/p' "$work/kw.out")
rss_start=$(status_kb "$kw_pid" VmRSS)
echo "idle for ${IDLE_SECONDS}s…" >&2
sleep "$IDLE_SECONDS"
rss_idle=$(status_kb "$kw_pid" VmRSS)
threads=$(status_kb "$kw_pid" Threads)

# --- 3. JWKS and discovery requests per second ----------------------------------------------------
header() { curl -sS -D - -o /dev/null --cacert "$ca" "$url$1" | tr -d '\r' | sed -nE "s/^$2: (.*)$/\\1/Ip"; }
declare -A rps p50 p99 cache errors
for path in /oauth2/jwks /.well-known/openid-configuration; do
    code=$(curl -sS -o /dev/null -w '%{http_code}' --cacert "$ca" "$url$path")
    [ "$code" = 200 ] || { echo "GET $path answered $code" >&2; exit 1; }
    cache[$path]=$(header "$path" cache-control)
    echo "$path: wrk -t$WRK_THREADS -c$CONNECTIONS -d${DURATION}s…" >&2
    wrk -t"$WRK_THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency "$url$path" >"$work/wrk.out"
    read -r rps[$path] p50[$path] p99[$path] < <(awk '/Requests\/sec/ {r=$2} $1=="50%" {a=$2} $1=="99%" {b=$2} END {print r, a, b}' "$work/wrk.out")
    errors[$path]=$(grep -E 'Non-2xx|Socket errors' "$work/wrk.out" || true)
done
rss_load=$(status_kb "$kw_pid" VmRSS)
hwm=$(status_kb "$kw_pid" VmHWM)
after=$(busy)

verdict() { python3 -c "print('met' if $1 <= $2 else 'missed')"; }
echo
echo "keyward serve: $profile; SQLite, HTTPS (generated certificate); $(nproc) cores ($(uname -m))"
echo "before: $before"
echo "after:  $after"
echo
printf '%-52s %12s\n' "figure" "value"
printf '%-52s %9s MB\n' "RSS once ready" "$(kb_to_mb "$rss_start")"
printf '%-52s %9s MB   (target <= 40 MB: %s; Keycloak needs >= 1,250 MB)\n' \
    "RSS after ${IDLE_SECONDS}s idle ($threads threads)" "$(kb_to_mb "$rss_idle")" "$(verdict "$rss_idle" 40960)"
printf '%-52s %9s MB   (peak %s MB)\n' "RSS after the JWKS/discovery load" "$(kb_to_mb "$rss_load")" "$(kb_to_mb "$hwm")"
printf '%-52s %9s ms   (target <= 300 ms: %s; runs: %s)\n' "start to /readyz 200, first start (median of $RUNS)" \
    "$(median "${first[@]}")" "$(verdict "$(median "${first[@]}")" 300)" "${first[*]}"
printf '%-52s %9s ms   (runs: %s)\n' "start to /readyz 200, restart (median of $RUNS)" "$(median "${again[@]}")" "${again[*]}"
for path in /oauth2/jwks /.well-known/openid-configuration; do
    printf '%-52s %9s /s   (p50 %s, p99 %s; Cache-Control: %s)\n' "GET $path, c=$CONNECTIONS" \
        "${rps[$path]}" "${p50[$path]}" "${p99[$path]}" "${cache[$path]:-none}"
    [ -z "${errors[$path]}" ] || echo "  $path: ${errors[$path]}"
done
