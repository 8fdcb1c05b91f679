//! Envelope encryption at rest: every sealed value gets its own random AES-256-GCM data key,
//! which is itself sealed under the master key. Rotating the master key then only re-wraps data
//! keys, and a leaked database without the master key reveals nothing.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use aws_lc_rs::aead::{AES_256_GCM, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::digest::{SHA256, digest};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use keyward_core::{AutomationId, EnvVarId, SecretProviderId, UserId};
use thiserror::Error;
use zeroize::Zeroizing;

const MAGIC: &[u8; 3] = b"KW1";
const KEY_LEN: usize = 32;
const KEY_ID_LEN: usize = 8;
const TAG_LEN: usize = 16;
/// The master key file created in the data directory on first start.
pub const MASTER_KEY_FILE: &str = "master.key";

/// What a sealed value is bound to (its additional authenticated data): a value sealed for one
/// context does not open in another, so a sealed column copied to another row is useless.
///
/// The bytes are stored with nothing but the ciphertext: they must never change, or sealed data
/// stops opening. Each context starts with its own word and a `:`, no word contains a `:`, and the
/// ids are fixed-length UUIDs, so two different contexts never give the same bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Aad<'a> {
    /// An environment variable's stored value: `env_var:<id>`.
    EnvVar { id: EnvVarId },
    /// A static-backed value resolved for an automation: `resolved:<automation>:<var>`.
    Resolved {
        automation: AutomationId,
        var: EnvVarId,
    },
    /// A secret provider's static credentials: `secret_provider:<id>`.
    SecretProvider { id: SecretProviderId },
    /// A signing key's private half: `signing_key:<kid>`.
    SigningKey { kid: &'a str },
    /// A person's TOTP secret: `totp:<user>`.
    Totp { user: UserId },
    /// The audit chain's key, kept sealed so it outlives a master-key rotation: `audit_key:`.
    AuditKey,
}

impl Aad<'_> {
    /// The word before the first `:`, which alone tells the contexts apart.
    pub fn prefix(&self) -> &'static str {
        match self {
            Aad::EnvVar { .. } => "env_var:",
            Aad::Resolved { .. } => "resolved:",
            Aad::SecretProvider { .. } => "secret_provider:",
            Aad::SigningKey { .. } => "signing_key:",
            Aad::Totp { .. } => "totp:",
            Aad::AuditKey => "audit_key:",
        }
    }

    pub fn bytes(&self) -> Vec<u8> {
        let rest = match self {
            Aad::EnvVar { id } => id.to_string(),
            Aad::Resolved { automation, var } => format!("{automation}:{var}"),
            Aad::SecretProvider { id } => id.to_string(),
            Aad::SigningKey { kid } => (*kid).to_owned(),
            Aad::Totp { user } => user.to_string(),
            Aad::AuditKey => String::new(),
        };
        format!("{}{rest}", self.prefix()).into_bytes()
    }
}

#[derive(Debug, Error)]
pub enum CryptoError {
    #[error(
        "KEYWARD_MASTER_KEY is not a base64-encoded 32-byte key ({0}); generate one with `openssl rand -base64 32`"
    )]
    BadEnvKey(String),
    #[error("master key file {path} is not a base64-encoded 32-byte key: {reason}")]
    BadKeyFile { path: PathBuf, reason: String },
    #[error("cannot read or create the master key file {path}: {source}")]
    KeyFileIo {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "master key file {path} is readable by other users (mode {mode:o}); run `chmod 600 {path}`"
    )]
    KeyFileMode { path: PathBuf, mode: u32 },
    #[error(
        "a stored secret was sealed with master key {stored} but the configured master key is {configured}: start with the master key this data was created with"
    )]
    WrongMasterKey { stored: String, configured: String },
    #[error("a stored secret is damaged or does not belong where it was found")]
    Corrupt,
    #[error("the system random number generator failed")]
    Random,
}

/// The key that wraps every data key. Its bytes are wiped when dropped.
pub struct MasterKey {
    key: LessSafeKey,
    id: [u8; KEY_ID_LEN],
    /// Derived at load, since the master key's bytes are not kept.
    audit: crate::audit::AuditKey,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MasterKey")
            .field("id", &hex::encode(self.id))
            .finish_non_exhaustive()
    }
}

