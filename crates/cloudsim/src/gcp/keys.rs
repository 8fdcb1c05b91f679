//! Service account keys, as IAM manages them (through the admin endpoint here): the private half
//! goes out in a key file, the public half stays for the OAuth 2.0 endpoint to check assertions.

use axum::http::StatusCode;
use axum::response::Response;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::json;

use crate::gcp::errors::api_error;
use crate::sim::{ServiceAccountKey, Sim};
use crate::wire::json_response;

/// Creates a key for a declared service account, as `gcloud iam service-accounts keys create`
/// does: the answer is the key file (JSON with the PKCS#8 private key); only the public half
/// stays here. Its `token_uri` is this simulator's token endpoint.
pub fn create_key(sim: &Sim, email: &str) -> Response {
    let Some(gcp) = &sim.state.file.gcp else {
        return api_error(StatusCode::NOT_FOUND, "this world declares no [gcp]", None);
    };
    if !gcp
        .service_accounts
        .iter()
        .any(|sa| sa.email.get_ref() == email)
    {
        return api_error(
            StatusCode::NOT_FOUND,
            format!(
                "Service account projects/{}/serviceAccounts/{email} does not exist.",
                gcp.project_id.get_ref()
            ),
            None,
        );
    }
    use aws_lc_rs::encoding::AsDer;
    use aws_lc_rs::signature::KeyPair;
    let pair = match aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048) {
        Ok(p) => p,
        Err(_) => {
            return api_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "RSA key generation failed",
                None,
            );
        }
    };
    let der: aws_lc_rs::encoding::Pkcs8V1Der<'static> = match pair.as_der() {
        Ok(d) => d,
        Err(_) => {
            return api_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "PKCS#8 encoding failed",
                None,
            );
        }
    };
    let public = pair.public_key();
    let key_id = hex::encode(rand::random::<[u8; 20]>());
    sim.lock().gcp_keys.insert(
        key_id.clone(),
        ServiceAccountKey {
            email: email.to_owned(),
            modulus: public.modulus().big_endian_without_leading_zero().to_vec(),
            exponent: public.exponent().big_endian_without_leading_zero().to_vec(),
        },
    );
    let body = STANDARD.encode(der.as_ref());
    let mut pem = String::from("-----BEGIN PRIVATE KEY-----\n");
    for line in body.as_bytes().chunks(64) {
        pem.push_str(&String::from_utf8_lossy(line));
        pem.push('\n');
    }
    pem.push_str("-----END PRIVATE KEY-----\n");
    let client_id: String = (0..21)
        .map(|_| char::from(b'0' + rand::random_range(0..10u8)))
        .collect();
    json_response(
        StatusCode::OK,
        json!({
            "type": "service_account",
            "project_id": gcp.project_id.get_ref(),
            "private_key_id": key_id,
            "private_key": pem,
            "client_email": email,
            "client_id": client_id,
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": format!("{}/token", sim.base),
            "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
            "client_x509_cert_url": format!("https://www.googleapis.com/robot/v1/metadata/x509/{}", email.replace('@', "%40")),
            "universe_domain": "googleapis.com",
        }),
    )
}

/// Deletes a key: assertions signed with it stop working at once, as in IAM.
pub fn delete_key(sim: &Sim, key_id: &str) -> Response {
    match sim.lock().gcp_keys.remove(key_id) {
        Some(_) => json_response(StatusCode::OK, json!({})),
        None => api_error(
            StatusCode::NOT_FOUND,
            format!("Service account key {key_id} does not exist."),
            None,
        ),
    }
}
