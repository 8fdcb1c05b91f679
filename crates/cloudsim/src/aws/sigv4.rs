//! Server-side check of AWS Signature Version 4. The signing crates only sign, so the canonical
//! request is rebuilt here from the request as received; the tests check it against two
//! independent signers (the `aws-sigv4` crate through Keyward's client, and botocore).

use aws_lc_rs::{digest, hmac};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use crate::wire::Req;

/// Characters SigV4 leaves unencoded: `A-Z a-z 0-9 - _ . ~`.
const SIGV4: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');
/// How far `X-Amz-Date` may be from the server's clock.
const MAX_DATE_SKEW: i64 = 15 * 60;

#[derive(Debug, PartialEq, Eq)]
pub enum SigError {
    /// No or unparsable `Authorization` header.
    Missing(String),
    /// The scope names another service or a region this endpoint does not serve.
    Scope(String),
    /// The date is too far from now.
    Expired(String),
    /// Unknown access key id (`InvalidClientTokenId` / `UnrecognizedClientException`).
    UnknownKey,
    Mismatch,
}

pub struct Parsed {
    pub access_key_id: String,
    pub date: String,
    pub region: String,
    pub service: String,
    pub signed_headers: Vec<String>,
    pub signature: String,
}

pub fn parse_authorization(req: &Req) -> Result<Parsed, SigError> {
    let header = req
        .header("authorization")
        .ok_or_else(|| SigError::Missing("Request is missing Authentication Token".into()))?;
    let rest = header.strip_prefix("AWS4-HMAC-SHA256 ").ok_or_else(|| {
        SigError::Missing("Authorization header must use AWS4-HMAC-SHA256".into())
    })?;
    let mut credential = None;
    let mut signed = None;
    let mut signature = None;
    for part in rest.split(',') {
        let (k, v) = part.trim().split_once('=').unwrap_or(("", ""));
        match k {
            "Credential" => credential = Some(v),
            "SignedHeaders" => signed = Some(v),
            "Signature" => signature = Some(v),
            _ => {}
        }
    }
    let (Some(credential), Some(signed), Some(signature)) = (credential, signed, signature) else {
        return Err(SigError::Missing(
            "Authorization header requires 'Credential', 'SignedHeaders' and 'Signature'".into(),
        ));
    };
    let parts: Vec<&str> = credential.split('/').collect();
    let [akid, date, region, service, "aws4_request"] = parts.as_slice() else {
        return Err(SigError::Missing(format!(
            "Credential should be scoped to a valid region, not '{credential}'"
        )));
    };
    Ok(Parsed {
        access_key_id: akid.to_string(),
        date: date.to_string(),
        region: region.to_string(),
        service: service.to_string(),
        signed_headers: signed.split(';').map(str::to_owned).collect(),
        signature: signature.to_owned(),
    })
}

/// Verifies `parsed` against the request with `secret`; `now` in unix seconds.
pub fn verify(req: &Req, parsed: &Parsed, secret: &str, now: i64) -> Result<(), SigError> {
    let amz_date = req
        .header("x-amz-date")
        .ok_or_else(|| SigError::Missing("Request is missing the X-Amz-Date header".into()))?;
    let when = time::PrimitiveDateTime::parse(
        amz_date,
        time::macros::format_description!("[year][month][day]T[hour][minute][second]Z"),
    )
    .map_err(|_| SigError::Missing(format!("X-Amz-Date '{amz_date}' is not YYYYMMDDTHHMMSSZ")))?
    .assume_utc()
    .unix_timestamp();
    if (now - when).abs() > MAX_DATE_SKEW {
        return Err(SigError::Expired(format!(
            "Signature expired: {amz_date} is now earlier or later than 15 minutes from the server time."
        )));
    }
    if !amz_date.starts_with(&parsed.date) {
        return Err(SigError::Scope(format!(
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '{}' != '{}'",
            parsed.date,
            &amz_date[..8.min(amz_date.len())]
        )));
    }
    if !parsed.signed_headers.iter().any(|h| h == "host") {
        return Err(SigError::Missing("'Host' must be a signed header".into()));
    }
    let canonical = canonical_request(req, &parsed.signed_headers);
    let scope = format!(
        "{}/{}/{}/aws4_request",
        parsed.date, parsed.region, parsed.service
    );
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        hex::encode(digest::digest(&digest::SHA256, canonical.as_bytes()))
    );
    let mut key = hmac_sha256(format!("AWS4{secret}").as_bytes(), parsed.date.as_bytes());
    for part in [
        parsed.region.as_str(),
        parsed.service.as_str(),
        "aws4_request",
    ] {
        key = hmac_sha256(&key, part.as_bytes());
    }
    let expected = hex::encode(hmac_sha256(&key, string_to_sign.as_bytes()));
    let provided = parsed.signature.as_bytes();
    if expected.len() == provided.len()
        && aws_lc_rs::constant_time::verify_slices_are_equal(expected.as_bytes(), provided).is_ok()
    {
        Ok(())
    } else {
        Err(SigError::Mismatch)
    }
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> Vec<u8> {
    hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), data)
        .as_ref()
        .to_vec()
}

