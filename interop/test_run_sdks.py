"""Acceptance: `keyward run --automation crew -- <python> <child>` gives a real crew process what
the official SDKs need, and nothing else: each child script below uses only its SDK's default
credential discovery (google.auth.default, DefaultAzureCredential, boto3's default chain) against
`keyward cloudsim`, with the endpoints and CA bundle keyward run sets from KEYWARD_CLOUD_ENDPOINTS.

(a) one kickoff per cloud: Vertex generateContent with impersonated ADC credentials, Key Vault
    and Secrets Manager reads of every demo secret; static keys in keyward run's own environment
    (GOOGLE_API_KEY, AWS_ACCESS_KEY_ID, AZURE_CLIENT_SECRET) never reach the child.
(b) a long crew (marked `slow`, about 3 minutes, runs in CI): with 60 s workload tokens, a crew
    that assumes its AWS role afresh every 10 s for 180 s keeps working because keyward run
    rewrites the token file at half life; the same crew under --no-refresh fails with STS's
    ExpiredTokenException once the first token expires. Both crews run at once.

The child scripts are in interop/children/.
"""

import os
import pathlib
import subprocess
import sys
import time

import pytest
import requests

from cloudsim_world import CloudSim
from conftest import BOOTSTRAP_TOKEN, Keyward, automation_token, keyward_bin

CHILDREN = pathlib.Path(__file__).resolve().parent / "children"
# The interpreter running pytest: the interop venv, where the SDKs are installed.
PYTHON = sys.executable
TOKEN_TTL = 60
# The simulated clouds accept `exp` up to 300 s late (like the real ones); moving their clock
# 300 s ahead makes a 60 s token refused as soon as it has expired by Keyward's clock.
CLOUD_SKEW = 300
LONG_CREW_SECS = float(os.environ.get("KEYWARD_LONG_CREW_SECS", "180"))
LONG_CREW_INTERVAL = 10.0

# Static credentials in keyward run's own environment: keyward run must strip every one (each
# would otherwise win its SDK's default chain, or is a key the spec says the child never holds).
PARENT_STATIC_KEYS = {
    "GOOGLE_API_KEY": "AIza-from-the-parent",
    "AWS_ACCESS_KEY_ID": "AKIAFROMTHEPARENT000",
    "AWS_SECRET_ACCESS_KEY": "parent-secret-access-key",
    "AZURE_CLIENT_SECRET": "parent-client-secret",
}


# --- fixtures: one keyward serve (60 s tokens), one demo cloudsim, automation `crew` -------------


@pytest.fixture(scope="module")
def server():
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("KEYWARD_TOKEN_TTL", str(TOKEN_TTL))
        mp.setenv("KEYWARD_ALLOW_SHORT_DURATIONS", "1")
        keyward = Keyward("sqlite")
    yield keyward
    keyward.stop()


@pytest.fixture(scope="module")
def sim(server):
    simulator = CloudSim(keyward_bin(), server)
    yield simulator
    simulator.stop()


def api_post(server: Keyward, path: str, body: dict) -> dict:
    res = requests.post(
        f"{server.url}/api/v1{path}",
        json=body,
        headers={"Authorization": f"Bearer {BOOTSTRAP_TOKEN}"},
        verify=server.ca_file,
        timeout=30,
    )
    assert res.status_code == 201, f"POST {path}: {res.status_code} {res.text}"
    return res.json()


@pytest.fixture(scope="module")
def crew_token(server, sim):
    """Automation `crew` and its token; the demo world's three identities as default configs and
    a Vertex connection for `crew` (as tests/e2e/run.rs `configure` does)."""
    token = automation_token(server, "crew")
    gcp, azure, aws = sim.gcp, sim.azure, sim.aws
    api_post(
        server,
        "/workload-identity-configs",
        {"name": "gcp", "cloud": "gcp", "provider": gcp["provider"], "default_for_cloud": True},
    )
    api_post(
        server,
        "/workload-identity-configs",
        {
            "name": "azure",
            "cloud": "azure",
            "tenant_id": azure["tenant_id"],
            "client_id": azure["client_id"],
            "default_for_cloud": True,
        },
    )
    api_post(
        server,
        "/workload-identity-configs",
        {"name": "aws", "cloud": "aws", "role_arn": aws["role_arn"], "region": aws["region"], "default_for_cloud": True},
    )
    api_post(
        server,
        "/llm-connections",
        {
            "name": "vertex",
            "provider": "vertex",
            "workload_identity_config": "gcp",
            "service_account_email": gcp["service_account"],
            "model": "google/gemini-2.0-flash",
            "env": {"GOOGLE_CLOUD_LOCATION": "global"},
            "automations": ["crew"],
        },
    )
    return token


