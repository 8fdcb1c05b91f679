//! What the simulated AWS account holds while running: Secrets Manager secrets and the sessions
//! behind access keys.

use crate::version::Version;

#[derive(Clone, Debug)]
pub struct AwsSecret {
    pub arn: String,
    pub versions: Vec<Version>,
}

#[derive(Clone, Debug)]
pub struct AwsSession {
    pub secret_access_key: String,
    /// Empty for an IAM user's long-lived key.
    pub session_token: String,
    /// The role assumed, or the IAM user's name.
    pub role: String,
    pub session_name: String,
    pub exp: i64,
    /// An IAM user's access key rather than an assumed role's session.
    pub user: bool,
}
