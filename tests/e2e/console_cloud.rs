//! The console's cloud settings pages against the real binary and `keyward cloudsim`: workload
//! identity configs, LLM connections, secret providers (green and red Test Connection,
//! autocomplete) and environment variables created through the forms and seen through the API;
//! a Member refused the secret-provider page; no secret value in any of the pages' HTML.

use reqwest::Method;
use serde_json::{Value, json};

use crate::cloudsim_env::{Sim, SimWorld, world};
use crate::common::*;
use crate::console_common::member_session;
use crate::console_common::{self, Answer, csrf_of, get};
use crate::people::{local_options, set_owner_password, sign_in};

const PROVIDERS: &str =
    "projects/123456789012/locations/global/workloadIdentityPools/keyward-pool/providers";
const STATIC_KEY_ID: &str = "AKIAQSTATICKEYID7788";
const STATIC_SECRET: &str = "static-secret-access-key-do-not-show-4242";
const DIRECT_SECRET: &str = "direct-secret-value-do-not-show-9191";

/// A form post with the session's CSRF token (read from the console's overview page).
async fn post(server: &Server, cookie: &str, path: &str, fields: &[(&str, &str)]) -> Answer {
    let page = get(server, cookie, "/console").await;
    let csrf = csrf_of(&page.body);
    let mut all = vec![("csrf", csrf.as_str())];
    all.extend_from_slice(fields);
    console_common::post(server, cookie, path, &all).await
}

async fn api(server: &Server, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
    call(
        &server.client(),
        method,
        &format!("{}/api/v1{path}", server.url),
        Some(BOOTSTRAP_TOKEN),
        body,
    )
    .await
}

/// Posts a form that must succeed: a redirect back to the page with a flash.
async fn saved(server: &Server, cookie: &str, path: &str, fields: &[(&str, &str)]) {
    let a = post(server, cookie, path, fields).await;
    assert_eq!(a.status, 303, "{path}: {}", a.body);
    assert!(a.location.contains("?done="), "{path}: {}", a.location);
}

