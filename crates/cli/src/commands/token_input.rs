//! Where a command's bearer token comes from: a file or stdin (`--token-file`, `-` for stdin)
//! keeps it out of the process list, which every user of the machine can read; `--token` on
//! the command line still works but says so.

use std::io::Read;
use std::path::Path;

use anyhow::Context;

/// The token from `--token-file` (or stdin for `-`), else from `--token`/its environment
/// variable. `env_name` is that variable, used to tell a flag on the command line from it.
pub fn resolve(
    flag: Option<&str>,
    file: Option<&Path>,
    env_name: &str,
) -> anyhow::Result<Option<String>> {
    if let Some(path) = file {
        let mut text = String::new();
        if path == Path::new("-") {
            std::io::stdin()
                .read_to_string(&mut text)
                .context("cannot read the token from stdin")?;
        } else {
            text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the token file {}", path.display()))?;
        }
        let token = text.trim();
        anyhow::ensure!(
            !token.is_empty(),
            "the token file {} is empty",
            path.display()
        );
        return Ok(Some(token.to_owned()));
    }
    let Some(token) = flag.filter(|t| !t.trim().is_empty()) else {
        return Ok(None);
    };
    // Clap fills the flag from the variable too; only a flag the variable did not supply was on
    // the command line.
    if std::env::var(env_name).ok().as_deref() != Some(token) {
        eprintln!(
            "warning: --token on the command line is visible to every user of this machine (ps, /proc/<pid>/cmdline); use {env_name} or --token-file instead"
        );
    }
    Ok(Some(token.trim().to_owned()))
}

/// Warns when a token is about to travel to `url` in clear text (anywhere but loopback).
pub fn warn_if_cleartext(url: &str) {
    let Ok(parsed) = reqwest::Url::parse(url) else {
        return;
    };
    let host = parsed.host_str().unwrap_or_default();
    let loopback = host == "localhost"
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if parsed.scheme() == "http" && !loopback {
        eprintln!(
            "warning: {url} is plain http: the token crosses the network unencrypted; use https:// (or an https proxy in front of a --http server)"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_file_wins_and_is_trimmed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t");
        std::fs::write(&path, "kwa_secret\n").unwrap();
        assert_eq!(
            resolve(Some("kwa_other"), Some(&path), "KEYWARD_TEST_UNSET_VAR").unwrap(),
            Some("kwa_secret".to_owned())
        );
        std::fs::write(&path, " \n").unwrap();
        assert!(resolve(None, Some(&path), "KEYWARD_TEST_UNSET_VAR").is_err());
        assert_eq!(resolve(None, None, "KEYWARD_TEST_UNSET_VAR").unwrap(), None);
    }
}
