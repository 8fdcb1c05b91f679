//! Who signed an AWS request: the session behind its access key (an assumed role's, or an IAM
//! user's long-lived key), checked with SigV4, and the ARN AWS prints for it.

use crate::aws::sigv4::{self, SigError};
use crate::aws::types::AwsSession;
use crate::sim::Sim;
use crate::wire::Req;

/// The caller's ARN as AWS prints it in errors and GetCallerIdentity.
pub fn caller_arn(account: &str, session: &AwsSession) -> String {
    if session.user {
        format!("arn:aws:iam::{account}:user/{}", session.role)
    } else {
        format!(
            "arn:aws:sts::{account}:assumed-role/{}/{}",
            session.role, session.session_name
        )
    }
}

/// A SigV4-authenticated caller: the session behind its access key.
pub fn signed_session(
    sim: &Sim,
    req: &Req,
    service: &str,
    region: Option<&str>,
) -> Result<AwsSession, (&'static str, String)> {
    let parsed = sigv4::parse_authorization(req).map_err(|e| sig_error(e, service))?;
    if parsed.service != service {
        return Err((
            "InvalidSignatureException",
            format!("Credential should be scoped to correct service: '{service}'."),
        ));
    }
    if let Some(region) = region
        && parsed.region != region
    {
        return Err((
            "InvalidSignatureException",
            format!(
                "Credential should be scoped to a valid region, not '{}'.",
                parsed.region
            ),
        ));
    }
    let now = sim.now();
    // An assumed role's session, else an IAM user's long-lived key (never expires, no token).
    let user = || {
        sim.state.file.aws.as_ref().and_then(|a| {
            a.users
                .iter()
                .find(|u| u.access_key_id.get_ref() == &parsed.access_key_id)
                .map(|u| AwsSession {
                    secret_access_key: u.secret_access_key.get_ref().clone(),
                    session_token: String::new(),
                    role: u.name.get_ref().clone(),
                    session_name: String::new(),
                    exp: i64::MAX,
                    user: true,
                })
        })
    };
    let session = sim
        .lock()
        .aws_sessions
        .get(&parsed.access_key_id)
        .cloned()
        .or_else(user)
        .ok_or_else(|| sig_error(SigError::UnknownKey, service))?;
    let presented = req.header("x-amz-security-token").unwrap_or_default();
    if !constant_eq(presented, &session.session_token) {
        return Err(sig_error(SigError::UnknownKey, service));
    }
    sigv4::verify(req, &parsed, &session.secret_access_key, now)
        .map_err(|e| sig_error(e, service))?;
    if session.exp <= now {
        return Err((
            "ExpiredTokenException",
            "The security token included in the request is expired".into(),
        ));
    }
    Ok(session)
}

fn constant_eq(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && aws_lc_rs::constant_time::verify_slices_are_equal(a.as_bytes(), b.as_bytes()).is_ok()
}

fn sig_error(e: SigError, service: &str) -> (&'static str, String) {
    let sts = service == "sts";
    match e {
        SigError::Missing(m) => (if sts { "MissingAuthenticationToken" } else { "MissingAuthenticationTokenException" }, m),
        SigError::Scope(m) => (if sts { "SignatureDoesNotMatch" } else { "InvalidSignatureException" }, m),
        SigError::Expired(m) => (if sts { "SignatureDoesNotMatch" } else { "InvalidSignatureException" }, m),
        SigError::UnknownKey => (
            if sts { "InvalidClientTokenId" } else { "UnrecognizedClientException" },
            "The security token included in the request is invalid.".into(),
        ),
        SigError::Mismatch => (
            if sts { "SignatureDoesNotMatch" } else { "InvalidSignatureException" },
            "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.".into(),
        ),
    }
}
