//! `keyward gateway` (SPEC §9): an L7 reverse proxy in front of LLM APIs, MCP servers and
//! internal APIs. Every request passes one ordered phase function (`pipeline`):
//! identity → policy → (approval, next issue) → credential injection → upstream →
//! (masking, recording, next issue) → audit.
//!
//! SKELETON — module owners: `pipeline`, `listener`, `upstream`, `table`, `reload`, `audit`,
//! `admin`, `error`, `settings` (proxy helper); `identity/` (identity helper); `credentials/`
//! (credentials helper).

pub mod credentials;
pub mod identity;
