"""Run by `keyward run`: google-auth's Application Default Credentials only (the external_account
file keyward run wrote, impersonating the connection's service account) call the Vertex
generateContent stand-in. Also checks the Vertex environment keyward run gives the child."""

import os

import google.auth
from google.auth.transport.requests import AuthorizedSession

from _child import check, endpoints, env, main

CLOUD_PLATFORM = "https://www.googleapis.com/auth/cloud-platform"
MODEL = "gemini-2.0-flash"
PROMPT = {"contents": [{"role": "user", "parts": [{"text": "Say hi."}]}]}


def run():
    gcp = endpoints()["gcp"]
    check("GOOGLE_API_KEY" not in os.environ, "GOOGLE_API_KEY reached the child (keyward run must strip it)")
    project, location = env("GOOGLE_CLOUD_PROJECT"), env("GOOGLE_CLOUD_LOCATION")
    check(
        project == gcp["project_number"],
        f"GOOGLE_CLOUD_PROJECT is {project!r}, expected the project number {gcp['project_number']!r}",
    )
    check(location == "global", f"GOOGLE_CLOUD_LOCATION is {location!r}, expected 'global' (the connection's env)")

    credentials, default_project = google.auth.default(scopes=[CLOUD_PLATFORM])
    check(default_project == project, f"google.auth.default() found project {default_project!r}, not {project!r}")
    check(
        getattr(credentials, "service_account_email", None) == gcp["service_account"],
        f"ADC credentials {type(credentials).__name__} impersonate "
        f"{getattr(credentials, 'service_account_email', None)!r}, expected {gcp['service_account']!r}",
    )

    url = (
        f"{gcp['vertex_url']}/v1/projects/{project}/locations/{location}/publishers/google/models/"
        f"{MODEL}:generateContent"
    )
    res = AuthorizedSession(credentials).post(url, json=PROMPT, timeout=30)
    check(res.status_code == 200, f"Vertex generateContent answered {res.status_code}: {res.text}")
    text = res.json()["candidates"][0]["content"]["parts"][0]["text"]
    check(bool(text), f"Vertex answered without text: {res.text}")
    print(f"gcp: generateContent 200 project={project} location={location} as={credentials.service_account_email}")


main(run)
