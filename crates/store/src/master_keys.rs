//! Master-key rotation (SPEC §11): every sealed value is re-sealed under a new master key in
//! batches, each batch in its own transaction, so a rotation killed half-way resumes where it
//! stopped: a value already under the new key is recognised by the key id it carries.
//!
//! The database records the keys by id (`master_keys`): a retired key is refused at start, and
//! while a rotation is unfinished no server starts (values are split between two keys). The
//! audit chain's key is derived from the first master key and then kept sealed (`sealed_keys`),
//! so events written before a rotation still verify after it.

use async_trait::async_trait;
use keyward_core::{AutomationId, EnvVarId, SecretProviderId, UserId};
use thiserror::Error;

use crate::crypto::{Aad, CryptoError, MasterKey};
use crate::{Result, StoreError};

/// The audit event of a finished rotation; its data names both keys by id, never by bytes.
pub const ROTATED_KIND: &str = "master_key.rotated";

/// The name of the sealed audit chain key in `sealed_keys`.
pub const AUDIT_KEY_NAME: &str = "audit";

/// Every column that holds [`MasterKey::seal`] output. A new sealed column must be listed here,
/// or a rotation leaves it under the retired key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SealedColumn {
    SigningKey,
    SecretProviderStatic,
    EnvVarValue,
    ResolvedValue,
    Totp,
    AuditKey,
}

impl SealedColumn {
    pub const ALL: [SealedColumn; 6] = [
        SealedColumn::SigningKey,
        SealedColumn::SecretProviderStatic,
        SealedColumn::EnvVarValue,
        SealedColumn::ResolvedValue,
        SealedColumn::Totp,
        SealedColumn::AuditKey,
    ];

    /// `(table, key column, second key column, sealed column)`; fixed names, never input.
    pub(crate) fn sql(
        self,
    ) -> (
        &'static str,
        &'static str,
        Option<&'static str>,
        &'static str,
    ) {
        match self {
            SealedColumn::SigningKey => ("signing_keys", "kid", None, "private_key"),
            SealedColumn::SecretProviderStatic => ("secret_providers", "id", None, "sealed_static"),
            SealedColumn::EnvVarValue => ("environment_variables", "id", None, "sealed_value"),
            SealedColumn::ResolvedValue => (
                "resolved_static_values",
                "automation_id",
                Some("env_var_id"),
                "sealed_value",
            ),
            SealedColumn::Totp => ("local_credentials", "user_id", None, "sealed_totp"),
            SealedColumn::AuditKey => ("sealed_keys", "name", None, "sealed"),
        }
    }

    /// `table.column`, for progress and errors.
    pub fn name(self) -> String {
        let (table, _, _, col) = self.sql();
        format!("{table}.{col}")
    }
}

/// The primary key of a row holding a sealed value (`b` empty for one-column keys).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CellKey {
    pub a: String,
    pub b: String,
}

#[derive(Clone, Debug)]
pub struct SealedCell {
    pub column: SealedColumn,
    pub key: CellKey,
    pub sealed: Vec<u8>,
}

impl SealedCell {
    /// The context the value was sealed for, rebuilt from the row's key.
    fn aad(&self) -> Result<Vec<u8>, RotateError> {
        let uuid = |text: &str| {
            text.parse::<uuid::Uuid>()
                .map_err(|_| RotateError::BadRow(self.column.name(), self.key.a.clone()))
        };
        let aad = match self.column {
            SealedColumn::SigningKey => Aad::SigningKey { kid: &self.key.a }.bytes(),
            SealedColumn::SecretProviderStatic => Aad::SecretProvider {
                id: SecretProviderId(uuid(&self.key.a)?),
            }
            .bytes(),
            SealedColumn::EnvVarValue => Aad::EnvVar {
                id: EnvVarId(uuid(&self.key.a)?),
            }
            .bytes(),
            SealedColumn::ResolvedValue => Aad::Resolved {
                automation: AutomationId(uuid(&self.key.a)?),
                var: EnvVarId(uuid(&self.key.b)?),
            }
            .bytes(),
            SealedColumn::Totp => Aad::Totp {
                user: UserId(uuid(&self.key.a)?),
            }
            .bytes(),
            SealedColumn::AuditKey => Aad::AuditKey.bytes(),
        };
        Ok(aad)
    }
}

