//! Secrets Manager on the JSON 1.1 protocol: `GetSecretValue`, `ListSecrets` and
//! `PutSecretValue`, each signed with SigV4 and allowed by the caller's identity policies.

use std::collections::BTreeMap;

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};

use crate::aws::caller::{caller_arn, signed_session};
use crate::aws::policy::{allowed, policies_of};
use crate::aws::types::AwsSecret;
use crate::sim::{Sim, random_string};
use crate::state::{AwsPolicyStatement, AwsState};
use crate::version::Version;
use crate::wire::{Req, json_response};

fn sm_error(code: &str, message: impl Into<String>) -> Response {
    json_response(
        StatusCode::BAD_REQUEST,
        json!({"__type": code, "message": message.into()}),
    )
}

/// One signed call: the account, and the caller with the policies it holds.
struct Call<'a> {
    sim: &'a Sim,
    aws: &'a AwsState,
    policies: &'a [AwsPolicyStatement],
    caller: String,
}

impl Call<'_> {
    /// AWS's denial unless the caller's policies allow `secretsmanager:<action>` on `resource`.
    fn authorize(&self, action: &str, resource: &str) -> Result<(), Response> {
        if allowed(self.policies, &format!("secretsmanager:{action}"), resource) {
            return Ok(());
        }
        Err(sm_error(
            "AccessDeniedException",
            format!(
                "User: {} is not authorized to perform: secretsmanager:{action} on resource: {resource} because no identity-based policy allows the secretsmanager:{action} action",
                self.caller
            ),
        ))
    }
}

/// `POST /` with `X-Amz-Target: secretsmanager.<Op>`.
pub async fn serve(sim: &Sim, req: &Req) -> Response {
    let Some(aws) = &sim.state.file.aws else {
        return sm_error(
            "UnrecognizedClientException",
            "The security token included in the request is invalid.",
        );
    };
    let session = match signed_session(sim, req, "secretsmanager", Some(aws.region.get_ref())) {
        Ok(s) => s,
        Err((code, message)) => return sm_error(code, message),
    };
    let op = req
        .header("x-amz-target")
        .and_then(|t| t.strip_prefix("secretsmanager."))
        .unwrap_or_default()
        .to_owned();
    let body: Value = match serde_json::from_slice(&req.body) {
        Ok(v) => v,
        Err(_) => {
            return sm_error(
                "SerializationException",
                "The request body is not valid JSON.",
            );
        }
    };
    let Some(policies) = policies_of(aws, &session) else {
        return sm_error(
            "UnrecognizedClientException",
            "The security token included in the request is invalid.",
        );
    };
    let call = Call {
        sim,
        aws,
        policies,
        caller: caller_arn(aws.account_id.get_ref(), &session),
    };
    let answer = match op.as_str() {
        "GetSecretValue" => get_secret_value(&call, &body),
        "ListSecrets" => list_secrets(&call, &body),
        "PutSecretValue" => put_secret_value(&call, &body),
        other => Err(sm_error(
            "UnknownOperationException",
            format!("Unknown operation {other}"),
        )),
    };
    answer.unwrap_or_else(|r| r)
}

fn get_secret_value(call: &Call, body: &Value) -> Result<Response, Response> {
    let Some(id) = body.get("SecretId").and_then(Value::as_str) else {
        return Err(sm_error(
            "InvalidParameterException",
            "SecretId is required.",
        ));
    };
    let m = call.sim.lock();
    let found = find_secret(&m.aws_secrets, id);
    // IAM judges a missing secret by the ARN its name would have, so a role allowed
    // `secret:*` learns it is missing while a narrower one is denied.
    let resource = match found {
        Some((_, s)) => s.arn.clone(),
        None if id.starts_with("arn:") => id.to_owned(),
        None => format!(
            "arn:aws:secretsmanager:{}:{}:secret:{id}",
            call.aws.region.get_ref(),
            call.aws.account_id.get_ref()
        ),
    };
    call.authorize("GetSecretValue", &resource)?;
    let Some((name, secret)) = found else {
        return Err(sm_error(
            "ResourceNotFoundException",
            "Secrets Manager can't find the specified secret.",
        ));
    };
    let wanted = body.get("VersionId").and_then(Value::as_str);
    let version = match wanted {
        None => secret.versions.last(),
        Some(v) => secret.versions.iter().find(|x| x.id == v),
    };
    let Some(version) = version else {
        return Err(sm_error(
            "ResourceNotFoundException",
            "Secrets Manager can't find the specified secret value for VersionId.",
        ));
    };
    Ok(json_response(
        StatusCode::OK,
        json!({"ARN": secret.arn, "Name": name, "VersionId": version.id, "SecretString": version.value,
               "VersionStages": ["AWSCURRENT"], "CreatedDate": version.created as f64}),
    ))
}

