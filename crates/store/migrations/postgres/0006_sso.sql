-- Browser sign-in through an external identity provider (SPEC §7): OIDC and SAML.

-- A sign-in that left for the identity provider and has not come back yet. Keyed by SHA-256 of
-- the random `state` (OIDC) or RelayState (SAML) that the browser also holds in an HttpOnly
-- cookie; taken (deleted) exactly once by the callback, so a replayed callback finds nothing.
-- `nonce` is the OIDC nonce or the SAML AuthnRequest ID (checked against InResponseTo);
-- `pkce_verifier` is empty for SAML. Both are useless without the single-use code or a
-- signed response, and live for minutes.
CREATE TABLE sso_pending (
    state_hash TEXT PRIMARY KEY,
    protocol TEXT NOT NULL,
    nonce TEXT NOT NULL,
    pkce_verifier TEXT NOT NULL,
    next_path TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX sso_pending_expires ON sso_pending (expires_at);

-- SAML assertion and response IDs already accepted, until they could no longer be valid: a
-- response posted again is refused by every replica.
CREATE TABLE saml_replay (
    id TEXT PRIMARY KEY,
    expires_at BIGINT NOT NULL
);
CREATE INDEX saml_replay_expires ON saml_replay (expires_at);