/// A master key the database knows, by id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MasterKeyRow {
    pub key_id: String,
    /// `active`, `rotating` or `retired`.
    pub state: String,
    pub created_at: i64,
    pub retired_at: Option<i64>,
    pub successor: Option<String>,
}

#[async_trait]
pub trait MasterKeyStore: Send + Sync {
    async fn master_keys(&self) -> Result<Vec<MasterKeyRow>>;
    /// Records `old` as active (if not yet recorded) and `new` as the rotation's target.
    async fn begin_master_rotation(&self, old: &str, new: &str, now: i64) -> Result<()>;
    /// Retires `old` (successor `new`) and activates `new`, in one transaction.
    async fn finish_master_rotation(&self, old: &str, new: &str, now: i64) -> Result<()>;
    /// Up to `limit` non-null sealed values of `column` after `after`, in key order.
    async fn sealed_cells(
        &self,
        column: SealedColumn,
        after: Option<&CellKey>,
        limit: i64,
    ) -> Result<Vec<SealedCell>>;
    /// Replaces each `(key, old, new)` where the row still holds `old`, in one transaction;
    /// returns how many rows changed.
    async fn reseal_cells(
        &self,
        column: SealedColumn,
        cells: &[(CellKey, Vec<u8>, Vec<u8>)],
    ) -> Result<u64>;
    /// Stores a sealed key under `name` unless one is stored already.
    async fn put_sealed_key(&self, name: &str, sealed: &[u8]) -> Result<()>;
}

#[derive(Debug, Error)]
pub enum AdmitError {
    #[error(
        "the configured master key {key} was retired by `keyward admin master-key rotate` (its successor is {successor}): start with the new key (<data-dir>/master.key, or KEYWARD_MASTER_KEY set to its contents); if the rotation stopped before installing it, run `keyward admin master-key rotate` again"
    )]
    Retired { key: String, successor: String },
    #[error(
        "a master-key rotation from {from} to {to} is unfinished, so stored secrets are split between the two keys: run `keyward admin master-key rotate` again (with the old key configured) to finish it"
    )]
    Unfinished { from: String, to: String },
    #[error("cannot open the audit chain's key stored in the database: {0}")]
    AuditKey(String),
    #[error("{0}")]
    Store(#[from] StoreError),
}

/// Checks the configured master key against the keys the database knows, and replaces its audit
/// key with the stored one when a rotation has stored it. A key the database does not know is
/// let through as before (its secrets then fail to open, and `audit verify` names the key).
pub async fn admit(store: &dyn crate::Store, master: &mut MasterKey) -> Result<(), AdmitError> {
    let keys = store.master_keys().await?;
    let id = master.id_hex();
    if let Some(mine) = keys.iter().find(|k| k.key_id == id)
        && mine.state == "retired"
    {
        return Err(AdmitError::Retired {
            key: id,
            successor: mine.successor.clone().unwrap_or_default(),
        });
    }
    if let Some(to) = keys.iter().find(|k| k.state == "rotating") {
        let from = keys
            .iter()
            .find(|k| k.state == "active")
            .map(|k| k.key_id.clone())
            .unwrap_or_default();
        return Err(AdmitError::Unfinished {
            from,
            to: to.key_id.clone(),
        });
    }
    if let Some(audit) = stored_audit_key(store, &[&*master])
        .await
        .map_err(|e| match e {
            RotateError::Store(s) => AdmitError::Store(s),
            other => AdmitError::AuditKey(other.to_string()),
        })?
    {
        master.set_audit_key(audit);
    }
    Ok(())
}

#[derive(Debug, Error)]
pub enum RotateError {
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("cannot re-seal {column} of row {row}: {source}")]
    Crypto {
        column: String,
        row: String,
        source: CryptoError,
    },
    #[error("{0} of row {1}: the row's key is not an id; the database was edited or is damaged")]
    BadRow(String, String),
    #[error(
        "{column} of row {row} is sealed with master key {found}, which is neither the old key {old} nor the new key {new}: restore the database, or rotate with the key it was sealed with"
    )]
    ForeignKey {
        column: String,
        row: String,
        found: String,
        old: String,
        new: String,
    },
}

