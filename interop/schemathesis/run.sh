#!/usr/bin/env bash
# Fuzzes every /api/v1 operation of a live `keyward serve` with schemathesis, as the bootstrap
# Owner, from the document the server itself serves at /api/v1/openapi.json (after validating it
# with openapi-spec-validator). Fails on any 5xx, any response that does not match the document
# (body schema, status code, content type) and any response slower than 2 s.
#
#   interop/schemathesis/run.sh [sqlite] [postgres]      (default: both)
#
# KEYWARD_BIN       the keyward binary (default: target/debug/keyward)
# PYTHON_VENV       a venv with interop/requirements.txt installed (default: interop/.venv)
# KEYWARD_TEST_DATABASE_URL   PostgreSQL server for the postgres run (a fresh database is made)
# SCHEMATHESIS_MAX_EXAMPLES   examples per operation and phase (default 8)
# SCHEMATHESIS_SEED           random seed (default: fixed, so CI runs are reproducible)
set -euo pipefail
cd "$(dirname "$0")/../.."

bin=${KEYWARD_BIN:-${CARGO_TARGET_DIR:-$PWD/target}/debug/keyward}
venv=${PYTHON_VENV:-interop/.venv}
max_examples=${SCHEMATHESIS_MAX_EXAMPLES:-8}
seed=${SCHEMATHESIS_SEED:-20261206}
backends=("$@")
[ ${#backends[@]} -gt 0 ] || backends=(sqlite postgres)

[ -x "$bin" ] || { echo "no keyward binary at $bin: build it (cargo build -p keyward) or set KEYWARD_BIN" >&2; exit 1; }
[ -x "$venv/bin/schemathesis" ] || { echo "no schemathesis in $venv: $venv/bin/pip install -r interop/requirements.txt" >&2; exit 1; }

work=$(mktemp -d)
server_pid=
cleanup() {
    if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

wait_for() { # $1 = file, $2 = pattern, $3 = what
    for _ in $(seq 1 300); do grep -qE "$2" "$1" 2>/dev/null && return 0; sleep 0.2; done
    echo "$3 did not start:" >&2; cat "$1" "$1.err" >&2 2>/dev/null; exit 1
}

run_backend() { # $1 = sqlite | postgres
    local backend=$1 dir="$work/$1" db_env=() token url ca org
    mkdir -p "$dir"
    if [ "$backend" = postgres ]; then
        local admin=${KEYWARD_TEST_DATABASE_URL:?the postgres run needs KEYWARD_TEST_DATABASE_URL}
        local name="kw_schemathesis_$(openssl rand -hex 6)"
        psql "$admin" -qtAc "CREATE DATABASE $name" >/dev/null
        db_env=(KEYWARD_DATABASE_URL="${admin%/*}/$name")
    fi
    token="kwp_$(openssl rand -hex 24)"
    env -u KEYWARD_DATABASE_URL "${db_env[@]}" KEYWARD_LOG=warn \
        KEYWARD_BOOTSTRAP_ORG=Schemathesis KEYWARD_BOOTSTRAP_ADMIN_EMAIL=owner@example.com \
        KEYWARD_BOOTSTRAP_TOKEN="$token" \
        "$bin" serve --data-dir "$dir/data" --listen 127.0.0.1:0 >"$dir/serve.out" 2>"$dir/serve.out.err" &
    server_pid=$!
    wait_for "$dir/serve.out" '^Ready\.$' "keyward serve ($backend)"
    url=$(sed -nE 's/^Keyward is listening on (.*)$/\1/p' "$dir/serve.out")
    ca=$(sed -nE 's/^TLS CA certificate: (.*)$/\1/p' "$dir/serve.out")
    org=$(sed -nE 's/^Bootstrapped organization: (.*)$/\1/p' "$dir/serve.out")

    echo "==> openapi-spec-validator ($backend): $url/api/v1/openapi.json"
    curl -sf --cacert "$ca" "$url/api/v1/openapi.json" -o "$dir/openapi.json"
    "$venv/bin/openapi-spec-validator" "$dir/openapi.json"

    echo "==> schemathesis ($backend, $max_examples examples per operation, seed $seed)"
    # Operations left out, each because it would take the harness itself down, not to hide a
    # defect (each keeps its own e2e tests):
    # - PUT /me/password, POST|DELETE /me/totp: give the Owner a password or a second factor,
    #   after which the fuzzed bodies keep tripping the re-authentication throttle (429 with
    #   Retry-After for the rest of the run).
    # - POST /setup: the bootstrap already completed setup, so it can only answer 409 or 429.
    # Everything else runs, including DELETE /tokens/{id} and DELETE /members/{user_id}: the
    # generated ids are random, so they never name the Owner's own token or membership.
    # --request-retries 1: a request sent on a pooled keep-alive connection just as it closes
    # fails at the network level (seen once in CI: "EOF occurred in violation of protocol" on
    # one of 2,902 cases, not reproduced in three reruns); HTTP clients retry that. A server that
    # drops a request's connection every time still fails on the retry.
    local status=0
    set +e
    "$venv/bin/schemathesis" run "$dir/openapi.json" \
        --url "$url" \
        --tls-verify "$ca" \
        -H "Authorization: Bearer $token" \
        -H "X-Keyward-Organization-Id: $org" \
        --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
        --max-response-time 2 \
        --request-retries 1 \
        --max-examples "$max_examples" \
        --seed "$seed" \
        --phases examples,coverage,fuzzing \
        --mode all \
        --workers 2 \
        --generation-database none \
        --exclude-path /api/v1/me/password \
        --exclude-path /api/v1/me/totp \
        --exclude-path /api/v1/setup \
        --no-color \
        --report junit --report-junit-path "$dir/junit.xml" \
        2>&1 | tee "$dir/schemathesis.log"
    status=${PIPESTATUS[0]}
    set -e
    if [ "$status" -ne 0 ]; then
        echo "schemathesis failed on $backend (exit $status); server log:" >&2
        tail -n 50 "$dir/serve.out.err" >&2 || true
        exit "$status"
    fi
    kill "$server_pid"; wait "$server_pid" 2>/dev/null || true; server_pid=
}

for backend in "${backends[@]}"; do
    run_backend "$backend"
done
echo "schemathesis: every operation passed on ${backends[*]}"
