"""`keyward cloudsim` for the interop tests: the broken-setup world, the running simulator, and
tokens that look like Keyward's but are not (forged signature, ES256).

The world is a port of `world(issuer, org)` in tests/e2e/cloudsim_env.rs: same providers, apps,
vaults and roles, same names, so the Rust raw-HTTP refusals and these SDK refusals test one world.
"""

import base64
import json
import os
import shutil
import subprocess
import tempfile
import threading

import jwt
import requests
from cryptography.hazmat.primitives.asymmetric import ec, rsa

OTHER_ORG = "5f0c9b1e-7d7e-4b8a-9d55-3f1a2b3c4d5e"
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


def world(issuer: str, org: str) -> str:
    """The good setup and, beside it, one broken setup per refusal the tests check."""
    host = issuer.removeprefix("https://")
    principal_set = (
        f"principalSet://iam.googleapis.com/projects/{PROJECT_NUMBER}/locations/global/"
        f"workloadIdentityPools/{POOL}/attribute.organization/{org}"
    )

    def provider(id_: str, provider_issuer: str, condition: str) -> str:
        return f"""
[[gcp.providers]]
pool = "{POOL}"
id = "{id_}"
issuer = "{provider_issuer}"
attribute_mapping = {{ "google.subject" = "assertion.sub", "attribute.organization" = "assertion.organization_id" }}
attribute_condition = "{condition}"
"""

    text = f"""
[gcp]
project_id = "{PROJECT_ID}"
project_number = "{PROJECT_NUMBER}"
"""
    text += provider("keyward-provider", issuer, f"assertion.organization_id == '{org}'")
    text += provider("wrong-org", issuer, f"assertion.organization_id == '{OTHER_ORG}'")
    text += provider("numeric-org", issuer, "assertion.organization_id == '4242'")
    text += provider("wrong-issuer", "https://keyward.example.com", f"assertion.organization_id == '{org}'")
    text += f"""
[[gcp.service_accounts]]
email = "{sa("keyward-vertex")}"
workload_identity_users = ["{principal_set}"]
roles = ["roles/aiplatform.user"]

[[gcp.service_accounts]]
email = "{sa("unbound")}"
roles = ["roles/aiplatform.user"]

[[gcp.service_accounts]]
email = "{sa("no-vertex")}"
workload_identity_users = ["{principal_set}"]

[[gcp.bindings]]
member = "{principal_set}"
role = "roles/secretmanager.secretAccessor"

[[gcp.bindings]]
member = "{principal_set}"
role = "roles/secretmanager.viewer"

[[gcp.secrets]]
name = "openai-api-key"
value = "gcp-value-1"

[[gcp.secrets]]
name = "db-credentials"
value = '{{"username": "crew", "password": "gcp-pw"}}'

[azure]
tenants = ["{TENANT}"]

[[azure.apps]]
tenant = "{TENANT}"
client_id = "{APP}"
federated_credentials = [{{ issuer = "{issuer}", subject = "organization:{org}", audiences = ["api://AzureADTokenExchange"] }}]

[[azure.apps]]
tenant = "{TENANT}"
client_id = "{APP_CASE}"
federated_credentials = [{{ issuer = "{issuer}", subject = "Organization:{org}", audiences = ["api://AzureADTokenExchange"] }}]

[[azure.vaults]]
name = "keyward-demo-vault"
tenant = "{TENANT}"
role_assignments = [{{ principal = "{APP}", role = "Key Vault Secrets User" }}]

[[azure.vaults.secrets]]
name = "openai-api-key"
value = "azure-value-1"

[[azure.vaults]]
name = "per-secret-vault"
tenant = "{TENANT}"
role_assignments = [{{ principal = "{APP}", role = "Key Vault Secrets User", secret = "granted" }}]

[[azure.vaults.secrets]]
name = "granted"
value = "per-secret-value"

[[azure.vaults.secrets]]
name = "not-granted"
value = "hidden"

[aws]
account_id = "{AWS_ACCOUNT}"
region = "{AWS_REGION}"

[[aws.oidc_providers]]
url = "{issuer}"
client_ids = ["sts.amazonaws.com"]

[[aws.roles]]
name = "keyward-secrets-reader"
trust = {{ federated = "arn:aws:iam::{AWS_ACCOUNT}:oidc-provider/{host}", string_equals = {{ "{host}:aud" = "sts.amazonaws.com", "{host}:sub" = "organization:{org}" }} }}
policies = [
  {{ actions = ["secretsmanager:ListSecrets"], resources = ["*"] }},
  {{ actions = ["secretsmanager:GetSecretValue"], resources = ["arn:aws:secretsmanager:{AWS_REGION}:{AWS_ACCOUNT}:secret:*"] }},
]

[[aws.roles]]
name = "wrong-sub"
trust = {{ federated = "arn:aws:iam::{AWS_ACCOUNT}:oidc-provider/{host}", string_equals = {{ "{host}:aud" = "sts.amazonaws.com", "{host}:sub" = "organization:{OTHER_ORG}" }} }}

[[aws.secrets]]
name = "openai-api-key"
value = "aws-value-1"
"""
    return text


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
        res = requests.request(method, f"{self.base}/_cloudsim/{path}", json=body, verify=self.ca_file, timeout=30)
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
