-- Gateway routes managed through the API (SPEC §9). `spec` is the route as JSON, exactly as the
-- API validated it (keyward-policy `route_from_json`); every gateway replica reloads the table
-- when `updated_at` or the row count changes, so a change reaches all of them within seconds.
CREATE TABLE gateway_routes (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    spec TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX gateway_routes_name ON gateway_routes (org_id, name);
