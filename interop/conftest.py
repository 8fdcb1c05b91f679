"""Starts the real `keyward serve` for the interop tests, on SQLite and (when configured) PostgreSQL."""

import os
import pathlib
import subprocess
import tempfile
import threading
import uuid

import pytest
import requests

ROOT = pathlib.Path(__file__).resolve().parent.parent
BOOTSTRAP_TOKEN = "kwp_interop-bootstrap-token-0123456789abcdef"


def keyward_bin() -> str:
    path = os.environ.get("KEYWARD_BIN", str(ROOT / "target" / "debug" / "keyward"))
    if not os.path.exists(path):
        pytest.fail(f"keyward binary not found at {path}: run `cargo build -p keyward` or set KEYWARD_BIN")
    return path


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "slow: minutes of wall time (e.g. a crew outliving its workload token); acceptance, runs in CI "
        "(deselect locally with -m 'not slow')",
    )


def fresh_postgres_url():
    admin = os.environ.get("KEYWARD_TEST_DATABASE_URL")
    if not admin:
        return None
    name = "kwpy_" + uuid.uuid4().hex
    subprocess.run(["psql", admin, "-qc", f"CREATE DATABASE {name}"], check=True)
    return admin.rsplit("/", 1)[0] + "/" + name


class Keyward:
    """A running `keyward serve`, read from its banner."""

    def __init__(self, backend: str):
        self.data_dir = tempfile.mkdtemp(prefix="keyward-interop-")
        env = dict(os.environ)
        env.pop("KEYWARD_DATABASE_URL", None)
        if backend == "postgres":
            env["KEYWARD_DATABASE_URL"] = fresh_postgres_url()
        env.update(
            KEYWARD_BOOTSTRAP_ORG="Interop",
            KEYWARD_BOOTSTRAP_ADMIN_EMAIL="owner@interop.example",
            KEYWARD_BOOTSTRAP_TOKEN=BOOTSTRAP_TOKEN,
            KEYWARD_LOG="warn",
        )
        self.proc = subprocess.Popen(
            [keyward_bin(), "serve", "--listen", "127.0.0.1:0", "--data-dir", self.data_dir],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.stderr = []
        threading.Thread(target=lambda: self.stderr.extend(self.proc.stderr), daemon=True).start()
        self.banner = []
        for line in self.proc.stdout:
            line = line.rstrip("\n")
            self.banner.append(line)
            if line == "Ready.":
                break
        else:
            raise RuntimeError("keyward exited before it was ready:\n" + "".join(self.stderr))
        self.url = self._banner_value("Keyward is listening on ")
        self.ca_file = self._banner_value("TLS CA certificate: ")
        self.org_id = self._banner_value("Bootstrapped organization: ")

    def _banner_value(self, prefix: str) -> str:
        for line in self.banner:
            if line.startswith(prefix):
                return line[len(prefix):]
        raise AssertionError(f"banner lacks {prefix!r}: {self.banner}")

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=20)


def backends():
    return ["sqlite", "postgres"] if os.environ.get("KEYWARD_TEST_DATABASE_URL") else ["sqlite"]


@pytest.fixture(params=backends())
def keyward(request):
    server = Keyward(request.param)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def keyward_sqlite():
    """One `keyward serve` on SQLite for a whole module, for tests that only need an issuer."""
    server = Keyward("sqlite")
    yield server
    server.stop()


def automation_token(server: Keyward, name: str) -> str:
    """Creates an automation called `name` and returns a fresh automation token for it."""
    headers = {"Authorization": f"Bearer {BOOTSTRAP_TOKEN}"}
    res = requests.post(
        server.url + "/api/v1/automations", json={"name": name}, headers=headers, verify=server.ca_file, timeout=30
    )
    assert res.status_code == 201, res.text
    res = requests.post(
        server.url + f"/api/v1/automations/{name}/tokens",
        json={"name": "ci"},
        headers=headers,
        verify=server.ca_file,
        timeout=30,
    )
    assert res.status_code == 201, res.text
    return res.json()["token"]
