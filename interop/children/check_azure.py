"""Run by `keyward run`: azure-identity's DefaultAzureCredential, with no arguments (it finds
AZURE_FEDERATED_TOKEN_FILE, AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_AUTHORITY_HOST and uses
WorkloadIdentityCredential), reads every demo secret from Key Vault with SecretClient."""

from azure.identity import DefaultAzureCredential
from azure.keyvault.secrets import SecretClient

from _child import check, endpoints, main


def run():
    azure = endpoints()["azure"]
    check(bool(azure["secrets"]), "the endpoints file lists no Azure secrets")
    client = SecretClient(vault_url=azure["vault_url"], credential=DefaultAzureCredential())
    for name, expected in sorted(azure["secrets"].items()):
        secret = client.get_secret(name)
        check(secret.value == expected, f"Key Vault secret {name!r} is {secret.value!r}, expected {expected!r}")
        print(f"azure: {name}={secret.value}")


main(run)
