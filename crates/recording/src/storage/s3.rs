//! S3-compatible object storage: PutObject, GetObject, DeleteObject and ListObjectsV2, signed with
//! SigV4 over the workspace's reqwest. (`object_store` would bring `ring` and a second reqwest
//! major version into the graph; these four calls are all recordings need.)

use std::fmt;

use aws_sigv4::http_request::{
    PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SigningSettings,
    UriPathNormalizationMode, sign,
};
use aws_sigv4::sign::v4;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use zeroize::Zeroizing;

use super::ObjectInfo;
use crate::clock::system_now;
use crate::error::StorageError;

/// RFC 3986 unreserved characters stay; everything else is percent-encoded (SigV4's rule).
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Credentials for S3. Debug shows only the access key id.
#[derive(Clone)]
pub struct S3Credentials {
    pub access_key_id: String,
    pub secret_access_key: Zeroizing<String>,
    pub session_token: Option<Zeroizing<String>>,
}

impl fmt::Debug for S3Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

impl S3Credentials {
    /// From `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and optional `AWS_SESSION_TOKEN`.
    pub fn from_env() -> Result<S3Credentials, StorageError> {
        let var = |name| std::env::var(name).ok().filter(|v: &String| !v.is_empty());
        match (var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY")) {
            (Some(id), Some(secret)) => Ok(S3Credentials {
                access_key_id: id,
                secret_access_key: Zeroizing::new(secret),
                session_token: var("AWS_SESSION_TOKEN").map(Zeroizing::new),
            }),
            _ => Err(StorageError::MissingCredentials),
        }
    }
}

#[derive(Debug)]
pub(super) struct S3Store {
    http: reqwest::Client,
    /// `http://host:port` for path-style requests, or None for AWS virtual-hosted style.
    endpoint: Option<String>,
    bucket: String,
    prefix: String,
    region: String,
    credentials: S3Credentials,
}

