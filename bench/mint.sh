#!/usr/bin/env bash
# Workload-token mints per second over HTTPS (audit on), side by side with the raw RS256 signing
# rate of the same cores and with node oidc-provider issuing client_credentials JWT access tokens.
# Prints figures; it is not a pass/fail test.
#   bash bench/mint.sh                      (DURATION=10 CONNECTIONS=16 WRK_THREADS=2 SIGN_SECONDS=5)
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-16}
WRK_THREADS=${WRK_THREADS:-2}
SIGN_SECONDS=${SIGN_SECONDS:-5}
CORES=$(nproc)

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
if ! command -v wrk >/dev/null; then
    echo "installing wrk (Debian)…" >&2
    as_root apt-get update -q >/dev/null && as_root apt-get install -y -q wrk >/dev/null
fi
for tool in node npm curl openssl python3; do
    command -v "$tool" >/dev/null || { echo "bench/mint.sh needs $tool" >&2; exit 1; }
done

echo "building (release)…" >&2
cargo build -q --release -p keyward
cargo build -q --release -p keyward-jose --example sign_rate
(cd bench/oidc-provider && npm ci --no-audit --no-fund --silent)
op_version=$(node -p 'require("./bench/oidc-provider/node_modules/oidc-provider/package.json").version')

work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Other work on the machine skews every figure: say so in the output.
contention() {
    local busy
    busy=$(pgrep -c -f '(^|/)(rustc|cc1|cc1plus|ld|cargo) ' || true)
    echo "load average $(cut -d' ' -f1-3 /proc/loadavg); compiler processes running: ${busy:-0}"
}
before=$(contention)

json() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }
# Fails unless $1 is a compact JWS (three dot-separated base64url parts) whose header says RS256.
check_rs256_jwt() {
    python3 - "$1" "$2" <<'PY'
import base64, json, sys
token, who = sys.argv[1], sys.argv[2]
parts = token.split(".")
if len(parts) != 3 or not all(parts):
    sys.exit(f"{who} did not issue a JWT (expected three dot-separated parts): {token[:60]}")
header = json.loads(base64.urlsafe_b64decode(parts[0] + "=" * (-len(parts[0]) % 4)))
if header.get("alg") != "RS256":
    sys.exit(f"{who} issued a JWT that is not RS256: {header}")
claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
print(f"{who}: RS256 JWT, kid={header.get('kid')}, aud={claims.get('aud')}, "
      f"{len(base64.urlsafe_b64decode(parts[2] + '=' * (-len(parts[2]) % 4))) * 8}-bit signature",
      file=sys.stderr)
PY
}
wrk_field() { # $1 = wrk output file; prints requests/s, p50, p99, requests
    awk '/Requests\/sec/ {rps=$2} $1=="50%" {p50=$2} $1=="99%" {p99=$2} / requests in / {n=$1}
         END {print rps, p50, p99, n}' "$1"
}

# --- 1. raw RS256 signatures/s on all cores --------------------------------------------------
echo "raw RS256 signing on $CORES threads for ${SIGN_SECONDS}s…" >&2
raw=$(target/release/examples/sign_rate "$CORES" "$SIGN_SECONDS" | sed -nE 's/.*raw_rs256_signs_per_sec=([0-9]+).*/\1/p')
[ -n "$raw" ] || { echo "sign_rate printed no figure" >&2; exit 1; }

# --- 2. keyward mints/s -------------------------------------------------------------------------
token="kwp_bench-$(openssl rand -hex 20)"
KEYWARD_BOOTSTRAP_ORG=Bench KEYWARD_BOOTSTRAP_ADMIN_EMAIL=bench@example.com KEYWARD_BOOTSTRAP_TOKEN="$token" \
KEYWARD_LOG=warn target/release/keyward serve --data-dir "$work/kw" --listen 127.0.0.1:0 >"$work/kw.out" 2>"$work/kw.err" &
pids+=($!)
for _ in $(seq 1 150); do grep -q '^Ready\.$' "$work/kw.out" 2>/dev/null && break; sleep 0.2; done
grep -q '^Ready\.$' "$work/kw.out" || { echo "keyward did not start:" >&2; cat "$work/kw.out" "$work/kw.err" >&2; exit 1; }
kw=$(sed -nE 's/^Keyward is listening on (https:[^ ]+)$/\1/p' "$work/kw.out")
ca=$(sed -nE 's/^TLS CA certificate: (.+)$/\1/p' "$work/kw.out")
curl -sf --cacert "$ca" -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
    -d '{"name":"bench"}' "$kw/api/v1/automations" >/dev/null
at=$(curl -sf --cacert "$ca" -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
    -d '{"name":"bench"}' "$kw/api/v1/automations/bench/tokens" | json '["token"]')