impl MasterKey {
    fn from_bytes(bytes: &[u8]) -> Result<Self, String> {
        if bytes.len() != KEY_LEN {
            return Err(format!(
                "it decodes to {} bytes, not {KEY_LEN}",
                bytes.len()
            ));
        }
        let key = UnboundKey::new(&AES_256_GCM, bytes).map_err(|_| "rejected by AES".to_owned())?;
        let mut id = [0u8; KEY_ID_LEN];
        // The id identifies the key without revealing it: a prefix of its hash.
        id.copy_from_slice(&digest(&SHA256, bytes).as_ref()[..KEY_ID_LEN]);
        Ok(Self {
            key: LessSafeKey::new(key),
            id,
            audit: crate::audit::AuditKey::derive(bytes, hex::encode(id)),
        })
    }

    /// Parses a base64 key as given in `KEYWARD_MASTER_KEY`.
    pub fn from_base64(text: &str) -> Result<Self, CryptoError> {
        let bytes = Zeroizing::new(
            STANDARD
                .decode(text.trim())
                .map_err(|e| CryptoError::BadEnvKey(e.to_string()))?,
        );
        Self::from_bytes(&bytes).map_err(CryptoError::BadEnvKey)
    }

    /// A fresh random key, for tests and first starts.
    pub fn generate() -> Result<(Self, Zeroizing<String>), CryptoError> {
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        SystemRandom::new()
            .fill(bytes.as_mut())
            .map_err(|_| CryptoError::Random)?;
        let text = Zeroizing::new(STANDARD.encode(bytes.as_ref()));
        let key = Self::from_bytes(bytes.as_ref()).map_err(|_| CryptoError::Random)?;
        Ok((key, text))
    }

