-- Secret provider credentials, environment variables and their assignment (SPEC §6).

CREATE TABLE secret_providers (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    provider TEXT NOT NULL,
    auth TEXT NOT NULL,
    -- A workload identity config in use by a credential cannot be deleted.
    wi_config_id TEXT REFERENCES workload_identity_configs(id) ON DELETE RESTRICT,
    -- region | project | vault_url, as JSON.
    settings TEXT NOT NULL,
    -- Static credentials, sealed with the master key; never returned.
    sealed_static BYTEA,
    default_for_provider BOOLEAN NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX secret_providers_name ON secret_providers (org_id, name);
CREATE UNIQUE INDEX secret_providers_one_default ON secret_providers (org_id, provider)
    WHERE default_for_provider;

CREATE TABLE environment_variables (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    key TEXT NOT NULL,
    source TEXT NOT NULL,
    provider TEXT,
    credential_id TEXT REFERENCES secret_providers(id) ON DELETE RESTRICT,
    secret_name TEXT,
    secret BOOLEAN NOT NULL,
    -- A direct value: plain when not secret, sealed when it is.
    value TEXT,
    sealed_value BYTEA,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX environment_variables_key ON environment_variables (org_id, key);

CREATE TABLE automation_environment_variables (
    automation_id TEXT NOT NULL REFERENCES automations(id) ON DELETE CASCADE,
    env_var_id TEXT NOT NULL REFERENCES environment_variables(id) ON DELETE CASCADE,
    PRIMARY KEY (automation_id, env_var_id)
);

-- Static-backed values resolved at registration or redeploy, sealed, kept until the next redeploy.
CREATE TABLE resolved_static_values (
    automation_id TEXT NOT NULL REFERENCES automations(id) ON DELETE CASCADE,
    env_var_id TEXT NOT NULL REFERENCES environment_variables(id) ON DELETE CASCADE,
    sealed_value BYTEA NOT NULL,
    resolved_at BIGINT NOT NULL,
    PRIMARY KEY (automation_id, env_var_id)
);