impl S3Store {
    pub(super) fn from_url(url: &str, credentials: S3Credentials) -> Result<S3Store, StorageError> {
        let invalid = |reason: &str| StorageError::InvalidUrl {
            url: url.split('?').next().unwrap_or_default().to_owned(),
            reason: reason.to_owned(),
        };
        let parsed = url::Url::parse(url).map_err(|e| invalid(&e.to_string()))?;
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(invalid(
                "credentials do not belong in the URL; use AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
            ));
        }
        let bucket = parsed
            .host_str()
            .filter(|b| !b.is_empty())
            .ok_or_else(|| invalid("no bucket (s3://bucket/prefix)"))?
            .to_owned();
        let prefix = parsed.path().trim_matches('/').to_owned();
        let mut endpoint = None;
        let mut region = None;
        for (k, v) in parsed.query_pairs() {
            match &*k {
                "endpoint" => endpoint = Some(v.trim_end_matches('/').to_owned()),
                "region" => region = Some(v.into_owned()),
                other => {
                    return Err(invalid(&format!(
                        "unknown parameter `{other}` (endpoint, region)"
                    )));
                }
            }
        }
        if let Some(e) = &endpoint
            && !(e.starts_with("http://") || e.starts_with("https://"))
        {
            return Err(invalid("endpoint must be an http:// or https:// URL"));
        }
        let http = reqwest::Client::builder()
            .build()
            .map_err(|e| invalid(&format!("HTTP client: {e}")))?;
        Ok(S3Store {
            http,
            endpoint,
            bucket,
            prefix,
            region: region.unwrap_or_else(|| "us-east-1".to_owned()),
            credentials,
        })
    }

    pub(super) fn describe(&self) -> String {
        let at = self.endpoint.as_deref().unwrap_or("AWS");
        format!("s3://{}/{} at {at}", self.bucket, self.prefix)
    }

    fn full_key(&self, key: &str) -> String {
        if self.prefix.is_empty() {
            key.to_owned()
        } else {
            format!("{}/{key}", self.prefix)
        }
    }

    fn bucket_url(&self) -> String {
        match &self.endpoint {
            Some(e) => format!("{e}/{}", self.bucket),
            None => format!("https://{}.s3.{}.amazonaws.com", self.bucket, self.region),
        }
    }

    fn object_url(&self, key: &str) -> String {
        let encoded: Vec<String> = self
            .full_key(key)
            .split('/')
            .map(|p| utf8_percent_encode(p, UNRESERVED).to_string())
            .collect();
        format!("{}/{}", self.bucket_url(), encoded.join("/"))
    }

    async fn send(
        &self,
        action: &'static str,
        key: &str,
        method: reqwest::Method,
        url: &str,
        body: Vec<u8>,
    ) -> Result<reqwest::Response, StorageError> {
        let headers = self.sign(method.as_str(), url, &body)?;
        let mut request = self.http.request(method, url);
        for (name, value) in headers {
            request = request.header(name, value);
        }
        let response = request
            .body(body)
            .send()
            .await
            .map_err(|source| StorageError::Http {
                action,
                key: key.to_owned(),
                source,
            })?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let text = response.text().await.unwrap_or_default();
        let (code, message) = error_fields(&text);
        // A missing bucket is a configuration error, not a missing recording.
        if status == reqwest::StatusCode::NOT_FOUND && code != "NoSuchBucket" {
            return Err(StorageError::NotFound {
                key: self.full_key(key),
            });
        }
        Err(StorageError::S3 {
            action,
            key: self.full_key(key),
            status: status.as_u16(),
            code,
            message,
        })
    }

    fn sign(
        &self,
        method: &str,
        url: &str,
        body: &[u8],
    ) -> Result<Vec<(String, String)>, StorageError> {
        let host = url::Url::parse(url)
            .ok()
            .and_then(|u| {
                let host = u.host_str()?.to_owned();
                Some(match u.port() {
                    Some(p) => format!("{host}:{p}"),
                    None => host,
                })
            })
            .ok_or_else(|| StorageError::Signing("the request URL has no host".into()))?;
        let identity = aws_credential_types::Credentials::new(
            self.credentials.access_key_id.clone(),
            self.credentials.secret_access_key.to_string(),
            self.credentials
                .session_token
                .as_ref()
                .map(|t| t.to_string()),
            None,
            "keyward-recording",
        )
        .into();
        let mut settings = SigningSettings::default();
        // S3 signs the path as sent (no double encoding, no normalization) and wants the payload hash.
        settings.percent_encoding_mode = PercentEncodingMode::Single;
        settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
        settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name("s3")
            .time(system_now())
            .settings(settings)
            .build()
            .map_err(|e| StorageError::Signing(e.to_string()))?
            .into();
        let signable = SignableRequest::new(
            method,
            url,
            [("host", host.as_str())].into_iter(),
            SignableBody::Bytes(body),
        )
        .map_err(|e| StorageError::Signing(e.to_string()))?;
        let (instructions, _) = sign(signable, &params)
            .map_err(|e| StorageError::Signing(e.to_string()))?
            .into_parts();
        let (headers, _) = instructions.into_parts();
        Ok(headers
            .into_iter()
            .map(|h| (h.name().to_owned(), h.value().to_owned()))
            .collect())
    }

    pub(super) async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), StorageError> {
        let url = self.object_url(key);
        self.send("PutObject", key, reqwest::Method::PUT, &url, bytes)
            .await
            .map(drop)
    }

    pub(super) async fn get(&self, key: &str) -> Result<Vec<u8>, StorageError> {
        let url = self.object_url(key);
        let response = self
            .send("GetObject", key, reqwest::Method::GET, &url, Vec::new())
            .await?;
        let bytes = response
            .bytes()
            .await
            .map_err(|source| StorageError::Http {
                action: "GetObject",
                key: key.to_owned(),
                source,
            })?;
        Ok(bytes.to_vec())
    }

    pub(super) async fn delete(&self, key: &str) -> Result<(), StorageError> {
        let url = self.object_url(key);
        self.send(
            "DeleteObject",
            key,
            reqwest::Method::DELETE,
            &url,
            Vec::new(),
        )
        .await
        .map(drop)
    }

    pub(super) async fn list(
        &self,
        session: Option<&str>,
    ) -> Result<Vec<ObjectInfo>, StorageError> {
        let base = match (self.prefix.is_empty(), session) {
            (true, None) => String::new(),
            (true, Some(s)) => format!("{s}/"),
            (false, None) => format!("{}/", self.prefix),
            (false, Some(s)) => format!("{}/{s}/", self.prefix),
        };
        let strip = if self.prefix.is_empty() {
            String::new()
        } else {
            format!("{}/", self.prefix)
        };
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut url = format!(
                "{}?list-type=2&prefix={}",
                self.bucket_url(),
                utf8_percent_encode(&base, UNRESERVED)
            );
            if let Some(t) = &token {
                url.push_str("&continuation-token=");
                url.push_str(&utf8_percent_encode(t, UNRESERVED).to_string());
            }
            let response = self
                .send(
                    "ListObjectsV2",
                    &base,
                    reqwest::Method::GET,
                    &url,
                    Vec::new(),
                )
                .await?;
            let text = response.text().await.map_err(|source| StorageError::Http {
                action: "ListObjectsV2",
                key: base.clone(),
                source,
            })?;
            let page = parse_listing(&text)?;
            for (key, size, modified) in page.objects {
                if let Some(rel) = key.strip_prefix(&strip) {
                    out.push(ObjectInfo {
                        key: rel.to_owned(),
                        size,
                        modified,
                    });
                }
            }
            match page.next {
                Some(t) => token = Some(t),
                None => return Ok(out),
            }
        }
    }
}

