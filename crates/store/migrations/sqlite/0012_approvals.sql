-- Just-in-time approval requests of the gateway (SPEC §9). Every transition is a conditional
-- UPDATE on `state`, so two approvers or two replicas cannot both win; a row past
-- `expires_at` (pending) or `grant_expires_at` (approved) reads as expired even before it is
-- persisted so. `summary` is JSON (method, path, host, model/tool) and never holds a body.
CREATE TABLE approvals (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    route_id TEXT,
    route_name TEXT NOT NULL,
    requester_kind TEXT NOT NULL,
    requester_subject TEXT NOT NULL,
    requester_email TEXT,
    requester_automation TEXT,
    policy_id TEXT NOT NULL,
    reason TEXT NOT NULL,
    summary TEXT NOT NULL,
    mode TEXT NOT NULL,
    grant_kind TEXT NOT NULL,
    grant_seconds INTEGER NOT NULL,
    state TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    decided_by_user TEXT,
    decided_by_email TEXT,
    decision_comment TEXT,
    decided_at INTEGER,
    grant_expires_at INTEGER,
    executed_at INTEGER,
    revoked_by_user TEXT,
    revoked_by_email TEXT,
    revoke_comment TEXT,
    revoked_at INTEGER
);
CREATE INDEX approvals_org_created ON approvals (org_id, created_at, id);
CREATE INDEX approvals_state_deadline ON approvals (state, expires_at);
CREATE INDEX approvals_grant ON approvals (org_id, requester_subject, route_name, policy_id, state);
