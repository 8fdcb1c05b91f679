//! `keyward cloudsim`: serve the simulated cloud side, or change a running one.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use keyward_cloudsim::{CloudsimError, Options, Ready, World};
use keyward_core::endpoints::EndpointsFile;

/// `keyward cloudsim`: serve a simulated cloud side, or change a running one.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct CloudsimArgs {
    #[command(subcommand)]
    pub command: Option<CloudsimCommand>,
    /// State file (TOML) declaring the cloud side: pools, providers, apps, vaults, roles, secrets.
    #[arg(long, env = "KEYWARD_CLOUDSIM_STATE", conflicts_with = "demo")]
    pub state: Option<PathBuf>,
    /// Build a ready-made world for one organization (needs --issuer and --org).
    #[arg(long, requires_all = ["issuer", "org"])]
    pub demo: bool,
    /// The Keyward issuer URL the demo world trusts (as in its discovery document).
    #[arg(long)]
    pub issuer: Option<String>,
    /// The organization UUID the demo world's conditions and bindings name.
    #[arg(long)]
    pub org: Option<uuid::Uuid>,
    /// Make the demo world trust only this automation's finer subject
    /// (organization:<org>:automation:<uuid>), as for a config with `subject = automation`.
    #[arg(long, requires = "demo")]
    pub automation: Option<uuid::Uuid>,
    /// CA to trust when fetching the issuer's discovery and JWKS (Keyward's self-signed CA).
    #[arg(long, env = "KEYWARD_CLOUDSIM_ISSUER_CA")]
    pub issuer_ca: Option<PathBuf>,
    /// Loopback address to listen on; port 0 picks a free port.
    #[arg(long, env = "KEYWARD_CLOUDSIM_LISTEN", default_value = "127.0.0.1:0")]
    pub listen: std::net::SocketAddr,
    /// Directory for the simulator's CA (cloudsim-ca.pem; its key is 0600).
    #[arg(
        long,
        env = "KEYWARD_CLOUDSIM_DATA_DIR",
        default_value = "keyward-cloudsim"
    )]
    pub data_dir: PathBuf,
    /// Print the endpoints file (SPEC §10) as JSON on stdout once listening, and nothing else.
    #[arg(long)]
    pub print_json: bool,
    /// Also write the endpoints file here (atomically) once listening.
    #[arg(long)]
    pub write_endpoints: Option<PathBuf>,
    /// Print the simulator's CA certificate (PEM) and exit.
    #[arg(long, conflicts_with_all = ["demo", "state"])]
    pub print_ca: bool,
}

