//! Who may read `/metrics` (`KEYWARD_METRICS_ACCESS`): route templates, audiences and signing-key
//! ids are operational detail an operator may not want on the open internet.

use std::net::IpAddr;

use aws_lc_rs::digest::{SHA256, digest};

/// Shortest `KEYWARD_METRICS_TOKEN` accepted: a scraper's bearer is a password.
pub const MIN_TOKEN_LEN: usize = 24;

#[derive(Clone, PartialEq, Eq)]
pub enum MetricsAccess {
    /// Only clients on this host (after `--trusted-proxies` names the real client).
    Loopback,
    /// Only requests bearing `KEYWARD_METRICS_TOKEN`.
    Token(MetricsToken),
    /// Anyone who can reach the listener.
    Public,
}

/// The scrape bearer; never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct MetricsToken(String);

impl std::fmt::Debug for MetricsAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a scrape was refused; the message tells the operator which setting decides.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    NotLoopback,
    MissingToken,
    WrongToken,
}

impl MetricsAccess {
    pub fn name(&self) -> &'static str {
        match self {
            MetricsAccess::Loopback => "loopback",
            MetricsAccess::Token(_) => "token",
            MetricsAccess::Public => "public",
        }
    }

    /// Parses `--metrics-access` with its `--metrics-token`; an error names the setting at fault.
    pub fn from_settings(access: Option<&str>, token: Option<&str>) -> Result<Self, String> {
        let token = token.filter(|t| !t.is_empty());
        let access = match access.map(str::trim).filter(|a| !a.is_empty()) {
            None | Some("loopback") => MetricsAccess::Loopback,
            Some("public") => MetricsAccess::Public,
            Some("token") => {
                let token = token.ok_or(
                    "--metrics-access token needs KEYWARD_METRICS_TOKEN (the bearer scrapers send)",
                )?;
                if token.len() < MIN_TOKEN_LEN || !token.bytes().all(|b| b.is_ascii_graphic()) {
                    return Err(format!(
                        "KEYWARD_METRICS_TOKEN must be at least {MIN_TOKEN_LEN} printable characters without spaces"
                    ));
                }
                return Ok(MetricsAccess::Token(MetricsToken(token.to_owned())));
            }
            Some(other) => {
                return Err(format!(
                    "--metrics-access / KEYWARD_METRICS_ACCESS: {other:?} is not one of loopback, token, public"
                ));
            }
        };
        if token.is_some() {
            // A token that is silently not asked for would look like protection that is not there.
            return Err(format!(
                "KEYWARD_METRICS_TOKEN is set but --metrics-access is {}; set --metrics-access token to require it, or unset the token",
                access.name()
            ));
        }
        Ok(access)
    }

    /// Whether a scrape from `client` (resolved through the trusted proxies) with this
    /// `Authorization` header value may read the metrics.
    pub fn admit(
        &self,
        client: Option<IpAddr>,
        authorization: Option<&str>,
    ) -> Result<(), Refusal> {
        match self {
            MetricsAccess::Public => Ok(()),
            MetricsAccess::Loopback => match client.map(|ip| ip.to_canonical()) {
                Some(ip) if ip.is_loopback() => Ok(()),
                _ => Err(Refusal::NotLoopback),
            },
            MetricsAccess::Token(MetricsToken(want)) => {
                let given = authorization
                    .and_then(|v| {
                        v.strip_prefix("Bearer ")
                            .or_else(|| v.strip_prefix("bearer "))
                    })
                    .map(str::trim)
                    .ok_or(Refusal::MissingToken)?;
                // Digests first: equal lengths, so the comparison time says nothing about the
                // token's length either.
                let a = digest(&SHA256, given.as_bytes());
                let b = digest(&SHA256, want.as_bytes());
                aws_lc_rs::constant_time::verify_slices_are_equal(a.as_ref(), b.as_ref())
                    .map_err(|_| Refusal::WrongToken)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "scrape-token-0123456789abcdef";

    #[test]
    fn settings_parse_and_name_the_setting_at_fault() {
        assert_eq!(
            MetricsAccess::from_settings(None, None),
            Ok(MetricsAccess::Loopback)
        );
        assert_eq!(
            MetricsAccess::from_settings(Some("public"), None),
            Ok(MetricsAccess::Public)
        );
        let err = MetricsAccess::from_settings(Some("token"), None).unwrap_err();
        assert!(err.contains("KEYWARD_METRICS_TOKEN"), "{err}");
        let err = MetricsAccess::from_settings(Some("token"), Some("short")).unwrap_err();
        assert!(err.contains("at least"), "{err}");
        let err = MetricsAccess::from_settings(Some("open"), None).unwrap_err();
        assert!(err.contains("loopback, token, public"), "{err}");
        let err = MetricsAccess::from_settings(None, Some(TOKEN)).unwrap_err();
        assert!(err.contains("--metrics-access token"), "{err}");
        assert!(
            !format!(
                "{:?}",
                MetricsAccess::from_settings(Some("token"), Some(TOKEN))
            )
            .contains(TOKEN)
        );
    }

    #[test]
    fn admission_follows_the_mode() {
        let local: IpAddr = "127.0.0.1".parse().unwrap();
        let mapped: IpAddr = "::ffff:127.0.0.1".parse().unwrap();
        let remote: IpAddr = "203.0.113.9".parse().unwrap();
        let loopback = MetricsAccess::Loopback;
        assert_eq!(loopback.admit(Some(local), None), Ok(()));
        assert_eq!(loopback.admit(Some(mapped), None), Ok(()));
        assert_eq!(
            loopback.admit(Some(remote), None),
            Err(Refusal::NotLoopback)
        );
        assert_eq!(loopback.admit(None, None), Err(Refusal::NotLoopback));

        let token = MetricsAccess::from_settings(Some("token"), Some(TOKEN)).unwrap();
        let bearer = format!("Bearer {TOKEN}");
        assert_eq!(token.admit(Some(remote), Some(&bearer)), Ok(()));
        assert_eq!(token.admit(Some(local), None), Err(Refusal::MissingToken));
        assert_eq!(
            token.admit(Some(local), Some("Bearer scrape-token-0123456789abcdeX")),
            Err(Refusal::WrongToken)
        );
        assert_eq!(MetricsAccess::Public.admit(None, None), Ok(()));
    }
}
