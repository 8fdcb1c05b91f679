//! AWS SigV4 on the outgoing request (Bedrock and any other AWS API behind a route).
//!
//! Signed: the method, the path and query as they go upstream, `host` (written into the request so
//! the upstream sees exactly the signed value), `content-type` and any `x-amz-*` header the caller
//! sent, and the body's SHA-256. Nothing else: hop-by-hop and proxy headers may change on the way
//! without breaking the signature.

use std::time::SystemTime;

use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use http::header::{AUTHORIZATION, HOST};
use http::{HeaderName, HeaderValue};
use keyward_cloud::aws::SessionCredentials;

/// Signs `request` (whose caller credentials were stripped) with `credentials` for `service` in
/// `region` at `now`. The error says what could not be signed (never a key).
pub fn sign_request(
    request: &mut http::request::Parts,
    body: &[u8],
    credentials: &SessionCredentials,
    service: &str,
    region: &str,
    now: SystemTime,
) -> Result<(), String> {
    let host = match request.headers.get(HOST) {
        Some(h) => h
            .to_str()
            .map_err(|_| "the Host header is not text".to_owned())?
            .to_owned(),
        None => request
            .uri
            .authority()
            .map(|a| a.as_str().to_owned())
            .ok_or_else(|| {
                "the outgoing request has neither a Host header nor an absolute URI".to_owned()
            })?,
    };
    // Signatures a caller or an earlier signer left would be signed over; they go.
    for name in ["x-amz-date", "x-amz-security-token", "x-amz-content-sha256"] {
        request.headers.remove(name);
    }
    request.headers.remove(AUTHORIZATION);
    let path_and_query = request
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "/".to_owned());
    let mut signed: Vec<(String, String)> = vec![("host".into(), host.clone())];
    for (name, value) in &request.headers {
        let name = name.as_str();
        if name == "content-type" || name.starts_with("x-amz-") {
            let value = value
                .to_str()
                .map_err(|_| format!("the {name} header is not text"))?;
            signed.push((name.to_owned(), value.to_owned()));
        }
    }
    let identity = aws_credential_types::Credentials::new(
        credentials.access_key_id.clone(),
        credentials.secret_access_key.expose().to_owned(),
        credentials
            .session_token
            .as_ref()
            .map(|t| t.expose().to_owned()),
        None,
        "keyward-gateway",
    )
    .into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(service)
        .time(now)
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| format!("SigV4 parameters: {e}"))?
        .into();
    let url = format!("https://{host}{path_and_query}");
    let signable = SignableRequest::new(
        request.method.as_str(),
        url.as_str(),
        signed.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        SignableBody::Bytes(body),
    )
    .map_err(|e| format!("SigV4 request: {e}"))?;
    let (instructions, _) = sign(signable, &params)
        .map_err(|e| format!("SigV4 signing failed: {e}"))?
        .into_parts();
    let (headers, _) = instructions.into_parts();
    let host_value = HeaderValue::from_str(&host)
        .map_err(|_| "the Host value is not a header value".to_owned())?;
    request.headers.insert(HOST, host_value);
    for header in headers {
        let name = HeaderName::from_bytes(header.name().as_bytes())
            .map_err(|e| format!("SigV4 header name: {e}"))?;
        let mut value = HeaderValue::from_str(header.value())
            .map_err(|e| format!("SigV4 header value: {e}"))?;
        if header.sensitive() {
            value.set_sensitive(true);
        }
        request.headers.insert(name, value);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use keyward_cloud::Secret;

    use super::*;

    fn credentials() -> SessionCredentials {
        SessionCredentials {
            access_key_id: "ASIAEXAMPLE".into(),
            secret_access_key: Secret::new("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
            session_token: Some(Secret::new("session-token-example")),
            expiration: "2030-01-01T00:00:00Z".into(),
            assumed_role_arn: "arn:aws:sts::123456789012:assumed-role/r/s".into(),
        }
    }

    #[test]
    fn the_signature_covers_host_path_and_body_and_replaces_a_callers_signature() {
        let (mut parts, ()) = http::Request::post("http://127.0.0.1:9/model/m/invoke?x=1")
            .header("content-type", "application/json")
            .header("x-amz-date", "20000101T000000Z")
            .header("x-forwarded-for", "10.0.0.1")
            .body(())
            .unwrap()
            .into_parts();
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        sign_request(
            &mut parts,
            b"{}",
            &credentials(),
            "bedrock",
            "eu-west-1",
            now,
        )
        .unwrap();
        let auth = parts.headers["authorization"].to_str().unwrap().to_owned();
        assert!(
            auth.starts_with(
                "AWS4-HMAC-SHA256 Credential=ASIAEXAMPLE/20231114/eu-west-1/bedrock/aws4_request"
            ),
            "{auth}"
        );
        assert!(
            auth.contains("SignedHeaders=content-type;host;x-amz-date;x-amz-security-token"),
            "{auth}"
        );
        assert_eq!(parts.headers["host"], "127.0.0.1:9");
        assert_eq!(parts.headers["x-amz-date"], "20231114T221320Z");
        assert_eq!(
            parts.headers["x-amz-security-token"],
            "session-token-example"
        );
        assert!(
            parts.headers["authorization"].is_sensitive()
                || parts.headers["x-amz-security-token"].is_sensitive()
        );
        // Another body gives another signature.
        let (mut other, ()) = http::Request::post("http://127.0.0.1:9/model/m/invoke?x=1")
            .header("content-type", "application/json")
            .body(())
            .unwrap()
            .into_parts();
        sign_request(
            &mut other,
            b"{ }",
            &credentials(),
            "bedrock",
            "eu-west-1",
            now,
        )
        .unwrap();
        assert_ne!(
            other.headers["authorization"],
            parts.headers["authorization"]
        );
    }
}
