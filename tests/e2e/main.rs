//! End-to-end tests: they spawn the real `keyward` binary (SQLite, and PostgreSQL when
//! `KEYWARD_TEST_DATABASE_URL` is set) and use it over HTTPS like a client would.
//!
//! One test binary for all of them (modules below), so the binary is linked once.
// Test helpers unwrap: a failed step is the test's failure.
#![allow(clippy::unwrap_used)]

mod account_guards;
mod admin_cli_resources;
mod approvals;
mod approvals_rules;
mod approvals_wait;
mod approvals_webhook;
mod audit_chain;
mod audit_export;
mod audit_keyed;
mod audit_visibility;
mod bad_input;
mod cloud_clients;
mod cloudsim;
mod cloudsim_env;
mod cloudsim_refusals;
mod common;
mod console;
mod console_browser;
mod console_cloud;
mod console_gateway;
mod console_settings;
mod docs_examples;
mod doctor;
mod edge_hardening;
mod env_reserved;
mod env_run;
mod env_vars;
mod gateway_approvals;
mod gateway_cloudsim_upstreams;
mod gateway_common;
mod gateway_credentials;
mod gateway_credentials_refresh;
mod gateway_held_thousand;
mod gateway_identity;
mod gateway_masking;
mod gateway_masking_static;
mod gateway_proxy;
mod gateway_routes_api;
mod gateway_sessions;
mod gateway_tenancy;
mod invitation_takeover;
mod issuer;
mod master_key_rotation;
mod metrics_scrape;
mod moto;
mod newcomer;
mod people;
mod people_cli;
mod people_local;
mod people_providers;
mod people_throttle;
mod plaintext_sweep;
mod provider_checks;
mod rbac;
mod rbac_entities;
mod rotation;
mod run;
mod secret_providers;
mod secrets_resolution;
mod sessions_api;
mod sso_device;
mod sso_links;
mod sso_oidc;
mod sso_saml;
mod sso_saml_links;
mod static_values;
mod web_hardening;
mod wi_subject;
mod wi_subject_cloud;
mod wire_format;
mod workload_configs;
