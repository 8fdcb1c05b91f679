//! The cloud clients' Prometheus metrics. They go to whatever recorder the process installed
//! (`keyward serve`'s `/metrics`); in `keyward run`, which installs none, they cost nothing.

use std::time::Duration;

use crate::error::{Cause, CloudError, Step};

/// A stable `operation` label per call of the chain (the `Display` of [`Step`] is prose).
pub fn operation(step: Step) -> &'static str {
    match step {
        Step::GcpStsExchange => "gcp_sts_exchange",
        Step::GcpServiceAccountKey => "gcp_service_account_key",
        Step::GcpImpersonation => "gcp_impersonation",
        Step::GcpSecretAccess => "gcp_secret_access",
        Step::GcpSecretList => "gcp_secret_list",
        Step::GcpVertex => "gcp_vertex",
        Step::EntraToken => "entra_token",
        Step::EntraClientSecret => "entra_client_secret",
        Step::KeyVaultGet => "key_vault_get",
        Step::KeyVaultList => "key_vault_list",
        Step::AwsAssumeRole => "aws_assume_role_with_web_identity",
        Step::AwsAssumeRoleStatic => "aws_assume_role",
        Step::AwsCallerIdentity => "aws_get_caller_identity",
        Step::AwsSecretGet => "aws_get_secret_value",
        Step::AwsSecretList => "aws_list_secrets",
    }
}

/// `keyward_cloud_call_duration_seconds{cloud,operation}`: one call, its retries included.
pub(crate) fn call_took(step: Step, took: Duration) {
    metrics::histogram!(
        "keyward_cloud_call_duration_seconds",
        "cloud" => step.cloud().to_string(),
        "operation" => operation(step)
    )
    .record(took.as_secs_f64());
}

/// `keyward_cloud_call_retries_total{cloud,operation}`: one more attempt after a transient failure.
pub(crate) fn retried(step: Step) {
    metrics::counter!(
        "keyward_cloud_call_retries_total",
        "cloud" => step.cloud().to_string(),
        "operation" => operation(step)
    )
    .increment(1);
}

/// `keyward_secret_resolutions_total{cloud,result}`: one secret read, `ok`, `not_found` or
/// `error`.
pub(crate) fn secret_read<T>(cloud: crate::error::Cloud, result: &Result<T, CloudError>) {
    let outcome = match result {
        Ok(_) => "ok",
        Err(e) if e.cause() == Some(Cause::SecretNotFound) => "not_found",
        Err(_) => "error",
    };
    metrics::counter!(
        "keyward_secret_resolutions_total",
        "cloud" => cloud.to_string(),
        "result" => outcome
    )
    .increment(1);
}
