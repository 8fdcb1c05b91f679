"""A test upstream that speaks the part of the OpenAI API the interop tests and the gateway
benchmark need, with the Python standard library only (so the benchmark runs it without the venv).

- `POST /v1/chat/completions` with `"stream": true`: `--chunks` `chat.completion.chunk` events as
  Server-Sent Events, `--interval-ms` apart (the first one at once), then `data: [DONE]`; every
  event is its own HTTP chunk, written and flushed on its own, with TCP_NODELAY, so anything that
  arrives bunched was bunched on the way.
- the same without `stream`: one `chat.completion` JSON answer.
- `GET /healthz`: `ok`.

Each request is appended as one JSON line to `--log` (method, path, lowercased header names, the
model), so a test can check what reached the upstream; header values are not written.

Prints `sse upstream listening on http://127.0.0.1:PORT` on stdout when ready (`--port 0` picks a
free port).
"""

import argparse
import json
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def chunk_event(index: int, count: int, model: str) -> bytes:
    delta = {"content": f"tok{index} "}
    if index == 0:
        delta["role"] = "assistant"
    event = {
        "id": "chatcmpl-keyward-interop",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {"index": 0, "delta": delta, "finish_reason": "stop" if index == count - 1 else None}
        ],
    }
    return b"data: " + json.dumps(event, separators=(",", ":")).encode() + b"\n\n"


def completion(model: str) -> bytes:
    return json.dumps(
        {
            "id": "chatcmpl-keyward-interop",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "hello from the test upstream"},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 3, "completion_tokens": 5, "total_tokens": 8},
        }
    ).encode()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "keyward-test-upstream"
    chunks = 20
    interval = 0.2
    log_path = None
    log_lock = threading.Lock()

    def setup(self):
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        pass

    def read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            body = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    # Trailers, up to the empty line.
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return body
                body += self.rfile.read(size)
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def record(self, model):
        if not self.log_path:
            return
        line = json.dumps(
            {
                "method": self.command,
                "path": self.path,
                "headers": sorted({name.lower() for name in self.headers.keys()}),
                "model": model,
            }
        )
        with self.log_lock, open(self.log_path, "a", encoding="utf-8") as log:
            log.write(line + "\n")

    def send_plain(self, status: int, content_type: str, body: bytes):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        self.record(None)
        if self.path == "/healthz":
            self.send_plain(200, "text/plain", b"ok")
        else:
            self.send_plain(404, "application/json", b'{"error":"not found"}')

    def do_POST(self):
        raw = self.read_body()
        try:
            request = json.loads(raw or b"{}")
        except ValueError:
            request = {}
        model = request.get("model") if isinstance(request, dict) else None
        self.record(model)
        if self.path.split("?")[0] != "/v1/chat/completions":
            self.send_plain(404, "application/json", b'{"error":"not found"}')
            return
        if not request.get("stream"):
            self.send_plain(200, "application/json", completion(model or "test-model"))
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.wfile.flush()
        for index in range(self.chunks):
            if index:
                time.sleep(self.interval)
            self.write_chunk(chunk_event(index, self.chunks, model or "test-model"))
        self.write_chunk(b"data: [DONE]\n\n")
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def write_chunk(self, data: bytes):
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--chunks", type=int, default=20)
    parser.add_argument("--interval-ms", type=float, default=200)
    parser.add_argument("--log", default=None)
    args = parser.parse_args()
    Handler.chunks = args.chunks
    Handler.interval = args.interval_ms / 1000
    Handler.log_path = args.log
    ThreadingHTTPServer.daemon_threads = True
    ThreadingHTTPServer.request_queue_size = 128
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    print(f"sse upstream listening on http://127.0.0.1:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    sys.exit(0)


if __name__ == "__main__":
    main()
