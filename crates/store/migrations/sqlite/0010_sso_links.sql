-- External identities linked to Keyward accounts (security review M3, L4).
--
-- A person signing in through the identity provider is found by the provider's stable name for
-- them: (issuer, sub) for OpenID Connect, (IdP entity ID, NameID) for SAML. The email address
-- is used only to make the first link, and only when the provider vouches for it; after that a
-- changed address still reaches the same account, and another subject presenting the same
-- address does not.
--
-- `admitted` is what the provider said at the person's most recent sign-in through this link
-- (1: it granted `member` or `factory-admin`, 0: neither); personal access tokens stop
-- working while the most recent sign-in was not admitted.
CREATE TABLE sso_links (
    issuer TEXT NOT NULL,
    subject TEXT NOT NULL,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    email TEXT,
    admitted INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL,
    PRIMARY KEY (issuer, subject)
);
-- One identity per provider per account: a second subject presenting a linked account's
-- address is someone else.
CREATE UNIQUE INDEX sso_links_user_issuer ON sso_links (user_id, issuer);