fn list_secrets(call: &Call, body: &Value) -> Result<Response, Response> {
    call.authorize("ListSecrets", "*")?;
    let prefix = body
        .get("Filters")
        .and_then(Value::as_array)
        .and_then(|fs| {
            fs.iter()
                .find(|f| f.get("Key").and_then(Value::as_str) == Some("name"))
        })
        .and_then(|f| f.get("Values")?.as_array()?.first()?.as_str())
        .unwrap_or("")
        .to_owned();
    let max = body
        .get("MaxResults")
        .and_then(Value::as_u64)
        .unwrap_or(100)
        .clamp(1, 100) as usize;
    let start = body
        .get("NextToken")
        .and_then(Value::as_str)
        .and_then(|t| t.parse::<usize>().ok())
        .unwrap_or(0);
    let m = call.sim.lock();
    let all: Vec<(&String, &AwsSecret)> = m
        .aws_secrets
        .iter()
        .filter(|(n, _)| n.starts_with(&prefix))
        .collect();
    let list: Vec<Value> = all
        .iter()
        .skip(start)
        .take(max)
        .map(|(n, s)| json!({"ARN": s.arn, "Name": n, "LastChangedDate": s.versions.last().map(|v| v.created).unwrap_or(0) as f64}))
        .collect();
    let mut out = json!({"SecretList": list});
    if start + max < all.len() {
        out["NextToken"] = json!((start + max).to_string());
    }
    Ok(json_response(StatusCode::OK, out))
}

fn put_secret_value(call: &Call, body: &Value) -> Result<Response, Response> {
    let (Some(id), Some(value)) = (
        body.get("SecretId").and_then(Value::as_str),
        body.get("SecretString").and_then(Value::as_str),
    ) else {
        return Err(sm_error(
            "InvalidParameterException",
            "SecretId and SecretString are required.",
        ));
    };
    let resource = find_secret(&call.sim.lock().aws_secrets, id)
        .map(|(_, s)| s.arn.clone())
        .unwrap_or_else(|| id.to_owned());
    call.authorize("PutSecretValue", &resource)?;
    match put_value(call.sim, id, value.to_owned(), false) {
        Some((arn, name, version)) => Ok(json_response(
            StatusCode::OK,
            json!({"ARN": arn, "Name": name, "VersionId": version.id, "VersionStages": ["AWSCURRENT"]}),
        )),
        None => Err(sm_error(
            "ResourceNotFoundException",
            "Secrets Manager can't find the specified secret.",
        )),
    }
}

/// A secret by name, full ARN, or partial ARN (without the random suffix), as AWS accepts.
fn find_secret<'a>(
    secrets: &'a BTreeMap<String, AwsSecret>,
    id: &str,
) -> Option<(&'a String, &'a AwsSecret)> {
    secrets.iter().find(|(name, s)| {
        name.as_str() == id
            || s.arn == id
            || s.arn
                .rsplit_once('-')
                .is_some_and(|(partial, _)| partial == id)
    })
}

/// Adds a version; with `create`, an unknown name becomes a new secret (the admin endpoint).
pub fn put_value(
    sim: &Sim,
    id: &str,
    value: String,
    create: bool,
) -> Option<(String, String, Version)> {
    let aws = sim.state.file.aws.as_ref()?;
    let now = sim.now();
    let version = Version {
        id: uuid::Uuid::new_v4().to_string(),
        value,
        created: now,
    };
    let mut m = sim.lock();
    let name = match find_secret(&m.aws_secrets, id) {
        Some((name, _)) => name.clone(),
        None if create => {
            let arn = format!(
                "arn:aws:secretsmanager:{}:{}:secret:{id}-{}",
                aws.region.get_ref(),
                aws.account_id.get_ref(),
                random_string(6)
            );
            m.aws_secrets.insert(
                id.to_owned(),
                AwsSecret {
                    arn,
                    versions: Vec::new(),
                },
            );
            id.to_owned()
        }
        None => return None,
    };
    let secret = m.aws_secrets.get_mut(&name)?;
    secret.versions.push(version.clone());
    Some((secret.arn.clone(), name, version))
}
