"""Acceptance b: tokens minted by keyward verify with PyJWT knowing only the issuer URL."""

import ssl

import jwt
import requests

from conftest import BOOTSTRAP_TOKEN

GCP_AUDIENCE = (
    "//iam.googleapis.com/projects/123456789012/locations/global/"
    "workloadIdentityPools/keyward-pool/providers/keyward-oidc"
)
AUDIENCES = [GCP_AUDIENCE, "api://AzureADTokenExchange", "sts.amazonaws.com"]


def api(server, method, path, token, body=None):
    res = requests.request(
        method,
        server.url + path,
        headers={"Authorization": f"Bearer {token}"},
        json=body,
        verify=server.ca_file,
        timeout=30,
    )
    return res.status_code, (res.json() if res.content else None)


def test_minted_tokens_verify_from_discovery_with_pyjwt(keyward):
    status, automation = api(keyward, "POST", "/api/v1/automations", BOOTSTRAP_TOKEN, {"name": "interop-crew"})
    assert status == 201, automation
    status, created = api(keyward, "POST", "/api/v1/automations/interop-crew/tokens", BOOTSTRAP_TOKEN, {"name": "ci"})
    assert status == 201, created
    automation_token = created["token"]

    # Knowing only the issuer URL, as a cloud does.
    issuer = keyward.url
    discovery = requests.get(issuer + "/.well-known/openid-configuration", verify=keyward.ca_file, timeout=30).json()
    assert discovery["issuer"] == issuer
    assert "RS256" in discovery["id_token_signing_alg_values_supported"]
    ssl_context = ssl.create_default_context(cafile=keyward.ca_file)
    jwks_client = jwt.PyJWKClient(discovery["jwks_uri"], ssl_context=ssl_context)

    for audience in AUDIENCES:
        status, minted = api(keyward, "POST", "/api/v1/workload-identity/token", automation_token, {"audience": audience})
        assert status == 200, minted
        token = minted["token"]
        header = jwt.get_unverified_header(token)
        assert header["alg"] == "RS256"
        assert header["kid"]
        signing_key = jwks_client.get_signing_key_from_jwt(token)
        assert signing_key.key_id == header["kid"]
        claims = jwt.decode(
            token,
            signing_key.key,
            algorithms=["RS256"],
            audience=audience,
            issuer=issuer,
            options={"require": ["exp", "iat", "nbf", "iss", "aud", "sub", "jti"]},
        )
        assert claims["sub"] == f"organization:{keyward.org_id}"
        assert claims["organization_id"] == keyward.org_id
        assert claims["aud"] == audience
        assert claims["exp"] - claims["iat"] == 3600
        assert claims["automation_id"] == automation["id"]
        assert claims["automation_name"] == "interop-crew"

    # A token is bound to its audience: PyJWT refuses it for another one.
    try:
        jwt.decode(token, signing_key.key, algorithms=["RS256"], audience="api://AzureADTokenExchange", issuer=issuer)
    except jwt.InvalidAudienceError:
        pass
    else:
        raise AssertionError("a token for sts.amazonaws.com verified for another audience")
