//! `keyward doctor` against the broken-setup world: a healthy automation is green at every step;
//! each broken setup fails at its step, with the cause and the fix.

use std::process::Command;

use serde_json::{Value, json};

use crate::cloudsim::server_and_sim;
use crate::cloudsim_env::{APP, APP_CASE, Sim, TENANT, sa, world};
use crate::common::{self, Server};

const PROVIDERS: &str =
    "projects/123456789012/locations/global/workloadIdentityPools/keyward-pool/providers";

fn doctor(server: &Server, sim: &Sim, token: &str, automation: &str) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_keyward"))
        .args(["doctor", "--automation", automation])
        .env("KEYWARD_URL", &server.url)
        .env("KEYWARD_AUTOMATION_TOKEN", token)
        .env("KEYWARD_CA_FILE", server.ca_file.as_ref().unwrap())
        .env("KEYWARD_CLOUD_ENDPOINTS", &sim.endpoints_path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.code().is_some(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), stdout)
}

/// The report's lines for one identity, from its title to the next title.
fn section<'a>(report: &'a str, title_start: &str) -> &'a str {
    let start = report
        .find(&format!("\n{title_start}"))
        .map(|i| i + 1)
        .unwrap_or_else(|| panic!("no section {title_start:?} in\n{report}"));
    let rest = &report[start..];
    let mut end = 0;
    for (i, line) in rest.split_inclusive('\n').enumerate() {
        if i > 0 && !line.starts_with(' ') {
            break;
        }
        end += line.len();
    }
    &rest[..end]
}

