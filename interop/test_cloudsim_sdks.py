"""Acceptance: the official, unmodified cloud SDKs federate with tokens minted by `keyward serve`
against `keyward cloudsim` — only endpoint overrides and CA bundles are set — and surface each
broken federation setup with the cloud's own error shape.

(a) the `--demo` world: google-auth `external_account` (file-sourced subject token, STS,
    impersonation) → Vertex; azure-identity `WorkloadIdentityCredential` → azure-keyvault-secrets;
    boto3 web identity → Secrets Manager. Each returns exactly the values the endpoints file lists.
(b) a state world (port of tests/e2e/cloudsim_env.rs `world`) with one broken setup per refusal.
"""

import base64
import json
import os

import boto3
import botocore.exceptions
import google.auth.exceptions
import google.auth.transport.requests
import pytest
import requests
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError, ResourceNotFoundError
from azure.identity import ClientSecretCredential, WorkloadIdentityCredential
from azure.keyvault.secrets import SecretClient
from google.auth import identity_pool
from google.auth.transport.requests import AuthorizedSession
from google.oauth2 import service_account

from cloudsim_world import (
    APP,
    APP_CASE,
    AWS_AUDIENCE,
    AZURE_AUDIENCE,
    PROJECT_NUMBER,
    TENANT,
    CloudSim,
    es256_like,
    forged_like,
    gcp_audience,
    role_arn,
    sa,
    world,
)
from conftest import automation_token, keyward_bin

CLOUD_PLATFORM = "https://www.googleapis.com/auth/cloud-platform"
JWT_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:jwt"
PROMPT = {"contents": [{"role": "user", "parts": [{"text": "Say hi."}]}]}
SESSION_NAME = "keyward-interop"
# What SecretClient asks Entra for against the real cloud.
VAULT_SCOPE = "https://vault.azure.net/.default"


# --- fixtures: one keyward serve and one simulator per world for the whole module --------------


@pytest.fixture(scope="module")
def mint(keyward_sqlite):
    """mint(audience) → a workload identity token from keyward serve, as an automation gets it."""
    token = automation_token(keyward_sqlite, "sdk-crew")

    def mint(audience: str) -> str:
        res = requests.post(
            keyward_sqlite.url + "/api/v1/workload-identity/token",
            json={"audience": audience},
            headers={"Authorization": f"Bearer {token}"},
            verify=keyward_sqlite.ca_file,
            timeout=30,
        )
        assert res.status_code == 200, res.text
        body = res.json()
        assert body["audience"] == audience
        return body["token"]

    return mint


@pytest.fixture(scope="module")
def demo(keyward_sqlite):
    sim = CloudSim(keyward_bin(), keyward_sqlite)
    yield sim
    sim.stop()


@pytest.fixture(scope="module")
def broken(keyward_sqlite):
    sim = CloudSim(keyward_bin(), keyward_sqlite, state=world(keyward_sqlite.url, keyward_sqlite.org_id))
    yield sim
    sim.stop()


@pytest.fixture
def trust(monkeypatch, tmp_path):
    """trust(sim): the process environment an SDK reads — no ambient cloud configuration or
    credentials, and TLS trust in the simulator's CA only (requests, azure-core and botocore all
    read these variables)."""
    for name in list(os.environ):
        if name.startswith(("AWS_", "AZURE_", "GOOGLE_", "CLOUDSDK_", "MSAL_", "IDENTITY_", "MSI_")):
            monkeypatch.delenv(name)
    empty = tmp_path / "empty-aws-config"
    empty.write_text("")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(empty))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(empty))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)

    def trust(sim: CloudSim) -> None:
        for var in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE", "AWS_CA_BUNDLE"):
            monkeypatch.setenv(var, sim.ca_file)

    return trust


@pytest.fixture
def clouds_two_hours_later(broken):
    """The simulated clouds' clock two hours ahead of Keyward's, so a fresh token has expired."""
    broken.clock_offset(7200)
    yield
    broken.clock_offset(0)


def token_file(tmp_path, jwt: str, name: str = "token") -> str:
    """The JWT in a file, with no trailing newline (as a projected token file holds it)."""
    path = tmp_path / name
    path.write_bytes(jwt.encode("ascii"))
    return str(path)


# --- SDK setup: endpoint overrides only ----------------------------------------------------------


