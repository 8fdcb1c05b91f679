#!/usr/bin/env bash
# Workload-token mints per second over HTTPS (audit on), side by side with the raw RS256 signing
# rate of the same cores and with node oidc-provider issuing client_credentials JWT access tokens.
# Prints figures; it is not a pass/fail test. Usage: bash bench/mint.sh   (DURATION=10 CONNECTIONS=16)
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-16}
CORES=$(nproc)
KW_PORT=${KW_PORT:-18443}
OP_PORT=${OP_PORT:-19443}

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
if ! command -v wrk >/dev/null; then
    as_root apt-get update -q >/dev/null && as_root apt-get install -y -q wrk >/dev/null
fi

echo "building (release)…" >&2
cargo build -q --release -p keyward
cargo build -q --release -p keyward-jose --example sign_rate
(cd bench/oidc-provider && npm ci --no-audit --no-fund --silent)

work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

# --- 1. raw RS256 signatures/s on all cores --------------------------------------------------
raw=$(target/release/examples/sign_rate "$CORES" 5 | sed -E 's/.*signs_per_sec=([0-9]+).*/\1/')

# --- 2. keyward mints/s -------------------------------------------------------------------------
token="kwp_bench-$(openssl rand -hex 20)"
KEYWARD_BOOTSTRAP_ORG=Bench KEYWARD_BOOTSTRAP_ADMIN_EMAIL=bench@example.com KEYWARD_BOOTSTRAP_TOKEN="$token" \
KEYWARD_LOG=warn target/release/keyward serve --data-dir "$work/kw" --listen "127.0.0.1:$KW_PORT" >"$work/kw.out" 2>"$work/kw.err" &
pids+=($!)
for _ in $(seq 1 100); do grep -q '^Ready\.$' "$work/kw.out" 2>/dev/null && break; sleep 0.2; done
grep -q '^Ready\.$' "$work/kw.out" || { cat "$work/kw.err" >&2; exit 1; }
kw="https://127.0.0.1:$KW_PORT"
ca="$work/kw/tls/ca.pem"
json() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }
curl -sf --cacert "$ca" -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
    -d '{"name":"bench"}' "$kw/api/v1/automations" >/dev/null
at=$(curl -sf --cacert "$ca" -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
    -d '{"name":"bench"}' "$kw/api/v1/automations/bench/tokens" | json '["token"]')
cat >"$work/mint.lua" <<LUA
wrk.method = "POST"
wrk.body = '{"audience":"sts.amazonaws.com"}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $at"
LUA
wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" --latency -s "$work/mint.lua" "$kw/api/v1/workload-identity/token" >"$work/kw.wrk"
kw_rps=$(awk '/Requests\/sec/ {print $2}' "$work/kw.wrk")
kw_p50=$(awk '$1=="50%" {print $2}' "$work/kw.wrk")
kw_p99=$(awk '$1=="99%" {print $2}' "$work/kw.wrk")
kw_errors=$(grep -E 'Non-2xx|Socket errors' "$work/kw.wrk" || true)
# Every mint must be in the audit log: count them to prove the figure is real work.
audited=$(curl -sf --cacert "$ca" -H "Authorization: Bearer $token" \
    "$kw/api/v1/audit/verify" | json '["events_checked"]')

# --- 3. node oidc-provider client_credentials JWT access tokens/s ---------------------------
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 \
    -keyout "$work/op.key" -out "$work/op.pem" 2>/dev/null
PORT=$OP_PORT WORKERS=$CORES TLS_KEY="$work/op.key" TLS_CERT="$work/op.pem" JWK_FILE="$work/op-jwk.json" \
    node bench/oidc-provider/server.js >"$work/op.out" 2>"$work/op.err" &
pids+=($!)
for _ in $(seq 1 100); do grep -q 'ready' "$work/op.out" 2>/dev/null && break; sleep 0.2; done
op="https://127.0.0.1:$OP_PORT"
basic=$(printf 'bench:bench-secret-bench-secret' | base64 -w0)
sample=$(curl -sf --cacert "$work/op.pem" -H "Authorization: Basic $basic" \
    -d 'grant_type=client_credentials&resource=https%3A%2F%2Fbench.keyward.test%2Fapi' "$op/token" | json '["access_token"]')
header=$(python3 -c "import base64,sys; h=sys.argv[1].split('.')[0]; print(base64.urlsafe_b64decode(h+'='*(-len(h)%4)).decode())" "$sample")
case "$header" in *'"RS256"'*) ;; *) echo "oidc-provider did not issue an RS256 JWT: $header" >&2; exit 1;; esac
cat >"$work/op.lua" <<LUA
wrk.method = "POST"
wrk.body = "grant_type=client_credentials&resource=https%3A%2F%2Fbench.keyward.test%2Fapi"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Authorization"] = "Basic $basic"
LUA
wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" --latency -s "$work/op.lua" "$op/token" >"$work/op.wrk"
op_rps=$(awk '/Requests\/sec/ {print $2}' "$work/op.wrk")
op_p50=$(awk '$1=="50%" {print $2}' "$work/op.wrk")
op_p99=$(awk '$1=="99%" {print $2}' "$work/op.wrk")
op_errors=$(grep -E 'Non-2xx|Socket errors' "$work/op.wrk" || true)

ratio() { python3 -c "print(f'{$1/$2:.2f}')"; }
echo
echo "machine: $CORES cores; wrk -t2 -c$CONNECTIONS -d${DURATION}s on the same machine (it shares the cores)"
printf '%-52s %12s %10s %10s\n' "what" "per second" "p50" "p99"
printf '%-52s %12s %10s %10s\n' "raw RS256 signatures ($CORES threads, aws-lc-rs)" "$raw" "-" "-"
printf '%-52s %12s %10s %10s\n' "keyward mints, HTTPS, audit on (SQLite)" "$kw_rps" "$kw_p50" "$kw_p99"
printf '%-52s %12s %10s %10s\n' "oidc-provider client_credentials JWT, HTTPS ($CORES workers)" "$op_rps" "$op_p50" "$op_p99"
echo
echo "keyward / raw signing   = $(ratio "$kw_rps" "$raw")   (target >= 0.70)"
echo "keyward / oidc-provider = $(ratio "$kw_rps" "$op_rps")"
echo "audit events after the run: $audited (each mint is one; the chain verified)"
[ -z "$kw_errors" ] || echo "keyward: $kw_errors"
[ -z "$op_errors" ] || echo "oidc-provider: $op_errors"
