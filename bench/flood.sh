#!/usr/bin/env bash
# Floods every unauthenticated endpoint of `keyward serve` that writes to the database and prints,
# per endpoint: requests sent, requests/s, how many were refused (429 / 503), and the rows of the
# tables it writes before and after. Prints figures; the pass/fail version is the `abuse_limits`
# end-to-end test. SQLite, fresh data directories, generated TLS, free ports.
#   KEYWARD_BIN=target/release/keyward REQUESTS=5000 ADDRESSES=50 CONCURRENCY=32 bash bench/flood.sh
# It does not build: point KEYWARD_BIN at a release binary (`cargo build --release -p keyward`).
# Needs python3 (its ssl and sqlite3 modules) and openssl.
set -euo pipefail
cd "$(dirname "$0")/.."

KEYWARD_BIN=${KEYWARD_BIN:-target/release/keyward}
REQUESTS=${REQUESTS:-5000}
ADDRESSES=${ADDRESSES:-50}
CONCURRENCY=${CONCURRENCY:-32}
[ -x "$KEYWARD_BIN" ] || {
    echo "bench/flood.sh: no keyward binary at $KEYWARD_BIN (build it, or set KEYWARD_BIN)" >&2
    exit 1
}
for tool in python3 openssl; do
    command -v "$tool" >/dev/null || { echo "bench/flood.sh needs $tool" >&2; exit 1; }
done

work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# start <name> [VAR=value…]: a server in $work/<name>; waits for its banner.
start() {
    local name=$1
    shift
    local dir=$work/$name port
    port=$(free_port)
    mkdir -p "$dir"
    env -u KEYWARD_DATABASE_URL KEYWARD_TRUSTED_PROXIES=127.0.0.1/32 KEYWARD_LOG=warn "$@" \
        "$KEYWARD_BIN" serve --listen "127.0.0.1:$port" --data-dir "$dir/data" \
        >"$dir/out" 2>"$dir/err" &
    pids+=($!)
    for _ in $(seq 1 300); do
        grep -q '^Ready\.$' "$dir/out" 2>/dev/null && return 0
        sleep 0.1
    done
    echo "keyward serve ($name) did not start:" >&2
    cat "$dir/out" "$dir/err" >&2
    exit 1
}

bootstrap=(KEYWARD_BOOTSTRAP_ORG=Acme KEYWARD_BOOTSTRAP_ADMIN_EMAIL=owner@acme.example
    KEYWARD_BOOTSTRAP_TOKEN=kwp_bench-flood-token-0123456789abcdef0123)
start local "${bootstrap[@]}"
start setup
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=bench-idp \
    -keyout "$work/idp.key" -out "$work/idp.crt" 2>/dev/null
start saml "${bootstrap[@]}" AUTH_PROVIDER=entra_id \
    ENTRA_ID_CLIENT_ID=00000000-0000-0000-0000-000000000001 ENTRA_ID_CLIENT_SECRET=unused \
    ENTRA_ID_TENANT_ID=00000000-0000-0000-0000-000000000002 \
    SAML_IDP_ENTITY_ID=https://idp.example/bench SAML_IDP_SSO_URL=https://idp.example/sso \
    SAML_IDP_CERT_FILE="$work/idp.crt"

echo "load on the machine before: $(cut -d' ' -f1-3 /proc/loadavg)"
WORK=$work REQUESTS=$REQUESTS ADDRESSES=$ADDRESSES CONCURRENCY=$CONCURRENCY python3 - <<'PY'
import http.client, os, re, sqlite3, ssl, threading, time, urllib.parse

work = os.environ["WORK"]
N = int(os.environ["REQUESTS"])
ADDRESSES = int(os.environ["ADDRESSES"])
CONCURRENCY = int(os.environ["CONCURRENCY"])

def server(name):
    out = open(f"{work}/{name}/out").read()
    url = re.search(r"^Keyward is listening on (\S+)$", out, re.M).group(1)
    ca = re.search(r"^TLS CA certificate: (\S+)$", out, re.M).group(1)
    setup = re.search(r"#token=(\S+)$", out, re.M)
    u = urllib.parse.urlsplit(url)
    return {"host": u.hostname, "port": u.port, "ca": ca, "db": f"{work}/{name}/data/keyward.db",
            "setup": setup.group(1) if setup else None}

def rows(srv, tables):
    db = sqlite3.connect(f"file:{srv['db']}?mode=ro", uri=True)
    try:
        return {t: db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in tables}
    finally:
        db.close()

