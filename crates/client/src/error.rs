//! `ClientError`: what can go wrong between a caller and Keyward, with the server's refusal typed.

use std::path::PathBuf;

use keyward_core::api::v1::ErrorBody;
use keyward_core::error_chain::root_cause;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    // The causes are named `error`, not `source`: the sentence already carries them, and a
    // `source` would print them twice in an `{:#}` chain.
    #[error("cannot read KEYWARD_CA_FILE {}: {error}", .path.display())]
    CaFile {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("KEYWARD_CA_FILE {} is not PEM certificates: {error}", .path.display())]
    CaPem {
        path: PathBuf,
        error: reqwest::Error,
    },
    #[error(
        "KEYWARD_URL {url:?} is not a URL ({message}); use the server's address, e.g. https://127.0.0.1:8443"
    )]
    Url { url: String, message: String },
    #[error("cannot build the HTTPS client: {0}")]
    Build(reqwest::Error),
    /// No answer: connection, TLS or timeout. `cause` is the innermost error, the one that says why.
    #[error("cannot reach Keyward at {url}: {cause}")]
    Unreachable { url: String, cause: String },
    /// Keyward refused with its error body.
    #[error("{status} ({code}{}): {message}", .field.as_deref().map(|f| format!(", field {f}")).unwrap_or_default())]
    Api {
        status: u16,
        code: String,
        message: String,
        field: Option<String>,
    },
    /// Not a success and not Keyward's error body (a proxy's page, a redirect).
    #[error("{method} {url} answered {status}: {body}")]
    Refused {
        method: String,
        url: String,
        status: u16,
        body: String,
    },
    /// A success whose body is not the expected type.
    #[error("{url} answered something unexpected: {error}")]
    Decode {
        url: String,
        error: serde_json::Error,
    },
}

impl ClientError {
    /// The HTTP status of a refusal; `None` when there was no answer.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Api { status, .. } | ClientError::Refused { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// A non-success answer as an error: Keyward's body when it is one, the raw text otherwise.
    pub(crate) fn refusal(method: &str, url: &str, status: u16, text: &str) -> ClientError {
        match serde_json::from_str::<ErrorBody>(text) {
            Ok(body) => ClientError::Api {
                status,
                code: body.error,
                message: body.message,
                field: body.field,
            },
            Err(_) => ClientError::Refused {
                method: method.to_owned(),
                url: url.to_owned(),
                status,
                body: text.to_owned(),
            },
        }
    }

    pub(crate) fn unreachable(url: &str, e: &reqwest::Error) -> ClientError {
        ClientError::Unreachable {
            url: url.to_owned(),
            cause: with_ca_hint(root_cause(e)),
        }
    }
}

/// A self-signed server's certificate fails with rustls's bare `UnknownIssuer`; a newcomer needs
/// the setting and the file.
fn with_ca_hint(cause: String) -> String {
    if cause.contains("UnknownIssuer") || cause.contains("unknown issuer") {
        format!(
            "{cause}; Keyward's certificate is not signed by a trusted CA: set KEYWARD_CA_FILE (or --ca-file) to the server's CA, <data-dir>/tls/ca.pem (the server's banner prints it as \"TLS CA certificate:\")"
        )
    } else {
        cause
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_issuer_names_the_ca_setting_and_file() {
        let hinted = with_ca_hint("invalid peer certificate: UnknownIssuer".into());
        assert!(hinted.contains("KEYWARD_CA_FILE"), "{hinted}");
        assert!(hinted.contains("tls/ca.pem"), "{hinted}");
        assert_eq!(
            with_ca_hint("Connection refused".into()),
            "Connection refused"
        );
    }

    #[test]
    fn an_error_body_becomes_a_typed_api_error() {
        let e = ClientError::refusal(
            "POST",
            "https://k/api/v1/x",
            400,
            r#"{"error":"invalid_request","message":"provider must name a project NUMBER","field":"provider"}"#,
        );
        match &e {
            ClientError::Api {
                status,
                code,
                message,
                field,
            } => {
                assert_eq!(*status, 400);
                assert_eq!(code, "invalid_request");
                assert_eq!(message, "provider must name a project NUMBER");
                assert_eq!(field.as_deref(), Some("provider"));
            }
            other => panic!("not an API error: {other:?}"),
        }
        assert_eq!(
            e.to_string(),
            "400 (invalid_request, field provider): provider must name a project NUMBER"
        );
        assert_eq!(e.status(), Some(400));
    }

    #[test]
    fn an_error_body_without_a_field_says_code_and_message() {
        let e = ClientError::refusal(
            "GET",
            "https://k/api/v1/automations/ghost",
            404,
            r#"{"error":"not_found","message":"no such automation"}"#,
        );
        assert_eq!(e.to_string(), "404 (not_found): no such automation");
    }

    #[test]
    fn any_other_refusal_keeps_the_raw_answer() {
        let e = ClientError::refusal("GET", "https://k/x", 502, "<html>bad gateway</html>");
        assert!(matches!(e, ClientError::Refused { status: 502, .. }));
        assert_eq!(
            e.to_string(),
            "GET https://k/x answered 502: <html>bad gateway</html>"
        );
        let redirect = ClientError::refusal("GET", "https://k/x", 307, "");
        assert_eq!(redirect.status(), Some(307));
    }

    #[test]
    fn no_answer_has_no_status() {
        let e = ClientError::Unreachable {
            url: "https://k".into(),
            cause: "connection refused".into(),
        };
        assert_eq!(e.status(), None);
        assert_eq!(
            e.to_string(),
            "cannot reach Keyward at https://k: connection refused"
        );
    }
}
