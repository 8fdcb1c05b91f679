//! Where segments live: a local directory (the default) or an S3-compatible bucket.
//!
//! A session is `<prefix>/<session-id>/<segment>.jsonl.zst`, segment numbers zero-padded to eight
//! digits so a plain listing is in order. Objects are written once and never replaced.

mod local;
mod s3;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use time::OffsetDateTime;

pub use s3::S3Credentials;

use crate::error::StorageError;
use local::LocalStore;
use s3::S3Store;

const SEGMENT_SUFFIX: &str = ".jsonl.zst";

/// A recording store, cheap to clone.
#[derive(Clone, Debug)]
pub struct Storage {
    backend: Arc<Backend>,
}

#[derive(Debug)]
enum Backend {
    Local(LocalStore),
    S3(S3Store),
}

/// One stored object, as a listing shows it.
#[derive(Clone, Debug)]
pub(crate) struct ObjectInfo {
    /// Relative to the store's root or prefix: `<session>/<segment>.jsonl.zst`.
    pub key: String,
    pub size: u64,
    pub modified: Option<OffsetDateTime>,
}

/// One segment object of a session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentObject {
    pub segment: u64,
    /// Compressed size in bytes.
    pub bytes: u64,
    /// When the store last wrote it (file mtime or S3 `LastModified`).
    pub modified: Option<OffsetDateTime>,
}

/// A session as the store's listing shows it (no object is read).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionListing {
    pub session_id: String,
    pub segments: u64,
    pub bytes: u64,
    /// Earliest and latest object write times.
    pub first_modified: Option<OffsetDateTime>,
    pub last_modified: Option<OffsetDateTime>,
}

impl Storage {
    /// Opens a store by URL: a path or `file:///path` (a local directory, created 0700 on first
    /// write), or `s3://bucket/prefix?endpoint=http://host:port&region=us-east-1` with credentials
    /// from `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and optional `AWS_SESSION_TOKEN`.
    pub fn from_url(url: &str) -> Result<Storage, StorageError> {
        if url.starts_with("s3://") {
            return Self::s3(url, S3Credentials::from_env()?);
        }
        Ok(Self::local(local_path(url)?))
    }

    /// An S3-compatible store with explicit credentials.
    pub fn s3(url: &str, credentials: S3Credentials) -> Result<Storage, StorageError> {
        Ok(Storage {
            backend: Arc::new(Backend::S3(S3Store::from_url(url, credentials)?)),
        })
    }

    /// A local directory store.
    pub fn local(root: impl Into<PathBuf>) -> Storage {
        Storage {
            backend: Arc::new(Backend::Local(LocalStore::new(root.into()))),
        }
    }

    /// The same store one level down (`<prefix>/<part>/…`): one organization's sessions, so no
    /// session id of one organization can name another's recording. `part` follows the session
    /// id alphabet.
    pub fn within(&self, part: &str) -> Result<Storage, StorageError> {
        check_session_id(part)?;
        let backend = match &*self.backend {
            Backend::Local(l) => Backend::Local(l.within(part)),
            Backend::S3(s) => Backend::S3(s.within(part)),
        };
        Ok(Storage {
            backend: Arc::new(backend),
        })
    }

    /// The store named by the recordings setting (`--recordings`, `KEYWARD_RECORDINGS`): unset
    /// is `<data-dir>/sessions`, `off` records nothing (`None`), anything else is a URL for
    /// [`Storage::from_url`].
    pub fn from_setting(
        value: Option<&str>,
        data_dir: &std::path::Path,
    ) -> Result<Option<Storage>, StorageError> {
        match value.map(str::trim) {
            None | Some("") => Ok(Some(Self::local(data_dir.join("sessions")))),
            Some("off") => Ok(None),
            Some(url) => Self::from_url(url).map(Some),
        }
    }

    /// Where the store is, for logs and messages (no credential).
    pub fn describe(&self) -> String {
        match &*self.backend {
            Backend::Local(l) => l.describe(),
            Backend::S3(s) => s.describe(),
        }
    }

