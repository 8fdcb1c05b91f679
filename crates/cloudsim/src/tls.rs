//! The simulator's own CA, kept in its data directory so `--print-ca` and later runs agree, and a
//! loopback server certificate signed by it at every start.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum TlsError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("generating the simulator's certificates failed: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("the simulator's TLS configuration is unusable: {0}")]
    Rustls(#[from] rustls::Error),
}

pub struct Ca {
    pub pem_path: PathBuf,
    pub pem: String,
    key: KeyPair,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> TlsError + '_ {
    move |source| TlsError::Io {
        path: path.to_owned(),
        source,
    }
}

fn ca_params() -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "Keyward cloudsim CA");
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params
}

/// Loads the CA from `dir`, creating it (key 0600) on first use.
pub fn ensure_ca(dir: &Path, now: time::OffsetDateTime) -> Result<Ca, TlsError> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io(dir))?;
    // The endpoints file hands this path to other processes, which may run elsewhere.
    let dir = &std::path::absolute(dir).map_err(io(dir))?;
    let (pem_path, key_path) = (dir.join("cloudsim-ca.pem"), dir.join("cloudsim-ca.key"));
    if pem_path.exists() && key_path.exists() {
        let key = KeyPair::from_pem(&fs::read_to_string(&key_path).map_err(io(&key_path))?)?;
        let pem = fs::read_to_string(&pem_path).map_err(io(&pem_path))?;
        return Ok(Ca { pem_path, pem, key });
    }
    let key = KeyPair::generate()?;
    let mut params = ca_params();
    params.not_before = now - time::Duration::days(1);
    params.not_after = now + time::Duration::days(3650);
    let pem = params.self_signed(&key)?.pem();
    write(&key_path, &key.serialize_pem(), 0o600)?;
    write(&pem_path, &pem, 0o644)?;
    Ok(Ca { pem_path, pem, key })
}

fn write(path: &Path, contents: &str, mode: u32) -> Result<(), TlsError> {
    let tmp = path.with_extension("tmp");
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .map_err(io(&tmp))?;
    f.write_all(contents.as_bytes()).map_err(io(&tmp))?;
    f.sync_all().map_err(io(&tmp))?;
    fs::rename(&tmp, path).map_err(io(path))
}

/// A rustls server config for loopback names, HTTP/1.1 only (what the SDKs speak).
pub fn server_config(
    ca: &Ca,
    now: time::OffsetDateTime,
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let issuer = Issuer::new(ca_params(), &ca.key);
    let key = KeyPair::generate()?;
    let mut params =
        CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into(), "::1".into()])?;
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.not_before = now - time::Duration::days(1);
    params.not_after = now + time::Duration::days(30);
    let cert = params.signed_by(&key, &issuer)?;
    let chain = vec![CertificateDer::from(cert.der().to_vec())];
    let key_der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let mut config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(chain, key_der)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
