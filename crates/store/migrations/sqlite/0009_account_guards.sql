-- What a person's sign-ins and tokens must be checked against beyond their credentials
-- (security review L3, L4). One row per person, created on first need.
CREATE TABLE account_guards (
    user_id TEXT PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    -- The newest TOTP time step (unix time / 30) accepted from this person: a code of that step
    -- or an older one was already used (or could have been seen), so it is a replay.
    totp_last_step INTEGER,
    -- People's access tokens (the CLI's device-flow tokens) issued at or before this time are
    -- refused: set when the person changes their password.
    tokens_valid_after INTEGER
);
