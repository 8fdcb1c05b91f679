-- Master-key rotation (SPEC §11). The master keys this database was sealed with, by id only (a
-- prefix of the key's SHA-256; never its bytes): `active`, `rotating` (the target of a rotation
-- that has not finished) or `retired` (refused at start).
CREATE TABLE master_keys (
    key_id TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    retired_at BIGINT,
    successor TEXT
);

-- Keys that must outlive the master key, sealed under it: `audit` is the audit chain's key, so
-- events written before a rotation still verify after it.
CREATE TABLE sealed_keys (
    name TEXT PRIMARY KEY,
    sealed BYTEA NOT NULL
);
