-- Failed sign-ins (and invitation and setup attempts) per account and per client address, for
-- the exponential backoff that replaced the fixed lockout: each key's failure count and when
-- the last one happened, in Unix milliseconds. Shared by every replica.
CREATE TABLE auth_failures (
    key TEXT PRIMARY KEY,
    failures INTEGER NOT NULL,
    last_ms INTEGER NOT NULL
);
CREATE INDEX auth_failures_last_ms ON auth_failures (last_ms);
