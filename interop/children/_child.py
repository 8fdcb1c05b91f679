"""What every child script shares: the endpoints file `keyward run` passes through, checks that
end the child with one clear line on stderr, and a main wrapper that turns any SDK exception into
such a line (exit 1) instead of a bare traceback."""

import json
import os
import sys
import traceback

NAME = os.path.splitext(os.path.basename(sys.argv[0]))[0]


class Failed(Exception):
    pass


def fail(message: str):
    raise Failed(message)


def check(condition: bool, message: str) -> None:
    if not condition:
        fail(message)


def env(name: str) -> str:
    value = os.environ.get(name)
    check(bool(value), f"{name} is not set in the child's environment")
    return value


def endpoints() -> dict:
    """The endpoints file named by KEYWARD_CLOUD_ENDPOINTS (keyward run passes it through)."""
    with open(env("KEYWARD_CLOUD_ENDPOINTS"), encoding="utf-8") as f:
        return json.load(f)


def main(body) -> None:
    try:
        body()
    except Failed as e:
        print(f"{NAME}: FAILED: {e}", file=sys.stderr, flush=True)
        sys.exit(1)
    except Exception as e:  # an SDK error: name it, keep the traceback for the log
        traceback.print_exc()
        print(f"{NAME}: FAILED: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
        sys.exit(1)
    sys.stdout.flush()
