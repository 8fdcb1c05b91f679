"""Checks a `helm template` render of deploy/helm/keyward against the values it was rendered with.

    python check_chart.py RENDERED.yaml VALUES.yaml [VALUES.yaml ...]

The values files are merged over the chart's values.yaml the way helm merges them, and every
expectation is derived from the merged values, so a knob that stops reaching the manifests fails
here. Exits 1 with one line per problem.
"""

from __future__ import annotations

import base64
import copy
import json
import re
import sys
from pathlib import Path

import yaml

CHART = Path(__file__).resolve().parents[1] / "helm" / "keyward"
SETTINGS = Path(__file__).resolve().parents[2] / "docs" / "settings.md"
RESERVED = ("KEYWARD_DATABASE_URL", "KEYWARD_MASTER_KEY")

problems: list[str] = []


def check(ok: bool, message: str) -> None:
    if not ok:
        problems.append(message)


def merge(base: dict, over: dict) -> dict:
    """helm's coalescing: maps merge key by key, anything else replaces."""
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def env_map(container: dict) -> dict[str, dict]:
    entries = container.get("env") or []
    names = [e["name"] for e in entries]
    dupes = sorted({n for n in names if names.count(n) > 1})
    check(not dupes, f"container {container['name']}: env names set twice: {dupes}")
    return {e["name"]: e for e in entries}


def check_security(what: str, pod: dict, container: dict, values: dict) -> None:
    psc = pod.get("securityContext") or {}
    csc = container.get("securityContext") or {}
    check(psc.get("runAsNonRoot") is True, f"{what}: pod securityContext.runAsNonRoot is not true")
    check(psc.get("runAsUser") not in (None, 0), f"{what}: pod runs as uid {psc.get('runAsUser')}")
    check(psc.get("runAsUser") == values["podSecurityContext"]["runAsUser"],
          f"{what}: runAsUser is not podSecurityContext.runAsUser")
    check(csc.get("runAsNonRoot") is True, f"{what}: container runAsNonRoot is not true")
    check(csc.get("readOnlyRootFilesystem") is True, f"{what}: root filesystem is not read-only")
    check(csc.get("allowPrivilegeEscalation") is False, f"{what}: privilege escalation allowed")
    check("ALL" in ((csc.get("capabilities") or {}).get("drop") or []), f"{what}: capabilities not dropped")
    check(pod.get("automountServiceAccountToken") is False, f"{what}: service account token mounted")


def check_writable(what: str, pod: dict, container: dict, env: dict) -> None:
    # The root filesystem is read-only: the data directory and /tmp must be volumes.
    mounts = {m["mountPath"]: m for m in container.get("volumeMounts") or []}
    volumes = {v["name"]: v for v in pod.get("volumes") or []}
    data_dir = (env.get("KEYWARD_DATA_DIR") or {}).get("value")
    check(data_dir is not None, f"{what}: KEYWARD_DATA_DIR is not set")
    for path in (data_dir, "/tmp"):
        mount = mounts.get(path)
        check(mount is not None, f"{what}: nothing writable is mounted at {path}")
        if mount:
            check(not mount.get("readOnly"), f"{what}: {path} is mounted read-only")
            check(mount["name"] in volumes, f"{what}: volume {mount['name']} is not declared")


def check_probe(what: str, probe: dict | None, path: str, port: str, tls: bool, ports: set) -> None:
    check(probe is not None, f"{what}: no probe for {path}")
    if not probe:
        return
    get = probe.get("httpGet") or {}
    check(get.get("path") == path, f"{what}: probe path {get.get('path')!r}, expected {path!r}")
    check(get.get("port") == port, f"{what}: probe port {get.get('port')!r}, expected {port!r}")
    check(get.get("port") in ports, f"{what}: probe port {get.get('port')!r} is no container port")
    scheme = get.get("scheme", "HTTP")
    check(scheme == ("HTTPS" if tls else "HTTP"), f"{what}: probe scheme {scheme} with tls={tls}")


