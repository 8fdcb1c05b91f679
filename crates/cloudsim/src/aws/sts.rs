//! STS on the query protocol (form in, XML out): `AssumeRoleWithWebIdentity` for workload
//! identity, `AssumeRole` for IAM users' keys, and `GetCallerIdentity`.

use axum::http::StatusCode;
use axum::response::Response;
use jsonwebtoken::Algorithm;

use crate::aws::caller::{caller_arn, signed_session};
use crate::aws::policy::{allowed, find_role, policies_of, trusts, trusts_principal};
use crate::aws::types::AwsSession;
use crate::clock::rfc3339;
use crate::jwt::{FetchError, JwtError, TimeError, TimeRules, Unverified, check_times};
use crate::sim::{Sim, random_string, random_upper};
use crate::state::{AwsOidcProvider, AwsState, provider_host};
use crate::wire::{Req, STS_NS, error_xml, esc, form_get, xml_response};

const ALGS: &[Algorithm] = &[
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::ES256,
    Algorithm::ES384,
];
const TIME: TimeRules = TimeRules {
    skew: 300,
    require_iat: false,
    max_lifetime: None,
};

fn sts_error(status: StatusCode, code: &str, message: impl AsRef<str>) -> Response {
    xml_response(
        status,
        error_xml(
            code,
            message.as_ref(),
            if status.is_server_error() {
                "Receiver"
            } else {
                "Sender"
            },
        ),
    )
}

/// An STS answer: `result` is the inside of `<{action}Result>`, one indented element a line.
fn sts_ok(action: &str, result: &str) -> Response {
    xml_response(
        StatusCode::OK,
        format!(
            "<{action}Response xmlns=\"{STS_NS}\">\n  <{action}Result>\n{result}  </{action}Result>\n  <ResponseMetadata>\n    <RequestId>{}</RequestId>\n  </ResponseMetadata>\n</{action}Response>\n",
            uuid::Uuid::new_v4()
        ),
    )
}

/// `POST /` with a form body (`Action=…`): the STS query protocol.
pub async fn serve(sim: &Sim, req: &Req) -> Response {
    let form = req.form();
    if form_get(&form, "Version").is_some_and(|v| v != "2011-06-15") {
        return sts_error(
            StatusCode::BAD_REQUEST,
            "InvalidAction",
            "Could not find operation for version",
        );
    }
    match form_get(&form, "Action") {
        Some("AssumeRoleWithWebIdentity") => assume_role_with_web_identity(sim, &form).await,
        Some("GetCallerIdentity") => get_caller_identity(sim, req),
        Some("AssumeRole") => assume_role(sim, req, &form),
        Some(other) => sts_error(
            StatusCode::BAD_REQUEST,
            "InvalidAction",
            format!("Could not find operation {other} for version 2011-06-15"),
        ),
        None => sts_error(StatusCode::BAD_REQUEST, "MissingAction", "Missing Action"),
    }
}

async fn assume_role_with_web_identity(sim: &Sim, form: &[(String, String)]) -> Response {
    let denied = || {
        sts_error(
            StatusCode::FORBIDDEN,
            "AccessDenied",
            "Not authorized to perform sts:AssumeRoleWithWebIdentity",
        )
    };
    let Some(aws) = &sim.state.file.aws else {
        return denied();
    };
    let (Some(role_arn), Some(session), Some(web_token)) = (
        form_get(form, "RoleArn"),
        form_get(form, "RoleSessionName"),
        form_get(form, "WebIdentityToken"),
    ) else {
        return missing(form, &["RoleArn", "RoleSessionName", "WebIdentityToken"]);
    };
    if let Err(r) = check_session_name(session) {
        return r;
    }
    let duration = match duration(form) {
        Ok(d) => d,
        Err(r) => return r,
    };
    let (token, provider) = match provider_for(aws, web_token) {
        Ok(found) => found,
        Err(r) => return r,
    };
    if let Err(r) = verify_signature(sim, &token, provider).await {
        return r;
    }
    let now = sim.now();
    if let Err(TimeError::Expired { exp }) | Err(TimeError::NotYetValid { nbf: exp }) =
        check_times(&token, now, &TIME)
    {
        return sts_error(
            StatusCode::BAD_REQUEST,
            "ExpiredTokenException",
            format!(
                "Token expired: current date/time {now} must be before the expiration date/time {exp}"
            ),
        );
    }
    let host = provider_host(provider.url.get_ref());
    let Some(role) = find_role(aws, role_arn) else {
        return denied();
    };
    if !trusts(aws, role, host, &token) {
        return denied();
    }
    let acct = aws.account_id.get_ref();
    let credentials = start_session(
        sim,
        acct,
        role.name.get_ref(),
        session,
        now + sim.lifetime(duration),
    );
    let sub = token.str_claim("sub").unwrap_or_default();
    sts_ok(
        "AssumeRoleWithWebIdentity",
        &format!(
            "    <SubjectFromWebIdentityToken>{}</SubjectFromWebIdentityToken>\n    <Audience>{}</Audience>\n{credentials}    <Provider>arn:aws:iam::{acct}:oidc-provider/{}</Provider>\n",
            esc(sub),
            esc(&token.audiences().join(",")),
            esc(host)
        ),
    )
}