#[derive(Debug, Subcommand)]
pub enum CloudsimCommand {
    /// Change secrets of a running simulator.
    Secret {
        #[command(subcommand)]
        command: CloudsimSecretCommand,
    },
    /// Create a key for a declared GCP service account (the static-credentials path), like
    /// `gcloud iam service-accounts keys create`: writes the key file (0600).
    GcpKey {
        /// The endpoints file the simulator printed (KEYWARD_CLOUD_ENDPOINTS).
        #[arg(long, env = "KEYWARD_CLOUD_ENDPOINTS")]
        endpoints: PathBuf,
        /// The service account, as declared in the state file.
        email: String,
        /// Where to write the key file (JSON, created 0600).
        #[arg(long)]
        output: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum CloudsimSecretCommand {
    /// Add a new version of a secret (creating it if needed); the next read sees it.
    Set {
        /// The endpoints file the simulator printed (KEYWARD_CLOUD_ENDPOINTS).
        #[arg(long, env = "KEYWARD_CLOUD_ENDPOINTS")]
        endpoints: PathBuf,
        /// The cloud: gcp, azure or aws.
        #[arg(long, value_parser = ["gcp", "azure", "aws"])]
        cloud: String,
        /// Its name (unique in the organization).
        name: String,
        /// The value (visible in the process list: prefer --value-file for secrets).
        value: String,
    },
}

pub async fn run(args: CloudsimArgs) -> anyhow::Result<ExitCode> {
    if let Some(CloudsimCommand::Secret {
        command:
            CloudsimSecretCommand::Set {
                endpoints,
                cloud,
                name,
                value,
            },
    }) = args.command
    {
        return set_secret(&endpoints, &cloud, &name, &value).await;
    }
    if let Some(CloudsimCommand::GcpKey {
        endpoints,
        email,
        output,
    }) = args.command
    {
        return gcp_key(&endpoints, &email, &output).await;
    }
    if args.print_ca {
        let ca = keyward_cloudsim::tls::ensure_ca(&args.data_dir, keyward_cloudsim::clock::wall())?;
        print!("{}", ca.pem);
        return Ok(ExitCode::SUCCESS);
    }
    let world = match (args.demo, args.state, args.issuer, args.org) {
        (true, _, Some(issuer), Some(org)) => World::Demo {
            issuer,
            org,
            automation: args.automation,
        },
        (false, Some(path), _, _) => World::File(path),
        _ => bail!(
            "cloudsim needs a world: --state <file.toml>, or --demo --issuer <url> --org <uuid>"
        ),
    };
    let print_json = args.print_json;
    let write_endpoints = args.write_endpoints.clone();
    let on_ready = move |ready: &Ready| -> Result<(), CloudsimError> {
        let json = serde_json::to_string_pretty(&ready.endpoints).unwrap_or_default();
        if let Some(path) = &write_endpoints {
            write_atomically(path, &json)?;
        }
        let mut out = std::io::stdout().lock();
        if print_json {
            let _ = writeln!(out, "{json}");
        } else {
            let _ = writeln!(out, "cloudsim listening on https://{}", ready.addr);
            if let Some(ca) = &ready.endpoints.ca_file {
                let _ = writeln!(out, "CA certificate: {ca}");
            }
            let _ = writeln!(out, "Ready.");
        }
        let _ = out.flush();
        Ok(())
    };
    let opts = Options {
        world,
        listen: args.listen,
        data_dir: args.data_dir,
        issuer_ca: args.issuer_ca,
    };
    keyward_cloudsim::run(opts, on_ready, shutdown_signal()).await?;
    Ok(ExitCode::SUCCESS)
}

fn write_atomically(path: &Path, text: &str) -> Result<(), CloudsimError> {
    let tmp = path.with_extension("tmp");
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(|source| CloudsimError::Write {
        path: path.to_owned(),
        source,
    })
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {},
                    _ = term.recv() => {},
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
}

/// POSTs to a running simulator's admin endpoint `/_cloudsim/<path>`; the answer's JSON.
async fn admin_post(
    endpoints: &Path,
    cloud: &str,
    path: &str,
    body: serde_json::Value,
) -> anyhow::Result<serde_json::Value> {
    let text = std::fs::read_to_string(endpoints)
        .with_context(|| format!("cannot read the endpoints file {}", endpoints.display()))?;
    let file = EndpointsFile::from_json(&text)
        .with_context(|| format!("{} is not an endpoints file", endpoints.display()))?;
    let base = match cloud {
        "gcp" => file.gcp.as_ref().and_then(|g| g.sts_url.clone()),
        "azure" => file.azure.as_ref().and_then(|a| a.authority_host.clone()),
        _ => file.aws.as_ref().and_then(|a| a.sts_url.clone()),
    }
    .with_context(|| {
        format!(
            "{} has no {cloud} section pointing at a simulator",
            endpoints.display()
        )
    })?;
    let mut client = reqwest::Client::builder();
    if let Some(ca) = &file.ca_file {
        let pem =
            std::fs::read(ca).with_context(|| format!("cannot read the simulator CA {ca}"))?;
        for cert in reqwest::Certificate::from_pem_bundle(&pem)
            .with_context(|| format!("{ca} is not a PEM bundle"))?
        {
            client = client.add_root_certificate(cert);
        }
    }
    let resp = client
        .build()?
        .post(format!("{}/_cloudsim/{path}", base.trim_end_matches('/')))
        .bearer_auth(file.admin_token.as_deref().unwrap_or_default())
        .json(&body)
        .send()
        .await
        .with_context(|| {
            format!("cannot reach the simulator at {base}; is `keyward cloudsim` still running?")
        })?;
    let status = resp.status();
    let body: serde_json::Value = resp.json().await.unwrap_or_default();
    if !status.is_success() {
        let message = body
            .get("message")
            .or_else(|| body.get("error").and_then(|e| e.get("message")))
            .and_then(|m| m.as_str())
            .unwrap_or("unknown error");
        bail!("the simulator refused: {message}");
    }
    Ok(body)
}

async fn set_secret(
    endpoints: &Path,
    cloud: &str,
    name: &str,
    value: &str,
) -> anyhow::Result<ExitCode> {
    let body = admin_post(
        endpoints,
        cloud,
        "secrets",
        serde_json::json!({"cloud": cloud, "name": name, "value": value}),
    )
    .await?;
    println!(
        "{cloud} secret {name}: new version {}",
        body.get("version").and_then(|v| v.as_str()).unwrap_or("?")
    );
    Ok(ExitCode::SUCCESS)
}

async fn gcp_key(endpoints: &Path, email: &str, output: &Path) -> anyhow::Result<ExitCode> {
    let key = admin_post(
        endpoints,
        "gcp",
        "gcp/service-account-keys",
        serde_json::json!({"email": email}),
    )
    .await?;
    let text = serde_json::to_string_pretty(&key)?;
    write_atomically(output, &text)
        .with_context(|| format!("cannot write the key file {}", output.display()))?;
    println!(
        "created key {} for {email} in {}",
        key.get("private_key_id")
            .and_then(|v| v.as_str())
            .unwrap_or("?"),
        output.display()
    );
    Ok(ExitCode::SUCCESS)
}
