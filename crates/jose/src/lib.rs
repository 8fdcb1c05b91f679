//! Keyward's JOSE room: RSA signing keys, their three-phase rotation schedule, the published JWKS,
//! and minting of workload tokens. Pure computation: storage and clocks belong to the callers.

pub mod access;
pub mod claims;
pub mod jwks;
pub mod key;
pub mod schedule;

pub use access::{AccessClaims, VerifyError, mint_access, verify_access};
pub use claims::{WorkloadClaims, mint};
pub use jwks::{Jwk, Jwks};
pub use key::{KeyError, SigningKey};
pub use schedule::{KeyPhase, KeyTimes, RotationPolicy, RotationStep};