/// The web identity token, parsed, and the account's OIDC provider for its issuer, which must
/// list one of its audiences as a client id.
fn provider_for<'a>(
    aws: &'a AwsState,
    web_token: &str,
) -> Result<(Unverified, &'a AwsOidcProvider), Response> {
    let token = Unverified::parse(web_token).map_err(|_| {
        sts_error(
            StatusCode::BAD_REQUEST,
            "InvalidIdentityToken",
            "The ID Token provided is not a valid JWT. (You may see this error if you sent an Access Token)",
        )
    })?;
    let iss = token.str_claim("iss").unwrap_or_default().to_owned();
    let Some(provider) = aws
        .oidc_providers
        .iter()
        .find(|p| p.url.get_ref().trim_end_matches('/') == iss.trim_end_matches('/'))
    else {
        return Err(sts_error(
            StatusCode::BAD_REQUEST,
            "InvalidIdentityToken",
            format!("No OpenIDConnect provider found in your account for {iss}"),
        ));
    };
    let auds = token.audiences();
    if !provider
        .client_ids
        .iter()
        .any(|c| auds.contains(c.get_ref()))
    {
        return Err(sts_error(
            StatusCode::BAD_REQUEST,
            "InvalidIdentityToken",
            "Incorrect token audience",
        ));
    }
    Ok((token, provider))
}

/// The token's signature against the provider's published keys, with STS's errors.
async fn verify_signature(
    sim: &Sim,
    token: &Unverified,
    provider: &AwsOidcProvider,
) -> Result<(), Response> {
    let Err(e) = sim.keys.verify(token, provider.url.get_ref(), ALGS).await else {
        return Ok(());
    };
    Err(match e {
        JwtError::Fetch(FetchError::Unavailable(_)) => sts_error(
            StatusCode::BAD_REQUEST,
            "IDPCommunicationError",
            "The request could not be fulfilled because the identity provider (IDP) that was asked to verify the incoming identity token could not be reached. This is often a transient error caused by network conditions. Retry the request a limited number of times and wait between attempts to be notified of your identity providers status.",
        ),
        JwtError::Algorithm(alg) => sts_error(
            StatusCode::BAD_REQUEST,
            "InvalidIdentityToken",
            format!("Unsupported signing algorithm {alg}"),
        ),
        JwtError::Signature { .. } => sts_error(
            StatusCode::BAD_REQUEST,
            "InvalidIdentityToken",
            "The web identity token that was passed could not be validated by AWS. Get a new identity token from the identity provider and then retry the request.",
        ),
        _ => sts_error(
            StatusCode::BAD_REQUEST,
            "InvalidIdentityToken",
            "Couldn't retrieve verification key from your identity provider,  please reference AssumeRoleWithWebIdentity documentation for requirements",
        ),
    })
}

/// `AssumeRole`, signed with an IAM user's key (or a session's): the role's trust policy must
/// name the caller (or the account root), the `sts:ExternalId` condition must hold, and the
/// caller's own policies must allow `sts:AssumeRole` on the role.
fn assume_role(sim: &Sim, req: &Req, form: &[(String, String)]) -> Response {
    let session = match signed_session(sim, req, "sts", None) {
        Ok(s) => s,
        Err((code, message)) => return sts_error(StatusCode::FORBIDDEN, code, message),
    };
    let Some(aws) = &sim.state.file.aws else {
        return sts_error(
            StatusCode::FORBIDDEN,
            "AccessDenied",
            "Not authorized to perform sts:AssumeRole",
        );
    };
    let (Some(role_arn), Some(session_name)) =
        (form_get(form, "RoleArn"), form_get(form, "RoleSessionName"))
    else {
        return missing(form, &["RoleArn", "RoleSessionName"]);
    };
    if let Err(r) = check_session_name(session_name) {
        return r;
    }
    let acct = aws.account_id.get_ref();
    let caller = caller_arn(acct, &session);
    let denied = || {
        sts_error(
            StatusCode::FORBIDDEN,
            "AccessDenied",
            format!(
                "User: {caller} is not authorized to perform: sts:AssumeRole on resource: {role_arn}"
            ),
        )
    };
    let Some(role) = find_role(aws, role_arn) else {
        return denied();
    };
    if !policies_of(aws, &session).is_some_and(|p| allowed(p, "sts:AssumeRole", role_arn)) {
        return denied();
    }
    if !trusts_principal(aws, role, &caller, form_get(form, "ExternalId")) {
        return denied();
    }
    let duration = match duration(form) {
        Ok(d) => d,
        Err(r) => return r,
    };
    let exp = sim.now() + sim.lifetime(duration);
    let credentials = start_session(sim, acct, role.name.get_ref(), session_name, exp);
    sts_ok("AssumeRole", &credentials)
}