/// The audit chain's key stored in the database, opened with whichever of `keys` sealed it;
/// `None` when none is stored yet, or none of `keys` sealed it (then the chain's key is derived
/// from the master key, and `audit verify` names the key it does not verify under).
pub async fn stored_audit_key(
    store: &dyn crate::Store,
    keys: &[&MasterKey],
) -> Result<Option<crate::audit::AuditKey>, RotateError> {
    let Some(cell) = store
        .sealed_cells(SealedColumn::AuditKey, None, 10)
        .await?
        .into_iter()
        .find(|c| c.key.a == AUDIT_KEY_NAME)
    else {
        return Ok(None);
    };
    let sealed_by = MasterKey::sealed_key_id(&cell.sealed);
    let Some(key) = keys.iter().find(|k| Some(k.id_hex()) == sealed_by) else {
        return Ok(None);
    };
    let seed = key
        .open(&cell.aad()?, &cell.sealed)
        .map_err(|source| RotateError::Crypto {
            column: cell.column.name(),
            row: cell.key.a.clone(),
            source,
        })?;
    let named = keys.first().map(|k| k.id_hex()).unwrap_or_default();
    Ok(Some(crate::audit::AuditKey::from_seed(&seed, named)))
}

/// Stores `old`'s audit key sealed under `old`, unless one is stored: from now on it stays the
/// chain's key whatever the master key becomes.
pub async fn keep_audit_key(store: &dyn crate::Store, old: &MasterKey) -> Result<(), RotateError> {
    let audit = old.audit_key();
    let sealed = old
        .seal(&Aad::AuditKey.bytes(), audit.seed())
        .map_err(|source| RotateError::Crypto {
            column: SealedColumn::AuditKey.name(),
            row: AUDIT_KEY_NAME.into(),
            source,
        })?;
    store.put_sealed_key(AUDIT_KEY_NAME, &sealed).await?;
    Ok(())
}

/// What a re-sealing pass did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResealReport {
    /// Values moved from the old key to the new one.
    pub resealed: u64,
    /// Values found already under the new key (a resumed rotation).
    pub already: u64,
    pub batches: u64,
}

/// Re-seals every sealed value under `new`, `batch` rows per transaction; values already under
/// `new` are skipped. `after_batch` runs after each committed batch with the column and the
/// running report (progress output, and the test hook that pauses a rotation to kill it).
pub async fn reseal_all(
    store: &dyn crate::Store,
    old: &MasterKey,
    new: &MasterKey,
    batch: i64,
    mut after_batch: impl FnMut(SealedColumn, &ResealReport),
) -> Result<ResealReport, RotateError> {
    let (old_id, new_id) = (old.id_hex(), new.id_hex());
    let mut report = ResealReport::default();
    for column in SealedColumn::ALL {
        let mut after: Option<CellKey> = None;
        loop {
            let cells = store
                .sealed_cells(column, after.as_ref(), batch.max(1))
                .await?;
            let Some(last) = cells.last() else { break };
            after = Some(last.key.clone());
            let mut updates = Vec::with_capacity(cells.len());
            for cell in &cells {
                let row = || {
                    format!(
                        "{}{}",
                        cell.key.a,
                        if cell.key.b.is_empty() {
                            String::new()
                        } else {
                            format!("/{}", cell.key.b)
                        }
                    )
                };
                match MasterKey::sealed_key_id(&cell.sealed) {
                    Some(id) if id == new_id => {
                        report.already += 1;
                        continue;
                    }
                    Some(id) if id == old_id => {}
                    found => {
                        return Err(RotateError::ForeignKey {
                            column: column.name(),
                            row: row(),
                            found: found.unwrap_or_else(|| "(not sealed data)".into()),
                            old: old_id.clone(),
                            new: new_id.clone(),
                        });
                    }
                }
                let crypto = |source| RotateError::Crypto {
                    column: column.name(),
                    row: row(),
                    source,
                };
                let aad = cell.aad()?;
                let plain = old.open(&aad, &cell.sealed).map_err(crypto)?;
                let sealed = new.seal(&aad, &plain).map_err(crypto)?;
                updates.push((cell.key.clone(), cell.sealed.clone(), sealed));
            }
            if !updates.is_empty() {
                report.resealed += store.reseal_cells(column, &updates).await?;
                report.batches += 1;
                after_batch(column, &report);
            }
            if (cells.len() as i64) < batch.max(1) {
                break;
            }
        }
    }
    Ok(report)
}