#[tokio::test]
async fn doctor_is_green_for_a_healthy_setup_and_names_the_failing_step_and_cause_of_each_broken_one()
 {
    let (server, crew, sim, _dir) = server_and_sim(|issuer, org| Some(world(issuer, org))).await;
    // The healthy defaults, and a Vertex connection for `crew`.
    common::create_as_owner(
        &server,
        "/workload-identity-configs",
        json!({"name": "gcp", "cloud": "gcp",
        "provider": format!("{PROVIDERS}/keyward-provider"), "default_for_cloud": true}),
    )
    .await;
    common::create_as_owner(
        &server,
        "/workload-identity-configs",
        json!({"name": "azure", "cloud": "azure",
        "tenant_id": TENANT, "client_id": APP, "default_for_cloud": true}),
    )
    .await;
    common::create_as_owner(
        &server,
        "/workload-identity-configs",
        json!({"name": "aws", "cloud": "aws",
        "role_arn": "arn:aws:iam::123456789012:role/keyward-secrets-reader", "region": "us-east-1",
        "default_for_cloud": true}),
    )
    .await;
    let connection = |name: &str, sa_name: &str, automation: &str| {
        json!({"name": name, "provider": "vertex", "workload_identity_config": "gcp",
               "service_account_email": sa(sa_name), "model": "google/gemini-2.0-flash",
               "env": {"GOOGLE_CLOUD_LOCATION": "global"}, "automations": [automation]})
    };
    common::create_as_owner(
        &server,
        "/llm-connections",
        connection("vertex", "keyward-vertex", "crew"),
    )
    .await;

    let (ok, report) = doctor(&server, &sim, &crew, "crew");
    assert!(ok, "a healthy setup is green:\n{report}");
    assert!(
        !report.contains("[FAIL]") && !report.contains("[skip]"),
        "{report}"
    );
    for step in [
        "token minted",
        "issuer discovery and JWKS",
        "STS token exchange",
        "service account impersonation",
        "Vertex generateContent",
        "Entra client-assertion token",
        "AssumeRoleWithWebIdentity",
        "GetCallerIdentity",
    ] {
        assert!(
            report.contains(&format!("[ok]   {step}")),
            "{step} in\n{report}"
        );
    }
    assert!(report.ends_with("All checks passed.\n"), "{report}");

    // One automation per broken setup, each given the broken piece by restriction or connection.
    let broken: Vec<(&str, Value, &str, &str, &str)> = vec![
        (
            "wrong-org",
            json!({"cloud": "gcp", "provider": format!("{PROVIDERS}/wrong-org")}),
            "gcp —",
            "STS token exchange",
            "numeric org ID was used instead of the organization UUID",
        ),
        (
            "numeric-org",
            json!({"cloud": "gcp", "provider": format!("{PROVIDERS}/numeric-org")}),
            "gcp —",
            "STS token exchange",
            "assertion.organization_id == '<your organization UUID>'",
        ),
        (
            "wrong-issuer",
            json!({"cloud": "gcp", "provider": format!("{PROVIDERS}/wrong-issuer")}),
            "gcp —",
            "STS token exchange",
            "issuer URL configured on the cloud's side does not match",
        ),
        (
            "no-provider",
            json!({"cloud": "gcp", "provider": format!("{PROVIDERS}/no-such-provider")}),
            "gcp —",
            "STS token exchange",
            "does not name an existing, enabled workload identity pool provider",
        ),
        (
            "fic-case",
            json!({"cloud": "azure", "tenant_id": TENANT, "client_id": APP_CASE}),
            "azure —",
            "Entra client-assertion token",
            "AADSTS70021",
        ),
        (
            "wrong-sub",
            json!({"cloud": "aws", "role_arn": "arn:aws:iam::123456789012:role/wrong-sub", "region": "us-east-1"}),
            "aws —",
            "AssumeRoleWithWebIdentity",
            "<host>:sub must equal organization:<your organization UUID>",
        ),
    ];
    let mut tokens = Vec::new();
    for (automation, config, ..) in &broken {
        let (_, token) = common::automation_with_token(&server, automation).await;
        let mut body = config.clone();
        body["name"] = json!(format!("{automation}-config"));
        body["automations"] = json!([automation]);
        common::create_as_owner(&server, "/workload-identity-configs", body).await;
        tokens.push(token);
    }
    for (sa_name, automation) in [("unbound", "unbound"), ("no-vertex", "no-vertex")] {
        let (_, token) = common::automation_with_token(&server, automation).await;
        common::create_as_owner(
            &server,
            "/llm-connections",
            connection(&format!("vertex-{automation}"), sa_name, automation),
        )
        .await;
        tokens.push(token);
    }
    let mut cases: Vec<(&str, &str, &str, &str)> = broken
        .iter()
        .map(|(automation, _, section, step, words)| (*automation, *section, *step, *words))
        .collect();
    cases.push((
        "unbound",
        "gcp —",
        "service account impersonation",
        "roles/iam.workloadIdentityUser",
    ));
    cases.push((
        "no-vertex",
        "gcp —",
        "Vertex generateContent",
        "roles/aiplatform.user",
    ));
    for ((automation, title, step, words), token) in cases.into_iter().zip(&tokens) {
        let (ok, report) = doctor(&server, &sim, token, automation);
        assert!(!ok, "{automation} must fail:\n{report}");
        let part = section(&report, title);
        assert!(
            part.contains(&format!("[FAIL] {step}")),
            "{automation}: the failing step is {step}:\n{report}"
        );
        assert!(
            part.contains("cause: ") && part.contains("fix: "),
            "{automation}:\n{report}"
        );
        assert!(
            part.contains(words),
            "{automation}: expected {words:?} in\n{part}"
        );
    }

    // Expired as the clouds see it: the exchange step says so.
    sim.clock_offset(7200).await;
    let (ok, report) = doctor(&server, &sim, &crew, "crew");
    assert!(!ok);
    let part = section(&report, "gcp —");
    assert!(
        part.contains("[FAIL] STS token exchange") && part.contains("expired or not yet valid"),
        "{report}"
    );
    assert!(
        part.contains("[skip] service account impersonation"),
        "{report}"
    );
    sim.clock_offset(0).await;

    // Someone else's token.
    let (ok, report) = doctor(&server, &sim, &crew, "someone-else");
    assert!(
        !ok && report.contains("belongs to automation 'crew', not 'someone-else'"),
        "{report}"
    );
    drop(server);
}