def check_env(what: str, env: dict, plain: dict, values: dict, secret: dict | None,
              secret_name: str) -> None:
    for name, value in plain.items():
        entry = env.get(name)
        check(entry is not None, f"{what}: envVars.{name} is not in the environment")
        if entry:
            check(entry.get("value") == str(value),
                  f"{what}: {name}={entry.get('value')!r}, values say {value!r}")
    secrets = values.get("secrets") or {}
    refs = {}
    for name in set(secrets) | set(RESERVED):
        entry = env.get(name) or {}
        ref = (entry.get("valueFrom") or {}).get("secretKeyRef")
        check(ref is not None, f"{what}: {name} is not read with secretKeyRef")
        check("value" not in entry, f"{what}: {name} has a literal value")
        if ref:
            refs[name] = ref
    for name in secrets:
        ref = refs.get(name)
        if not ref or name in RESERVED:
            continue
        check(ref == {"name": secret_name, "key": name},
              f"{what}: {name} refers to {ref}, expected the chart's Secret {secret_name}")
        stored = (secret or {}).get("data", {}).get(name)
        check(stored is not None, f"Secret {secret_name} lacks {name}")
        if stored is not None:
            check(base64.b64decode(stored).decode() == str(secrets[name]),
                  f"Secret {secret_name}: {name} does not hold the value from secrets:")
    for name, block, value_key in (("KEYWARD_DATABASE_URL", "database", "url"),
                                   ("KEYWARD_MASTER_KEY", "masterKey", "value")):
        ref = refs.get(name)
        if not ref:
            continue
        existing = values[block]["existingSecret"]
        if existing:
            expected = {"name": existing, "key": values[block]["existingSecretKey"]}
        else:
            expected = {"name": secret_name, "key": name}
            stored = (secret or {}).get("data", {}).get(name)
            check(stored is not None, f"Secret {secret_name} lacks {name}")
            literal = values[block][value_key] or secrets.get(name)
            if stored is not None:
                check(base64.b64decode(stored).decode() == literal,
                      f"Secret {secret_name}: {name} does not hold {block}.{value_key}")
        check(ref == expected, f"{what}: {name} refers to {ref}, expected {expected}")


