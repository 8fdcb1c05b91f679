-- Workload identity configs and LLM connections (SPEC §4).

CREATE TABLE workload_identity_configs (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    cloud TEXT NOT NULL,
    -- The cloud's own fields as JSON: provider | tenant_id, client_id | role_arn, region.
    settings TEXT NOT NULL,
    default_for_cloud BOOLEAN NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX wi_configs_name ON workload_identity_configs (org_id, name);
CREATE UNIQUE INDEX wi_configs_one_default_per_cloud ON workload_identity_configs (org_id, cloud)
    WHERE default_for_cloud;

-- A config restricted to listed automations; none listed means every automation of the org.
CREATE TABLE workload_identity_config_automations (
    config_id TEXT NOT NULL REFERENCES workload_identity_configs(id) ON DELETE CASCADE,
    automation_id TEXT NOT NULL REFERENCES automations(id) ON DELETE CASCADE,
    PRIMARY KEY (config_id, automation_id)
);

CREATE TABLE llm_connections (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    provider TEXT NOT NULL,
    -- A config in use by a connection cannot be deleted.
    wi_config_id TEXT REFERENCES workload_identity_configs(id) ON DELETE RESTRICT,
    service_account_email TEXT,
    model TEXT,
    -- Connection-scoped environment variables as a JSON object.
    env TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX llm_connections_name ON llm_connections (org_id, name);

-- The automations that use a connection.
CREATE TABLE llm_connection_automations (
    connection_id TEXT NOT NULL REFERENCES llm_connections(id) ON DELETE CASCADE,
    automation_id TEXT NOT NULL REFERENCES automations(id) ON DELETE CASCADE,
    PRIMARY KEY (connection_id, automation_id)
);