def gcp_credentials(sim: CloudSim, token_path: str, audience: str, service_account: str | None = None):
    """An `external_account` credential config as `gcloud iam workload-identity-pools
    create-cred-config` writes it, with the simulator's URLs in place of Google's."""
    info = {
        "type": "external_account",
        "audience": audience,
        "subject_token_type": JWT_TOKEN_TYPE,
        "token_url": f"{sim.gcp['sts_url']}/v1/token",
        "credential_source": {"file": token_path},
    }
    if service_account:
        info["service_account_impersonation_url"] = (
            f"{sim.gcp['iam_credentials_url']}/v1/projects/-/serviceAccounts/{service_account}:generateAccessToken"
        )
    # The type-specific loader (google.auth.load_credentials_from_dict is deprecated, and with
    # scopes it would also look the project up at cloudresourcemanager.googleapis.com).
    return identity_pool.Credentials.from_info(info, scopes=[CLOUD_PLATFORM])


def vertex_url(sim: CloudSim, project: str) -> str:
    return (
        f"{sim.gcp['vertex_url']}/v1/projects/{project}/locations/global/publishers/google/models/"
        "gemini-2.0-flash:generateContent"
    )


def azure_credential(sim: CloudSim, token_path: str, client_id: str, tenant_id: str):
    return WorkloadIdentityCredential(
        tenant_id=tenant_id,
        client_id=client_id,
        token_file_path=token_path,
        authority=sim.azure["authority_host"],
    )


def vault_url(sim: CloudSim, vault: str) -> str:
    """The URL of `vault`: each simulated vault has an origin of its own, as real ones have a host."""
    return sim.admin("GET", "vaults")["vaults"][vault]["url"]


def boto_session(monkeypatch, sim: CloudSim, token_path: str, role: str):
    """A fresh boto3 session resolving web-identity credentials from the environment only."""
    monkeypatch.setenv("AWS_WEB_IDENTITY_TOKEN_FILE", token_path)
    monkeypatch.setenv("AWS_ROLE_ARN", role)
    monkeypatch.setenv("AWS_ROLE_SESSION_NAME", SESSION_NAME)
    monkeypatch.setenv("AWS_REGION", sim.aws["region"])
    monkeypatch.setenv("AWS_DEFAULT_REGION", sim.aws["region"])
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", sim.aws["sts_url"])
    monkeypatch.setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", sim.aws["secrets_manager_url"])
    return boto3.session.Session()


# --- (a) the demo world: each SDK reaches the value ------------------------------------------------


def test_google_auth_external_account_impersonates_and_calls_vertex(demo, mint, trust, tmp_path):
    trust(demo)
    gcp = demo.gcp
    audience = "//iam.googleapis.com/" + gcp["provider"]
    jwt = mint(audience)
    credentials = gcp_credentials(demo, token_file(tmp_path, jwt), audience, gcp["service_account"])
    assert credentials.service_account_email == gcp["service_account"]

    session = AuthorizedSession(credentials)
    res = session.post(vertex_url(demo, gcp["project_number"]), json=PROMPT, timeout=30)
    assert res.status_code == 200, res.text
    candidate = res.json()["candidates"][0]
    assert candidate["content"]["role"] == "model"
    assert candidate["content"]["parts"][0]["text"]
    assert credentials.valid and credentials.token


def test_google_auth_federated_token_reads_secret_manager(demo, mint, trust, tmp_path):
    trust(demo)
    gcp = demo.gcp
    audience = "//iam.googleapis.com/" + gcp["provider"]
    credentials = gcp_credentials(demo, token_file(tmp_path, mint(audience)), audience)
    session = AuthorizedSession(credentials)
    assert gcp["secrets"], gcp
    for name, value in gcp["secrets"].items():
        url = f"{gcp['secret_manager_url']}/v1/projects/{gcp['project_id']}/secrets/{name}/versions/latest:access"
        res = session.get(url, timeout=30)
        assert res.status_code == 200, res.text
        body = res.json()
        assert body["name"].startswith(f"projects/{gcp['project_number']}/secrets/{name}/versions/")
        assert base64.b64decode(body["payload"]["data"]).decode() == value


def test_azure_workload_identity_reads_key_vault(demo, mint, trust, tmp_path):
    trust(demo)
    az = demo.azure
    credential = azure_credential(demo, token_file(tmp_path, mint(AZURE_AUDIENCE)), az["client_id"], az["tenant_id"])
    assert credential.get_token(VAULT_SCOPE).token

    client = SecretClient(vault_url=az["vault_url"], credential=credential)
    assert az["secrets"], az
    for name, value in az["secrets"].items():
        secret = client.get_secret(name)
        assert secret.name == name
        assert secret.value == value
    with pytest.raises(ResourceNotFoundError) as missing:
        client.get_secret("no-such-secret")
    assert missing.value.status_code == 404
    assert missing.value.error.code == "SecretNotFound"