def flood(srv, method, path, body, headers, address):
    """Sends N requests, CONCURRENCY at a time, each over keep-alive connections."""
    ctx = ssl.create_default_context(cafile=srv["ca"])
    counter = iter(range(N))
    lock = threading.Lock()
    statuses = {}
    def worker():
        conn = None
        while True:
            with lock:
                i = next(counter, None)
            if i is None:
                break
            if conn is None:
                conn = http.client.HTTPSConnection(srv["host"], srv["port"], context=ctx, timeout=30)
            h = dict(headers(i))
            h["X-Forwarded-For"] = address(i)
            try:
                conn.request(method, path(i), body=body(i), headers=h)
                res = conn.getresponse()
                res.read()
                status = res.status
                if res.getheader("connection", "").lower() == "close":
                    conn.close(); conn = None
            except (OSError, http.client.HTTPException):
                status = "error"
                conn.close(); conn = None
            with lock:
                statuses[status] = statuses.get(status, 0) + 1
    threads = [threading.Thread(target=worker) for _ in range(CONCURRENCY)]
    started = time.monotonic()
    for t in threads: t.start()
    for t in threads: t.join()
    return statuses, time.monotonic() - started

form = {"Content-Type": "application/x-www-form-urlencoded"}
one = lambda i: "203.0.113.1"
many = lambda i: f"10.{i % ADDRESSES // 250}.{i % ADDRESSES % 250 + 1}.1"
local, setup, saml = server("local"), server("setup"), server("saml")
q = urllib.parse.quote
cases = [
    ("POST /oauth2/device_authorization (1 address)", local, "POST", lambda i: "/oauth2/device_authorization",
     lambda i: "client_id=keyward-cli", lambda i: form, one, ["device_codes", "rate_counters"]),
    (f"POST /oauth2/device_authorization ({ADDRESSES} addresses)", local, "POST", lambda i: "/oauth2/device_authorization",
     lambda i: "client_id=keyward-cli", lambda i: form, many, ["device_codes", "rate_counters"]),
    ("POST /oauth2/token (unknown codes)", local, "POST", lambda i: "/oauth2/token",
     lambda i: f"grant_type={q('urn:ietf:params:oauth:grant-type:device_code')}&client_id=keyward-cli&device_code=kwdc_{i}",
     lambda i: form, one, ["device_codes", "rate_counters"]),
    ("POST /login (1 address)", local, "POST", lambda i: "/login",
     lambda i: f"email=u{i}%40flood.example&password=wrong", lambda i: form, lambda i: "203.0.113.2",
     ["audit_events", "auth_failures", "rate_counters", "web_sessions"]),
    ("POST /invite (1 address)", local, "POST", lambda i: "/invite",
     lambda i: f"token=kwi_guess{i}&password=x-password-x-long", lambda i: form, lambda i: "203.0.113.3",
     ["audit_events", "auth_failures", "rate_counters", "users"]),
    ("POST /api/v1/setup (1 address)", setup, "POST", lambda i: "/api/v1/setup",
     lambda i: '{"setup_token":"kws_guess%d","org_name":"Acme","email":"me@acme.example"}' % i,
     lambda i: {"Content-Type": "application/json"}, lambda i: "203.0.113.4",
     ["audit_events", "auth_failures", "rate_counters", "users"]),
    ("GET /auth/saml/login (1 address)", saml, "GET", lambda i: "/auth/saml/login", lambda i: None,
     lambda i: {}, lambda i: "203.0.113.5", ["sso_pending", "rate_counters"]),
    (f"GET /auth/saml/login ({ADDRESSES} addresses)", saml, "GET", lambda i: "/auth/saml/login", lambda i: None,
     lambda i: {}, many, ["sso_pending", "rate_counters"]),
    ("GET /auth/entra_id/callback (1 address)", saml, "GET", lambda i: f"/auth/entra_id/callback?state=s{i}&code=c{i}",
     lambda i: None, lambda i: {}, lambda i: "203.0.113.6", ["audit_events", "rate_counters"]),
    ("POST /auth/saml/acs (1 address)", saml, "POST", lambda i: "/auth/saml/acs",
     lambda i: f"RelayState=r{i}&SAMLResponse=PHNhbWw%2BPC9zYW1sPg%3D%3D",
     lambda i: {**form, "Cookie": f"keyward_saml_relay=r{i}"}, lambda i: "203.0.113.7",
     ["audit_events", "saml_replay", "rate_counters"]),
]
print(f"{'endpoint':<52} {'sent':>6} {'req/s':>7} {'429':>6} {'503':>5} {'other':>20}  rows before -> after")
for name, srv, method, path, body, headers, address, tables in cases:
    before = rows(srv, tables)
    statuses, secs = flood(srv, method, path, body, headers, address)
    after = rows(srv, tables)
    other = {k: v for k, v in sorted(statuses.items(), key=str) if k not in (429, 503)}
    change = ", ".join(f"{t} {before[t]} -> {after[t]}" for t in tables)
    print(f"{name:<52} {N:>6} {N / secs:>7.0f} {statuses.get(429, 0):>6} {statuses.get(503, 0):>5} "
          f"{str(other):>20}  {change}")
PY
echo "load on the machine after: $(cut -d' ' -f1-3 /proc/loadavg)"
