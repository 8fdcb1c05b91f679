-- wrk script of bench/gateway.sh's masking comparison: GET the streamed chat completion (an SSE
-- body of ~18 KB) with the workload token (env TOKEN), then the same machine-readable line as
-- post.lua plus the bytes read, so the script can print MB/s.
wrk.method = "GET"
wrk.headers["Accept"] = "text/event-stream"
local token = os.getenv("TOKEN")
if token and token ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. token
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "RESULT requests=%d duration_us=%d rps=%.1f bytes=%d p50_us=%d p90_us=%d p99_us=%d max_us=%d " ..
    "connect_errors=%d read_errors=%d write_errors=%d timeouts=%d non2xx=%d\n",
    summary.requests, summary.duration, summary.requests / (summary.duration / 1e6), summary.bytes,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    e.connect, e.read, e.write, e.timeout, e.status))
end
