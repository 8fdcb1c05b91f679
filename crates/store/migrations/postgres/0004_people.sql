-- People signing in to Keyward itself (the `local` provider) and the CLI device flow (SPEC §7).

-- A person's password (argon2id PHC string) and optional TOTP secret (sealed with the master key).
CREATE TABLE local_credentials (
    user_id TEXT PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    password_hash TEXT NOT NULL,
    sealed_totp BYTEA,
    updated_at BIGINT NOT NULL
);

-- RFC 8628 device authorizations. Both codes are stored as SHA-256 only: the device code is
-- 256 random bits, the user code is rate-limited at entry. In the database so that any replica
-- can be polled.
CREATE TABLE device_codes (
    device_hash TEXT PRIMARY KEY,
    user_code_hash TEXT NOT NULL UNIQUE,
    client_id TEXT NOT NULL,
    scope TEXT NOT NULL,
    -- pending | approved | denied | consumed
    status TEXT NOT NULL,
    user_id TEXT REFERENCES users(id) ON DELETE CASCADE,
    interval_secs BIGINT NOT NULL,
    last_polled_ms BIGINT,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    decided_at BIGINT
);
CREATE INDEX device_codes_expires ON device_codes (expires_at);

-- Web console sessions (the /device verification page), by SHA-256 of the cookie value.
CREATE TABLE web_sessions (
    hash TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);

-- Fixed-window counters for rate limits that must hold across replicas (user-code entry, sign-in).
CREATE TABLE rate_counters (
    key TEXT PRIMARY KEY,
    window_start BIGINT NOT NULL,
    count BIGINT NOT NULL
);

-- Invitations of the local provider, by SHA-256 of the secret in the invitation link.
CREATE TABLE invitations (
    hash TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    email TEXT NOT NULL,
    role TEXT NOT NULL,
    invited_by TEXT REFERENCES users(id) ON DELETE SET NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    accepted_at BIGINT
);