struct ListingPage {
    objects: Vec<(String, u64, Option<OffsetDateTime>)>,
    next: Option<String>,
}

fn child_text<'a>(node: roxmltree::Node<'a, 'a>, name: &str) -> Option<&'a str> {
    node.children()
        .find(|c| c.is_element() && c.tag_name().name() == name)
        .and_then(|c| c.text())
}

fn parse_listing(xml: &str) -> Result<ListingPage, StorageError> {
    let doc =
        roxmltree::Document::parse(xml).map_err(|e| StorageError::BadListing(e.to_string()))?;
    let root = doc.root_element();
    if root.tag_name().name() != "ListBucketResult" {
        return Err(StorageError::BadListing(format!(
            "expected ListBucketResult, got {}",
            root.tag_name().name()
        )));
    }
    let mut objects = Vec::new();
    for contents in root
        .children()
        .filter(|c| c.is_element() && c.tag_name().name() == "Contents")
    {
        let key = child_text(contents, "Key")
            .ok_or_else(|| StorageError::BadListing("an entry has no Key".into()))?;
        let size = child_text(contents, "Size")
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let modified = child_text(contents, "LastModified")
            .and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok());
        objects.push((key.to_owned(), size, modified));
    }
    let truncated = child_text(root, "IsTruncated") == Some("true");
    let next = child_text(root, "NextContinuationToken").map(str::to_owned);
    if truncated && next.is_none() {
        return Err(StorageError::BadListing(
            "the listing is truncated but has no NextContinuationToken".into(),
        ));
    }
    Ok(ListingPage {
        objects,
        next: if truncated { next } else { None },
    })
}

fn error_fields(xml: &str) -> (String, String) {
    let Ok(doc) = roxmltree::Document::parse(xml) else {
        return (
            "Unknown".into(),
            "the server's error body is not XML".into(),
        );
    };
    let root = doc.root_element();
    (
        child_text(root, "Code").unwrap_or("Unknown").to_owned(),
        child_text(root, "Message").unwrap_or("").to_owned(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds() -> S3Credentials {
        S3Credentials {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: Zeroizing::new("very-secret".into()),
            session_token: None,
        }
    }

    #[test]
    fn the_url_gives_bucket_prefix_endpoint_and_region_and_debug_hides_the_secret() {
        let s = S3Store::from_url(
            "s3://rec/gw/sessions?endpoint=http://127.0.0.1:9000/&region=eu-west-1",
            creds(),
        )
        .unwrap();
        assert_eq!(s.bucket, "rec");
        assert_eq!(s.prefix, "gw/sessions");
        assert_eq!(s.region, "eu-west-1");
        assert_eq!(
            s.object_url("a/00000000.jsonl.zst"),
            "http://127.0.0.1:9000/rec/gw/sessions/a/00000000.jsonl.zst"
        );
        assert!(!format!("{s:?}").contains("very-secret"));
        assert!(S3Store::from_url("s3://k:v@rec/x", creds()).is_err());
        assert!(S3Store::from_url("s3://rec/x?bogus=1", creds()).is_err());
    }

    #[test]
    fn a_listing_page_parses() {
        let xml = r#"<?xml version="1.0"?><ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
          <IsTruncated>true</IsTruncated><NextContinuationToken>t/1=</NextContinuationToken>
          <Contents><Key>p/s/00000000.jsonl.zst</Key><Size>42</Size><LastModified>2026-12-06T13:00:00.000Z</LastModified></Contents>
          </ListBucketResult>"#;
        let page = parse_listing(xml).unwrap();
        assert_eq!(page.objects.len(), 1);
        assert_eq!(page.objects[0].1, 42);
        assert!(page.objects[0].2.is_some());
        assert_eq!(page.next.as_deref(), Some("t/1="));
    }
}