def main() -> int:
    rendered_path, *value_files = sys.argv[1:]
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    for path in value_files:
        values = merge(values, yaml.safe_load(Path(path).read_text()) or {})

    docs = [d for d in yaml.safe_load_all(Path(rendered_path).read_text()) if d]
    check(bool(docs), "the render is empty")
    by_kind: dict[str, dict[str, dict]] = {}
    for doc in docs:
        for key in ("apiVersion", "kind", "metadata"):
            check(key in doc, f"a manifest lacks {key}: {json.dumps(doc)[:120]}")
        by_kind.setdefault(doc["kind"], {})[doc["metadata"]["name"]] = doc

    chart_name = values["nameOverride"] or "keyward"
    fullname = values["fullnameOverride"] or (RELEASE if chart_name in RELEASE else f"{RELEASE}-{chart_name}")
    gateway_name = f"{fullname}-gateway"
    gw = values["gateway"]
    deployments = by_kind.get("Deployment", {})
    expected_deployments = {fullname} | ({gateway_name} if gw["enabled"] else set())
    check(set(deployments) == expected_deployments,
          f"Deployments {sorted(deployments)}, expected {sorted(expected_deployments)}")
    secret = by_kind.get("Secret", {}).get(fullname)
    wants_secret = bool(values["secrets"]) or (values["database"]["url"] and not values["database"]["existingSecret"]) \
        or (values["masterKey"]["value"] and not values["masterKey"]["existingSecret"])
    check(bool(secret) == bool(wants_secret), f"Secret {fullname} present: {bool(secret)}, expected {bool(wants_secret)}")
    if values["serviceAccount"]["create"]:
        sa_name = values["serviceAccount"]["name"] or fullname
        sa = by_kind.get("ServiceAccount", {}).get(sa_name)
        check(sa is not None, f"no ServiceAccount {sa_name}")
        if sa:
            check((sa["metadata"].get("annotations") or {}) == values["serviceAccount"]["annotations"],
                  "ServiceAccount annotations differ from serviceAccount.annotations")
    else:
        sa_name = values["serviceAccount"]["name"] or "default"
    image = f"{values['image']['repository']}:{values['image']['tag'] or CHART_APP_VERSION}"

    services = by_kind.get("Service", {})
    for name, deploy in deployments.items():
        is_gateway = name == gateway_name
        what = f"Deployment {name}"
        spec = deploy["spec"]
        pod = spec["template"]["spec"]
        check(spec["replicas"] == (gw["replicaCount"] if is_gateway else values["replicaCount"]),
              f"{what}: replicas {spec['replicas']}")
        check(pod.get("serviceAccountName") == sa_name, f"{what}: service account {pod.get('serviceAccountName')}")
        check(pod.get("nodeSelector", {}) == values["nodeSelector"], f"{what}: nodeSelector differs")
        check(pod.get("tolerations", []) == values["tolerations"], f"{what}: tolerations differ")
        check(pod.get("affinity", {}) == values["affinity"], f"{what}: affinity differs")
        check([s["name"] for s in pod.get("imagePullSecrets", [])] == [s["name"] for s in values["imagePullSecrets"]],
              f"{what}: imagePullSecrets differ")
        labels = spec["template"]["metadata"]["labels"]
        for key, value in values["podLabels"].items():
            check(labels.get(key) == value, f"{what}: pod label {key} missing")
        annotations = spec["template"]["metadata"].get("annotations") or {}
        for key, value in (gw["podAnnotations"] if is_gateway else values["podAnnotations"]).items():
            check(annotations.get(key) == value, f"{what}: pod annotation {key} missing")
        check("checksum/secret" in annotations, f"{what}: no checksum/secret annotation")
        check(spec["selector"]["matchLabels"].items() <= labels.items(), f"{what}: selector does not match its pods")
        (container,) = pod["containers"]
        check(container["image"] == image, f"{what}: image {container['image']}, expected {image}")
        check(container.get("imagePullPolicy") == values["image"]["pullPolicy"], f"{what}: pull policy")
        check(container.get("args") == (["gateway"] if is_gateway else ["serve"]), f"{what}: args {container.get('args')}")
        check(container.get("resources") == (gw["resources"] if is_gateway else values["resources"]),
              f"{what}: resources differ from values")
        env = env_map(container)
        ports = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
        check_security(what, pod, container, values)
        check_writable(what, pod, container, env)
        if is_gateway:
            plain = {k: v for k, v in values["envVars"].items() if k != "AUTH_PROVIDER"}
            plain.update(gw["envVars"])
            check("AUTH_PROVIDER" not in env or "AUTH_PROVIDER" in gw["envVars"], f"{what}: AUTH_PROVIDER set")
            check(ports == {"proxy": gw["service"]["port"], "admin": gw["service"]["adminPort"]}, f"{what}: ports {ports}")
            check_probe(what, container.get("livenessProbe"), "/healthz", "admin", False, set(ports))
            check_probe(what, container.get("readinessProbe"), "/readyz", "admin", False, set(ports))
            platform = (env.get("KEYWARD_PLATFORM_URL") or {}).get("value", "")
            if values["tls"]["enabled"]:
                check(platform == values["publicUrl"], f"{what}: platform URL {platform!r}")
            else:
                check(platform == f"http://{fullname}:{values['service']['port']}", f"{what}: platform URL {platform!r}")
            tls = gw["tls"]
            check(("KEYWARD_GATEWAY_HTTP" in env) != tls["enabled"], f"{what}: KEYWARD_GATEWAY_HTTP with tls={tls['enabled']}")
        else:
            plain = dict(values["envVars"])
            check(ports == {"http": values["service"]["port"]}, f"{what}: ports {ports}")
            tls = values["tls"]
            check_probe(what, container.get("livenessProbe"), "/healthz", "http", tls["enabled"], set(ports))
            check_probe(what, container.get("readinessProbe"), "/readyz", "http", tls["enabled"], set(ports))
            for key in ("periodSeconds", "timeoutSeconds", "failureThreshold"):
                for probe in ("livenessProbe", "readinessProbe"):
                    check(container[probe].get(key) == values[probe].get(key), f"{what}: {probe}.{key} differs")
            check((env.get("KEYWARD_PUBLIC_URL") or {}).get("value") == values["publicUrl"], f"{what}: public URL")
            check(("KEYWARD_HTTP" in env) != tls["enabled"], f"{what}: KEYWARD_HTTP with tls={tls['enabled']}")
        if tls["enabled"]:
            vols = {v["name"]: v for v in pod.get("volumes", [])}
            check((vols.get("tls") or {}).get("secret", {}).get("secretName") == tls["secretName"],
                  f"{what}: TLS secret {tls['secretName']} is not mounted")
            check((env.get("KEYWARD_TLS_CERT" if not is_gateway else "KEYWARD_GATEWAY_TLS_CERT") or {}).get("value")
                  == "/etc/keyward/tls/tls.crt", f"{what}: TLS certificate path not set")
        claim = values["persistence"]["existingClaim"]
        data = next(v for v in pod.get("volumes", []) if v["name"] == "data")
        check((data.get("persistentVolumeClaim") or {}).get("claimName") == (claim or None) if claim else "emptyDir" in data,
              f"{what}: data volume {data}")
        check_env(what, env, plain, values, secret, fullname)
        # What the chart sets on its own must be a setting Keyward reads (settings.md names them all).
        settings = SETTINGS.read_text()
        for env_name in set(env) - set(plain) - set(values["secrets"] or {}):
            check(re.search(rf"`{env_name}[`=]", settings) is not None,
                  f"{what}: the chart sets {env_name}, which docs/settings.md does not name")
        # No secret value may appear in the pod spec in clear.
        dumped = json.dumps(deploy)
        for setting, value in list((values["secrets"] or {}).items()) + [
                ("database.url", values["database"]["url"]), ("masterKey.value", values["masterKey"]["value"])]:
            check(not value or str(value) not in dumped, f"{what}: the value of {setting} appears in clear")
        service = services.get(name)
        check(service is not None, f"no Service {name}")
        if service:
            check(service["spec"]["selector"].items() <= labels.items(), f"Service {name} selects no pod of {name}")
            svc = gw["service"] if is_gateway else values["service"]
            check(service["spec"]["type"] == svc["type"], f"Service {name}: type {service['spec']['type']}")
            for port in service["spec"]["ports"]:
                check(port["targetPort"] in ports, f"Service {name}: target port {port['targetPort']} is no container port")

    ingresses = by_kind.get("Ingress", {})
    expected_ing = ({fullname} if values["ingress"]["enabled"] else set()) | (
        {gateway_name} if gw["enabled"] and gw["ingress"]["enabled"] else set())
    check(set(ingresses) == expected_ing, f"Ingresses {sorted(ingresses)}, expected {sorted(expected_ing)}")
    for name, ing in ingresses.items():
        spec_values = gw["ingress"] if name == gateway_name else values["ingress"]
        spec = ing["spec"]
        check(spec.get("ingressClassName", "") == spec_values["className"], f"Ingress {name}: class")
        check(spec.get("tls", []) == spec_values["tls"], f"Ingress {name}: tls differs from values")
        annotations = ing["metadata"].get("annotations") or {}
        for key, value in spec_values["annotations"].items():
            check(annotations.get(key) == value, f"Ingress {name}: annotation {key} missing")
        hosts = [r["host"] for r in spec["rules"]]
        check(hosts == [h["host"] for h in spec_values["hosts"]], f"Ingress {name}: hosts {hosts}")
        for rule in spec["rules"]:
            for path in rule["http"]["paths"]:
                backend = path["backend"]["service"]
                svc = services.get(backend["name"])
                check(svc is not None, f"Ingress {name}: backend Service {backend['name']} does not exist")
                if svc:
                    names = [p["name"] for p in svc["spec"]["ports"]]
                    check(backend["port"]["name"] in names, f"Ingress {name}: port {backend['port']} not on the Service")

    for problem in problems:
        print(f"chart check: {problem}")
    if problems:
        return 1
    kinds = ", ".join(f"{len(v)} {k}" for k, v in sorted(by_kind.items()))
    print(f"chart check: ok ({kinds})")
    return 0


RELEASE = "keyward"
CHART_APP_VERSION = str(yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"])

if __name__ == "__main__":
    sys.exit(main())
