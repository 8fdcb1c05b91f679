//! Test Connection and secret-name autocomplete for a secret provider credential, in the console:
//! the same handshake and listing as `/api/v1/secret-providers/{id}/test` and `/secrets`
//! (`domain::sessions`), shown as steps — each with the provider's code, cause and fix.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use keyward_core::secrets::AuthKind;
use serde::Deserialize;
use serde_json::{Value, json};

use super::cloud::given;
use super::guard::Ctx;
use super::render::{Flash, security_headers};
use super::secret_providers::{StepView, TestView, form_for, providers_page};
use crate::domain::secret_providers::find_secret_provider;
use crate::domain::sessions::{Listing, handshake, list_names};
use crate::error::ApiError;
use crate::state::AppState;

const HANDSHAKE_ONLY: &str = "A passing test proves the federation handshake (issuer, subject and audience accepted, the identity reachable); it does not prove per-secret permissions, which are exercised when a variable resolves at kickoff.";
const STATIC_ONLY: &str = "A passing test proves the static credentials authenticate (one authenticated call); it does not prove per-secret permissions, which are exercised when the automation is registered or redeployed.";

fn field(step: &Value, name: &str) -> String {
    step[name].as_str().unwrap_or_default().to_owned()
}

fn step_view(step: &Value) -> StepView {
    let ok = step["ok"].as_bool().unwrap_or(false);
    StepView {
        step: field(step, "step"),
        ok,
        detail: if ok {
            field(step, "detail")
        } else {
            field(step, "message")
        },
        code: field(step, "code"),
        cause: field(step, "cause"),
        fix: field(step, "fix"),
    }
}

/// `POST /console/secret-providers/{id}/test`: the credential's page with each step's outcome.
pub async fn test(
    State(app): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let fields = super::form_fields(&body);
    let automation = given(&fields, "automation");
    let tested = async {
        let row = find_secret_provider(&app, ctx.caller.org()?.id, &id).await?;
        let done = handshake(&app, &ctx.caller, &row, automation.as_deref()).await?;
        let ok = done.session.is_some();
        let hint = (!ok && app.cloud_endpoints.is_none()).then(|| {
            "this server talks to the real clouds; set KEYWARD_CLOUD_ENDPOINTS on the server to use the simulator".to_owned()
        });
        Ok::<_, ApiError>(TestView {
            credential: row.name.clone(),
            ok,
            steps: done.steps.iter().map(step_view).collect(),
            note: if AuthKind::parse(&row.auth) == Ok(AuthKind::Static) {
                STATIC_ONLY
            } else {
                HANDSHAKE_ONLY
            },
            hint,
        })
    };
    let (flash, status, test) = match tested.await {
        Ok(t) if t.ok => (
            Flash::ok("Test Connection passed."),
            StatusCode::OK,
            Some(t),
        ),
        Ok(t) => {
            let failed = t
                .steps
                .iter()
                .find(|s| !s.ok)
                .map_or("a step", |s| s.step.as_str());
            (
                Flash::error(format!("Test Connection failed at: {failed}.")),
                StatusCode::OK,
                Some(t),
            )
        }
        Err(e) => {
            let (status, message) = e.status_and_message();
            (Flash::error(message), status, None)
        }
    };
    providers_page(&app, &ctx, flash, status, test, |l| form_for(l, &id)).await
}

#[derive(Deserialize)]
pub struct SecretsQuery {
    #[serde(default)]
    prefix: String,
}

/// `GET /console/secret-providers/{id}/secrets?prefix=`: `{"names": [...]}` (and a `hint` when
/// the provider refused) for the secret-name `<datalist>`.
pub async fn secrets(
    State(app): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    Query(query): Query<SecretsQuery>,
) -> Response {
    let listed = async {
        let row = find_secret_provider(&app, ctx.caller.org()?.id, &id).await?;
        let done = handshake(&app, &ctx.caller, &row, None).await?;
        match done.session {
            Some(session) => list_names(&app, &row, session, &query.prefix).await,
            None => Ok(Listing::Failed(
                done.steps.last().cloned().unwrap_or(Value::Null),
            )),
        }
    };
    let mut response = match listed.await {
        Ok(Listing::Names(names)) => Json(json!({"names": names})).into_response(),
        Ok(Listing::Failed(step)) => {
            let s = step_view(&step);
            let hint = if s.code.is_empty() {
                s.detail
            } else {
                format!("{}: {}. Fix: {}", s.code, s.cause, s.fix)
            };
            Json(json!({"names": [], "hint": hint})).into_response()
        }
        Ok(Listing::Hint(hint)) => Json(json!({"names": [], "hint": hint})).into_response(),
        Err(e) => {
            let (status, message) = e.status_and_message();
            (status, Json(json!({"names": [], "error": message}))).into_response()
        }
    };
    security_headers(&mut response);
    response
}