fn canonical_request(req: &Req, signed_headers: &[String]) -> String {
    let path = if req.path.is_empty() {
        "/"
    } else {
        req.path.as_str()
    };
    // Every service but S3 encodes each segment as it travels once more (AWS: "URI-encoded
    // twice"): a Bedrock model id `…-v1:0` sent as `…-v1%3A0` is signed as `…-v1%253A0`, which
    // is what the SDKs (botocore, aws-sigv4's default) sign.
    let uri: Vec<String> = path
        .split('/')
        .map(|seg| utf8_percent_encode(seg, SIGV4).to_string())
        .collect();
    let mut query: Vec<(String, String)> = req
        .query
        .iter()
        .map(|(k, v)| {
            (
                utf8_percent_encode(k, SIGV4).to_string(),
                utf8_percent_encode(v, SIGV4).to_string(),
            )
        })
        .collect();
    query.sort();
    let query = query
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    let mut headers = String::new();
    for name in signed_headers {
        let values: Vec<String> = req
            .headers
            .get_all(name.as_str())
            .iter()
            .map(|v| {
                String::from_utf8_lossy(v.as_bytes())
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect();
        headers.push_str(&format!("{name}:{}\n", values.join(",")));
    }
    let payload = match req.header("x-amz-content-sha256") {
        Some(h) => h.to_owned(),
        None => hex::encode(digest::digest(&digest::SHA256, &req.body)),
    };
    format!(
        "{}\n{}\n{query}\n{headers}\n{}\n{payload}",
        req.method,
        uri.join("/"),
        signed_headers.join(";")
    )
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
    use aws_sigv4::sign::v4;
    use axum::http::{HeaderMap, HeaderName, HeaderValue, Method};

    use super::*;

    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

    /// Signs like Keyward's client does (the `aws-sigv4` crate) and returns what the server sees.
    fn signed(now: i64, body: &str) -> Req {
        let identity = aws_credential_types::Credentials::new(
            "ASIAEXAMPLE",
            SECRET,
            Some("session-token".into()),
            None,
            "test",
        )
        .into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region("us-east-1")
            .name("secretsmanager")
            .time(UNIX_EPOCH + Duration::from_secs(now as u64))
            .settings(SigningSettings::default())
            .build()
            .unwrap()
            .into();
        let headers = [
            ("host", "127.0.0.1:4566"),
            ("content-type", "application/x-amz-json-1.1"),
            ("x-amz-target", "secretsmanager.GetSecretValue"),
        ];
        let signable = SignableRequest::new(
            "POST",
            "https://127.0.0.1:4566/",
            headers.iter().copied(),
            SignableBody::Bytes(body.as_bytes()),
        )
        .unwrap();
        let (instructions, _) = sign(signable, &params).unwrap().into_parts();
        let mut request = http::Request::builder()
            .method("POST")
            .uri("https://127.0.0.1:4566/");
        for (k, v) in headers {
            request = request.header(k, v);
        }
        let mut request = request.body(()).unwrap();
        instructions.apply_to_request_http1x(&mut request);
        let mut map = HeaderMap::new();
        for (k, v) in request.headers() {
            map.insert(
                HeaderName::from_bytes(k.as_str().as_bytes()).unwrap(),
                HeaderValue::from_bytes(v.as_bytes()).unwrap(),
            );
        }
        Req {
            method: Method::POST,
            path: "/".into(),
            query: Vec::new(),
            headers: map,
            body: axum::body::Bytes::copy_from_slice(body.as_bytes()),
        }
    }

    #[test]
    fn a_request_signed_by_aws_sigv4_verifies_and_any_change_breaks_it() {
        let now = 1_790_000_000;
        let req = signed(now, r#"{"SecretId":"db"}"#);
        let parsed = parse_authorization(&req).unwrap();
        assert_eq!(parsed.access_key_id, "ASIAEXAMPLE");
        assert_eq!(parsed.service, "secretsmanager");
        assert_eq!(verify(&req, &parsed, SECRET, now), Ok(()));

        assert_eq!(
            verify(&req, &parsed, "another-secret", now),
            Err(SigError::Mismatch)
        );
        let mut tampered = signed(now, r#"{"SecretId":"db"}"#);
        tampered.body = axum::body::Bytes::from_static(br#"{"SecretId":"prod"}"#);
        assert_eq!(
            verify(&tampered, &parsed, SECRET, now),
            Err(SigError::Mismatch)
        );
        let mut retargeted = signed(now, r#"{"SecretId":"db"}"#);
        retargeted.headers.insert(
            "x-amz-target",
            HeaderValue::from_static("secretsmanager.PutSecretValue"),
        );
        assert_eq!(
            verify(&retargeted, &parsed, SECRET, now),
            Err(SigError::Mismatch)
        );
        assert!(matches!(
            verify(&req, &parsed, SECRET, now + 16 * 60),
            Err(SigError::Expired(_))
        ));
    }
}
