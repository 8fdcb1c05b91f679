"""Run by `keyward run`: a crew that outlives its first workload token. Every --interval seconds
for --duration seconds it builds a NEW boto3 session and client — so each iteration resolves
credentials from scratch: the default chain reads AWS_WEB_IDENTITY_TOKEN_FILE again and calls
AssumeRoleWithWebIdentity with what the file holds now — and reads a Secrets Manager secret.

Any failure ends the child with exit 1 and one line naming the iteration, the elapsed time, the
token's `iat`/`exp` and the cloud's error code and message (e.g. ExpiredTokenException)."""

import argparse
import base64
import json
import os
import time

import boto3
import botocore.exceptions

from _child import check, endpoints, env, fail, main


def token_times(path: str) -> tuple[int, int]:
    """`iat` and `exp` of the JWT in the token file (read only to report; no verification)."""
    with open(path, "rb") as f:
        payload = f.read().split(b".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + b"=" * (-len(payload) % 4)))
    return claims["iat"], claims["exp"]


def run():
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=float, default=180.0, help="seconds to keep working")
    parser.add_argument("--interval", type=float, default=10.0, help="seconds between iterations")
    args = parser.parse_args()

    aws = endpoints()["aws"]
    check(bool(aws["secrets"]), "the endpoints file lists no AWS secrets")
    name, expected = sorted(aws["secrets"].items())[0]
    token_file = env("AWS_WEB_IDENTITY_TOKEN_FILE")
    check("AWS_ACCESS_KEY_ID" not in os.environ, "AWS_ACCESS_KEY_ID reached the child")

    # Iterations at t = 0, interval, 2*interval, ... up to duration.
    iterations = int(args.duration // args.interval) + 1
    start = time.monotonic()
    for iteration in range(iterations):
        time.sleep(max(0.0, start + iteration * args.interval - time.monotonic()))
        elapsed = time.monotonic() - start
        iat, exp = token_times(token_file)
        where = f"iteration {iteration} t={elapsed:.0f}s token iat={iat} exp={exp} (now={int(time.time())})"
        client = boto3.session.Session().client("secretsmanager")
        try:
            value = client.get_secret_value(SecretId=name)["SecretString"]
        except botocore.exceptions.ClientError as e:
            error = e.response.get("Error", {})
            fail(f"{where}: {e.operation_name} {error.get('Code')}: {error.get('Message')}")
        check(value == expected, f"{where}: secret {name!r} is {value!r}, expected {expected!r}")
        print(f"long_crew: {where}: {name} ok", flush=True)
    print(f"long_crew: done, {iterations} iterations over {time.monotonic() - start:.0f}s", flush=True)


main(run)
