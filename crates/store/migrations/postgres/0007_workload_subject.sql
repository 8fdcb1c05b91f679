-- The `sub` a workload identity config's tokens carry (SPEC §3, security review H3):
-- 'organization' = organization:<org>, 'automation' = organization:<org>:automation:<id>, so the
-- cloud-side trust can enforce the config's automation restriction. Existing configs keep the
-- reference's organization subject.
ALTER TABLE workload_identity_configs
    ADD COLUMN subject TEXT NOT NULL DEFAULT 'organization'
    CHECK (subject IN ('organization', 'automation'));
