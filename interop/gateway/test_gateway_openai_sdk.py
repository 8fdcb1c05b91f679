"""Acceptance c (issue 16): the official `openai` Python SDK, `base_url` at `keyward gateway` and a
Keyward workload token as its API key, streams a chat completion from a test upstream
(`sse_upstream.py`) that sends 20 `chat.completion.chunk` events 200 ms apart. Every event arrives,
in order, at that spacing by the client's clock (each gap ≥ 150 ms, the first event < 1 s after the
request): the gateway passes events through as they come instead of buffering the response. The
same over HTTP/2 (ALPN on the gateway's TLS listener, `httpx.Client(http2=True)` as the SDK's HTTP
client). The route's Cedar policy reads `context.body.model`, so the request body is inspected on
the way while the response still streams; a model the policy does not allow is refused with 403
before the upstream sees it.
"""

import json
import pathlib
import ssl
import tempfile
import time

import httpx
import openai
import pytest

from gw_harness import Gateway, Upstream, workload_token

CHUNKS = 20
INTERVAL_MS = 200
ALLOWED_MODEL = "gpt-4o-mini"

POLICY = """\
@id("llm-allowed-models")
permit(principal, action, resource)
when { context has body && context.body has model && ["gpt-4o-mini", "gpt-4.1-nano"].contains(context.body.model) };
"""


@pytest.fixture(scope="module")
def upstream_log():
    return pathlib.Path(tempfile.mkdtemp(prefix="keyward-sse-upstream-")) / "requests.jsonl"


@pytest.fixture(scope="module")
def upstream(upstream_log):
    server = Upstream(
        "sse_upstream.py",
        "--chunks",
        str(CHUNKS),
        "--interval-ms",
        str(INTERVAL_MS),
        "--log",
        str(upstream_log),
        ready=r"^sse upstream listening on (\S+)$",
    )
    yield server
    server.stop()


@pytest.fixture(scope="module")
def gateway(keyward_sqlite, upstream):
    routes = f"""\
[[route]]
name = "llm"
path_prefix = "/v1"
strip_prefix = false
upstream = "{upstream.url}"
accept = ["workload"]
policies = ["llm.cedar"]
timeout = "30s"
"""
    gw = Gateway(keyward_sqlite, routes, policies={"llm.cedar": POLICY})
    yield gw
    gw.stop()


@pytest.fixture(scope="module")
def token(keyward_sqlite):
    return workload_token(keyward_sqlite, "llm-agent")


def upstream_requests(log: pathlib.Path) -> list[dict]:
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines() if line]


class Client:
    """The openai SDK over an httpx client of our choosing; records each response's HTTP version."""

    def __init__(self, gateway: Gateway, token: str, http2: bool):
        self.versions: list[str] = []
        self.http = httpx.Client(
            http2=http2,
            verify=ssl.create_default_context(cafile=gateway.ca_file),
            timeout=httpx.Timeout(30),
            event_hooks={"response": [lambda r: self.versions.append(r.http_version)]},
        )
        self.sdk = openai.OpenAI(base_url=gateway.url + "/v1", api_key=token, http_client=self.http, max_retries=0)

    def close(self):
        self.http.close()


@pytest.mark.parametrize("http2", [False, True], ids=["http1", "http2"])
def test_stream_arrives_event_by_event_at_the_upstream_spacing(gateway, token, upstream_log, http2):
    client = Client(gateway, token, http2)
    before = len(upstream_requests(upstream_log))
    try:
        started = time.monotonic()
        stream = client.sdk.chat.completions.create(
            model=ALLOWED_MODEL,
            messages=[{"role": "user", "content": "count to twenty"}],
            stream=True,
        )
        arrivals, contents, finish = [], [], []
        for chunk in stream:
            arrivals.append(time.monotonic() - started)
            assert chunk.object == "chat.completion.chunk"
            contents.append(chunk.choices[0].delta.content)
            finish.append(chunk.choices[0].finish_reason)
    finally:
        client.close()

    expected_version = "HTTP/2" if http2 else "HTTP/1.1"
    assert client.versions == [expected_version], client.versions
    assert contents == [f"tok{i} " for i in range(CHUNKS)], "events lost, duplicated or out of order"
    assert finish == [None] * (CHUNKS - 1) + ["stop"]
    assert arrivals[0] < 1.0, f"first event after {arrivals[0]:.3f} s: the response was held back"
    gaps = [b - a for a, b in zip(arrivals, arrivals[1:])]
    assert min(gaps) >= 0.150, (
        f"events arrived bunched (gaps in ms: {[round(g * 1000) for g in gaps]}): the gateway buffered them"
    )
    # The upstream got the request once, with the body the policy read, and without the caller's
    # workload token (the route injects no credential, and caller credentials are always stripped).
    seen = upstream_requests(upstream_log)[before:]
    assert [(r["method"], r["path"], r["model"]) for r in seen] == [("POST", "/v1/chat/completions", ALLOWED_MODEL)]
    assert "authorization" not in seen[0]["headers"], seen[0]


def test_http2_is_negotiated_for_a_plain_completion(gateway, token):
    client = Client(gateway, token, http2=True)
    try:
        raw = client.sdk.chat.completions.with_raw_response.create(
            model=ALLOWED_MODEL, messages=[{"role": "user", "content": "hello"}]
        )
        completion = raw.parse()
    finally:
        client.close()
    assert raw.http_response.http_version == "HTTP/2"
    assert completion.choices[0].message.content == "hello from the test upstream"


def test_a_model_the_policy_does_not_allow_is_refused_before_the_upstream(gateway, token, upstream_log):
    client = Client(gateway, token, http2=False)
    before = len(upstream_requests(upstream_log))
    try:
        with pytest.raises(openai.PermissionDeniedError) as denied:
            client.sdk.chat.completions.create(
                model="gpt-4-expensive", messages=[{"role": "user", "content": "hello"}], stream=True
            )
    finally:
        client.close()
    assert denied.value.status_code == 403
    body = denied.value.response.json()
    assert body["error"] == "forbidden", body
    # No permit matched and the route's no_match is deny: no policy decided it.
    assert body.get("policy_ids", []) == [], body
    assert upstream_requests(upstream_log)[before:] == []
