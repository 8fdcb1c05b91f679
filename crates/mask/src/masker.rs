//! [`Masker`]: a compiled configuration plus the organization's secret values, shared by every
//! body of a route.

use std::sync::Arc;

use crate::MaskError;
use crate::compiled::Compiled;
use crate::config::MaskConfig;
use crate::content::ContentKind;
use crate::counts::Counts;
use crate::detectors::{JSON_PATH_NAME, JSON_PATH_SKIPPED_NAME};
use crate::exact::{ExactValueSet, ExactValues};
use crate::stream::StreamMasker;

/// A compiled masking configuration. `Send + Sync`; clones share everything (an `Arc` inside).
#[derive(Clone)]
pub struct Masker {
    pub(crate) inner: Arc<Compiled>,
    exact: Arc<ExactValueSet>,
}

impl std::fmt::Debug for Masker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Masker")
            .field("detectors", &self.inner.names)
            .field("json_paths", &self.inner.json_paths.len())
            .field("max_match", &self.inner.max_match)
            .finish_non_exhaustive()
    }
}

impl Masker {
    /// Compiles `config` with no secret values (add them with [`Masker::with_secrets`]).
    pub fn new(config: &MaskConfig) -> Result<Self, MaskError> {
        Self::with_secrets(config, Arc::new(ExactValueSet::default()))
    }

    /// Compiles `config`; streams mask the values current in `secrets` when they start (unless
    /// the config says `secrets = false`).
    pub fn with_secrets(
        config: &MaskConfig,
        secrets: Arc<ExactValueSet>,
    ) -> Result<Self, MaskError> {
        Ok(Self {
            inner: Arc::new(Compiled::build(config)?),
            exact: secrets,
        })
    }

    /// Whether the route masks request bodies too.
    pub fn masks_requests(&self) -> bool {
        self.inner.requests
    }

    /// The secret values this masker reads (to replace them when they change).
    pub fn secrets(&self) -> &Arc<ExactValueSet> {
        &self.exact
    }

    /// The most a stream started now may hold back after a `push`: the longest match
    /// (`max_match_bytes`, or the longest secret value's JSON form if longer) and a quarter more
    /// so that small chunks are not rescanned byte by byte.
    pub fn carry_bound(&self) -> usize {
        let hold = self.inner.max_match.max(self.exact_now().max_len());
        hold + hold / 4
    }

    fn exact_now(&self) -> Arc<ExactValues> {
        if self.inner.secrets {
            self.exact.current()
        } else {
            Arc::new(ExactValues::empty())
        }
    }

    /// A masker for one body of the given kind, with the secret values current now.
    pub fn stream(&self, kind: ContentKind) -> StreamMasker {
        StreamMasker::new(self.inner.clone(), self.exact_now(), kind)
    }

    /// Masks a whole body with the detectors (no JSON paths: see
    /// [`Masker::mask_json_document`]).
    pub fn mask(&self, kind: ContentKind, body: &[u8]) -> (Vec<u8>, Counts) {
        let mut s = self.stream(kind);
        let mut out = s.push(body);
        let (tail, counts) = s.finish();
        out.extend_from_slice(&tail);
        (out, counts)
    }

    /// Masks a whole JSON body: values at the configured JSON paths become
    /// `"[MASKED:json_path]"`, then the detectors run as for any JSON body. JSON paths need the
    /// whole document, so a body over `limit` bytes (or not JSON) gets only the detectors and
    /// counts one `json_path_skipped`.
    pub fn mask_json_document(&self, body: &[u8], limit: usize) -> (Vec<u8>, Counts) {
        let mut counts = Counts::default();
        let masked_paths;
        let input = if self.inner.json_paths.is_empty() {
            body
        } else if body.len() > limit {
            counts.add(JSON_PATH_SKIPPED_NAME, 1);
            body
        } else {
            match crate::json_path::apply(
                &self.inner.json_paths,
                body,
                &self.inner.markers[self.inner.json_path_det as usize],
            ) {
                Some((out, n)) => {
                    counts.add(JSON_PATH_NAME, n);
                    masked_paths = out;
                    &masked_paths
                }
                None => {
                    counts.add(JSON_PATH_SKIPPED_NAME, 1);
                    body
                }
            }
        };
        let (out, c) = self.mask(ContentKind::Json, input);
        counts.merge(&c);
        (out, counts)
    }

    /// The configured JSON document limit (`json_document_limit`).
    pub fn json_document_limit(&self) -> usize {
        self.inner.json_limit
    }
}
