-- RBAC (SPEC §8): roles per organization, and entity permissions on automations, environment
-- variables and LLM connections.

-- Memberships keep naming their role by `name` (unique per organization), so rows written
-- before this migration ('owner') and by other code paths keep working; a rename updates them
-- in the same transaction. Owner and Member are predefined: their grants live in code
-- (keyward_core::permission), `grants` holds custom roles' levels as a JSON object.
CREATE TABLE roles (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    description TEXT NOT NULL,
    grants TEXT NOT NULL,
    predefined BOOLEAN NOT NULL DEFAULT FALSE,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (org_id, name)
);

-- Every existing organization gets Owner and Member.
INSERT INTO roles (id, org_id, name, description, grants, predefined, created_at, updated_at)
SELECT gen_random_uuid()::text,
       id, 'owner', 'Full access to all features and settings. Cannot be restricted.', '{}', TRUE,
       created_at, created_at
FROM orgs;
INSERT INTO roles (id, org_id, name, description, grants, predefined, created_at, updated_at)
SELECT gen_random_uuid()::text,
       id, 'member', 'Read access to most features, manage access to environment variables, LLM connections, and Studio projects.', '{}', TRUE,
       created_at, created_at
FROM orgs;

CREATE INDEX memberships_org_role ON memberships (org_id, role);

-- No row means public.
CREATE TABLE automation_visibility (
    automation_id TEXT PRIMARY KEY REFERENCES automations(id) ON DELETE CASCADE,
    visibility TEXT NOT NULL CHECK (visibility IN ('public', 'private'))
);

-- One row per user or role named on an automation: whitelisted for a private one, and/or
-- holding entity permissions (space-separated: run traces manage_settings human_in_the_loop
-- full_access). `principal` is 'user:<uuid>' or 'role:<uuid>', the key; the two id columns
-- carry the foreign keys so a deleted user or role takes its entries along.
CREATE TABLE automation_grants (
    automation_id TEXT NOT NULL REFERENCES automations(id) ON DELETE CASCADE,
    principal TEXT NOT NULL,
    user_id TEXT REFERENCES users(id) ON DELETE CASCADE,
    role_id TEXT REFERENCES roles(id) ON DELETE CASCADE,
    whitelisted BOOLEAN NOT NULL,
    permissions TEXT NOT NULL,
    PRIMARY KEY (automation_id, principal),
    CHECK ((user_id IS NULL) <> (role_id IS NULL))
);

-- Access lists: a variable or connection with rows here is seen and used only by the Owner
-- and the listed users and roles.
CREATE TABLE environment_variable_access (
    env_var_id TEXT NOT NULL REFERENCES environment_variables(id) ON DELETE CASCADE,
    principal TEXT NOT NULL,
    user_id TEXT REFERENCES users(id) ON DELETE CASCADE,
    role_id TEXT REFERENCES roles(id) ON DELETE CASCADE,
    PRIMARY KEY (env_var_id, principal),
    CHECK ((user_id IS NULL) <> (role_id IS NULL))
);

CREATE TABLE llm_connection_access (
    connection_id TEXT NOT NULL REFERENCES llm_connections(id) ON DELETE CASCADE,
    principal TEXT NOT NULL,
    user_id TEXT REFERENCES users(id) ON DELETE CASCADE,
    role_id TEXT REFERENCES roles(id) ON DELETE CASCADE,
    PRIMARY KEY (connection_id, principal),
    CHECK ((user_id IS NULL) <> (role_id IS NULL))
);
