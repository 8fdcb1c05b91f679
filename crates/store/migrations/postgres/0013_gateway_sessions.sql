-- Gateway session recordings (SPEC §9): each recorded request ends in one `gateway.request` audit
-- event whose data carries `session` = {id, segment, lines, head_hash, bytes} (or {id, error}).
-- Listing a session's heads, and listing sessions, look events up by that id within one
-- organization; the partial expression index keeps both off a scan of the whole audit log. The
-- queries repeat this exact expression so the planner can use the index. `data` is TEXT (the
-- exact hashed JSON), so it is cast; the text-to-jsonb cast is immutable, as an index needs.
CREATE INDEX audit_events_gateway_session
    ON audit_events (org_id, ((data::jsonb -> 'session' ->> 'id')))
    WHERE kind = 'gateway.request';
