"""What the gateway interop tests share: a `keyward gateway` spawned next to the interop
`keyward serve` (same data directory, so the same store, TLS CA and audit log), test upstreams run
as child processes, and the tokens a caller presents.

Not a conftest.py: `interop/conftest.py` is imported as the module `conftest`, and a second one
here would shadow it.
"""

import os
import pathlib
import re
import subprocess
import sys
import tempfile
import threading

import requests

from conftest import BOOTSTRAP_TOKEN, Keyward, automation_token, keyward_bin

HERE = pathlib.Path(__file__).resolve().parent
GATEWAY_AUDIENCE = "keyward-gateway"
READY = re.compile(r"^keyward gateway listening on (https?://\S+) \(admin (http://\S+)\)$")


class Child:
    """A child process that prints one ready line on stdout; stderr is kept for failure messages."""

    def __init__(self, argv, ready: re.Pattern, env=None, what="child"):
        self.what = what
        self.proc = subprocess.Popen(
            argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1
        )
        self.stderr = []
        self.stdout = []
        threading.Thread(target=lambda: self.stderr.extend(self.proc.stderr), daemon=True).start()
        self.match = None
        # A reader thread, so a child that hangs before its ready line fails the test after a
        # bounded wait instead of blocking it.
        ready_event = threading.Event()

        def read_stdout():
            for line in self.proc.stdout:
                line = line.rstrip("\n")
                self.stdout.append(line)
                if self.match is None:
                    self.match = ready.match(line)
                    if self.match:
                        ready_event.set()
            ready_event.set()

        threading.Thread(target=read_stdout, daemon=True).start()
        if not ready_event.wait(timeout=60) or self.match is None:
            self.stop()
            raise RuntimeError(
                f"{what} did not print its ready line ({ready.pattern}); stdout: {self.stdout}; "
                f"stderr:\n{''.join(self.stderr)}"
            )

    def logs(self) -> str:
        return "\n".join(self.stdout) + "\n" + "".join(self.stderr)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=20)


class Gateway(Child):
    """`keyward gateway` on TLS (the platform's CA, from the shared data directory) with a route
    file written from `routes` (TOML text without the `organization` line, which is added)."""

    def __init__(self, platform: Keyward, routes: str, policies: dict[str, str] | None = None, http=False):
        self.config_dir = pathlib.Path(tempfile.mkdtemp(prefix="keyward-gateway-interop-"))
        self.config = self.config_dir / "routes.toml"
        for name, text in (policies or {}).items():
            (self.config_dir / name).write_text(text)
        self.config.write_text(f'organization = "{platform.org_id}"\n\n{routes}')
        env = dict(os.environ)
        env.pop("KEYWARD_DATABASE_URL", None)
        env["KEYWARD_LOG"] = env.get("KEYWARD_GATEWAY_INTEROP_LOG", "warn")
        argv = [
            keyward_bin(),
            "gateway",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
            "--data-dir",
            platform.data_dir,
            "--config",
            str(self.config),
            "--platform-url",
            platform.url,
            "--platform-ca",
            platform.ca_file,
        ]
        if http:
            argv.append("--http")
        super().__init__(argv, READY, env=env, what="keyward gateway")
        self.url = self.match.group(1)
        self.admin_url = self.match.group(2)
        # The gateway's certificate chains to the platform's CA (one CA per data directory).
        self.ca_file = platform.ca_file


class Upstream(Child):
    """A test upstream script from this directory, run with this Python."""

    def __init__(self, script: str, *args: str, ready: str):
        super().__init__(
            [sys.executable, str(HERE / script), *args],
            re.compile(ready),
            env=dict(os.environ),
            what=script,
        )
        self.url = self.match.group(1)


def workload_token(platform: Keyward, automation: str) -> str:
    """A Keyward workload token for the gateway's audience, minted by the platform for a new
    automation `automation` (the way an agent gets one: automation token → mint)."""
    token = automation_token(platform, automation)
    res = requests.post(
        platform.url + "/api/v1/workload-identity/token",
        json={"audience": GATEWAY_AUDIENCE},
        headers={"Authorization": f"Bearer {token}"},
        verify=platform.ca_file,
        timeout=30,
    )
    assert res.status_code == 200, res.text
    assert res.json()["audience"] == GATEWAY_AUDIENCE
    return res.json()["token"]


def personal_access_token() -> str:
    """The owner's personal access token the interop platform was bootstrapped with."""
    return BOOTSTRAP_TOKEN
