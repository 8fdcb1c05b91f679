//! The `local` provider's people: invitations (join with a password through the link) and TOTP
//! at sign-in.

use reqwest::Method;
use serde_json::json;

use crate::common::*;
use crate::people::{
    PASSWORD, browser, decide_on_page, local_options, poll, set_owner_password, start_device_flow,
};

pub(crate) fn form_body(fields: &[(&str, &str)]) -> String {
    fields
        .iter()
        .map(|(k, v)| {
            let enc = |s: &str| -> String {
                s.bytes()
                    .map(|b| match b {
                        b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => {
                            (b as char).to_string()
                        }
                        _ => format!("%{b:02X}"),
                    })
                    .collect()
            };
            format!("{}={}", enc(k), enc(v))
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// POSTs a console form; returns status, the session cookie if one was set, and the body.
async fn post_form(
    server: &Server,
    path: &str,
    fields: &[(&str, &str)],
) -> (u16, Option<String>, String) {
    let res = browser(server)
        .post(format!("{}{path}", server.url))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form_body(fields))
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    let cookie = res
        .headers()
        .get("set-cookie")
        .map(|c| c.to_str().unwrap().split(';').next().unwrap().to_owned());
    (status, cookie, res.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn an_invited_person_joins_with_a_password_and_signs_in_their_cli() {
    install_crypto();
    for backend in backends().await {
        let dir = tempfile::tempdir().unwrap();
        let server = Server::start(&local_options(&backend, dir.path()));
        let org = org_id(&server);
        let client = server.client();
        let (status, invited) = call(
            &client,
            Method::POST,
            &format!("{}/api/v1/invitations", server.url),
            Some(BOOTSTRAP_TOKEN),
            Some(json!({"email": "Bob@Acme.example", "role": "member"})),
        )
        .await;
        assert_eq!(status, 201, "{invited}");
        let link = invited["invitation_url"].as_str().unwrap();
        let token = link.split_once("/invite#token=").unwrap().1;
        assert!(link.starts_with(&server.url));

        let bob_password = "bob's long enough password";
        let (status, _, body) = post_form(
            &server,
            "/invite",
            &[("token", token), ("password", "short")],
        )
        .await;
        assert_eq!(status, 400, "{body}");
        let (status, cookie, body) = post_form(
            &server,
            "/invite",
            &[("token", token), ("password", bob_password)],
        )
        .await;
        assert_eq!(status, 303, "{body}");
        assert!(cookie.is_some());
        // The link works once.
        let (status, _, _) = post_form(
            &server,
            "/invite",
            &[("token", token), ("password", bob_password)],
        )
        .await;
        assert_eq!(status, 400);

        // Bob signs in with the password he chose and approves his own CLI login.
        let (status, cookie, body) = post_form(
            &server,
            "/login",
            &[
                ("email", "bob@acme.example"),
                ("password", bob_password),
                ("next", "/device"),
            ],
        )
        .await;
        assert_eq!(status, 303, "{body}");
        let started = start_device_flow(&server).await;
        let (status, html) = decide_on_page(
            &server,
            &cookie.unwrap(),
            started["user_code"].as_str().unwrap(),
            "approve",
        )
        .await;
        assert_eq!(status, 200, "{html}");
        server.advance_clock(1);
        let (status, issued) = poll(&server, started["device_code"].as_str().unwrap()).await;
        assert_eq!(status, 200, "{issued}");
        let (status, orgs) = call(
            &client,
            Method::GET,
            &format!("{}/crewai_plus/api/v1/me/organizations", server.url),
            Some(issued["access_token"].as_str().unwrap()),
            None,
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(orgs, json!([{"name": "Acme", "uuid": org}]));

        let (_, page) = call(
            &client,
            Method::GET,
            &format!("{}/api/v1/audit?limit=500", server.url),
            Some(BOOTSTRAP_TOKEN),
            None,
        )
        .await;
        let text = page.to_string();
        assert!(
            text.contains("invitation.created") && text.contains("invitation.accepted"),
            "{text}"
        );
        assert!(!text.contains(token) && !text.contains(bob_password));
    }
}

pub(crate) fn base32_decode(text: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let (mut buffer, mut bits) = (0u32, 0);
    for c in text.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'2'..=b'7' => c - b'2' + 26,
            _ => panic!("not base32"),
        };
        buffer = (buffer << 5) | u32::from(v);
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
        }
    }
    out
}

/// RFC 6238 with SHA-1, 30 s steps, 6 digits — computed independently of the server.
fn totp_now(secret: &[u8]) -> String {
    totp_after(secret, 0)
}

/// The code `offset` seconds from now.
#[allow(clippy::disallowed_methods)]
fn totp_after(secret: &[u8], offset: u64) -> String {
    let unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + offset;
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, secret);
    let tag = aws_lc_rs::hmac::sign(&key, &(unix / 30).to_be_bytes());
    let d = tag.as_ref();
    let o = (d[19] & 0x0f) as usize;
    let v = u32::from_be_bytes([d[o] & 0x7f, d[o + 1], d[o + 2], d[o + 3]]);
    format!("{:06}", v % 1_000_000)
}

#[tokio::test(flavor = "multi_thread")]
async fn totp_is_required_at_sign_in_once_enabled() {
    install_crypto();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&local_options(&Backend::Sqlite, dir.path()));
    let client = server.client();
    set_owner_password(&server).await;
    let (status, enabled) = call(
        &client,
        Method::POST,
        &format!("{}/api/v1/me/totp", server.url),
        Some(BOOTSTRAP_TOKEN),
        Some(json!({"password": PASSWORD})),
    )
    .await;
    assert_eq!(status, 201, "{enabled}");
    let secret = base32_decode(enabled["secret"].as_str().unwrap());
    assert!(
        enabled["otpauth_uri"]
            .as_str()
            .unwrap()
            .starts_with("otpauth://totp/Keyward%3Aowner%40acme.example?secret=")
    );

    let owner = |totp: &'static str| {
        [
            ("email", "owner@acme.example"),
            ("password", PASSWORD),
            ("next", "/device"),
            ("totp", totp),
        ]
    };
    let (status, cookie, body) = post_form(&server, "/login", &owner("")).await;
    assert_eq!(
        (status, cookie),
        (200, None),
        "the password alone is not enough"
    );
    assert!(body.contains("six-digit code"), "{body}");
    let wrong = if totp_now(&secret) == "000000" {
        "111111"
    } else {
        "000000"
    };
    let (status, cookie, _) = post_form(
        &server,
        "/login",
        &[
            ("email", "owner@acme.example"),
            ("password", PASSWORD),
            ("totp", wrong),
        ],
    )
    .await;
    assert_eq!((status, cookie), (403, None));
    let code = totp_now(&secret);
    let (status, cookie, body) = post_form(
        &server,
        "/login",
        &[
            ("email", "owner@acme.example"),
            ("password", PASSWORD),
            ("totp", &code),
        ],
    )
    .await;
    assert_eq!(status, 303, "{body}");
    assert!(cookie.is_some());

    // Turning it off takes the password and a code not used before (the next step's).
    let (status, body) = call(
        &client,
        Method::DELETE,
        &format!("{}/api/v1/me/totp", server.url),
        Some(BOOTSTRAP_TOKEN),
        Some(json!({"password": PASSWORD, "totp": totp_after(&secret, 30)})),
    )
    .await;
    assert_eq!(status, 204, "{body}");
    let (status, _, _) = post_form(&server, "/login", &owner("")).await;
    assert_eq!(status, 303);
}
