"""Acceptance b (issue 16), the MCP case: the real MCP Python SDK client (`mcp` on PyPI,
`streamable_http_client` + `ClientSession`) talks over streamable HTTP, through `keyward gateway`,
to a real MCP server built with the same SDK (`mcp_server.py`, FastMCP). A Cedar policy forbids
one tool by `context.mcp.tool`: that call is refused with 403 and never reaches the server, while
the allowed tool returns its result. Both a workload token and a personal access token pass the
gateway's identity phase; no token is refused with 401 before anything reaches the server.
"""

import json
import pathlib
import ssl
import tempfile

import anyio
import httpx
import pytest
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

from gw_harness import Gateway, Upstream, personal_access_token, workload_token

POLICY = """\
@id("mcp-tools-allowed")
permit(principal, action, resource);

@id("mcp-no-delete-everything")
forbid(principal, action, resource)
when { context has mcp && context.mcp has tool && context.mcp.tool == "delete_everything" };
"""


@pytest.fixture(scope="module")
def calls_file():
    return pathlib.Path(tempfile.mkdtemp(prefix="keyward-mcp-calls-")) / "calls.jsonl"


@pytest.fixture(scope="module")
def mcp_server(calls_file):
    server = Upstream("mcp_server.py", "--calls", str(calls_file), ready=r"^mcp server listening on (\S+)$")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def gateway(keyward_sqlite, mcp_server):
    # The MCP endpoint keeps its path (`/mcp`) upstream; the route matches it as a prefix.
    upstream = mcp_server.url.removesuffix("/mcp")
    routes = f"""\
[[route]]
name = "mcp-tools"
path_prefix = "/mcp"
strip_prefix = false
upstream = "{upstream}"
accept = ["workload", "pat"]
policies = ["mcp.cedar"]
timeout = "30s"
"""
    gw = Gateway(keyward_sqlite, routes, policies={"mcp.cedar": POLICY})
    yield gw
    gw.stop()


def tool_calls(calls_file: pathlib.Path) -> list[dict]:
    if not calls_file.exists():
        return []
    return [json.loads(line) for line in calls_file.read_text().splitlines() if line]


class Session:
    """One MCP session through the gateway. Error answers the gateway gives are kept with their
    JSON bodies (read in an httpx response hook, before the SDK raises on the status)."""

    def __init__(self, gateway: Gateway, token: str | None):
        self.gateway = gateway
        self.token = token
        self.errors: list[tuple[int, dict]] = []

    async def _keep_errors(self, response: httpx.Response):
        if response.status_code >= 400:
            await response.aread()
            self.errors.append((response.status_code, response.json()))

    def client(self) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        return httpx.AsyncClient(
            headers=headers,
            verify=ssl.create_default_context(cafile=self.gateway.ca_file),
            timeout=httpx.Timeout(30, read=60),
            event_hooks={"response": [self._keep_errors]},
        )

    async def run(self, work):
        """Opens the session (initialize) and runs `work(session)` in it."""
        with anyio.fail_after(60):
            async with self.client() as http:
                async with streamable_http_client(self.gateway.url + "/mcp", http_client=http) as (read, write, _):
                    async with ClientSession(read, write) as session:
                        await session.initialize()
                        return await work(session)


def http_status_errors(group: BaseException) -> list[httpx.HTTPStatusError]:
    if isinstance(group, httpx.HTTPStatusError):
        return [group]
    if isinstance(group, BaseExceptionGroup):
        return [e for sub in group.exceptions for e in http_status_errors(sub)]
    return []


@pytest.mark.parametrize("caller", ["workload", "pat"])
def test_allowed_tool_answers_and_forbidden_tool_is_refused(keyward_sqlite, gateway, calls_file, caller):
    token = workload_token(keyward_sqlite, f"mcp-agent-{caller}") if caller == "workload" else personal_access_token()
    before = len(tool_calls(calls_file))

    async def allowed(session: ClientSession):
        tools = await session.list_tools()
        result = await session.call_tool("echo", {"text": f"hello through the gateway ({caller})"})
        return sorted(t.name for t in tools.tools), result

    names, result = anyio.run(Session(gateway, token).run, allowed)
    assert names == ["delete_everything", "echo"]
    assert not result.isError, result
    assert [c.text for c in result.content] == [f"echo: hello through the gateway ({caller})"]
    assert tool_calls(calls_file)[before:] == [{"tool": "echo", "arguments": {"text": f"hello through the gateway ({caller})"}}]

    # The forbidden tool: the gateway answers 403 and the SDK raises the HTTP error it got.
    denied = Session(gateway, token)

    async def forbidden(session: ClientSession):
        return await session.call_tool("delete_everything", {"confirm": True})

    with pytest.raises(BaseException) as raised:
        anyio.run(denied.run, forbidden)
    statuses = [e.response.status_code for e in http_status_errors(raised.value)]
    assert statuses == [403], f"expected the SDK to fail with the gateway's 403, got {raised.value!r}"
    assert len(denied.errors) == 1, denied.errors
    status, body = denied.errors[0]
    assert status == 403
    assert body["error"] == "forbidden", body
    assert body["policy_ids"] == ["mcp-no-delete-everything"], body
    assert "delete_everything" not in [c["tool"] for c in tool_calls(calls_file)[before:]], (
        "the forbidden tool reached the MCP server"
    )


def test_no_token_is_refused_before_the_server(gateway, calls_file):
    before = len(tool_calls(calls_file))
    session = Session(gateway, None)

    async def anything(session: ClientSession):
        return await session.call_tool("echo", {"text": "anonymous"})

    with pytest.raises(BaseException) as raised:
        anyio.run(session.run, anything)
    assert [e.response.status_code for e in http_status_errors(raised.value)] == [401], repr(raised.value)
    status, body = session.errors[0]
    assert (status, body["error"]) == (401, "unauthenticated"), body
    assert tool_calls(calls_file)[before:] == []