    /// `KEYWARD_MASTER_KEY` when set; otherwise `<data_dir>/master.key`, created (0600) on first
    /// start. Refuses a key file that other users can read.
    pub fn load_or_create(env_value: Option<&str>, data_dir: &Path) -> Result<Self, CryptoError> {
        if let Some(text) = env_value {
            return Self::from_base64(text);
        }
        let path = data_dir.join(MASTER_KEY_FILE);
        let io = |source| CryptoError::KeyFileIo {
            path: path.clone(),
            source,
        };
        match fs::metadata(&path) {
            Ok(meta) => {
                let mode = meta.permissions().mode() & 0o777;
                if mode & 0o077 != 0 {
                    return Err(CryptoError::KeyFileMode {
                        path: path.clone(),
                        mode,
                    });
                }
                let text = Zeroizing::new(fs::read_to_string(&path).map_err(io)?);
                let bytes = Zeroizing::new(STANDARD.decode(text.trim()).map_err(|e| {
                    CryptoError::BadKeyFile {
                        path: path.clone(),
                        reason: e.to_string(),
                    }
                })?);
                Self::from_bytes(&bytes).map_err(|reason| CryptoError::BadKeyFile {
                    path: path.clone(),
                    reason,
                })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let (key, text) = Self::generate()?;
                // create_new: never overwrite a key another process just wrote.
                let mut file = fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&path)
                    .map_err(io)?;
                file.write_all(text.as_bytes()).map_err(io)?;
                file.sync_all().map_err(io)?;
                Ok(key)
            }
            Err(e) => Err(io(e)),
        }
    }

    pub fn id_hex(&self) -> String {
        hex::encode(self.id)
    }

    /// The id of the master key `sealed` was sealed with, or `None` when it is not sealed data.
    pub fn sealed_key_id(sealed: &[u8]) -> Option<String> {
        let header = MAGIC.len() + KEY_ID_LEN;
        if sealed.len() < header || &sealed[..MAGIC.len()] != MAGIC {
            return None;
        }
        Some(hex::encode(&sealed[MAGIC.len()..header]))
    }

    /// Replaces the derived audit key with the one stored sealed in the database, which a
    /// master-key rotation carries over unchanged (see the `master_keys` module).
    pub fn set_audit_key(&mut self, key: crate::audit::AuditKey) {
        self.audit = key;
    }

    /// The key of the audit chain's links (see [`crate::audit`]).
    pub fn audit_key(&self) -> crate::audit::AuditKey {
        self.audit.clone()
    }

    /// Seals `plaintext`; `aad` binds the result to where it is stored (e.g. `signing_key:<kid>`),
    /// so a sealed value copied to another row does not open.
    pub fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let rng = SystemRandom::new();
        let mut dek_bytes = Zeroizing::new([0u8; KEY_LEN]);
        rng.fill(dek_bytes.as_mut())
            .map_err(|_| CryptoError::Random)?;
        let dek = LessSafeKey::new(
            UnboundKey::new(&AES_256_GCM, dek_bytes.as_ref()).map_err(|_| CryptoError::Random)?,
        );

        let mut out = Vec::with_capacity(
            MAGIC.len() + KEY_ID_LEN + 2 * (NONCE_LEN + TAG_LEN) + KEY_LEN + plaintext.len(),
        );
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&self.id);

        let wrap_nonce = random_nonce(&rng)?;
        let mut wrapped = dek_bytes.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(wrap_nonce),
                aws_lc_rs::aead::Aad::from(aad),
                &mut wrapped,
            )
            .map_err(|_| CryptoError::Random)?;
        out.extend_from_slice(&wrap_nonce);
        out.extend_from_slice(&wrapped);

        let data_nonce = random_nonce(&rng)?;
        let mut body = plaintext.to_vec();
        dek.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(data_nonce),
            aws_lc_rs::aead::Aad::from(aad),
            &mut body,
        )
        .map_err(|_| CryptoError::Random)?;
        out.extend_from_slice(&data_nonce);
        out.extend_from_slice(&body);
        Ok(out)
    }

    pub fn open(&self, aad: &[u8], sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        let header = MAGIC.len() + KEY_ID_LEN;
        let wrapped_len = KEY_LEN + TAG_LEN;
        if sealed.len() < header + 2 * NONCE_LEN + wrapped_len + TAG_LEN || &sealed[..3] != MAGIC {
            return Err(CryptoError::Corrupt);
        }
        let stored_id = &sealed[MAGIC.len()..header];
        if stored_id != self.id {
            return Err(CryptoError::WrongMasterKey {
                stored: hex::encode(stored_id),
                configured: self.id_hex(),
            });
        }
        let mut at = header;
        let wrap_nonce = nonce_at(sealed, at)?;
        at += NONCE_LEN;
        let mut wrapped = Zeroizing::new(sealed[at..at + wrapped_len].to_vec());
        at += wrapped_len;
        let dek_bytes = self
            .key
            .open_in_place(
                wrap_nonce,
                aws_lc_rs::aead::Aad::from(aad),
                wrapped.as_mut(),
            )
            .map_err(|_| CryptoError::Corrupt)?;
        let dek = LessSafeKey::new(
            UnboundKey::new(&AES_256_GCM, dek_bytes).map_err(|_| CryptoError::Corrupt)?,
        );
        let data_nonce = nonce_at(sealed, at)?;
        at += NONCE_LEN;
        let mut body = Zeroizing::new(sealed[at..].to_vec());
        let plain_len = dek
            .open_in_place(data_nonce, aws_lc_rs::aead::Aad::from(aad), body.as_mut())
            .map_err(|_| CryptoError::Corrupt)?
            .len();
        body.truncate(plain_len);
        Ok(body)
    }
}

fn random_nonce(rng: &SystemRandom) -> Result<[u8; NONCE_LEN], CryptoError> {
    let mut nonce = [0u8; NONCE_LEN];
    rng.fill(&mut nonce).map_err(|_| CryptoError::Random)?;
    Ok(nonce)
}