def test_boto3_web_identity_reads_secrets_manager(demo, mint, trust, tmp_path, monkeypatch):
    trust(demo)
    aws = demo.aws
    session = boto_session(monkeypatch, demo, token_file(tmp_path, mint(AWS_AUDIENCE)), aws["role_arn"])
    role_name = aws["role_arn"].rsplit("/", 1)[1]
    account = aws["role_arn"].split(":")[4]
    identity = session.client("sts").get_caller_identity()
    assert identity["Arn"] == f"arn:aws:sts::{account}:assumed-role/{role_name}/{SESSION_NAME}"
    assert identity["Account"] == account

    client = session.client("secretsmanager")
    assert aws["secrets"], aws
    for name, value in aws["secrets"].items():
        secret = client.get_secret_value(SecretId=name)
        assert secret["Name"] == name
        assert secret["SecretString"] == value
        assert "AWSCURRENT" in secret["VersionStages"]
    with pytest.raises(botocore.exceptions.ClientError) as missing:
        client.get_secret_value(SecretId="no-such-secret")
    assert missing.value.response["Error"]["Code"] == "ResourceNotFoundException"


# --- (b) the broken world: each refusal as the SDK surfaces it ------------------------------------

ATTRIBUTE_CONDITION = "PERMISSION_DENIED: The given credential is rejected by the attribute condition."


# The controls for every refusal below: the same world's good setups pass through each SDK.


def test_broken_world_gcp_good_provider_and_service_account_reach_vertex(broken, mint, trust, tmp_path):
    trust(broken)
    audience = gcp_audience("keyward-provider")
    credentials = gcp_credentials(broken, token_file(tmp_path, mint(audience)), audience, sa("keyward-vertex"))
    res = AuthorizedSession(credentials).post(vertex_url(broken, PROJECT_NUMBER), json=PROMPT, timeout=30)
    assert res.status_code == 200, res.text


def test_broken_world_azure_good_app_reads_the_vault(broken, mint, trust, tmp_path):
    trust(broken)
    credential = azure_credential(broken, token_file(tmp_path, mint(AZURE_AUDIENCE)), APP, TENANT)
    assert credential.get_token(VAULT_SCOPE).token
    client = SecretClient(vault_url=vault_url(broken, "keyward-demo-vault"), credential=credential)
    assert client.get_secret("openai-api-key").value == "azure-value-1"


def test_broken_world_aws_good_role_reads_the_secret(broken, mint, trust, tmp_path, monkeypatch):
    trust(broken)
    session = boto_session(
        monkeypatch, broken, token_file(tmp_path, mint(AWS_AUDIENCE)), role_arn("keyward-secrets-reader")
    )
    secret = session.client("secretsmanager").get_secret_value(SecretId="openai-api-key")
    assert secret["SecretString"] == "aws-value-1"


# --- the static-credentials path: the SDKs' own static credential types against the simulator ----


def test_google_auth_service_account_key_reads_secret_manager(broken, trust):
    """A key file from the simulator's key endpoint works unmodified with google-auth's
    service_account.Credentials (JWT bearer grant at the key's token_uri), and stops working
    when the key is deleted."""
    trust(broken)
    key = broken.admin("POST", "gcp/service-account-keys", {"email": sa("static-reader")})
    credentials = service_account.Credentials.from_service_account_info(key, scopes=[CLOUD_PLATFORM])
    url = f"{broken.gcp['secret_manager_url']}/v1/projects/keyward-demo/secrets/openai-api-key/versions/latest:access"
    res = AuthorizedSession(credentials).get(url, timeout=30)
    assert res.status_code == 200, res.text
    assert base64.b64decode(res.json()["payload"]["data"]).decode() == "gcp-value-1"

    broken.admin("DELETE", f"gcp/service-account-keys/{key['private_key_id']}")
    again = service_account.Credentials.from_service_account_info(key, scopes=[CLOUD_PLATFORM])
    with pytest.raises(google.auth.exceptions.RefreshError) as refused:
        again.refresh(google.auth.transport.requests.Request())
    assert "invalid_grant" in str(refused.value) and "Invalid JWT Signature" in str(refused.value)


