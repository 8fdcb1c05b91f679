//! Amazon Bedrock `InvokeModel` (`POST /model/<model id>/invoke`): SigV4 for service `bedrock` in
//! the account's region, verified with the same checker as every other AWS endpoint, then the
//! caller's identity policies for `bedrock:InvokeModel` on the foundation model. Answers with a
//! canned completion naming the caller.

use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;
use serde_json::{Value, json};

use crate::aws::caller::{caller_arn, signed_session};
use crate::aws::policy::{allowed, policies_of};
use crate::sim::Sim;
use crate::wire::{Req, json_response};

/// Bedrock's REST error: the status, `x-amzn-ErrorType` and `{"message": …}`.
fn error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    let mut response = json_response(status, json!({"message": message.into()}));
    if let Ok(v) = HeaderValue::from_str(&format!(
        "{code}:http://internal.amazon.com/coral/com.amazon.bedrock/"
    )) {
        response.headers_mut().insert("x-amzn-errortype", v);
    }
    response
}

fn status_of(code: &str) -> StatusCode {
    match code {
        "AccessDeniedException" => StatusCode::FORBIDDEN,
        "ExpiredTokenException" | "UnrecognizedClientException" => StatusCode::FORBIDDEN,
        "InvalidSignatureException" | "MissingAuthenticationTokenException" => {
            StatusCode::FORBIDDEN
        }
        _ => StatusCode::BAD_REQUEST,
    }
}

/// `POST /model/<model id>/invoke`
pub async fn serve(sim: &Sim, req: &Req) -> Response {
    let rest = req.path.trim_start_matches("/model/");
    let Some(model) = rest
        .strip_suffix("/invoke")
        .filter(|m| !m.is_empty() && !m.contains('/'))
    else {
        return error(
            StatusCode::NOT_FOUND,
            "UnknownOperationException",
            format!(
                "cloudsim's Bedrock serves POST /model/<model id>/invoke, not {} {}",
                req.method, req.path
            ),
        );
    };
    if req.method != "POST" {
        return error(
            StatusCode::METHOD_NOT_ALLOWED,
            "UnknownOperationException",
            "InvokeModel is POST",
        );
    }
    let model = percent_encoding::percent_decode_str(model)
        .decode_utf8_lossy()
        .into_owned();
    let Some(aws) = &sim.state.file.aws else {
        return error(
            StatusCode::FORBIDDEN,
            "UnrecognizedClientException",
            "The security token included in the request is invalid.",
        );
    };
    let region = aws.region.get_ref();
    let session = match signed_session(sim, req, "bedrock", Some(region)) {
        Ok(s) => s,
        Err((code, message)) => return error(status_of(code), code, message),
    };
    let caller = caller_arn(aws.account_id.get_ref(), &session);
    let Some(policies) = policies_of(aws, &session) else {
        return error(
            StatusCode::FORBIDDEN,
            "UnrecognizedClientException",
            "The security token included in the request is invalid.",
        );
    };
    let resource = format!("arn:aws:bedrock:{region}::foundation-model/{model}");
    if !allowed(policies, "bedrock:InvokeModel", &resource) {
        return error(
            StatusCode::FORBIDDEN,
            "AccessDeniedException",
            format!(
                "User: {caller} is not authorized to perform: bedrock:InvokeModel on resource: {resource} because no identity-based policy allows the bedrock:InvokeModel action"
            ),
        );
    }
    if serde_json::from_slice::<Value>(&req.body).is_err() {
        return error(
            StatusCode::BAD_REQUEST,
            "ValidationException",
            "Malformed input request, please reformat your input and try again.",
        );
    }
    json_response(
        StatusCode::OK,
        json!({
            "outputText": format!("cloudsim {model} answered {caller}"),
            "caller": caller,
            "model": model,
        }),
    )
}
