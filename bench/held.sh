#!/usr/bin/env bash
# 1,000 requests held at once by `keyward gateway` (issue 17, acceptance d): what they cost the
# gateway process and how fast one batch approval releases them, on SQLite and PostgreSQL.
#
# The measurement is the end-to-end test tests/e2e/gateway_held_thousand.rs (one code path for
# the check and the figure): a spawned `keyward serve` and `keyward gateway`, ten people × 100
# POSTs held on a route (`approval = "hold"`, each on its own HTTP/1.1 connection), all pending in
# the API, then `keyward approval approve <1,000 ids>` from another process; every request must
# get the upstream's 200. The gateway's RSS and thread count come from /proc/<pid>/status before
# (after a warm-up), with the 1,000 held, and after. This script runs it and prints the figures.
#
#   bash bench/held.sh                  (release build; SQLite, and PostgreSQL when
#                                        KEYWARD_TEST_DATABASE_URL is set, e.g.
#                                        postgres://postgres@127.0.0.1:5432/postgres)
#   PROFILE=dev bash bench/held.sh      (the debug build: checks the script, figures differ)
set -euo pipefail
cd "$(dirname "$0")/.."

PROFILE=${PROFILE:-release}
command -v cargo-nextest >/dev/null || { echo "bench/held.sh needs cargo-nextest (cargo install cargo-nextest)" >&2; exit 1; }
busy() {
    local compilers
    compilers=$(pgrep -c -f '(^|/)(rustc|cc1|cc1plus|ld|cargo) ' || true)
    echo "load average $(cut -d' ' -f1-3 /proc/loadavg); compiler processes running: ${compilers:-0}"
}

out=$(mktemp)
trap 'rm -f "$out"' EXIT
echo "building the e2e test (profile $PROFILE)…" >&2
cargo nextest run -p keyward --test e2e --cargo-profile "$PROFILE" --no-run >&2
before=$(busy)
echo "running: 1,000 held requests per backend…" >&2
if ! cargo nextest run -p keyward --test e2e --cargo-profile "$PROFILE" --no-capture \
    -E 'test(/a_thousand_requests_held_by_the_gateway_all_pass_on_one_batch_approval/)' >"$out" 2>&1; then
    cat "$out" >&2
    echo "the held-requests test failed: no figures" >&2
    exit 1
fi
after=$(busy)
grep '^HELD ' "$out" >/dev/null || { cat "$out" >&2; echo "the test printed no figures" >&2; exit 1; }
[ -n "${KEYWARD_TEST_DATABASE_URL:-}" ] || echo "(KEYWARD_TEST_DATABASE_URL unset: SQLite only)" >&2

python3 - "$out" <<'PY'
import re, sys
rows = [dict(re.findall(r"(\w+)=(\S+)", l)) for l in open(sys.argv[1]) if l.startswith("HELD ")]
mb = lambda kb: int(kb) / 1024
print(f"\n{'backend':10} {'held':>5} {'pending after':>14} {'RSS before':>11} {'RSS held':>9} {'added':>8} "
      f"{'per request':>12} {'RSS after':>10} {'threads b/h/a':>14} {'batch (CLI)':>12} {'last after batch':>17}")
for r in rows:
    added = int(r["rss_held_kb"]) - int(r["rss_before_kb"])
    print(f"{r['backend']:10} {r['held']:>5} {int(r['pending_ms']) / 1000:13.1f}s {mb(r['rss_before_kb']):9.1f}MB "
          f"{mb(r['rss_held_kb']):7.1f}MB {added / 1024:+6.1f}MB {added / int(r['held']):9.1f} kB "
          f"{mb(r['rss_after_kb']):8.1f}MB {r['threads_before'] + '/' + r['threads_held'] + '/' + r['threads_after']:>14} "
          f"{int(r['batch_ms']) / 1000:11.2f}s {int(r['release_ms']):15d}ms")
PY
echo
echo "RSS: VmRSS of the gateway process; 'batch': the CLI approving 1,000 ids (8 at a time) from start to exit;"
echo "'last after batch': from the CLI's exit to the last held request's 200 (most are released during the batch)."
echo "before: $before"
echo "after:  $after"