def test_azure_client_secret_credential_reads_key_vault(broken, trust):
    trust(broken)
    static_app, secret = "2e8f1a3b-4c5d-4e6f-8a9b-0c1d2e3f4a5b", "static-app-client-secret-value-0123"
    # MSAL (behind ClientSecretCredential) asks login.microsoftonline.com to vouch for any other
    # authority host; a private authority is configured with instance discovery off, as here.
    local = {"authority": broken.azure["authority_host"], "disable_instance_discovery": True}
    credential = ClientSecretCredential(TENANT, static_app, secret, **local)
    client = SecretClient(vault_url=vault_url(broken, "keyward-demo-vault"), credential=credential)
    assert client.get_secret("openai-api-key").value == "azure-value-1"

    wrong = ClientSecretCredential(TENANT, static_app, "a-secret-id", **local)
    with pytest.raises(ClientAuthenticationError) as refused:
        wrong.get_token(VAULT_SCOPE)
    assert "AADSTS7000215" in str(refused.value)


def test_boto3_access_keys_assume_a_role_with_external_id(broken, trust, monkeypatch):
    trust(broken)
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", broken.aws["sts_url"])
    monkeypatch.setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", broken.aws["secrets_manager_url"])
    user = boto3.session.Session(
        aws_access_key_id="AKIAKEYWARDSTATIC001",
        aws_secret_access_key="static-reader-secret-access-key-0123456789",
        region_name=broken.aws["region"],
    )
    sts = user.client("sts")
    assert sts.get_caller_identity()["Arn"] == "arn:aws:iam::123456789012:user/static-reader"
    with pytest.raises(botocore.exceptions.ClientError) as refused:
        sts.assume_role(RoleArn=role_arn("static-assumed"), RoleSessionName=SESSION_NAME, ExternalId="wrong")
    assert refused.value.response["Error"]["Code"] == "AccessDenied"
    creds = sts.assume_role(
        RoleArn=role_arn("static-assumed"), RoleSessionName=SESSION_NAME, ExternalId="keyward-external-id-1"
    )["Credentials"]
    role = boto3.session.Session(
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
        region_name=broken.aws["region"],
    )
    assert role.client("secretsmanager").get_secret_value(SecretId="openai-api-key")["SecretString"] == "aws-value-1"


def gcp_sts_refusal(broken, tmp_path, presented_to: str, jwt: str) -> dict:
    """Refreshes an external_account credential; STS's refusal as google-auth raises it.

    google-auth turns an STS error body into `OAuthError("Error code <error>: <description>", body)`
    (a GoogleAuthError, not a RefreshError); the impersonation step raises RefreshError."""
    credentials = gcp_credentials(broken, token_file(tmp_path, jwt), gcp_audience(presented_to))
    with pytest.raises(google.auth.exceptions.OAuthError) as refused:
        credentials.refresh(google.auth.transport.requests.Request())
    message, body = refused.value.args[0], json.loads(refused.value.args[1])
    assert message == f"Error code {body['error']}: {body['error_description']}"
    return body


@pytest.mark.parametrize("provider", ["wrong-org", "numeric-org"])
def test_gcp_attribute_condition_on_another_org_is_refused(broken, mint, trust, tmp_path, provider):
    trust(broken)
    body = gcp_sts_refusal(broken, tmp_path, provider, mint(gcp_audience(provider)))
    assert body == {"error": "unauthorized_client", "error_description": ATTRIBUTE_CONDITION}


def test_gcp_provider_trusting_another_issuer_refuses(broken, keyward_sqlite, mint, trust, tmp_path):
    trust(broken)
    body = gcp_sts_refusal(broken, tmp_path, "wrong-issuer", mint(gcp_audience("wrong-issuer")))
    assert body == {
        "error": "invalid_grant",
        "error_description": f"INVALID_ARGUMENT: Invalid JWT: the issuer '{keyward_sqlite.url}' does not match "
        "the provider's issuer URI 'https://keyward.example.com'.",
    }


def test_gcp_token_for_another_provider_is_refused(broken, mint, trust, tmp_path):
    trust(broken)
    audience = gcp_audience("keyward-provider")
    body = gcp_sts_refusal(broken, tmp_path, "wrong-org", mint(audience))
    assert body == {
        "error": "invalid_grant",
        "error_description": f"INVALID_ARGUMENT: The audience in ID Token [{audience}] does not match the expected audience.",
    }


