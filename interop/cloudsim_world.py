"""`keyward cloudsim` for the interop tests: the broken-setup world, the running simulator, and
tokens that look like Keyward's but are not (forged signature, ES256).

The world is tests/fixtures/cloudsim-broken-world.toml, the file the Rust end-to-end tests use, so
the Rust refusals and these SDK refusals test one world.
"""

import base64
import json
import os
import pathlib
import shutil
import subprocess
import tempfile
import threading

import jwt
import requests
from cryptography.hazmat.primitives.asymmetric import ec, rsa

PROJECT_ID = "keyward-demo"
PROJECT_NUMBER = "123456789012"
POOL = "keyward-pool"
TENANT = "4a1f8f3e-0c2b-4f7a-9a51-8b6d2c9e1f00"
APP = "7c9e6679-7425-40de-944b-e07fc1f90ae7"
APP_CASE = "9b2d3c4e-5f60-4a71-8b92-a3b4c5d6e7f8"
AWS_ACCOUNT = "123456789012"
AWS_REGION = "us-east-1"

AZURE_AUDIENCE = "api://AzureADTokenExchange"
AWS_AUDIENCE = "sts.amazonaws.com"


def gcp_audience(provider: str) -> str:
    """The audience for one provider of `world`."""
    return (
        f"//iam.googleapis.com/projects/{PROJECT_NUMBER}/locations/global/"
        f"workloadIdentityPools/{POOL}/providers/{provider}"
    )


def sa(name: str) -> str:
    return f"{name}@{PROJECT_ID}.iam.gserviceaccount.com"


def role_arn(name: str) -> str:
    return f"arn:aws:iam::{AWS_ACCOUNT}:role/{name}"


WORLD_TEMPLATE = pathlib.Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "cloudsim-broken-world.toml"


def world(issuer: str, org: str) -> str:
    """The good setup and, beside it, one broken setup per refusal the tests check: the same file
    the Rust end-to-end tests use."""
    return (
        WORLD_TEMPLATE.read_text(encoding="utf-8")
        .replace("${ISSUER}", issuer)
        .replace("${HOST}", issuer.removeprefix("https://"))
        .replace("${ORG}", org)
    )


class CloudSim:
    """A running `keyward cloudsim` trusting `keyward`'s CA, read from its endpoints file.

    `state` is the text of a state file; without it the simulator runs the `--demo` world for
    the server's organization.
    """

    def __init__(self, keyward_bin: str, keyward, state: str | None = None):
        self.dir = tempfile.mkdtemp(prefix="keyward-cloudsim-")
        endpoints_path = os.path.join(self.dir, "endpoints.json")
        args = [
            keyward_bin,
            "cloudsim",
            "--data-dir",
            os.path.join(self.dir, "data"),
            "--write-endpoints",
            endpoints_path,
            "--issuer-ca",
            keyward.ca_file,
        ]
        if state is None:
            args += ["--demo", "--issuer", keyward.url, "--org", keyward.org_id]
        else:
            state_path = os.path.join(self.dir, "state.toml")
            with open(state_path, "w", encoding="utf-8") as f:
                f.write(state)
            args += ["--state", state_path]
        env = {k: v for k, v in os.environ.items() if not k.startswith("KEYWARD_CLOUDSIM_")}
        env["KEYWARD_LOG"] = "warn"
        self.proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.stderr = []
        threading.Thread(target=lambda: self.stderr.extend(self.proc.stderr), daemon=True).start()
        for line in self.proc.stdout:
            if line.rstrip("\n") == "Ready.":
                break
        else:
            self.proc.wait(timeout=20)
            raise RuntimeError("cloudsim exited before it was ready:\n" + "".join(self.stderr))
        # Keep draining stdout so the simulator never blocks on a full pipe.
        threading.Thread(target=lambda: [None for _ in self.proc.stdout], daemon=True).start()
        with open(endpoints_path, encoding="utf-8") as f:
            self.endpoints = json.load(f)
        self.ca_file = self.endpoints["ca_file"]
        self.base = self.endpoints["gcp"]["sts_url"]

    @property
    def gcp(self) -> dict:
        return self.endpoints["gcp"]

    @property
    def azure(self) -> dict:
        return self.endpoints["azure"]

    @property
    def aws(self) -> dict:
        return self.endpoints["aws"]

    def admin(self, method: str, path: str, body=None) -> dict:
        headers = {"Authorization": f"Bearer {self.endpoints['admin_token']}"}
        res = requests.request(method, f"{self.base}/_cloudsim/{path}", json=body, headers=headers,
                               verify=self.ca_file, timeout=30)
        assert res.ok, f"admin {method} {path}: {res.status_code} {res.text}"
        return res.json()

    def clock_offset(self, secs: int) -> None:
        """Moves the simulated clouds' clock (not Keyward's) by `secs`."""
        self.admin("POST", "clock", {"offset_secs": secs})

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def _claims(real: str) -> dict:
    payload = real.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def forged_like(real: str) -> str:
    """A token with the claims of `real`, RS256-signed by a key the issuer never published."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return jwt.encode(_claims(real), key, algorithm="RS256", headers={"kid": "forged-key"})


def es256_like(real: str) -> str:
    """A token with the claims of `real`, signed ES256 with a fresh P-256 key."""
    key = ec.generate_private_key(ec.SECP256R1())
    return jwt.encode(_claims(real), key, algorithm="ES256", headers={"kid": "es256-key"})