fn nonce_at(bytes: &[u8], at: usize) -> Result<Nonce, CryptoError> {
    let slice = bytes.get(at..at + NONCE_LEN).ok_or(CryptoError::Corrupt)?;
    Nonce::try_assume_unique_for_key(slice).map_err(|_| CryptoError::Corrupt)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_with_the_same_key_and_context() {
        let (key, _) = MasterKey::generate().unwrap();
        let sealed = key.seal(b"signing_key:a", b"private bytes").unwrap();
        assert!(!sealed.windows(13).any(|w| w == b"private bytes"));
        assert_eq!(
            &key.open(b"signing_key:a", &sealed).unwrap()[..],
            b"private bytes"
        );
        assert!(matches!(
            key.open(b"signing_key:b", &sealed),
            Err(CryptoError::Corrupt)
        ));
        let (other, _) = MasterKey::generate().unwrap();
        assert!(matches!(
            other.open(b"signing_key:a", &sealed),
            Err(CryptoError::WrongMasterKey { .. })
        ));
        let mut flipped = sealed.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        assert!(matches!(
            key.open(b"signing_key:a", &flipped),
            Err(CryptoError::Corrupt)
        ));
    }

    /// One context of each kind; the `match` fails to compile when a kind is added without
    /// being listed here.
    fn one_of_each<'a>(kid: &'a str, ids: [uuid::Uuid; 2]) -> Vec<Aad<'a>> {
        let all = vec![
            Aad::EnvVar {
                id: EnvVarId(ids[0]),
            },
            Aad::Resolved {
                automation: AutomationId(ids[0]),
                var: EnvVarId(ids[1]),
            },
            Aad::SecretProvider {
                id: SecretProviderId(ids[0]),
            },
            Aad::SigningKey { kid },
            Aad::Totp {
                user: UserId(ids[0]),
            },
            Aad::AuditKey,
        ];
        for aad in &all {
            match aad {
                Aad::EnvVar { .. }
                | Aad::Resolved { .. }
                | Aad::SecretProvider { .. }
                | Aad::SigningKey { .. }
                | Aad::Totp { .. }
                | Aad::AuditKey => {}
            }
        }
        all
    }

    #[test]
    fn sealing_contexts_keep_todays_bytes() {
        let a: uuid::Uuid = "6f1c2a3b-4d5e-4f60-8a1b-2c3d4e5f6a7b".parse().unwrap();
        let b: uuid::Uuid = "00000000-0000-4000-8000-000000000001".parse().unwrap();
        let text: Vec<String> = one_of_each("k1", [a, b])
            .iter()
            .map(|aad| String::from_utf8(aad.bytes()).unwrap())
            .collect();
        assert_eq!(
            text,
            [
                format!("env_var:{a}"),
                format!("resolved:{a}:{b}"),
                format!("secret_provider:{a}"),
                "signing_key:k1".to_owned(),
                format!("totp:{a}"),
                "audit_key:".to_owned(),
            ]
        );
    }

    #[test]
    fn no_two_sealing_contexts_collide() {
        let prefixes: Vec<&str> = one_of_each("", [uuid::Uuid::nil(); 2])
            .iter()
            .map(Aad::prefix)
            .collect();
        for (i, p) in prefixes.iter().enumerate() {
            // One word, then the only `:` of the prefix: the word before the first `:` of the
            // bytes names the kind.
            assert!(p.ends_with(':') && p.matches(':').count() == 1, "{p}");
            for (j, q) in prefixes.iter().enumerate() {
                assert!(i == j || !q.starts_with(p), "{p} is a prefix of {q}");
            }
        }
        // Kids that look like other contexts, and random ids: every context's bytes are distinct.
        let kids = ["", "k1", "env_var:x", "totp:", ":", "resolved:a:b"];
        let mut seen = std::collections::HashMap::new();
        for round in 0..200 {
            let ids = [uuid::Uuid::new_v4(), uuid::Uuid::new_v4()];
            let ids = if round == 0 { [ids[0], ids[0]] } else { ids };
            for kid in kids {
                for aad in one_of_each(kid, ids) {
                    let bytes = aad.bytes();
                    assert!(bytes.starts_with(aad.prefix().as_bytes()));
                    if let Some(earlier) = seen.insert(bytes.clone(), aad) {
                        assert_eq!(earlier, aad, "{}", String::from_utf8_lossy(&bytes));
                    }
                }
            }
        }
        // Within a kind, the ids are fixed-length: swapping them gives other bytes.
        let (a, b) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
        assert_ne!(
            Aad::Resolved {
                automation: AutomationId(a),
                var: EnvVarId(b)
            }
            .bytes(),
            Aad::Resolved {
                automation: AutomationId(b),
                var: EnvVarId(a)
            }
            .bytes()
        );
    }

    #[test]
    fn the_key_file_is_created_0600_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let a = MasterKey::load_or_create(None, dir.path()).unwrap();
        let path = dir.path().join(MASTER_KEY_FILE);
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let b = MasterKey::load_or_create(None, dir.path()).unwrap();
        assert_eq!(a.id_hex(), b.id_hex());
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            MasterKey::load_or_create(None, dir.path()),
            Err(CryptoError::KeyFileMode { .. })
        ));
    }

    #[test]
    fn a_bad_env_key_names_the_variable() {
        let err = MasterKey::from_base64("c2hvcnQ=").unwrap_err();
        assert!(err.to_string().contains("KEYWARD_MASTER_KEY"));
    }
}
