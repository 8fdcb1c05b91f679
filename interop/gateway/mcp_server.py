"""A real MCP server built with the MCP Python SDK (`mcp` on PyPI, FastMCP), served over streamable
HTTP at `/mcp` by uvicorn. Two tools:

- `echo(text)`: returns `echo: <text>` — the one a gateway policy allows;
- `delete_everything(confirm)`: the one a gateway policy forbids. Were it ever run it would say so.

Every tool run is appended as one JSON line to `--calls` (tool name and arguments), so a test can
prove that a refused call never reached the server — not just that the client saw an error.

Prints `mcp server listening on http://127.0.0.1:PORT/mcp` on stdout when ready (`--port 0` picks a
free port: the socket is bound here and handed to uvicorn, so there is no race for the port).
"""

import argparse
import json
import socket

import uvicorn
from mcp.server.fastmcp import FastMCP

parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
parser.add_argument("--port", type=int, default=0)
parser.add_argument("--calls", required=True, help="file each tool run is appended to")
args = parser.parse_args()

server = FastMCP("keyward-interop-tools", host="127.0.0.1")


def record(tool: str, arguments: dict) -> None:
    with open(args.calls, "a", encoding="utf-8") as calls:
        calls.write(json.dumps({"tool": tool, "arguments": arguments}) + "\n")


@server.tool()
def echo(text: str) -> str:
    """Returns the text it was given."""
    record("echo", {"text": text})
    return f"echo: {text}"


@server.tool()
def delete_everything(confirm: bool = True) -> str:
    """Deletes everything (a gateway policy forbids calling it)."""
    record("delete_everything", {"confirm": confirm})
    return "everything deleted"


sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
sock.bind(("127.0.0.1", args.port))
sock.listen(128)
print(f"mcp server listening on http://127.0.0.1:{sock.getsockname()[1]}/mcp", flush=True)
uvicorn.Server(uvicorn.Config(server.streamable_http_app(), log_level="warning", lifespan="on")).run(sockets=[sock])
