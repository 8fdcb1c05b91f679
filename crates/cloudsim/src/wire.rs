//! The HTTP plumbing every simulated cloud shares: the request read whole, form fields, JSON and
//! XML answers, and the failures the fault knobs inject (a dropped connection, a transient error
//! in the shape of the endpoint's cloud).

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// The namespace of STS answers, errors included.
pub const STS_NS: &str = "https://sts.amazonaws.com/doc/2011-06-15/";

/// One request, read whole: every simulated endpoint needs at most a small body.
pub struct Req {
    pub method: Method,
    pub path: String,
    pub query: Vec<(String, String)>,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Req {
    pub fn query(&self, key: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn form(&self) -> Vec<(String, String)> {
        form_urlencoded::parse(&self.body).into_owned().collect()
    }

    pub fn bearer(&self) -> Option<&str> {
        let v = self.header("authorization")?;
        let (scheme, token) = v.split_once(' ')?;
        scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
    }
}

pub fn form_get<'a>(form: &'a [(String, String)], key: &str) -> Option<&'a str> {
    form.iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty())
}

pub fn json_response(status: StatusCode, body: Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
        body.to_string(),
    )
        .into_response()
}

pub fn xml_response(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, "text/xml")], body).into_response()
}

/// A response whose body fails at once: the client sees the connection close mid-answer.
pub fn dropped() -> Response {
    let stream = futures_util::stream::once(async {
        Err::<Bytes, std::io::Error>(std::io::Error::new(
            std::io::ErrorKind::ConnectionAborted,
            "cloudsim: dropped connection (fault knob)",
        ))
    });
    let mut resp = Response::new(Body::from_stream(stream));
    resp.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    resp
}

/// An injected transient failure in the shape the endpoint's cloud uses for it.
pub fn injected_failure(endpoint: &str, status: u16, retry_after: Option<u64>) -> Response {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    let throttled = code == StatusCode::TOO_MANY_REQUESTS;
    let mut resp = match endpoint.split('.').next() {
        Some("gcp") => json_response(
            code,
            json!({"error": {"code": status, "message": if throttled { "Quota exceeded (cloudsim fault knob)." } else { "The service is currently unavailable (cloudsim fault knob)." },
                   "status": if throttled { "RESOURCE_EXHAUSTED" } else { "UNAVAILABLE" }}}),
        ),
        Some("azure") if endpoint == "azure.keyvault" => json_response(
            code,
            json!({"error": {"code": if throttled { "Throttled" } else { "ServiceUnavailable" }, "message": "cloudsim fault knob"}}),
        ),
        Some("azure") => json_response(
            code,
            json!({"error": "temporarily_unavailable", "error_description": "AADSTS90033: A transient error has occurred. Please try again. (cloudsim fault knob)", "error_codes": [90033]}),
        ),
        _ if endpoint == "aws.secretsmanager" => json_response(
            code,
            json!({"__type": if throttled { "ThrottlingException" } else { "InternalServiceError" }, "message": "cloudsim fault knob"}),
        ),
        _ => xml_response(
            code,
            error_xml(
                if throttled {
                    "Throttling"
                } else {
                    "ServiceUnavailable"
                },
                "cloudsim fault knob",
                "Receiver",
            ),
        ),
    };
    if let Some(secs) = retry_after.or(throttled.then_some(1))
        && let Ok(v) = HeaderValue::from_str(&secs.to_string())
    {
        resp.headers_mut().insert(header::RETRY_AFTER, v);
    }
    resp
}

/// XML text escaping for the AWS query protocol's answers.
pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

/// The query protocol's error document, which STS answers with (and so do injected failures on
/// AWS endpoints that speak it).
pub fn error_xml(code: &str, message: &str, kind: &str) -> String {
    format!(
        "<ErrorResponse xmlns=\"{STS_NS}\">\n  <Error>\n    <Type>{kind}</Type>\n    <Code>{}</Code>\n    <Message>{}</Message>\n  </Error>\n  <RequestId>{}</RequestId>\n</ErrorResponse>\n",
        esc(code),
        esc(message),
        uuid::Uuid::new_v4()
    )
}
