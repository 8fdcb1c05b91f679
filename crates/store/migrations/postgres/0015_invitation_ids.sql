-- Invitations get an id of their own, so they can be listed and revoked without handing out
-- the hash of their secret. Rows from before this migration get a random one.
ALTER TABLE invitations ADD COLUMN id TEXT;
UPDATE invitations SET id = md5(random()::text || clock_timestamp()::text || hash) WHERE id IS NULL;
CREATE UNIQUE INDEX invitations_id ON invitations (id);
CREATE INDEX invitations_org_pending ON invitations (org_id, accepted_at, expires_at);
