"""Checks docker-compose.yml and the Dockerfile hold to what docs/deployment.md promises.

    python check_compose.py docker-compose.yml Dockerfile

Keyward's containers run on a read-only root filesystem with a tmpfs /tmp and a data volume,
as a non-root user with no capabilities; their secrets come from the environment of
`docker compose`, never from the file. The image's last stage only copies the binary in.
Exits 1 with one line per problem.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import yaml

problems: list[str] = []


def check(ok: bool, message: str) -> None:
    if not ok:
        problems.append(message)


def check_compose(path: Path) -> None:
    doc = yaml.safe_load(path.read_text())
    services = doc.get("services") or {}
    check(set(services) >= {"keyward", "gateway", "postgres"},
          f"compose: services {sorted(services)}, expected keyward, gateway and postgres")
    volumes = set(doc.get("volumes") or {})
    for name, svc in services.items():
        what = f"compose service {name}"
        check(svc.get("read_only") is True, f"{what}: root filesystem is not read-only")
        tmpfs = svc.get("tmpfs") or []
        check(any(str(t).split(":")[0] == "/tmp" for t in tmpfs), f"{what}: no tmpfs at /tmp")
        for mount in svc.get("volumes") or []:
            source = str(mount).split(":")[0]
            check(source in volumes, f"{what}: volume {source} is not declared")
    for name in ("keyward", "gateway"):
        svc = services.get(name) or {}
        what = f"compose service {name}"
        env = svc.get("environment") or {}
        check(svc.get("command") == (["serve"] if name == "keyward" else ["gateway"]), f"{what}: command {svc.get('command')}")
        check("ALL" in (svc.get("cap_drop") or []), f"{what}: capabilities not dropped")
        check("no-new-privileges:true" in (svc.get("security_opt") or []), f"{what}: no-new-privileges unset")
        check(svc.get("user") in (None,), f"{what}: overrides the image's non-root user")
        check(any(str(m).endswith(":/var/lib/keyward") for m in svc.get("volumes") or []),
              f"{what}: no volume at the data directory")
        check(env.get("KEYWARD_DATA_DIR") == "/var/lib/keyward", f"{what}: KEYWARD_DATA_DIR")
        for secret in ("KEYWARD_MASTER_KEY", "KEYWARD_DATABASE_URL"):
            value = str(env.get(secret, ""))
            check(re.search(r"\$\{[A-Z_]+:\?", value) is not None,
                  f"{what}: {secret} must come from a required variable (${{VAR:?…}}), not the file")
        deps = svc.get("depends_on") or {}
        check((deps.get("postgres") or {}).get("condition") == "service_healthy",
              f"{what}: does not wait for a healthy PostgreSQL")
        settings = (Path(__file__).resolve().parents[2] / "docs" / "settings.md").read_text()
        for env_name in env:
            check(re.search(rf"`{env_name}[`=]", settings) is not None,
                  f"{what}: sets {env_name}, which docs/settings.md does not name")
    gateway_env = (services.get("gateway") or {}).get("environment") or {}
    check(str(gateway_env.get("KEYWARD_PLATFORM_URL", "")).startswith("https://keyward:"),
          "compose: the gateway does not reach the platform by its service name")
    check((services.get("postgres") or {}).get("healthcheck") is not None, "compose: postgres has no healthcheck")


def check_dockerfile(path: Path) -> None:
    stages: list[list[tuple[str, str]]] = []
    text = re.sub(r"\\\n", " ", path.read_text())
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        word = word.upper()
        if word == "FROM":
            stages.append([])
        if stages:
            stages[-1].append((word, rest.strip()))
    check(len(stages) >= 2, "Dockerfile: not multi-stage")
    if not stages:
        return
    final = stages[-1]
    words = [w for w, _ in final]
    check("RUN" not in words, "Dockerfile: the final stage runs commands (it should only copy the binary)")
    users = [r for w, r in final if w == "USER"]
    check(bool(users) and users[-1].split(":")[0] not in ("0", "root"), f"Dockerfile: final USER {users}")
    copies = [r for w, r in final if w == "COPY"]
    check(any("keyward" in c and c.startswith("--from=") for c in copies), "Dockerfile: the binary is not copied in")
    entry = [r for w, r in final if w == "ENTRYPOINT"]
    check(bool(entry) and "keyward" in entry[-1], f"Dockerfile: ENTRYPOINT {entry}")
    env = " ".join(r for w, r in final if w == "ENV")
    check("KEYWARD_DATA_DIR=/var/lib/keyward" in env, "Dockerfile: KEYWARD_DATA_DIR is not the volume")
    check(any(w == "VOLUME" and "/var/lib/keyward" in r for w, r in final), "Dockerfile: no VOLUME for the data")
    base = final[0][1]
    check("distroless" in base or "slim" in base, f"Dockerfile: runtime base {base}")


def main() -> int:
    compose, dockerfile = (Path(p) for p in sys.argv[1:3])
    check_compose(compose)
    check_dockerfile(dockerfile)
    for problem in problems:
        print(f"compose/Dockerfile check: {problem}")
    if problems:
        return 1
    print("compose/Dockerfile check: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