def test_gcp_token_signed_by_unpublished_key_is_refused(broken, mint, trust, tmp_path):
    trust(broken)
    jwt = forged_like(mint(gcp_audience("keyward-provider")))
    body = gcp_sts_refusal(broken, tmp_path, "keyward-provider", jwt)
    assert body == {
        "error": "invalid_grant",
        "error_description": "INVALID_ARGUMENT: Invalid JWT signature: no key with kid 'forged-key' is published in the issuer's JWKS.",
    }


def test_gcp_expired_token_is_refused(broken, mint, trust, tmp_path, clouds_two_hours_later):
    trust(broken)
    body = gcp_sts_refusal(broken, tmp_path, "keyward-provider", mint(gcp_audience("keyward-provider")))
    assert body["error"] == "invalid_grant"
    assert body["error_description"] == (
        "INVALID_ARGUMENT: Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable "
        "timeframe. Check your iat and exp values in the JWT claim. (the token has expired)"
    )


def test_gcp_service_account_without_workload_identity_user_is_refused(broken, mint, trust, tmp_path):
    trust(broken)
    audience = gcp_audience("keyward-provider")
    credentials = gcp_credentials(broken, token_file(tmp_path, mint(audience)), audience, sa("unbound"))
    with pytest.raises(google.auth.exceptions.RefreshError) as refused:
        credentials.refresh(google.auth.transport.requests.Request())
    assert refused.value.args[0] == "Unable to acquire impersonated credentials"
    error = json.loads(refused.value.args[1])["error"]
    assert (error["code"], error["status"]) == (403, "PERMISSION_DENIED")
    assert error["message"].startswith("Permission 'iam.serviceAccounts.getAccessToken' denied on resource")


def test_gcp_service_account_without_aiplatform_user_is_refused_by_vertex(broken, mint, trust, tmp_path):
    trust(broken)
    audience = gcp_audience("keyward-provider")
    credentials = gcp_credentials(broken, token_file(tmp_path, mint(audience)), audience, sa("no-vertex"))
    res = AuthorizedSession(credentials).post(vertex_url(broken, PROJECT_NUMBER), json=PROMPT, timeout=30)
    assert res.status_code == 403, res.text
    error = res.json()["error"]
    assert (error["code"], error["status"]) == (403, "PERMISSION_DENIED")
    assert error["message"].startswith("Permission 'aiplatform.endpoints.predict' denied on resource")
    assert credentials.valid, "impersonation itself succeeded; only Vertex refuses"


def entra_refusal(broken, tmp_path, jwt: str, client_id: str = APP) -> dict:
    """Asks azure-identity for a vault token with `jwt` as the assertion; Entra's refusal, as raised."""
    credential = azure_credential(broken, token_file(tmp_path, jwt), client_id, TENANT)
    with pytest.raises(ClientAuthenticationError) as refused:
        credential.get_token(VAULT_SCOPE)
    response = refused.value.response
    body = json.loads(response.text())
    assert refused.value.message == f"Microsoft Entra ID error '({body['error']}) {body['error_description']}'"
    assert response.request.url == f"{broken.azure['authority_host']}/{TENANT}/oauth2/v2.0/token"
    return {"status": response.status_code, **body}


def test_entra_federated_credential_subject_differing_in_case_is_refused(broken, keyward_sqlite, mint, trust, tmp_path):
    trust(broken)
    refusal = entra_refusal(broken, tmp_path, mint(AZURE_AUDIENCE), client_id=APP_CASE)
    assert (refusal["status"], refusal["error"], refusal["error_codes"]) == (401, "invalid_client", [70021])
    assert refusal["error_description"].startswith(
        "AADSTS70021: No matching federated identity record found for presented assertion. "
        f"Assertion Issuer: '{keyward_sqlite.url}'. Assertion Subject: 'organization:{keyward_sqlite.org_id}'. "
        f"Assertion Audience: '{AZURE_AUDIENCE}'."
    )


def test_entra_token_for_another_audience_is_refused(broken, mint, trust, tmp_path):
    trust(broken)
    audience = gcp_audience("keyward-provider")
    refusal = entra_refusal(broken, tmp_path, mint(audience))
    assert (refusal["status"], refusal["error"], refusal["error_codes"]) == (401, "invalid_client", [70021])
    assert f"Assertion Audience: '{audience}'." in refusal["error_description"]


