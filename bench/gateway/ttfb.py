"""Time to the first SSE event of a streamed chat completion, for bench/gateway.sh.

`python3 ttfb.py URL [--requests N] [--token T]` POSTs `{"model": ..., "stream": true}` to URL
N times over one keep-alive connection (after 5 warm-up requests) and, for each, measures from
just before the request is written to the moment the first complete `data:` event is read; the
rest of the stream is read to the end (`data: [DONE]`) so the connection is reused. Prints one line:
`RESULT requests=N p50_ms=… p90_ms=… p99_ms=… events=…` (events per stream, to show it was the whole
stream). Standard library only.
"""

import argparse
import http.client
import json
import socket
import statistics
import sys
import time
import urllib.parse


def percentile(values, p):
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("url")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--token", default="")
    args = parser.parse_args()

    url = urllib.parse.urlsplit(args.url)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    conn.connect()
    conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    body = json.dumps(
        {"model": "gpt-4o-mini", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    ).encode()
    headers = {"Content-Type": "application/json", "Accept": "text/event-stream"}
    if args.token:
        headers["Authorization"] = f"Bearer {args.token}"

    firsts, events_per_stream = [], set()
    for i in range(args.requests + 5):
        started = time.perf_counter()
        conn.request("POST", url.path, body=body, headers=headers)
        response = conn.getresponse()
        if response.status != 200:
            sys.exit(f"ttfb.py: {args.url} answered {response.status}: {response.read()[:300]!r}")
        first, events = None, 0
        while True:
            line = response.readline()
            if not line:
                break
            if line.startswith(b"data: "):
                if first is None:
                    first = time.perf_counter() - started
                if line.strip() == b"data: [DONE]":
                    break
                events += 1
        response.read()
        if first is None:
            sys.exit(f"ttfb.py: {args.url} sent no SSE event")
        if i >= 5:
            firsts.append(first * 1000)
            events_per_stream.add(events)
    print(
        f"RESULT requests={len(firsts)} p50_ms={statistics.median(firsts):.3f} "
        f"p90_ms={percentile(firsts, 90):.3f} p99_ms={percentile(firsts, 99):.3f} "
        f"events={','.join(str(e) for e in sorted(events_per_stream))}"
    )


if __name__ == "__main__":
    main()
