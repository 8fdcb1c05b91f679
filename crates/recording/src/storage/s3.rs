//! S3-compatible object storage through `object_store` (aws feature: SigV4 with aws-lc-rs over
//! the workspace's reqwest 0.13). Segments are put with `If-None-Match: *` so an existing one is
//! not replaced where the server honours it.

use std::fmt;
use std::time::Duration;

use futures::TryStreamExt;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as ObjectPath;
use object_store::{
    BackoffConfig, ClientOptions, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload,
    RetryConfig,
};
use time::OffsetDateTime;
use zeroize::Zeroizing;

use super::ObjectInfo;
use crate::error::StorageError;

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

pub(super) struct S3Store {
    store: AmazonS3,
    endpoint: Option<String>,
    bucket: String,
    prefix: String,
    region: String,
}

impl S3Store {
    pub(super) fn within(&self, part: &str) -> S3Store {
        S3Store {
            store: self.store.clone(),
            endpoint: self.endpoint.clone(),
            bucket: self.bucket.clone(),
            prefix: if self.prefix.is_empty() {
                part.to_owned()
            } else {
                format!("{}/{part}", self.prefix)
            },
            region: self.region.clone(),
        }
    }
}

impl fmt::Debug for S3Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe())
    }
}

impl S3Store {
    pub(super) fn from_url(url: &str, credentials: S3Credentials) -> Result<S3Store, StorageError> {
        let shown = url.split('?').next().unwrap_or_default().to_owned();
        let invalid = |reason: &str| StorageError::InvalidUrl {
            url: shown.clone(),
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
        let region = region.unwrap_or_else(|| "us-east-1".to_owned());
        // A recording put runs off the hot path but must not hang for object_store's default
        // three minutes of retries when the store is down.
        let retry = RetryConfig {
            backoff: BackoffConfig::default(),
            max_retries: 3,
            retry_timeout: Duration::from_secs(15),
        };
        let mut builder = AmazonS3Builder::new()
            .with_bucket_name(&bucket)
            .with_region(&region)
            .with_access_key_id(&credentials.access_key_id)
            .with_secret_access_key(credentials.secret_access_key.as_str())
            .with_retry(retry)
            .with_client_options(
                ClientOptions::new()
                    .with_timeout(Duration::from_secs(30))
                    .with_connect_timeout(Duration::from_secs(5)),
            );
        if let Some(token) = &credentials.session_token {
            builder = builder.with_token(token.as_str());
        }
        if let Some(e) = &endpoint {
            builder = builder
                .with_endpoint(e)
                .with_allow_http(e.starts_with("http://"))
                .with_virtual_hosted_style_request(false);
        }
        let store = builder.build().map_err(|e| invalid(&e.to_string()))?;
        Ok(S3Store {
            store,
            endpoint,
            bucket,
            prefix,
            region,
        })
    }

    pub(super) fn describe(&self) -> String {
        let at = self.endpoint.as_deref().unwrap_or("AWS");
        format!(
            "s3://{}/{} at {at} ({})",
            self.bucket, self.prefix, self.region
        )
    }

    fn full_key(&self, key: &str) -> String {
        if self.prefix.is_empty() {
            key.to_owned()
        } else {
            format!("{}/{key}", self.prefix)
        }
    }

    fn error(&self, action: &'static str, key: &str, e: object_store::Error) -> StorageError {
        let key = self.full_key(key);
        let message = e.to_string();
        // A put cannot miss its object, and a missing bucket is a configuration error, not a
        // missing recording.
        let bucket_missing = message.contains("NoSuchBucket") || action == "PutObject";
        match e {
            object_store::Error::NotFound { .. } if bucket_missing => StorageError::ObjectStore {
                action,
                key,
                message: format!(
                    "bucket `{}` does not exist at {}: create it or fix the storage URL ({message})",
                    self.bucket,
                    self.endpoint.as_deref().unwrap_or("AWS")
                ),
            },
            object_store::Error::NotFound { .. } => StorageError::NotFound { key },
            object_store::Error::AlreadyExists { .. } => StorageError::AlreadyExists { key },
            _ => StorageError::ObjectStore {
                action,
                key,
                message,
            },
        }
    }

    pub(super) async fn put(
        &self,
        key: &str,
        bytes: Vec<u8>,
        create: bool,
    ) -> Result<(), StorageError> {
        let path = ObjectPath::from(self.full_key(key));
        let mode = if create {
            PutMode::Create
        } else {
            PutMode::Overwrite
        };
        let options = PutOptions {
            mode,
            ..PutOptions::default()
        };
        self.store
            .put_opts(&path, PutPayload::from(bytes), options)
            .await
            .map(drop)
            .map_err(|e| self.error("PutObject", key, e))
    }

    pub(super) async fn get(&self, key: &str) -> Result<Vec<u8>, StorageError> {
        let path = ObjectPath::from(self.full_key(key));
        let result = self
            .store
            .get(&path)
            .await
            .map_err(|e| self.error("GetObject", key, e))?;
        let bytes = result
            .bytes()
            .await
            .map_err(|e| self.error("GetObject", key, e))?;
        Ok(bytes.to_vec())
    }

    pub(super) async fn delete(&self, key: &str) -> Result<(), StorageError> {
        let path = ObjectPath::from(self.full_key(key));
        self.store
            .delete(&path)
            .await
            .map_err(|e| self.error("DeleteObject", key, e))
    }

    pub(super) async fn list(
        &self,
        session: Option<&str>,
    ) -> Result<Vec<ObjectInfo>, StorageError> {
        let base = match session {
            Some(s) => self.full_key(s),
            None => self.prefix.clone(),
        };
        let prefix = (!base.is_empty()).then(|| ObjectPath::from(base.as_str()));
        let strip = if self.prefix.is_empty() {
            String::new()
        } else {
            format!("{}/", self.prefix)
        };
        let metas: Vec<object_store::ObjectMeta> = self
            .store
            .list(prefix.as_ref())
            .try_collect()
            .await
            .map_err(|e| self.error("ListObjectsV2", &base, e))?;
        Ok(metas
            .into_iter()
            .filter_map(|m| {
                let key = m.location.as_ref().strip_prefix(&strip)?.to_owned();
                let millis = i128::from(m.last_modified.timestamp_millis());
                Some(ObjectInfo {
                    key,
                    size: m.size,
                    modified: OffsetDateTime::from_unix_timestamp_nanos(millis * 1_000_000).ok(),
                })
            })
            .collect())
    }
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
            s.full_key("a/00000000.jsonl.zst"),
            "gw/sessions/a/00000000.jsonl.zst"
        );
        assert!(!format!("{s:?}").contains("very-secret"));
        assert!(!format!("{:?}", creds()).contains("very-secret"));
        assert!(S3Store::from_url("s3://k:v@rec/x", creds()).is_err());
        assert!(S3Store::from_url("s3://rec/x?bogus=1", creds()).is_err());
        assert!(S3Store::from_url("s3://rec/x?endpoint=ftp://h", creds()).is_err());
    }
}