@pytest.fixture(scope="module")
def run_env(server, sim, crew_token, tmp_path_factory):
    """keyward run's own environment: how to reach Keyward and the simulator, static keys it must
    strip, and no ambient cloud configuration (so only what keyward run sets can work)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AWS_", "AZURE_", "GOOGLE_", "CLOUDSDK_", "MSAL_", "IDENTITY_", "MSI_", "KEYWARD_"))
        and k not in ("SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")
    }
    empty = tmp_path_factory.mktemp("aws") / "empty-config"
    empty.write_text("")
    env.update(
        KEYWARD_URL=server.url,
        KEYWARD_AUTOMATION_TOKEN=crew_token,
        KEYWARD_CA_FILE=server.ca_file,
        KEYWARD_CLOUD_ENDPOINTS=os.path.join(sim.dir, "endpoints.json"),
        KEYWARD_LOG="warn",
        AWS_CONFIG_FILE=str(empty),
        AWS_SHARED_CREDENTIALS_FILE=str(empty),
        AWS_EC2_METADATA_DISABLED="true",
        PYTHONUNBUFFERED="1",
        **PARENT_STATIC_KEYS,
    )
    return env


def keyward_run(child: str, *child_args: str, flags: tuple[str, ...] = ()) -> list[str]:
    return [keyward_bin(), "run", "--automation", "crew", *flags, "--", PYTHON, str(CHILDREN / child), *child_args]


def run_child(run_env: dict, child: str) -> subprocess.CompletedProcess:
    out = subprocess.run(keyward_run(child), env=run_env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, (
        f"keyward run -- {child} exited {out.returncode}\n--- stdout\n{out.stdout}\n--- stderr\n{out.stderr}"
    )
    return out


# --- (a) each SDK's default discovery, inside keyward run ---------------------------------------


def test_google_auth_default_impersonates_and_calls_vertex(run_env, sim):
    out = run_child(run_env, "check_gcp.py")
    gcp = sim.gcp
    assert out.stdout.splitlines() == [
        f"gcp: generateContent 200 project={gcp['project_number']} location=global as={gcp['service_account']}"
    ]


def test_default_azure_credential_reads_key_vault(run_env, sim):
    out = run_child(run_env, "check_azure.py")
    secrets = sim.azure["secrets"]
    assert secrets
    assert out.stdout.splitlines() == [f"azure: {name}={value}" for name, value in sorted(secrets.items())]


def test_boto3_default_chain_reads_secrets_manager(run_env, sim):
    out = run_child(run_env, "check_aws.py")
    aws = sim.aws
    lines = out.stdout.splitlines()
    role = aws["role_arn"].rsplit("/", 1)[1]
    account = aws["role_arn"].split(":")[4]
    # keyward run names the session after the automation and the kickoff.
    assert lines[0].startswith(f"aws: caller arn:aws:sts::{account}:assumed-role/{role}/keyward-crew-"), lines
    assert lines[1:] == [f"aws: {name}={value}" for name, value in sorted(aws["secrets"].items())]


# --- (b) a crew that outlives its token ---------------------------------------------------------


@pytest.fixture
def clouds_past_their_skew(sim):
    sim.clock_offset(CLOUD_SKEW)
    yield
    sim.clock_offset(0)


def ok_lines(stdout: str) -> list[str]:
    return [line for line in stdout.splitlines() if line.startswith("long_crew: iteration ") and line.endswith(" ok")]


def token_iats(lines: list[str]) -> list[str]:
    return [line.split(" token iat=", 1)[1].split(" ", 1)[0] for line in lines]


@pytest.mark.slow
def test_long_crew_keeps_working_past_its_token_with_refresh_and_fails_without(
    run_env, clouds_past_their_skew, tmp_path
):
    """SLOW (about 3 minutes of wall time; acceptance, runs in CI): refresh on and refresh off,
    side by side, each child assuming its role afresh every 10 s."""
    args = ("--duration", str(LONG_CREW_SECS), "--interval", str(LONG_CREW_INTERVAL))
    crews = {}
    for name, flags in (("refresh", ()), ("no-refresh", ("--no-refresh",))):
        stdout, stderr = open(tmp_path / f"{name}.out", "w+"), open(tmp_path / f"{name}.err", "w+")
        proc = subprocess.Popen(
            keyward_run("long_crew.py", *args, flags=flags), env=run_env, stdout=stdout, stderr=stderr, text=True
        )
        crews[name] = (proc, stdout, stderr)
    started = time.monotonic()
    results = {}
    try:
        for name, (proc, stdout, stderr) in crews.items():
            code = proc.wait(timeout=LONG_CREW_SECS + 120)
            stdout.seek(0)
            stderr.seek(0)
            results[name] = (code, stdout.read(), stderr.read())
    finally:
        for proc, stdout, stderr in crews.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            stdout.close()
            stderr.close()
    wall = time.monotonic() - started

    def show(name):
        code, out, err = results[name]
        return f"{name}: exit {code} after {wall:.0f}s\n--- stdout\n{out}\n--- stderr\n{err}"

    # Refresh on: every iteration succeeded, through several token generations.
    code, out, err = results["refresh"]
    assert code == 0, show("refresh")
    iterations = int(LONG_CREW_SECS // LONG_CREW_INTERVAL) + 1
    oks = ok_lines(out)
    assert len(oks) == iterations, show("refresh")
    assert f"long_crew: done, {iterations} iterations" in out, show("refresh")
    generations = len(set(token_iats(oks)))
    # A 60 s token rewritten every 30 s: about one new token per three iterations.
    assert generations >= LONG_CREW_SECS // (TOKEN_TTL / 2) - 1, f"only {generations} tokens seen\n" + show("refresh")

    # Refresh off: works while the first token lives, then STS refuses it as expired.
    code, out, err = results["no-refresh"]
    assert code == 1, show("no-refresh")
    oks = ok_lines(out)
    assert len(set(token_iats(oks))) == 1, "the token file must not change under --no-refresh\n" + show("no-refresh")
    assert TOKEN_TTL // LONG_CREW_INTERVAL - 1 <= len(oks) <= TOKEN_TTL // LONG_CREW_INTERVAL + 2, show("no-refresh")
    assert "long_crew: FAILED: iteration " in err, show("no-refresh")
    assert ": AssumeRoleWithWebIdentity ExpiredTokenException: Token expired: current date/time" in err, show(
        "no-refresh"
    )