def test_entra_es256_token_is_refused(broken, mint, trust, tmp_path):
    trust(broken)
    refusal = entra_refusal(broken, tmp_path, es256_like(mint(AZURE_AUDIENCE)))
    assert (refusal["status"], refusal["error"], refusal["error_codes"]) == (401, "invalid_client", [5002738])
    assert refusal["error_description"].startswith(
        "AADSTS5002738: Invalid JWT token. 'ES256' is not a supported signature algorithm. "
        "Supported signing algorithms are: 'RS256, RS384, RS512'"
    )


def test_entra_token_signed_by_unpublished_key_is_refused(broken, mint, trust, tmp_path):
    trust(broken)
    refusal = entra_refusal(broken, tmp_path, forged_like(mint(AZURE_AUDIENCE)))
    assert (refusal["status"], refusal["error"], refusal["error_codes"]) == (401, "invalid_client", [50013])
    assert refusal["error_description"].startswith(
        "AADSTS50013: Assertion failed signature validation. "
        "[Reason - The key was not found., Key id of key used by client: 'forged-key']"
    )


def test_entra_expired_token_is_refused(broken, mint, trust, tmp_path, clouds_two_hours_later):
    trust(broken)
    refusal = entra_refusal(broken, tmp_path, mint(AZURE_AUDIENCE))
    assert (refusal["status"], refusal["error"], refusal["error_codes"]) == (401, "invalid_client", [700024])
    assert refusal["error_description"].startswith("AADSTS700024: Client assertion is not within its valid time range.")


def test_key_vault_role_on_one_secret_reads_it_but_cannot_list(broken, mint, trust, tmp_path):
    trust(broken)
    credential = azure_credential(broken, token_file(tmp_path, mint(AZURE_AUDIENCE)), APP, TENANT)
    client = SecretClient(vault_url=vault_url(broken, "per-secret-vault"), credential=credential)
    assert client.get_secret("granted").value == "per-secret-value"

    with pytest.raises(HttpResponseError) as listing:
        list(client.list_properties_of_secrets())
    assert listing.value.status_code == 403
    assert listing.value.error.code == "Forbidden"
    assert "Caller is not authorized to perform action on resource." in listing.value.error.message

    with pytest.raises(HttpResponseError) as other:
        client.get_secret("not-granted")
    assert not isinstance(other.value, ResourceNotFoundError)
    assert (other.value.status_code, other.value.error.code) == (403, "Forbidden")


def aws_refusal(monkeypatch, broken, tmp_path, jwt: str, role: str = "keyward-secrets-reader") -> dict:
    session = boto_session(monkeypatch, broken, token_file(tmp_path, jwt), role_arn(role))
    client = session.client("secretsmanager")
    with pytest.raises(botocore.exceptions.ClientError) as refused:
        client.get_secret_value(SecretId="openai-api-key")
    assert refused.value.operation_name == "AssumeRoleWithWebIdentity"
    response = refused.value.response
    return {"status": response["ResponseMetadata"]["HTTPStatusCode"], **response["Error"]}


def test_aws_trust_policy_for_another_subject_is_refused(broken, mint, trust, tmp_path, monkeypatch):
    trust(broken)
    error = aws_refusal(monkeypatch, broken, tmp_path, mint(AWS_AUDIENCE), role="wrong-sub")
    assert (error["status"], error["Code"]) == (403, "AccessDenied")
    assert error["Message"] == "Not authorized to perform sts:AssumeRoleWithWebIdentity"


def test_aws_token_for_another_audience_is_refused(broken, mint, trust, tmp_path, monkeypatch):
    trust(broken)
    error = aws_refusal(monkeypatch, broken, tmp_path, mint(AZURE_AUDIENCE))
    assert (error["status"], error["Code"]) == (400, "InvalidIdentityToken")
    assert error["Message"] == "Incorrect token audience"


def test_aws_token_signed_by_unpublished_key_is_refused(broken, mint, trust, tmp_path, monkeypatch):
    trust(broken)
    error = aws_refusal(monkeypatch, broken, tmp_path, forged_like(mint(AWS_AUDIENCE)))
    assert (error["status"], error["Code"]) == (400, "InvalidIdentityToken")
    assert error["Message"] == (
        "Couldn't retrieve verification key from your identity provider,  please reference "
        "AssumeRoleWithWebIdentity documentation for requirements"
    )


def test_aws_expired_token_is_refused(broken, mint, trust, tmp_path, monkeypatch, clouds_two_hours_later):
    trust(broken)
    error = aws_refusal(monkeypatch, broken, tmp_path, mint(AWS_AUDIENCE))
    assert (error["status"], error["Code"]) == (400, "ExpiredTokenException")
    assert error["Message"].startswith("Token expired: current date/time")