sample=$(curl -sf --cacert "$ca" -H "Authorization: Bearer $at" -H 'Content-Type: application/json' \
    -d '{"audience":"sts.amazonaws.com"}' "$kw/api/v1/workload-identity/token" | json '["token"]')
check_rs256_jwt "$sample" keyward
cat >"$work/mint.lua" <<LUA
wrk.method = "POST"
wrk.body = '{"audience":"sts.amazonaws.com"}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $at"
LUA
echo "keyward: wrk -t$WRK_THREADS -c$CONNECTIONS -d${DURATION}s against $kw…" >&2
wrk -t"$WRK_THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency -s "$work/mint.lua" \
    "$kw/api/v1/workload-identity/token" >"$work/kw.wrk"
read -r kw_rps kw_p50 kw_p99 kw_n < <(wrk_field "$work/kw.wrk")
kw_errors=$(grep -E 'Non-2xx|Socket errors' "$work/kw.wrk" || true)
# Every mint is an audit event: count them and verify the hash chain, to prove the figure is real work.
verify=$(curl -sf --cacert "$ca" -H "Authorization: Bearer $token" "$kw/api/v1/audit/verify")
audited=$(json '["events_checked"]' <<<"$verify")
chain_ok=$(json '["ok"]' <<<"$verify")
kill "${pids[0]}" 2>/dev/null || true; wait "${pids[0]}" 2>/dev/null || true

# --- 3. node oidc-provider client_credentials JWT access tokens/s ---------------------------
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 \
    -keyout "$work/op.key" -out "$work/op.pem" 2>/dev/null
PORT=0 WORKERS=$CORES TLS_KEY="$work/op.key" TLS_CERT="$work/op.pem" JWK_FILE="$work/op-jwk.json" \
    node bench/oidc-provider/server.js >"$work/op.out" 2>"$work/op.err" &
pids+=($!)
for _ in $(seq 1 150); do grep -q 'ready on' "$work/op.out" 2>/dev/null && break; sleep 0.2; done
op=$(sed -nE 's/^oidc-provider ready on (https:[^ ]+) .*/\1/p' "$work/op.out")
[ -n "$op" ] || { echo "oidc-provider did not start:" >&2; cat "$work/op.out" "$work/op.err" >&2; exit 1; }
basic=$(printf 'bench:bench-secret-bench-secret' | base64 -w0)
body='grant_type=client_credentials&resource=https%3A%2F%2Fbench.keyward.test%2Fapi'
sample=$(curl -sf --cacert "$work/op.pem" -H "Authorization: Basic $basic" -d "$body" "$op/token" | json '["access_token"]')
check_rs256_jwt "$sample" oidc-provider
cat >"$work/op.lua" <<LUA
wrk.method = "POST"
wrk.body = "$body"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Authorization"] = "Basic $basic"
LUA
echo "oidc-provider: wrk -t$WRK_THREADS -c$CONNECTIONS -d${DURATION}s against $op…" >&2
wrk -t"$WRK_THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency -s "$work/op.lua" "$op/token" >"$work/op.wrk"
read -r op_rps op_p50 op_p99 op_n < <(wrk_field "$work/op.wrk")
op_errors=$(grep -E 'Non-2xx|Socket errors' "$work/op.wrk" || true)
after=$(contention)

ratio() { python3 -c "print(f'{$1/$2:.2f}')"; }
echo
echo "machine: $CORES cores ($(uname -m)); both servers on HTTPS with keep-alive;"
echo "load: wrk -t$WRK_THREADS -c$CONNECTIONS -d${DURATION}s on the same machine (it shares the cores)"
echo "before: $before"
echo "after:  $after"
printf '%-58s %12s %10s %10s\n' "what" "per second" "p50" "p99"
printf '%-58s %12s %10s %10s\n' "raw RS256 signatures ($CORES threads, aws-lc-rs, ${SIGN_SECONDS}s)" "$raw" "-" "-"
printf '%-58s %12s %10s %10s\n' "keyward mints, HTTPS, audit on (SQLite)" "$kw_rps" "$kw_p50" "$kw_p99"
printf '%-58s %12s %10s %10s\n' "oidc-provider $op_version client_credentials JWT, HTTPS ($CORES workers)" "$op_rps" "$op_p50" "$op_p99"
echo
echo "keyward / raw signing   = $(ratio "$kw_rps" "$raw")   (target >= 0.70)"
echo "keyward / oidc-provider = $(ratio "$kw_rps" "$op_rps")"
echo "keyward: $kw_n mints answered; audit events afterwards: $audited (each mint is one), chain ok: $chain_ok"
echo "oidc-provider: $op_n tokens answered"
[ -z "$kw_errors" ] || echo "keyward: $kw_errors"
[ -z "$op_errors" ] || echo "oidc-provider: $op_errors"
