#!/usr/bin/env bash
# Wall time of one kickoff: `keyward run -- true` with no identity and with three (GCP, Azure,
# AWS), against bare `true`, measured by hyperfine. The three tokens are minted by a local
# `keyward serve` (SQLite, audit on) over HTTPS; nothing is exchanged with a cloud (the child's
# SDKs would do that). Prints figures; it is not a pass/fail test.
#   bash bench/run.sh                  (RUNS=50 WARMUP=5)
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${RUNS:-50}
WARMUP=${WARMUP:-5}

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
if ! command -v hyperfine >/dev/null; then
    echo "installing hyperfine (Debian)…" >&2
    as_root apt-get update -q >/dev/null && as_root apt-get install -y -q hyperfine >/dev/null
fi
for tool in curl openssl python3; do
    command -v "$tool" >/dev/null || { echo "bench/run.sh needs $tool" >&2; exit 1; }
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

token="kwp_$(openssl rand -hex 24)"
KEYWARD_BOOTSTRAP_ORG=Bench KEYWARD_BOOTSTRAP_ADMIN_EMAIL=bench@example.com KEYWARD_BOOTSTRAP_TOKEN="$token" \
KEYWARD_LOG=warn "$bin" serve --data-dir "$work/kw" --listen 127.0.0.1:0 >"$work/kw.out" 2>"$work/kw.err" &
pids+=($!)
for _ in $(seq 1 150); do grep -q '^Ready\.$' "$work/kw.out" 2>/dev/null && break; sleep 0.2; done
grep -q '^Ready\.$' "$work/kw.out" || { echo "keyward did not start:" >&2; cat "$work/kw.out" "$work/kw.err" >&2; exit 1; }
url=$(sed -nE 's/^Keyward is listening on (.*)$/\1/p' "$work/kw.out")
ca=$(sed -nE 's/^TLS CA certificate: (.*)$/\1/p' "$work/kw.out")

api() {
    local out status
    out=$(curl -s -w '\n%{http_code}' --cacert "$ca" -H "Authorization: Bearer $token" \
        -H 'Content-Type: application/json' "$url/api/v1/$1" -d "$2")
    status=${out##*$'\n'}
    [[ $status == 2* ]] || { echo "POST $1 answered $status: ${out%$'\n'*}" >&2; exit 1; }
    printf '%s' "${out%$'\n'*}"
}
token_of() { python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])'; }
api automations '{"name": "bare"}' >/dev/null
api automations '{"name": "crew"}' >/dev/null
bare_token=$(api automations/bare/tokens '{"name": "bench"}' | token_of)
crew_token=$(api automations/crew/tokens '{"name": "bench"}' | token_of)
api workload-identity-configs '{"name": "gcp", "cloud": "gcp", "automations": ["crew"],
  "provider": "projects/123456789012/locations/global/workloadIdentityPools/keyward-pool/providers/keyward-oidc"}' >/dev/null
api workload-identity-configs '{"name": "azure", "cloud": "azure", "automations": ["crew"],
  "tenant_id": "4a1f8f3e-0c2b-4f7a-9a51-8b6d2c9e1f00", "client_id": "7c9e6679-7425-40de-944b-e07fc1f90ae7"}' >/dev/null
api workload-identity-configs '{"name": "aws", "cloud": "aws", "automations": ["crew"],
  "role_arn": "arn:aws:iam::123456789012:role/keyward-secrets-reader", "region": "us-east-1"}' >/dev/null

# The child must see three token files, or the figure measures nothing.
check='test -s "$AWS_WEB_IDENTITY_TOKEN_FILE" && test -s "$AZURE_FEDERATED_TOKEN_FILE" && test -s "$GOOGLE_APPLICATION_CREDENTIALS"'
KEYWARD_URL=$url KEYWARD_CA_FILE=$ca KEYWARD_AUTOMATION_TOKEN=$crew_token KEYWARD_LOG=warn \
    "$bin" run --automation crew -- sh -c "$check" || { echo "keyward run did not hand over three identities" >&2; exit 1; }

echo "load average $(cut -d' ' -f1-3 /proc/loadavg); $(nproc) cores; keyward at $url (SQLite, audit on)"
export KEYWARD_URL=$url KEYWARD_CA_FILE=$ca KEYWARD_LOG=warn
hyperfine -N --warmup "$WARMUP" --runs "$RUNS" --export-json "$work/hf.json" \
    -n 'true' 'true' \
    -n 'keyward run -- true (0 identities)' "env KEYWARD_AUTOMATION_TOKEN=$bare_token $bin run --automation bare -- true" \
    -n 'keyward run -- true (3 identities)' "env KEYWARD_AUTOMATION_TOKEN=$crew_token $bin run --automation crew -- true"
python3 - "$work/hf.json" <<'PY'
import json, sys
results = json.load(open(sys.argv[1]))["results"]
print("\ncommand                               mean ms   median ms   p95 ms")
for r in results:
    times = sorted(r["times"])
    p95 = times[min(len(times) - 1, int(0.95 * len(times)))]
    print(f"{r['command']:<36} {r['mean']*1000:8.1f} {r['median']*1000:10.1f} {p95*1000:8.1f}")
PY