    /// Writes a segment object; fails with [`StorageError::AlreadyExists`] rather than replace one
    /// (the local directory always; S3 where the server honours `If-None-Match: *`).
    pub async fn put_segment(
        &self,
        session_id: &str,
        segment: u64,
        bytes: Vec<u8>,
    ) -> Result<(), StorageError> {
        let key = segment_key(session_id, segment)?;
        match &*self.backend {
            Backend::Local(l) => l.put(&key, bytes).await,
            Backend::S3(s) => s.put(&key, bytes, true).await,
        }
    }

    /// Reads a segment object as stored (compressed).
    pub async fn get_segment(
        &self,
        session_id: &str,
        segment: u64,
    ) -> Result<Vec<u8>, StorageError> {
        let key = segment_key(session_id, segment)?;
        match &*self.backend {
            Backend::Local(l) => l.get(&key).await,
            Backend::S3(s) => s.get(&key).await,
        }
    }

    /// Deletes a segment object (retention, and tests that play the attacker).
    pub async fn delete_segment(&self, session_id: &str, segment: u64) -> Result<(), StorageError> {
        let key = segment_key(session_id, segment)?;
        match &*self.backend {
            Backend::Local(l) => l.delete(&key).await,
            Backend::S3(s) => s.delete(&key).await,
        }
    }

    /// Replaces a segment object's bytes, bypassing the write-once rule. For tests that tamper and
    /// for an operator moving data between stores; the gateway never calls it.
    pub async fn overwrite_segment(
        &self,
        session_id: &str,
        segment: u64,
        bytes: Vec<u8>,
    ) -> Result<(), StorageError> {
        let key = segment_key(session_id, segment)?;
        match &*self.backend {
            Backend::Local(l) => {
                l.delete(&key).await.or_else(ignore_not_found)?;
                l.put(&key, bytes).await
            }
            Backend::S3(s) => s.put(&key, bytes, false).await,
        }
    }

    /// The segments of a session in segment order (empty if the session is unknown).
    pub async fn list_segments(
        &self,
        session_id: &str,
    ) -> Result<Vec<SegmentObject>, StorageError> {
        check_session_id(session_id)?;
        let objects = self.list(Some(session_id)).await?;
        let mut segments: Vec<SegmentObject> = objects
            .into_iter()
            .filter_map(|o| {
                let (session, segment) = parse_key(&o.key)?;
                (session == session_id).then_some(SegmentObject {
                    segment,
                    bytes: o.size,
                    modified: o.modified,
                })
            })
            .collect();
        segments.sort_by_key(|s| s.segment);
        Ok(segments)
    }

    /// Every session in the store, ordered by id, from one listing.
    pub async fn list_sessions(&self) -> Result<Vec<SessionListing>, StorageError> {
        let mut sessions: BTreeMap<String, SessionListing> = BTreeMap::new();
        for object in self.list(None).await? {
            let Some((session, _)) = parse_key(&object.key) else {
                continue;
            };
            let entry = sessions
                .entry(session.to_owned())
                .or_insert_with(|| SessionListing {
                    session_id: session.to_owned(),
                    segments: 0,
                    bytes: 0,
                    first_modified: None,
                    last_modified: None,
                });
            entry.segments += 1;
            entry.bytes += object.size;
            if let Some(m) = object.modified {
                entry.first_modified = Some(entry.first_modified.map_or(m, |f| f.min(m)));
                entry.last_modified = Some(entry.last_modified.map_or(m, |l| l.max(m)));
            }
        }
        Ok(sessions.into_values().collect())
    }

    async fn list(&self, session: Option<&str>) -> Result<Vec<ObjectInfo>, StorageError> {
        match &*self.backend {
            Backend::Local(l) => l.list(session).await,
            Backend::S3(s) => s.list(session).await,
        }
    }
}

fn ignore_not_found(e: StorageError) -> Result<(), StorageError> {
    match e {
        StorageError::NotFound { .. } => Ok(()),
        e => Err(e),
    }
}

