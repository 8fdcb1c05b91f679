//! Errors of storage and recording. Messages say what failed, why and what to do; they never hold
//! a credential or a recorded body.

use std::path::PathBuf;

/// A storage operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("recording storage URL `{url}` is not usable: {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error(
        "S3 recording storage needs credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN for temporary ones) or pass them explicitly"
    )]
    MissingCredentials,
    #[error(
        "session id `{id}` is not usable: {reason} (1 to 128 characters of A-Z a-z 0-9 . _ -, not starting with a dot)"
    )]
    InvalidSessionId { id: String, reason: &'static str },
    #[error("recording object `{key}` does not exist")]
    NotFound { key: String },
    #[error(
        "recording object `{key}` already exists: segments are immutable and never overwritten (another writer used the same session and segment number)"
    )]
    AlreadyExists { key: String },
    #[error("cannot {action} `{}`: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("S3 {action} of `{key}` failed: {message}")]
    ObjectStore {
        action: &'static str,
        key: String,
        message: String,
    },
    #[error("compressing the segment failed: {0}")]
    Compress(String),
    #[error("the segment writer task failed: {0}")]
    Task(String),
}
