"""Acceptance a: the real CrewAI CLI, unmodified, against `keyward serve` in `local` mode.

`crewai enterprise configure <url>` reads /auth/parameters; `crewai login` runs the device flow
against Keyward (WorkOS layout) and verifies the access token with PyJWT against /oauth2/jwks,
issuer https://<domain> and the published audience; the code is approved on the /device page as
a person would (password sign-in, enter the code, approve); `crewai org list` then shows the
organization through /crewai_plus/api/v1/me/organizations. Keyward's CA is trusted only through
SSL_CERT_FILE, and HOME is a fresh directory so the CLI's settings and token files are isolated.
"""

import json
import os
import pathlib
import re
import subprocess
import sys
import tempfile
import threading

import requests

from conftest import BOOTSTRAP_TOKEN

PASSWORD = "interop password for the owner"
CREWAI = str(pathlib.Path(sys.executable).parent / "crewai")


def crewai_env(home: str, ca_file: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CREWAI", "REQUESTS_CA", "CURL_CA", "SSL_CERT", "NIX_SSL"))}
    env.update(
        HOME=home,
        SSL_CERT_FILE=ca_file,
        # webbrowser.open runs this instead of a browser; the test is the person at the browser.
        BROWSER="true",
        CREWAI_DISABLE_TELEMETRY="true",
        OTEL_SDK_DISABLED="true",
        COLUMNS="200",
        NO_COLOR="1",
    )
    return env


def approve_on_device_page(keyward, user_code: str) -> None:
    """Signs in with the password and approves the code on /device, following the redirects."""
    web = requests.Session()
    # Per request: a session-wide `verify` loses to REQUESTS_CA_BUNDLE from the environment.
    page = web.get(f"{keyward.url}/device", params={"user_code": user_code}, verify=keyward.ca_file, timeout=30)
    assert page.url.startswith(f"{keyward.url}/login"), page.url
    next_path = re.search(r'name="next" value="([^"]+)"', page.text).group(1).replace("&amp;", "&")
    page = web.post(
        f"{keyward.url}/login",
        data={"email": "owner@interop.example", "password": PASSWORD, "next": next_path},
        verify=keyward.ca_file,
        timeout=30,
    )
    assert page.status_code == 200 and page.url.startswith(f"{keyward.url}/device"), (page.status_code, page.text)
    assert user_code in page.text
    csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', page.text).group(1)
    page = web.post(
        f"{keyward.url}/device",
        data={"csrf": csrf, "user_code": user_code, "action": "approve"},
        verify=keyward.ca_file,
        timeout=30,
    )
    assert page.status_code == 200, page.text
    assert "Sign-in approved" in page.text


def test_crewai_cli_configures_logs_in_and_lists_organizations(keyward):
    res = requests.put(
        f"{keyward.url}/api/v1/me/password",
        json={"password": PASSWORD},
        headers={"Authorization": f"Bearer {BOOTSTRAP_TOKEN}"},
        verify=keyward.ca_file,
        timeout=30,
    )
    assert res.status_code == 204, res.text

    home = tempfile.mkdtemp(prefix="crewai-home-")
    env = crewai_env(home, keyward.ca_file)

    configured = subprocess.run(
        [CREWAI, "enterprise", "configure", keyward.url], env=env, capture_output=True, text=True, timeout=120
    )
    assert configured.returncode == 0, configured.stdout + configured.stderr
    settings_file = pathlib.Path(home) / ".config" / "crewai" / "settings.json"
    settings = json.loads(settings_file.read_text())
    domain = keyward.url.removeprefix("https://")
    assert settings["enterprise_base_url"] == keyward.url
    assert settings["oauth2_provider"] == "workos"
    assert settings["oauth2_domain"] == domain
    assert settings["oauth2_client_id"] == "keyward-cli"
    assert settings["oauth2_audience"] == "keyward-api"

    login = subprocess.Popen(
        [CREWAI, "login"],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output = []
    code_seen = threading.Event()
    user_code = {}

    def read():
        for line in login.stdout:
            output.append(line)
            found = re.search(r"\b([B-DF-HJ-NP-TV-XZ]{4}-[B-DF-HJ-NP-TV-XZ]{4})\b", line)
            if "Enter the following code" in line and found:
                user_code["value"] = found.group(1)
                code_seen.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert code_seen.wait(60), "crewai login printed no user code:\n" + "".join(output)
        assert any(f"{keyward.url}/device" in line for line in output), "".join(output)
        approve_on_device_page(keyward, user_code["value"])
        # The CLI then asks which organization to use: the first (and only) one.
        login.stdin.write("1\n")
        login.stdin.flush()
        login.wait(timeout=90)
    finally:
        if login.poll() is None:
            login.kill()
    reader.join(timeout=10)
    text = "".join(output)
    assert login.returncode == 0, text
    # PyJWT inside the CLI verified signature, issuer, audience and exp before saving the token.
    assert "Success!" in text, text
    assert "Welcome to CrewAI AMP!" in text, text
    settings = json.loads(settings_file.read_text())
    assert settings["org_uuid"] == keyward.org_id, settings

    listed = subprocess.run([CREWAI, "org", "list"], env=env, capture_output=True, text=True, timeout=120)
    assert listed.returncode == 0, listed.stdout + listed.stderr
    assert "Interop" in listed.stdout, listed.stdout
    assert keyward.org_id in listed.stdout, listed.stdout