fn local_path(url: &str) -> Result<PathBuf, StorageError> {
    if let Some(rest) = url.strip_prefix("file://") {
        if !rest.starts_with('/') {
            return Err(StorageError::InvalidUrl {
                url: url.to_owned(),
                reason: "a file:// URL needs an absolute path (file:///var/lib/keyward/sessions)"
                    .into(),
            });
        }
        return Ok(PathBuf::from(rest));
    }
    if url.contains("://") {
        return Err(StorageError::InvalidUrl {
            url: url.to_owned(),
            reason: "use a directory path, file:///path or s3://bucket/prefix".into(),
        });
    }
    if url.is_empty() {
        return Err(StorageError::InvalidUrl {
            url: String::new(),
            reason: "the path is empty".into(),
        });
    }
    Ok(PathBuf::from(url))
}

/// Session ids become path components and object keys, so only a safe alphabet is accepted.
pub fn check_session_id(id: &str) -> Result<(), StorageError> {
    let bad = |reason| {
        Err(StorageError::InvalidSessionId {
            id: id.chars().take(64).collect(),
            reason,
        })
    };
    if id.is_empty() || id.len() > 128 {
        return bad("wrong length");
    }
    if id.starts_with('.') {
        return bad("it starts with a dot");
    }
    if !id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return bad("it holds a character outside the allowed set");
    }
    Ok(())
}

fn segment_key(session_id: &str, segment: u64) -> Result<String, StorageError> {
    check_session_id(session_id)?;
    Ok(format!("{session_id}/{segment:08}{SEGMENT_SUFFIX}"))
}

fn parse_key(key: &str) -> Option<(&str, u64)> {
    let (session, file) = key.split_once('/')?;
    let digits = file.strip_suffix(SEGMENT_SUFFIX)?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    check_session_id(session).ok()?;
    Some((session, digits.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_unsafe_ids_are_refused() {
        let key = segment_key("sess-1", 3).unwrap();
        assert_eq!(key, "sess-1/00000003.jsonl.zst");
        assert_eq!(parse_key(&key), Some(("sess-1", 3)));
        assert_eq!(parse_key("sess-1/.tmp-3"), None);
        for bad in ["", "../x", "a/b", ".hidden", "a b"] {
            assert!(check_session_id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn urls_choose_the_backend() {
        assert!(
            Storage::from_url("/tmp/x")
                .unwrap()
                .describe()
                .contains("/tmp/x")
        );
        assert!(
            Storage::from_url("file:///tmp/x")
                .unwrap()
                .describe()
                .contains("/tmp/x")
        );
        assert!(Storage::from_url("file://rel").is_err());
        assert!(Storage::from_url("http://x").is_err());
        if std::env::var_os("AWS_ACCESS_KEY_ID").is_none() {
            assert!(matches!(
                Storage::from_url("s3://bucket/p"),
                Err(StorageError::MissingCredentials)
            ));
        }
    }

    #[test]
    fn the_setting_defaults_to_the_data_dir_and_an_org_is_one_level_down() {
        let dir = std::path::Path::new("/var/lib/keyward");
        let default = Storage::from_setting(None, dir).unwrap().unwrap();
        assert_eq!(
            default.describe(),
            "local directory /var/lib/keyward/sessions"
        );
        assert!(Storage::from_setting(Some("off"), dir).unwrap().is_none());
        let org = default.within("0193-org").unwrap();
        assert_eq!(
            org.describe(),
            "local directory /var/lib/keyward/sessions/0193-org"
        );
        assert!(default.within("../other").is_err());
        let s3 = Storage::s3(
            "s3://rec/gw?endpoint=http://127.0.0.1:9&region=us-east-1",
            S3Credentials {
                access_key_id: "AKIDEXAMPLE".into(),
                secret_access_key: "secret".to_owned().into(),
                session_token: None,
            },
        )
        .unwrap();
        assert!(
            s3.within("org-1").unwrap().describe().contains("gw/org-1"),
            "{}",
            s3.within("org-1").unwrap().describe()
        );
    }
}