/// STS's validation error for the first of `names` the form lacks.
fn missing(form: &[(String, String)], names: &[&str]) -> Response {
    let missing = names
        .iter()
        .find(|k| form_get(form, k).is_none())
        .unwrap_or(&names[0]);
    sts_error(
        StatusCode::BAD_REQUEST,
        "ValidationError",
        format!(
            "1 validation error detected: Value null at '{}' failed to satisfy constraint: Member must not be null",
            lower_first(missing)
        ),
    )
}

fn check_session_name(session: &str) -> Result<(), Response> {
    let session_ok = (2..=64).contains(&session.len())
        && session
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+=,.@-_".contains(c));
    if session_ok {
        return Ok(());
    }
    Err(sts_error(
        StatusCode::BAD_REQUEST,
        "ValidationError",
        format!(
            "1 validation error detected: Value '{session}' at 'roleSessionName' failed to satisfy constraint: Member must satisfy regular expression pattern: [\\w+=,.@-]*"
        ),
    ))
}

/// `DurationSeconds`: an hour when absent, else 15 minutes to 12 hours.
fn duration(form: &[(String, String)]) -> Result<i64, Response> {
    match form_get(form, "DurationSeconds").map(str::parse::<i64>) {
        None => Ok(3600),
        Some(Ok(d)) if (900..=43200).contains(&d) => Ok(d),
        Some(_) => Err(sts_error(
            StatusCode::BAD_REQUEST,
            "ValidationError",
            "1 validation error detected: Value at 'durationSeconds' failed to satisfy constraint: Member must have value between 900 and 43200",
        )),
    }
}

/// Opens a session on the role under a fresh access key, and returns the `AssumedRoleUser` and
/// `Credentials` elements that hand it out.
fn start_session(sim: &Sim, acct: &str, role_name: &str, session_name: &str, exp: i64) -> String {
    let akid = format!("ASIA{}", random_upper(16));
    let secret = random_string(40);
    let session_token = format!("IQoJb3JpZ2luX2VjE{}", random_string(120));
    sim.lock().aws_sessions.insert(
        akid.clone(),
        AwsSession {
            secret_access_key: secret.clone(),
            session_token: session_token.clone(),
            role: role_name.to_owned(),
            session_name: session_name.to_owned(),
            exp,
            user: false,
        },
    );
    format!(
        "    <AssumedRoleUser>\n      <Arn>arn:aws:sts::{acct}:assumed-role/{}/{}</Arn>\n      <AssumedRoleId>{}:{}</AssumedRoleId>\n    </AssumedRoleUser>\n    <Credentials>\n      <AccessKeyId>{akid}</AccessKeyId>\n      <SecretAccessKey>{secret}</SecretAccessKey>\n      <SessionToken>{session_token}</SessionToken>\n      <Expiration>{}</Expiration>\n    </Credentials>\n",
        esc(role_name),
        esc(session_name),
        role_id(acct, role_name),
        esc(session_name),
        rfc3339(exp),
    )
}

fn get_caller_identity(sim: &Sim, req: &Req) -> Response {
    let session = match signed_session(sim, req, "sts", None) {
        Ok(s) => s,
        Err((code, message)) => return sts_error(StatusCode::FORBIDDEN, code, message),
    };
    let acct = sim
        .state
        .file
        .aws
        .as_ref()
        .map(|a| a.account_id.get_ref().clone())
        .unwrap_or_default();
    let user_id = if session.user {
        format!(
            "AIDA{}",
            role_id(&acct, &session.role).trim_start_matches("AROA")
        )
    } else {
        format!(
            "{}:{}",
            role_id(&acct, &session.role),
            esc(&session.session_name)
        )
    };
    sts_ok(
        "GetCallerIdentity",
        &format!(
            "    <Arn>{}</Arn>\n    <UserId>{user_id}</UserId>\n    <Account>{acct}</Account>\n",
            esc(&caller_arn(&acct, &session)),
        ),
    )
}

fn lower_first(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_ascii_lowercase().to_string() + c.as_str())
        .unwrap_or_default()
}

/// A role's stable id as AWS prints it (`AROA…`), derived from the account and the name.
fn role_id(acct: &str, role: &str) -> String {
    format!(
        "AROA{}",
        hex::encode_upper(
            &aws_lc_rs::digest::digest(
                &aws_lc_rs::digest::SHA256,
                format!("{acct}/{role}").as_bytes()
            )
            .as_ref()[..8]
        )
    )
}
