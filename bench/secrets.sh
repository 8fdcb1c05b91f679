#!/usr/bin/env bash
# One kickoff that resolves 50 workload-identity-backed secrets across GCP, Azure and AWS, with
# 20 ms of added latency on every simulated cloud call: the wall time of `keyward run -- true`
# (target <= 150 ms) and the number of cloud calls one kickoff makes. Prints figures; it is not
# a pass/fail test.
#   bash bench/secrets.sh              (RUNS=20 WARMUP=3 LATENCY_MS=20)
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${RUNS:-20}
WARMUP=${WARMUP:-3}
LATENCY_MS=${LATENCY_MS:-20}

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
if ! command -v hyperfine >/dev/null; then
    echo "installing hyperfine (Debian)…" >&2
    as_root apt-get update -q >/dev/null && as_root apt-get install -y -q hyperfine >/dev/null
fi
for tool in curl openssl python3; do
    command -v "$tool" >/dev/null || { echo "bench/secrets.sh needs $tool" >&2; exit 1; }
done

echo "building (release)…" >&2
cargo build -q --release -p keyward
bin=$PWD/target/release/keyward

work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

wait_ready() {
    for _ in $(seq 1 150); do grep -q '^Ready\.$' "$1" 2>/dev/null && return 0; sleep 0.2; done
    echo "did not start:" >&2; cat "$1" "$2" >&2; exit 1
}

owner="kwp_$(openssl rand -hex 24)"
KEYWARD_BOOTSTRAP_ORG=Bench KEYWARD_BOOTSTRAP_ADMIN_EMAIL=bench@example.com KEYWARD_BOOTSTRAP_TOKEN="$owner" \
KEYWARD_CLOUD_ENDPOINTS="$work/endpoints.json" KEYWARD_LOG=warn "$bin" serve --data-dir "$work/kw" --listen 127.0.0.1:0 >"$work/kw.out" 2>"$work/kw.err" &
pids+=($!)
wait_ready "$work/kw.out" "$work/kw.err"
url=$(sed -nE 's/^Keyward is listening on (.*)$/\1/p' "$work/kw.out")
ca=$(sed -nE 's/^TLS CA certificate: (.*)$/\1/p' "$work/kw.out")
org=$(sed -nE 's/^Bootstrapped organization: (.*)$/\1/p' "$work/kw.out")

KEYWARD_LOG=warn "$bin" cloudsim --demo --issuer "$url" --org "$org" --issuer-ca "$ca" \
    --data-dir "$work/sim" --write-endpoints "$work/endpoints.json" >"$work/sim.out" 2>"$work/sim.err" &
pids+=($!)
wait_ready "$work/sim.out" "$work/sim.err"
field() { python3 -c "import json,sys; d=json.load(open('$work/endpoints.json')); print(d$1)"; }
sim=$(field "['gcp']['sts_url']"); sim_ca=$(field "['ca_file']"); sim_admin=$(field "['admin_token']")

api() {
    local out status
    out=$(curl -s -w '\n%{http_code}' --cacert "$ca" -H "Authorization: Bearer $owner" \
        -H 'Content-Type: application/json' -X "${3:-POST}" "$url/api/v1/$1" -d "$2")
    status=${out##*$'\n'}
    [[ $status == 2* ]] || { echo "$1 answered $status: ${out%$'\n'*}" >&2; exit 1; }
    printf '%s' "${out%$'\n'*}"
}
admin() { curl -sf --cacert "$sim_ca" -H "Authorization: Bearer $sim_admin" -H 'Content-Type: application/json' -X "${3:-POST}" "$sim/_cloudsim/$1" -d "$2" >/dev/null; }

api automations '{"name": "crew"}' >/dev/null
token=$(api automations/crew/tokens '{"name": "bench"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
api workload-identity-configs "{\"name\": \"gcp\", \"cloud\": \"gcp\", \"provider\": \"$(field "['gcp']['provider']")\"}" >/dev/null
api workload-identity-configs "{\"name\": \"azure\", \"cloud\": \"azure\", \"tenant_id\": \"$(field "['azure']['tenant_id']")\", \"client_id\": \"$(field "['azure']['client_id']")\"}" >/dev/null
api workload-identity-configs "{\"name\": \"aws\", \"cloud\": \"aws\", \"role_arn\": \"$(field "['aws']['role_arn']")\", \"region\": \"us-east-1\"}" >/dev/null
api secret-providers '{"name": "gcp-sm", "provider": "gcp_secret_manager", "auth": "workload_identity", "workload_identity_config": "gcp", "project": "keyward-demo"}' >/dev/null
api secret-providers "{\"name\": \"azure-kv\", \"provider\": \"azure_key_vault\", \"auth\": \"workload_identity\", \"workload_identity_config\": \"azure\", \"vault_url\": \"$(field "['azure']['vault_url']")\"}" >/dev/null
api secret-providers '{"name": "aws-sm", "provider": "aws_secrets_manager", "auth": "workload_identity", "workload_identity_config": "aws", "region": "us-east-1"}' >/dev/null

keys=()
for i in $(seq -w 1 50); do
    case $((10#$i % 3)) in 0) cloud=gcp; cred=gcp-sm ;; 1) cloud=azure; cred=azure-kv ;; *) cloud=aws; cred=aws-sm ;; esac
    admin secrets "{\"cloud\": \"$cloud\", \"name\": \"bench-secret-$i\", \"value\": \"value-$i\"}"
    api environment-variables "{\"key\": \"BENCH_$i\", \"credential\": \"$cred\", \"secret_name\": \"bench-secret-$i\"}" >/dev/null
    keys+=("\"BENCH_$i\"")
done
api automations/crew/environment-variables "{\"environment_variables\": [$(IFS=,; echo "${keys[*]}")]}" PUT >/dev/null
admin faults "{\"latency_ms\": $LATENCY_MS}"

export KEYWARD_URL=$url KEYWARD_CA_FILE=$ca KEYWARD_AUTOMATION_TOKEN=$token \
       KEYWARD_CLOUD_ENDPOINTS=$work/endpoints.json KEYWARD_LOG=warn
# One checked kickoff: all 50 values arrive, and the calls it made are counted.
admin requests '{}' DELETE
"$bin" run --automation crew -- sh -c 'test "$BENCH_01" = value-01 && test "$BENCH_50" = value-50 && test "$(env | grep -c ^BENCH_)" = 50' \
    || { echo "the kickoff did not resolve all 50 secrets" >&2; exit 1; }
calls=$(curl -sf --cacert "$sim_ca" -H "Authorization: Bearer $sim_admin" "$sim/_cloudsim/requests" | python3 -c '
import json, sys
counts = json.load(sys.stdin)["counts"]
print(", ".join(f"{k} {v}" for k, v in sorted(counts.items())), "| total", sum(counts.values()))')

echo "load average $(cut -d' ' -f1-3 /proc/loadavg); $(nproc) cores; +${LATENCY_MS} ms on every cloud call"
echo "cloud calls in one kickoff: $calls"
hyperfine -N --warmup "$WARMUP" --runs "$RUNS" --export-json "$work/hf.json" \
    -n 'keyward run -- true (50 secrets, 3 clouds)' "$bin run --automation crew -- true"
python3 - "$work/hf.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["results"][0]
times = sorted(r["times"])
p95 = times[min(len(times) - 1, int(0.95 * len(times)))]
print(f"\nmean {r['mean']*1000:.1f} ms   median {r['median']*1000:.1f} ms   p95 {p95*1000:.1f} ms   (target <= 150 ms)")
PY
