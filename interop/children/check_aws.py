"""Run by `keyward run`: boto3's default credential chain only (AWS_WEB_IDENTITY_TOKEN_FILE and
AWS_ROLE_ARN → AssumeRoleWithWebIdentity) reads every demo secret from Secrets Manager."""

import os

import boto3

from _child import check, endpoints, env, main


def run():
    aws = endpoints()["aws"]
    for static in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        check(static not in os.environ, f"{static} reached the child (keyward run must strip it)")
    check(bool(aws["secrets"]), "the endpoints file lists no AWS secrets")

    identity = boto3.client("sts").get_caller_identity()
    role = aws["role_arn"].rsplit("/", 1)[1]
    account = aws["role_arn"].split(":")[4]
    expected_arn = f"arn:aws:sts::{account}:assumed-role/{role}/{env('AWS_ROLE_SESSION_NAME')}"
    check(identity["Arn"] == expected_arn, f"GetCallerIdentity says {identity['Arn']!r}, expected {expected_arn!r}")
    print(f"aws: caller {identity['Arn']}")

    client = boto3.client("secretsmanager")
    for name, expected in sorted(aws["secrets"].items()):
        value = client.get_secret_value(SecretId=name)["SecretString"]
        check(value == expected, f"Secrets Manager secret {name!r} is {value!r}, expected {expected!r}")
        print(f"aws: {name}={value}")


main(run)
