#!/usr/bin/env bash
# Masking throughput on one core (issue 17, acceptance e): a 1 MiB JSON body dense with personal
# data and secrets (emails, card numbers, JWTs, AWS key ids and exact secret values every few
# hundred bytes), masked as a whole and as a stream of 16 KiB chunks. Target >= 100 MB/s per core.
# Prints figures; it is not a pass/fail test.
#   bash bench/mask.sh                 (SECONDS_PER_MODE=3)
# `mask_mb_per_sec` divides by the CPU time of the masking thread (what one core does);
# `wall_mb_per_sec` by wall time, which on a shared machine includes other tenants' share.
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_PER_MODE=${SECONDS_PER_MODE:-3}

echo "building (release)…" >&2
cargo build -q --release -p keyward-mask --example mask_rate
bin=${CARGO_TARGET_DIR:-target}/release/examples/mask_rate
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
# Pinned to one CPU when taskset is there, so the figure is per core.
if command -v taskset >/dev/null; then
    taskset -c 0 "$bin" "$SECONDS_PER_MODE"
else
    "$bin" "$SECONDS_PER_MODE"
fi
