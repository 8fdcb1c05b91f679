//! TLS for the server: a local CA and server certificate generated in the data directory on
//! first start (so `curl --cacert <data>/tls/ca.pem` works), or the operator's own files.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use thiserror::Error;

use crate::clock;

#[derive(Debug, Error)]
pub enum TlsError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("generating the local TLS certificates failed: {0}")]
    Generate(#[from] rcgen::Error),
    #[error(
        "{path} holds no PEM certificate (--tls-cert expects a PEM chain, server certificate first)"
    )]
    NoCertificate { path: PathBuf },
    #[error("{path} holds no PEM private key (--tls-key expects PKCS#8, PKCS#1 or SEC1 PEM)")]
    NoKey { path: PathBuf },
    #[error("the TLS certificate and key do not fit together or are unusable: {0}")]
    Rustls(#[from] rustls::Error),
}

/// The files a TLS listener uses.
#[derive(Clone, Debug)]
pub struct TlsFiles {
    /// The generated local CA, to hand to clients; `None` for operator certificates.
    pub ca: Option<PathBuf>,
    pub cert: PathBuf,
    pub key: PathBuf,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> TlsError + '_ {
    move |source| TlsError::Io {
        path: path.to_owned(),
        source,
    }
}

fn write_file(path: &Path, contents: &str, mode: u32) -> Result<(), TlsError> {
    let tmp = path.with_extension("tmp");
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .map_err(io(&tmp))?;
    file.write_all(contents.as_bytes()).map_err(io(&tmp))?;
    file.sync_all().map_err(io(&tmp))?;
    fs::rename(&tmp, path).map_err(io(path))
}

fn validity(params: &mut CertificateParams, now: i64, days: i64) {
    let now = clock::to_datetime(now);
    params.not_before = now - time::Duration::days(1);
    params.not_after = now + time::Duration::days(days);
}

/// The local CA's identity; rebuilt identically to sign server certificates on later starts.
fn ca_params() -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "Keyward local CA");
    dn.push(DnType::OrganizationName, "Keyward");
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params
}

/// Ensures `<data_dir>/tls/{ca.pem,ca.key,server.pem,server.key}` exist and the server
/// certificate names every host in `hosts` (plus localhost and the loopback addresses). New
/// certificates are valid from a day before `now`.
pub fn ensure_self_signed(
    data_dir: &Path,
    hosts: &[String],
    now: i64,
) -> Result<TlsFiles, TlsError> {
    ensure_self_signed_named(data_dir, "server", hosts, now)
}

/// [`ensure_self_signed`] for another listener of the installation (the gateway): the same local
/// CA signs `<name>.pem`/`<name>.key`, so the server's own certificate is never rewritten.
pub fn ensure_self_signed_named(
    data_dir: &Path,
    name: &str,
    hosts: &[String],
    now: i64,
) -> Result<TlsFiles, TlsError> {
    let dir = data_dir.join("tls");
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .map_err(io(&dir))?;
    let (ca_pem, ca_key) = (dir.join("ca.pem"), dir.join("ca.key"));
    let (cert, key) = (
        dir.join(format!("{name}.pem")),
        dir.join(format!("{name}.key")),
    );
    let names_file = dir.join(format!("{name}.names"));

    let mut names: Vec<String> = vec!["localhost".into(), "127.0.0.1".into(), "::1".into()];
    for host in hosts {
        if !names.contains(host) {
            names.push(host.clone());
        }
    }
    let names_text = names.join("\n");

    let ca_key_pair = if ca_pem.exists() && ca_key.exists() {
        KeyPair::from_pem(&fs::read_to_string(&ca_key).map_err(io(&ca_key))?)?
    } else {
        let key_pair = KeyPair::generate()?;
        let mut params = ca_params();
        validity(&mut params, now, 3650);
        let ca = params.self_signed(&key_pair)?;
        write_file(&ca_key, &key_pair.serialize_pem(), 0o600)?;
        write_file(&ca_pem, &ca.pem(), 0o644)?;
        // A new CA invalidates any earlier server certificate.
        let _ = fs::remove_file(&names_file);
        key_pair
    };

    let current = fs::read_to_string(&names_file).unwrap_or_default();
    if current != names_text || !cert.exists() || !key.exists() {
        let ca_text = fs::read_to_string(&ca_pem).map_err(io(&ca_pem))?;
        // The issuer is identified by its name and key, which ca_params() reproduces exactly.
        let issuer = Issuer::new(ca_params(), &ca_key_pair);
        let key_pair = KeyPair::generate()?;
        let mut params = CertificateParams::new(names.clone())?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, format!("Keyward {name}"));
        params.distinguished_name = dn;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        validity(&mut params, now, 825);
        let server = params.signed_by(&key_pair, &issuer)?;
        write_file(&key, &key_pair.serialize_pem(), 0o600)?;
        write_file(&cert, &format!("{}{}", server.pem(), ca_text), 0o644)?;
        write_file(&names_file, &names_text, 0o644)?;
    }
    Ok(TlsFiles {
        ca: Some(ca_pem),
        cert,
        key,
    })
}

/// A rustls server configuration (HTTP/2 and HTTP/1.1) from PEM files.
pub fn server_config(files: &TlsFiles) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert)
        .map_err(|_| TlsError::NoCertificate {
            path: files.cert.clone(),
        })?
        .collect::<Result<_, _>>()
        .map_err(|_| TlsError::NoCertificate {
            path: files.cert.clone(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            path: files.cert.clone(),
        });
    }
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|_| TlsError::NoKey {
        path: files.key.clone(),
    })?;
    let mut config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
