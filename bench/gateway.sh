#!/usr/bin/env bash
# What `keyward gateway` costs on the request path (issue 16, acceptance g), side by side in one
# run on the same cores, with wrk:
#   1. direct: wrk → the fast upstream (nginx answering a fixed chat.completion JSON);
#   2. nginx:  wrk → Debian nginx as a plain reverse proxy → the upstream;
#   3. keyward: wrk → `keyward gateway --http` → the upstream, verifying a Keyward workload token
#      (RS256, JWKS from a local `keyward serve`) and deciding a Cedar policy that reads the JSON
#      body's `model` on every request, with one audit event per request (SQLite).
# The request is a small JSON POST (`/v1/chat/completions`). Latency is measured with one
# connection (wrk -c1: each request's own time, no queueing); throughput with CONNECTIONS
# connections. Then the time to the first SSE event of a streamed completion (bench/gateway/ttfb.py),
# direct against through the gateway. Last, the streamed case with masking on against off (issue 17
# e): an ~18 KB chat-completion SSE stream (bench/gateway/sse_body.py) fetched through two gateway
# routes that differ only in `[route.mask]`, recordings off for both. Prints figures; it is not a
# pass/fail test.
#   bash bench/gateway.sh      (DURATION=10 LAT_DURATION=10 CONNECTIONS=32 WRK_THREADS=2 TTFB_REQUESTS=300
#                               MASK_ROUNDS=2; ONLY=mask runs the masking comparison alone;
#                               ONLY=mask-instructions counts it in instructions under callgrind,
#                               keeping the profiles in CALLGRIND_DIR when set; ONLY=setup starts
#                               everything and waits, for a profiler;
#                               KEYWARD_BIN=<binary> skips the release build, for checking the script)
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10}
LAT_DURATION=${LAT_DURATION:-10}
CONNECTIONS=${CONNECTIONS:-32}
WRK_THREADS=${WRK_THREADS:-2}
TTFB_REQUESTS=${TTFB_REQUESTS:-300}
MASK_ROUNDS=${MASK_ROUNDS:-2}
ONLY=${ONLY:-}

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
missing=()
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing+=(nginx)
command -v wrk >/dev/null || missing+=(wrk)
if [ ${#missing[@]} -gt 0 ]; then
    echo "installing ${missing[*]} (Debian)…" >&2
    as_root apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -q "${missing[@]}" >/dev/null
fi
nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)
for tool in curl openssl python3; do
    command -v "$tool" >/dev/null || { echo "bench/gateway.sh needs $tool" >&2; exit 1; }
done

if [ -n "${KEYWARD_BIN:-}" ]; then
    # A quick check of the script itself with another build; figures come from the release build.
    bin=$KEYWARD_BIN
    echo "using $bin (not built here)" >&2
else
    echo "building keyward (release)…" >&2
    cargo build -q --release -p keyward --bin keyward
    bin=${CARGO_TARGET_DIR:-$PWD/target}/release/keyward
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
wait_for() { # $1 = file, $2 = pattern, $3 = what
    for _ in $(seq 1 150); do grep -qE "$2" "$1" 2>/dev/null && return 0; sleep 0.2; done
    echo "$3 did not start:" >&2; cat "$1" >&2; [ -f "$1.err" ] && cat "$1.err" >&2; exit 1
}
busy() {
    local compilers
    compilers=$(pgrep -c -f '(^|/)(rustc|cc1|cc1plus|ld|cargo) ' || true)
    echo "load average $(cut -d' ' -f1-3 /proc/loadavg); compiler processes running: ${compilers:-0}"
}

# The fast upstream and nginx in front of it (each its own nginx, the configs in bench/gateway/).
upstream_port=$(free_port)
proxy_port=$(free_port)
render() { sed -e "s|@WORK@|$work|g" -e "s|@UPSTREAM_PORT@|$upstream_port|g" -e "s|@PROXY_PORT@|$proxy_port|g" "$1" >"$2"; }
render bench/gateway/upstream.conf "$work/upstream.conf"
mkdir -p "$work/stream"
python3 bench/gateway/sse_body.py "$work/stream/events"
# nginx's workers run as another user (when started as root): let them read the stream file.
chmod a+rx "$work" "$work/stream" && chmod a+r "$work/stream/events"
render bench/gateway/proxy.conf "$work/proxy.conf"
"$nginx_bin" -p "$work" -c "$work/upstream.conf" 2>"$work/upstream.err" &
upstream_pid=$!
pids+=($!)
"$nginx_bin" -p "$work" -c "$work/proxy.conf" 2>"$work/proxy.err" &
proxy_pid=$!
pids+=($!)

# The streaming upstream: 5 chat.completion.chunk events 10 ms apart (the first at once).
python3 interop/gateway/sse_upstream.py --port 0 --chunks 5 --interval-ms 10 >"$work/sse.out" 2>"$work/sse.out.err" &
pids+=($!)
wait_for "$work/sse.out" '^sse upstream listening on ' "the SSE upstream"
sse_url=$(sed -nE 's/^sse upstream listening on (.*)$/\1/p' "$work/sse.out")

# keyward serve: the workload tokens' issuer (JWKS) and the store the gateway audits into.
token="kwp_$(openssl rand -hex 24)"
KEYWARD_BOOTSTRAP_ORG=Bench KEYWARD_BOOTSTRAP_ADMIN_EMAIL=bench@example.com KEYWARD_BOOTSTRAP_TOKEN="$token" \
KEYWARD_LOG=warn "$bin" serve --data-dir "$work/kw" --listen 127.0.0.1:0 >"$work/kw.out" 2>"$work/kw.out.err" &
pids+=($!)
wait_for "$work/kw.out" '^Ready\.$' "keyward serve"
kw=$(sed -nE 's/^Keyward is listening on (.*)$/\1/p' "$work/kw.out")
ca=$(sed -nE 's/^TLS CA certificate: (.*)$/\1/p' "$work/kw.out")
org=$(sed -nE 's/^Bootstrapped organization: (.*)$/\1/p' "$work/kw.out")
api() { # $1 = path, $2 = bearer, $3 = JSON body
    local out status
    out=$(curl -s -w '\n%{http_code}' --cacert "$ca" -H "Authorization: Bearer $2" \
        -H 'Content-Type: application/json' "$kw/api/v1/$1" -d "$3")
    status=${out##*$'\n'}
    [[ $status == 2* ]] || { echo "POST $1 answered $status: ${out%$'\n'*}" >&2; exit 1; }
    printf '%s' "${out%$'\n'*}"
}
json() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }
api automations "$token" '{"name": "bench-agent"}' >/dev/null
automation_token=$(api automations/bench-agent/tokens "$token" '{"name": "bench"}' | json '["token"]')
workload=$(api workload-identity/token "$automation_token" '{"audience": "keyward-gateway"}' | json '["token"]')

# keyward gateway: plain HTTP like the other two, token verification and a body-reading policy.
cp bench/gateway/bench.cedar "$work/bench.cedar"
cat >"$work/routes.toml" <<EOF
organization = "$org"

[[route]]
name = "llm"
path_prefix = "/v1"
strip_prefix = false
upstream = "http://127.0.0.1:$upstream_port"
accept = ["workload"]
policies = ["bench.cedar"]

[[route]]
name = "llm-stream"
path_prefix = "/sse"
upstream = "$sse_url"
accept = ["workload"]
policies = ["bench.cedar"]

# The masking comparison: the same streamed upstream through two routes, masked and not.
[[route]]
name = "stream-plain"
path_prefix = "/plain"
upstream = "http://127.0.0.1:$upstream_port/stream"
accept = ["workload"]
policy = 'permit(principal, action, resource);'

[[route]]
name = "stream-masked"
path_prefix = "/masked"
upstream = "http://127.0.0.1:$upstream_port/stream"
accept = ["workload"]
policy = 'permit(principal, action, resource);'

[route.mask]
EOF
# Recordings off for the comparison (both routes alike): the gateway records every session by
# default once recording is in; a build without the flag records nothing anyway.
recording_args=()
if "$bin" gateway --help 2>/dev/null | grep -q -- '--recordings'; then
    recording_args=(--recordings off)
fi
KEYWARD_LOG=warn "$bin" gateway --http --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 --data-dir "$work/kw" \
    --config "$work/routes.toml" --platform-url "$kw" --platform-ca "$ca" "${recording_args[@]}" >"$work/gw.out" 2>"$work/gw.out.err" &
gw_pid=$!
pids+=($!)
wait_for "$work/gw.out" '^keyward gateway listening on ' "keyward gateway"
gw=$(sed -nE 's/^keyward gateway listening on (\S+) \(admin (\S+)\)$/\1/p' "$work/gw.out")
gw_admin=$(sed -nE 's/^keyward gateway listening on (\S+) \(admin (\S+)\)$/\2/p' "$work/gw.out")

direct="http://127.0.0.1:$upstream_port"
nginx="http://127.0.0.1:$proxy_port"
body='{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}],"max_tokens":16}'
post() { # $1 = base URL, $2 = bearer ('' for none), $3 = body; prints "status body"
    curl -s -w ' %{http_code}' -H 'Content-Type: application/json' ${2:+-H "Authorization: Bearer $2"} \
        "$1/v1/chat/completions" -d "$3"
}
# Before timing: every contender answers the upstream's JSON, and the gateway really checks.
for target in "$direct" "$nginx" "$gw"; do
    out=$(post "$target" "$workload" "$body")
    [[ $out == *'"chatcmpl-bench"'*' 200' ]] || { echo "$target did not answer the upstream's JSON: $out" >&2; exit 1; }
done
out=$(post "$gw" '' "$body")
[[ $out == *' 401' ]] || { echo "the gateway let a request without a token through: $out" >&2; exit 1; }
out=$(post "$gw" "$workload" '{"model":"gpt-4-expensive","messages":[]}')
[[ $out == *'bench-no-expensive-models'*' 403' ]] || { echo "the gateway did not apply its policy: $out" >&2; exit 1; }
echo "checked: all three answer 200; the gateway answers 401 without a token and 403 (bench-no-expensive-models) for a forbidden model" >&2
# The masking comparison's two routes: the same stream, one with the email, card and key masked.
plain_body=$(curl -s -H "Authorization: Bearer $workload" "$gw/plain/events")
masked_body=$(curl -s -H "Authorization: Bearer $workload" "$gw/masked/events")
[[ $plain_body == *'jane.doe@example.com'* && $plain_body == *'data: [DONE]'* ]] ||
    { echo "the unmasked stream route did not pass the stream through: ${plain_body:0:300}" >&2; exit 1; }
[[ $masked_body != *'jane.doe@example.com'* && $masked_body != *'AKIAIOSFODNN7EXAMPLE'* && $masked_body == *'[MASKED:email]'* && $masked_body == *'data: [DONE]'* ]] ||
    { echo "the masked stream route did not mask the stream: ${masked_body:0:300}" >&2; exit 1; }
echo "checked: the stream routes answer the ${#plain_body}-byte stream, masked on one (${recording_args[*]:-no recording flag in this build})" >&2

# ONLY=setup: leave everything running for a profiler (strace, perf, valgrind on the pid) until
# interrupted; the workload token is in $WORK_DIR/token.
if [ "$ONLY" = setup ]; then
    printf '%s' "$workload" >"$work/token"
    echo "gateway $gw (pid $gw_pid), routes /plain/events and /masked/events; token in $work/token; Ctrl-C ends" >&2
    wait "$gw_pid"
    exit 0
fi
# ONLY=mask-instructions: the same two routes counted in instructions (valgrind's callgrind),
# which do not depend on what else the cores are doing. Four fresh gateways, each serving
# MASK_REQUESTS_LOW or MASK_REQUESTS_HIGH requests of one route over one connection; the
# difference between the two counts of a route, over the difference in requests, is that
# route's instructions per request, start-up and shutdown cancelled out.
if [ "$ONLY" = mask-instructions ]; then
    command -v valgrind >/dev/null || { echo "ONLY=mask-instructions needs valgrind" >&2; exit 1; }
    low=${MASK_REQUESTS_LOW:-50} high=${MASK_REQUESTS_HIGH:-250}
    kill "$gw_pid"; wait "$gw_pid" 2>/dev/null || true
    count_instructions() { # $1 = route, $2 = requests; prints the gateway's total instructions
        local out="$work/cg-$1-$2" log="$work/gw-cg-$1-$2.out" gpid urls=()
        KEYWARD_LOG=warn valgrind --tool=callgrind --callgrind-out-file="$out" "$bin" gateway --http \
            --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 --data-dir "$work/kw" --config "$work/routes.toml" \
            --platform-url "$kw" --platform-ca "$ca" "${recording_args[@]}" >"$log" 2>"$log.err" &
        gpid=$!
        for _ in $(seq 1 600); do grep -q '^keyward gateway listening on ' "$log" 2>/dev/null && break; sleep 0.2; done
        local url
        url=$(sed -nE 's/^keyward gateway listening on (\S+) \(admin (\S+)\)$/\1/p' "$log")
        [ -n "$url" ] || { echo "the gateway under callgrind did not start:" >&2; cat "$log" "$log.err" >&2; exit 1; }
        for _ in $(seq 1 "$2"); do urls+=("$url/$1/events"); done
        curl -s --fail -H "Authorization: Bearer $workload" "${urls[@]}" >/dev/null ||
            { echo "a request on /$1 under callgrind failed" >&2; exit 1; }
        kill -TERM "$gpid"; wait "$gpid" 2>/dev/null || true
        [ -z "${CALLGRIND_DIR:-}" ] || cp "$out" "$CALLGRIND_DIR/"
        awk '/^(summary|totals):/ {print $2; exit}' "$out"
    }
    declare -A per_request
    for route in plain masked; do
        a=$(count_instructions "$route" "$low")
        b=$(count_instructions "$route" "$high")
        per_request[$route]=$(( (b - a) / (high - low) ))
        echo "$route: $a instructions for $low requests, $b for $high" >&2
    done
    echo
    echo "streamed case through the gateway in instructions per request (callgrind; $((high - low)) requests, one connection):"
    printf '  %-14s %10s\n' "masking off" "${per_request[plain]}" "masking on" "${per_request[masked]}"
    echo "  masking adds $(( per_request[masked] - per_request[plain] )) instructions per ${#plain_body}-byte response ($(python3 -c "print(f'{(${per_request[masked]} / ${per_request[plain]} - 1) * 100:.1f}')") %)"
    exit 0
fi

before=$(busy)
results=()
# CPU time (user + system, clock ticks) of a process and its threads, and of its child processes
# that are still running (nginx's workers): how much of the cores a contender spent.
cpu_ticks() { # $1 = pid
    local total=0 pid
    for pid in "$1" $(pgrep -P "$1" || true); do
        [ -r "/proc/$pid/stat" ] || continue
        total=$((total + $(awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$pid/stat")))
    done
    echo "$total"
}
run_wrk() { # $1 = name, $2 = URL, $3 = threads, $4 = connections, $5 = seconds, $6 = pid of the contender, $7 = wrk script
    local out="$work/$1-c$4.wrk" line before_cpu after_cpu script=${7:-bench/gateway/post.lua}
    TOKEN=$workload wrk -t"$3" -c"$4" -d2s -s "$script" "$2" >/dev/null # warm-up
    echo "$1: wrk -t$3 -c$4 -d$5s…" >&2
    before_cpu=$(cpu_ticks "$6")
    TOKEN=$workload wrk -t"$3" -c"$4" -d"$5s" --latency -s "$script" "$2" >"$out"
    after_cpu=$(cpu_ticks "$6")
    line=$(grep '^RESULT ' "$out") || { echo "wrk printed no result for $1:" >&2; cat "$out" >&2; exit 1; }
    line="$line cpu_ticks=$((after_cpu - before_cpu)) hz=$(getconf CLK_TCK)"
    if ! grep -qE 'connect_errors=0 read_errors=0 write_errors=0 timeouts=0 non2xx=0' <<<"$line"; then
        echo "$1 had errors: $line" >&2; exit 1
    fi
    results+=("$1 c$4 $line")
}
if [ "$ONLY" != mask ]; then
    for target in direct nginx keyward; do
        case $target in direct) url=$direct pid=$upstream_pid ;; nginx) url=$nginx pid=$proxy_pid ;; keyward) url=$gw pid=$gw_pid ;; esac
        run_wrk "$target" "$url" 1 1 "$LAT_DURATION" "$pid"
        run_wrk "$target" "$url" "$WRK_THREADS" "$CONNECTIONS" "$DURATION" "$pid"
    done
    echo "ttfb: $TTFB_REQUESTS streamed completions each, direct and through the gateway…" >&2
    ttfb_direct=$(python3 bench/gateway/ttfb.py "$sse_url/v1/chat/completions" --requests "$TTFB_REQUESTS")
    ttfb_gw=$(python3 bench/gateway/ttfb.py "$gw/sse/v1/chat/completions" --requests "$TTFB_REQUESTS" --token "$workload")
fi
# Masking on against off, alternating, so drift in the machine's load hits both alike.
mask_results=()
for round in $(seq 1 "$MASK_ROUNDS"); do
    for route in plain masked; do
        run_wrk "stream-$route-$round" "$gw/$route/events" "$WRK_THREADS" "$CONNECTIONS" "$DURATION" "$gw_pid" bench/gateway/sse.lua
        mask_results+=("${results[-1]}")
        unset 'results[-1]'
    done
done
after=$(busy)
printf '%s\n' "${mask_results[@]}" >"$work/mask-results.txt"

mask_summary() {
    python3 - "$work/mask-results.txt" <<'PY'
import re, sys
runs = {"plain": [], "masked": []}
for line in open(sys.argv[1]):
    fields = {k: float(v) for k, v in re.findall(r"(\w+)=([\d.]+)", line)}
    runs[line.split()[0].split("-")[1]].append(fields)
def total(name, key):
    return sum(r[key] for r in runs[name])
print(f"\nstreamed case through the gateway, masking on vs off ({len(runs['plain'])} alternating runs each, "
      f"{total('plain', 'bytes') / total('plain', 'requests'):.0f} bytes per response):")
print(f"{'':16} {'req/s':>9} {'MB/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'CPU µs/req':>11}")
rate = {}
for name in ("plain", "masked"):
    seconds = total(name, "duration_us") / 1e6
    rate[name] = total(name, "requests") / seconds
    cpu = total(name, "cpu_ticks") / runs[name][0]["hz"] * 1e6 / total(name, "requests")
    p50 = sum(r["p50_us"] for r in runs[name]) / len(runs[name]) / 1000
    p99 = max(r["p99_us"] for r in runs[name]) / 1000
    print(f"  {'masking ' + ('off' if name == 'plain' else 'on'):14} {rate[name]:9.0f} {total(name, 'bytes') / seconds / 1e6:8.1f} "
          f"{p50:8.3f} {p99:8.3f} {cpu:11.1f}")
cost = (1 - rate["masked"] / rate["plain"]) * 100
print(f"masking costs {cost:.1f} % of the streamed throughput (target ≤ 20 %: {'met' if cost <= 20 else 'MISSED'})")
PY
}
if [ "$ONLY" = mask ]; then
    mask_summary
    echo "c=N: wrk -t$WRK_THREADS -c$CONNECTIONS -d${DURATION}s; wrk runs on the same $(nproc) cores; gateway flags: ${recording_args[*]:-(none)}"
    echo "before: $before"
    echo "after:  $after"
    exit 0
fi

# What the gateway counted (its admin /metrics): every timed request decided and allowed.
gw_allowed=$(curl -s "$gw_admin/metrics" | awk '/^keyward_gateway_requests_total\{/ && /decision="allow"/ && /route="llm"/ {s += $NF} END {printf "%d", s}')

printf '%s\n' "${results[@]}" "ttfb direct $ttfb_direct" "ttfb keyward $ttfb_gw" >"$work/results.txt"
python3 - "$work/results.txt" <<'PY'
import re, sys
rows, ttfb = {}, {}
for line in open(sys.argv[1]):
    fields = dict(re.findall(r"(\w+)=([\d.,]+)", line))
    name, kind = line.split()[:2]
    if name == "ttfb":
        ttfb[kind] = fields
    else:
        rows[(name, "lat" if kind == "c1" else "load")] = {k: float(v) for k, v in fields.items() if "," not in v}
ms = lambda us: us / 1000
d, n = rows[("direct", "lat")], rows[("nginx", "load")]
print()
print(f"{'':24} {'p50 c=1':>9} {'p99 c=1':>9} {'added p50':>10} {'added p99':>10} {'req/s c=N':>10} {'p50 c=N':>9} {'p99 c=N':>9} {'vs nginx':>9}")
for name in ("direct", "nginx", "keyward"):
    lat, load = rows[(name, "lat")], rows[(name, "load")]
    added50 = "-" if name == "direct" else f"{ms(lat['p50_us'] - d['p50_us']):+.3f}"
    added99 = "-" if name == "direct" else f"{ms(lat['p99_us'] - d['p99_us']):+.3f}"
    print(f"{name:24} {ms(lat['p50_us']):9.3f} {ms(lat['p99_us']):9.3f} {added50:>10} {added99:>10} "
          f"{load['rps']:10.0f} {ms(load['p50_us']):9.3f} {ms(load['p99_us']):9.3f} {load['rps'] / n['rps']:9.2f}")
print(f"\nCPU per request at c=N (µs of CPU, user + system, the contender's own processes):")
for name in ("direct", "nginx", "keyward"):
    load = rows[(name, "load")]
    print(f"  {name:8} {load['cpu_ticks'] / load['hz'] * 1e6 / load['requests']:7.1f} µs")
k, kl = rows[("keyward", "lat")], rows[("keyward", "load")]
td, tg = ttfb["direct"], ttfb["keyward"]
diff50 = float(tg["p50_ms"]) - float(td["p50_ms"])
diff99 = float(tg["p99_ms"]) - float(td["p99_ms"])
print(f"\nfirst SSE event (ms)      p50 direct {float(td['p50_ms']):.3f}  gateway {float(tg['p50_ms']):.3f}  diff {diff50:+.3f};"
      f"  p99 direct {float(td['p99_ms']):.3f}  gateway {float(tg['p99_ms']):.3f}  diff {diff99:+.3f};"
      f"  events per stream {td['events']} / {tg['events']}")
added50, added99, ratio = ms(k["p50_us"] - d["p50_us"]), ms(k["p99_us"] - d["p99_us"]), kl["rps"] / n["rps"]
ok = lambda b: "met" if b else "MISSED"
print(f"\ntargets (issue 16): added p50 {added50:.3f} ms ≤ 0.3: {ok(added50 <= 0.3)}; added p99 {added99:.3f} ms ≤ 1.5: {ok(added99 <= 1.5)}; "
      f"throughput {ratio:.2f} × nginx ≥ 0.8: {ok(ratio >= 0.8)}; first-event diff {diff50:.3f} ms ≤ 5: {ok(diff50 <= 5)}")
PY
mask_summary
echo
echo "ms; c=1: wrk -t1 -c1 -d${LAT_DURATION}s (each request alone); c=N: wrk -t$WRK_THREADS -c$CONNECTIONS -d${DURATION}s; wrk runs on the same $(nproc) cores"
echo "gateway requests decided allow on route llm (admin /metrics): $gw_allowed"
echo "before: $before"
echo "after:  $after"