#[tokio::test(flavor = "multi_thread")]
async fn cloud_settings_pages_work_through_their_forms() {
    install_crypto();
    let dir = tempfile::tempdir().unwrap();
    let endpoints = dir.path().join("server-endpoints.json");
    let options = local_options(&Backend::Sqlite, &dir.path().join("kw"))
        .env("KEYWARD_CLOUD_ENDPOINTS", endpoints.to_str().unwrap());
    let server = Server::start(&options);
    let org = org_id(&server);
    let sim = Sim::start(&server, &org, SimWorld::State(&world(&server.url, &org)));
    std::fs::copy(&sim.endpoints_path, &endpoints).unwrap();
    set_owner_password(&server).await;
    let owner = sign_in(&server, "/console").await;

    // Workload identity: per-cloud fields; another cloud's fields in the form are ignored.
    let wi = "/console/workload-identity";
    let page = get(&server, &owner, wi).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("id=\"wi-create\""), "{}", page.body);
    saved(
        &server,
        &owner,
        wi,
        &[
            ("name", "aws-good"),
            ("cloud", "aws"),
            (
                "role_arn",
                "arn:aws:iam::123456789012:role/keyward-secrets-reader",
            ),
            ("region", "us-east-1"),
            ("provider", "ignored for aws"),
            ("default_for_cloud", "on"),
            ("subject", "organization"),
            ("automations", ""),
        ],
    )
    .await;
    saved(
        &server,
        &owner,
        wi,
        &[
            ("name", "aws-wrong-sub"),
            ("cloud", "aws"),
            ("role_arn", "arn:aws:iam::123456789012:role/wrong-sub"),
            ("region", "us-east-1"),
            ("subject", "organization"),
        ],
    )
    .await;
    let gcp_provider = format!("{PROVIDERS}/keyward-provider");
    saved(
        &server,
        &owner,
        wi,
        &[
            ("name", "gcp-good"),
            ("cloud", "gcp"),
            ("provider", &gcp_provider),
            ("subject", "organization"),
        ],
    )
    .await;
    let (status, config) = api(
        &server,
        Method::GET,
        "/workload-identity-configs/aws-good",
        None,
    )
    .await;
    assert_eq!(status, 200, "{config}");
    assert_eq!(
        config["role_arn"],
        "arn:aws:iam::123456789012:role/keyward-secrets-reader"
    );
    assert_eq!(
        (
            config["default_for_cloud"].as_bool(),
            config["provider"].as_str()
        ),
        (Some(true), None)
    );
    let bad = post(
        &server,
        &owner,
        wi,
        &[
            ("name", "bad"),
            ("cloud", "aws"),
            ("role_arn", "arn:aws:iam::12:user/x"),
            ("region", "us-east-1"),
        ],
    )
    .await;
    assert_eq!(bad.status, 400, "{}", bad.body);
    assert!(
        bad.body.contains("class=\"flash error\"") && bad.body.contains("12 digits"),
        "{}",
        bad.body
    );
    // Editing: unticking the default is saved.
    let config_id = config["id"].as_str().unwrap().to_owned();
    let edit = get(&server, &owner, &format!("{wi}/{config_id}")).await;
    assert!(
        edit.body.contains("id=\"wi-edit\"") && edit.body.contains("keyward-secrets-reader"),
        "{}",
        edit.body
    );
    saved(
        &server,
        &owner,
        &format!("{wi}/{config_id}"),
        &[
            ("name", "aws-good"),
            (
                "role_arn",
                "arn:aws:iam::123456789012:role/keyward-secrets-reader",
            ),
            ("region", "us-east-1"),
            ("subject", "organization"),
        ],
    )
    .await;
    let (_, config) = api(
        &server,
        Method::GET,
        "/workload-identity-configs/aws-good",
        None,
    )
    .await;
    assert_eq!(config["default_for_cloud"], json!(false), "{config}");

    // LLM connection with Workload Identity; the API's `google/` model rule is shown as it words it.
    let llm = "/console/llm-connections";
    let vertex = [
        ("name", "vertex-main"),
        ("provider", "vertex"),
        ("auth", "workload_identity"),
        ("workload_identity_config", "gcp-good"),
        (
            "service_account_email",
            "crew-runner@keyward-demo.iam.gserviceaccount.com",
        ),
        ("env", "VERTEX_LOCATION=us-central1"),
    ];
    let mut wrong = vertex.to_vec();
    wrong.push(("model", "vertex_ai/gemini-2.0-flash"));
    let refused = post(&server, &owner, llm, &wrong).await;
    assert_eq!(refused.status, 400, "{}", refused.body);
    assert!(
        refused.body.contains("google/&#60;model-name&#62;"),
        "{}",
        refused.body
    );
    let mut right = vertex.to_vec();
    right.push(("model", "google/gemini-2.0-flash"));
    saved(&server, &owner, llm, &right).await;
    let (status, conn) = api(&server, Method::GET, "/llm-connections/vertex-main", None).await;
    assert_eq!(status, 200, "{conn}");
    assert_eq!(conn["workload_identity_config"], "gcp-good");
    assert_eq!(conn["model"], "google/gemini-2.0-flash");
    assert_eq!(conn["env"]["VERTEX_LOCATION"], "us-central1");
    // A `KEY=` line keeps the stored value.
    let conn_id = conn["id"].as_str().unwrap().to_owned();
    let mut kept = right.clone();
    kept[5] = ("env", "VERTEX_LOCATION=\nEXTRA=1");
    saved(&server, &owner, &format!("{llm}/{conn_id}"), &kept).await;
    let (_, conn) = api(&server, Method::GET, "/llm-connections/vertex-main", None).await;
    assert_eq!(
        conn["env"],
        json!({"VERTEX_LOCATION": "us-central1", "EXTRA": "1"}),
        "{conn}"
    );

    // Secret providers: two workload identity credentials and a static one.
    let sp = "/console/secret-providers";
    for (name, config) in [("aws-good", "aws-good"), ("aws-wrong-sub", "aws-wrong-sub")] {
        saved(
            &server,
            &owner,
            sp,
            &[
                ("name", name),
                ("provider", "aws_secrets_manager"),
                ("auth", "workload_identity"),
                ("workload_identity_config", config),
                ("region", "us-east-1"),
            ],
        )
        .await;
    }
    saved(
        &server,
        &owner,
        sp,
        &[
            ("name", "aws-static"),
            ("provider", "aws_secrets_manager"),
            ("auth", "static"),
            ("region", "us-east-1"),
            ("static_access_key_id", STATIC_KEY_ID),
            ("static_secret_access_key", STATIC_SECRET),
            ("static_tenant_id", ""),
        ],
    )
    .await;
    let (_, listed) = api(&server, Method::GET, "/secret-providers", None).await;
    let by_name = |name: &str| {
        listed
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("{name}: {listed}"))
            .clone()
    };
    assert_eq!(by_name("aws-static")["static_configured"], json!(true));
    assert_eq!(by_name("aws-good")["workload_identity_config"], "aws-good");
    let static_id = by_name("aws-static")["id"].as_str().unwrap().to_owned();
    // Edit with the credential fields blank keeps them; the page says they are set.
    let edit = get(&server, &owner, &format!("{sp}/{static_id}")).await;
    assert!(edit.body.contains("•••• set"), "{}", edit.body);
    saved(
        &server,
        &owner,
        &format!("{sp}/{static_id}"),
        &[
            ("name", "aws-static"),
            ("auth", "static"),
            ("region", "eu-west-1"),
            ("static_access_key_id", ""),
            ("static_secret_access_key", ""),
        ],
    )
    .await;
    let (_, after) = api(&server, Method::GET, "/secret-providers/aws-static", None).await;
    assert_eq!(
        (
            after["region"].as_str(),
            after["static_configured"].as_bool()
        ),
        (Some("eu-west-1"), Some(true)),
        "{after}"
    );

    // Test Connection: green, and red naming the failing step with code, cause and fix.
    let green = post(&server, &owner, &format!("{sp}/aws-good/test"), &[]).await;
    assert_eq!(green.status, 200, "{}", green.body);
    assert!(
        green.body.contains("class=\"test ok\"") && green.body.contains("passed"),
        "{}",
        green.body
    );
    assert!(!green.body.contains("step failed"), "{}", green.body);
    let red = post(&server, &owner, &format!("{sp}/aws-wrong-sub/test"), &[]).await;
    assert_eq!(red.status, 200, "{}", red.body);
    assert!(red.body.contains("class=\"test failed\""), "{}", red.body);
    assert!(
        red.body
            .contains("Test Connection failed at: AWS STS AssumeRoleWithWebIdentity"),
        "{}",
        red.body
    );
    for part in ["AccessDenied", "trust policy mismatch", "Fix:"] {
        assert!(red.body.contains(part), "{part}: {}", red.body);
    }

    // Autocomplete: secret names by prefix, as JSON for the datalist.
    let good_id = by_name("aws-good")["id"].as_str().unwrap().to_owned();
    let names = get(
        &server,
        &owner,
        &format!("{sp}/{good_id}/secrets?prefix=openai"),
    )
    .await;
    assert_eq!(names.status, 200, "{}", names.body);
    let names: Value = serde_json::from_str(&names.body).unwrap();
    assert_eq!(names["names"], json!(["openai-api-key"]), "{names}");

    // Environment variables: one from a secret provider, one direct secret, assigned.
    let env = "/console/environment-variables";
    let page = get(&server, &owner, env).await;
    assert!(
        page.body.contains("data-autocomplete=\"env-credential\"")
            && page.body.contains("<datalist id=\"env-secret-names\">"),
        "{}",
        page.body
    );
    saved(
        &server,
        &owner,
        env,
        &[
            ("key", "MODEL_API_KEY"),
            ("source", "credential"),
            ("credential", &good_id),
            ("secret_name", "openai-api-key"),
            ("value", ""),
        ],
    )
    .await;
    saved(
        &server,
        &owner,
        env,
        &[
            ("key", "DB_PASSWORD"),
            ("source", "direct"),
            ("value", DIRECT_SECRET),
            ("secret", "on"),
        ],
    )
    .await;
    let (_, vars) = api(&server, Method::GET, "/environment-variables", None).await;
    let var = |key: &str| {
        vars.as_array()
            .unwrap()
            .iter()
            .find(|v| v["key"] == key)
            .unwrap()
            .clone()
    };
    assert_eq!(
        (
            var("MODEL_API_KEY")["credential"].as_str(),
            var("MODEL_API_KEY")["secret_name"].as_str()
        ),
        (Some("aws-good"), Some("openai-api-key")),
        "{vars}"
    );
    assert_eq!(var("DB_PASSWORD")["value"], "********");
    // Editing with a blank value keeps the stored one (still set, still secret).
    let db_id = var("DB_PASSWORD")["id"].as_str().unwrap().to_owned();
    saved(
        &server,
        &owner,
        &format!("{env}/{db_id}"),
        &[
            ("key", "DB_PASSWORD"),
            ("source", "direct"),
            ("value", ""),
            ("secret", "on"),
        ],
    )
    .await;
    let (_, db) = api(
        &server,
        Method::GET,
        &format!("/environment-variables/{db_id}"),
        None,
    )
    .await;
    assert_eq!(db["value"], "********", "{db}");
    let (status, _) = api(
        &server,
        Method::POST,
        "/automations",
        Some(json!({"name": "nightly"})),
    )
    .await;
    assert_eq!(status, 201);
    let model_id = var("MODEL_API_KEY")["id"].as_str().unwrap().to_owned();
    let assign = get(
        &server,
        &owner,
        "/console/automations/nightly/environment-variables",
    )
    .await;
    assert_eq!(assign.status, 200, "{}", assign.body);
    saved(
        &server,
        &owner,
        "/console/automations/nightly/environment-variables",
        &[(&format!("var_{model_id}"), "on")],
    )
    .await;
    let (_, assigned) = api(
        &server,
        Method::GET,
        "/automations/nightly/environment-variables",
        None,
    )
    .await;
    assert_eq!(assigned.as_array().unwrap().len(), 1, "{assigned}");
    assert_eq!(assigned[0]["key"], "MODEL_API_KEY");

    // A crawl of these pages as the Owner: no secret value, no provider key.
    let mut pages = vec![
        wi.to_owned(),
        format!("{wi}/{config_id}"),
        llm.to_owned(),
        format!("{llm}/{conn_id}"),
        sp.to_owned(),
        format!("{sp}/{static_id}"),
        format!("{sp}/{good_id}"),
        env.to_owned(),
        format!("{env}/{db_id}"),
        "/console/automations/nightly/environment-variables".to_owned(),
    ];
    pages.push(format!("{env}/{model_id}"));
    for path in &pages {
        let page = get(&server, &owner, path).await;
        assert_eq!(page.status, 200, "{path}: {}", page.body);
        for secret in [STATIC_KEY_ID, STATIC_SECRET, DIRECT_SECRET] {
            assert!(!page.body.contains(secret), "{path} shows a secret");
        }
        assert!(
            !page.body.contains("style=") && !page.body.contains("<script>"),
            "{path}"
        );
    }

    // A Member sees no secret-provider page and is refused its URL and its actions.
    let bob = member_session(&server).await;
    let home = get(&server, &bob, "/console").await;
    assert!(
        !home.body.contains("/console/secret-providers"),
        "{}",
        home.body
    );
    for path in [
        sp.to_owned(),
        format!("{sp}/{good_id}"),
        format!("{sp}/{good_id}/secrets?prefix="),
    ] {
        assert_eq!(get(&server, &bob, &path).await.status, 403, "{path}");
    }
    let test = post(&server, &bob, &format!("{sp}/{good_id}/test"), &[]).await;
    assert_eq!(test.status, 403, "{}", test.body);
    drop(sim);
}
