//! Session recordings for the gateway (SPEC §9, issue 17): what a session did, as compressed JSON
//! lines chained by hashes so an edit, a deleted line or a truncation is detected.
//!
//! A session is one request, or several sharing a caller-declared `X-Keyward-Session` id; each
//! request is one immutable segment object. The gateway opens a [`SegmentWriter`] per request
//! from a shared [`SessionRecorder`], records masked data into it and closes it off the hot path;
//! the returned [`SegmentHead`] goes into the audit log, and [`verify`] checks the store against
//! those heads. The format and the hash rule are in docs/gateway-sessions.md.

mod chain;
mod clock;
mod error;
mod info;
mod replay;
mod storage;
mod verify;
mod writer;

pub use chain::genesis;
pub use clock::{Clock, SystemClock};
pub use error::StorageError;
pub use info::{SessionInfo, session_info};
pub use replay::replay;
pub use storage::{S3Credentials, SegmentObject, SessionListing, Storage, check_session_id};
pub use verify::{Record, VerifyError, VerifyReport, read_session, verify};
pub use writer::{
    Kind, RecorderOptions, SegmentHead, SegmentMeta, SegmentWriter, SessionRecorder, body_value,
};
