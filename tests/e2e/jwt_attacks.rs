//! JWT attack corpus (issue 20, point 1): one table of forged tokens, each built from a genuine
//! token the running server minted (decoded, one thing changed, re-signed where the attack
//! needs a signature), presented to every verifier that takes that kind of token: the API
//! bearer (`keyward login` device-login access tokens; personal and automation tokens are
//! opaque, so a JWT sent in their place lands in this same verifier), `keyward gateway`
//! (workload tokens and device-login tokens) and `keyward cloudsim` (GCP STS, AWS
//! AssumeRoleWithWebIdentity, Entra client assertions). Every case must be refused — 401 from
//! Keyward's own verifiers with one generic body that echoes nothing of the token, the cloud's
//! own refusal from cloudsim — while the unmodified token is accepted by each (so the suite
//! cannot pass vacuously).

use std::collections::{BTreeMap, BTreeSet};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
use keyward_jose::SigningKey;
use serde_json::{Map, Value, json};

use crate::cloudsim_env::{APP, Sim, SimWorld, TENANT, gcp_audience, world};
use crate::common::*;
use crate::gateway_common::{GatewayOptions, GatewayProcess, Upstream, write_routes};
use crate::people::{
    decide_on_page, local_options, poll, set_owner_password, sign_in, start_device_flow,
};

/// The kinds of token a verifier takes: cases that only make sense for one kind say so.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    /// A person's `at+jwt` access token from `keyward login`.
    Access,
    /// A workload token minted by `POST /api/v1/workload-identity/token`.
    Workload,
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Target {
    Api,
    GatewayAccess,
    GatewayWorkload,
    GcpSts,
    AwsSts,
    Entra,
}

impl Target {
    const ALL: [Target; 6] = [
        Target::Api,
        Target::GatewayAccess,
        Target::GatewayWorkload,
        Target::GcpSts,
        Target::AwsSts,
        Target::Entra,
    ];

    fn kind(self) -> Kind {
        match self {
            Target::Api | Target::GatewayAccess => Kind::Access,
            _ => Kind::Workload,
        }
    }

    /// Keyward's own verifiers answer 401 with one generic body; cloudsim answers like the
    /// cloud it plays (GCP STS 400 invalid_grant/invalid_request, AWS 400/403, Entra 400/401).
    fn refusals(self) -> &'static [u16] {
        match self {
            Target::Api | Target::GatewayAccess | Target::GatewayWorkload => &[401],
            Target::GcpSts => &[400, 401, 403],
            Target::AwsSts => &[400, 403],
            Target::Entra => &[400, 401],
        }
    }

    fn keyward(self) -> bool {
        matches!(
            self,
            Target::Api | Target::GatewayAccess | Target::GatewayWorkload
        )
    }
}

/// A genuine token, split and decoded.
#[derive(Clone)]
struct Genuine {
    header: Map<String, Value>,
    payload: Map<String, Value>,
    h: String,
    p: String,
    s: String,
}

impl Genuine {
    fn parse(token: &str) -> Genuine {
        let parts: Vec<&str> = token.split('.').collect();
        assert_eq!(parts.len(), 3, "{token}");
        let obj = |part: &str| -> Map<String, Value> {
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
        };
        Genuine {
            header: obj(parts[0]),
            payload: obj(parts[1]),
            h: parts[0].to_owned(),
            p: parts[1].to_owned(),
            s: parts[2].to_owned(),
        }
    }
}

/// What the cases may use besides the genuine token.
struct Ctx {
    /// The server's public key, as published in its JWKS.
    jwk: Value,
    /// The same key as a PEM `PUBLIC KEY` (what an HS256 confusion attack feeds to HMAC).
    pem: String,
    /// A key of the attacker's.
    attacker: SigningKey,
    /// A genuine token of the same kind from another organization, when that kind has one.
    other_org: Option<Genuine>,
}

/// A forged token and the strings it injected, which no refusal may echo.
struct Forged {
    token: String,
    injected: Vec<String>,
}

struct Case {
    name: &'static str,
    /// `None` when the case does not apply to this kind of token.
    forge: fn(&Genuine, &Ctx) -> Option<Forged>,
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn json_b64(map: &Map<String, Value>) -> String {
    b64(&serde_json::to_vec(map).unwrap())
}

fn forged(token: String, injected: &[&str]) -> Option<Forged> {
    Some(Forged {
        token,
        injected: injected.iter().map(|s| s.to_string()).collect(),
    })
}

/// The genuine payload and signature under a changed header.
fn header_changed(g: &Genuine, change: impl FnOnce(&mut Map<String, Value>)) -> String {
    let mut header = g.header.clone();
    change(&mut header);
    format!("{}.{}.{}", json_b64(&header), g.p, g.s)
}

/// The genuine header and signature over a changed payload (the signature no longer covers
/// it: the verifier must refuse whatever it reads first).
fn payload_changed(g: &Genuine, change: impl FnOnce(&mut Map<String, Value>)) -> String {
    let mut payload = g.payload.clone();
    change(&mut payload);
    format!("{}.{}.{}", g.h, json_b64(&payload), g.s)
}

fn raw_payload(g: &Genuine, text: &str) -> String {
    format!("{}.{}.{}", g.h, b64(text.as_bytes()), g.s)
}

/// The payload's JSON text with `"name":<value>` put in place of the claim `name`.
fn payload_text_with(g: &Genuine, name: &str, value: &str) -> String {
    let mut payload = g.payload.clone();
    payload.remove(name);
    let text = serde_json::to_string(&payload).unwrap();
    format!("{{\"{name}\":{value},{}", &text[1..])
}

fn hmac_signed(g: &Genuine, alg: &str, secret: &[u8]) -> String {
    let mut header = g.header.clone();
    header.insert("alg".into(), json!(alg));
    let input = format!("{}.{}", json_b64(&header), g.p);
    let algorithm = match alg {
        "HS256" => aws_lc_rs::hmac::HMAC_SHA256,
        _ => aws_lc_rs::hmac::HMAC_SHA384,
    };
    let key = aws_lc_rs::hmac::Key::new(algorithm, secret);
    let tag = aws_lc_rs::hmac::sign(&key, input.as_bytes());
    format!("{input}.{}", b64(tag.as_ref()))
}

/// Signed with the attacker's RSA key under `header` (alg RS256, the attacker's kid unless
/// the header sets one).
fn attacker_signed(g: &Genuine, ctx: &Ctx, change: impl FnOnce(&mut Map<String, Value>)) -> String {
    let mut header = g.header.clone();
    header.insert("kid".into(), json!(ctx.attacker.kid()));
    change(&mut header);
    let input = format!("{}.{}", json_b64(&header), g.p);
    let signature = ctx.attacker.sign(input.as_bytes()).unwrap();
    format!("{input}.{}", b64(&signature))
}

fn with_signature(g: &Genuine, signature: &str) -> String {
    format!("{}.{}.{signature}", g.h, g.p)
}

fn sig_bytes(g: &Genuine) -> Vec<u8> {
    URL_SAFE_NO_PAD.decode(&g.s).unwrap()
}

const EVIL_ISS: &str = "https://evil-issuer.attacker.example";
const EVIL_AUD: &str = "evil-audience-7f3a9c";
const EVIL_KID: &str = "attacker-kid-7f3a9c";
const BIG: usize = 64 * 1024;

fn alg_none(g: &Genuine, alg: &str) -> Option<Forged> {
    let mut header = g.header.clone();
    header.insert("alg".into(), json!(alg));
    forged(format!("{}.{}.", json_b64(&header), g.p), &[alg])
}

fn missing(g: &Genuine, claim: &str) -> Option<Forged> {
    forged(payload_changed(g, |p| drop(p.remove(claim))), &[])
}

const CASES: &[Case] = &[
    Case {
        name: "alg none",
        forge: |g, _| alg_none(g, "none"),
    },
    Case {
        name: "alg None",
        forge: |g, _| alg_none(g, "None"),
    },
    Case {
        name: "alg NONE",
        forge: |g, _| alg_none(g, "NONE"),
    },
    Case {
        name: "alg nOnE",
        forge: |g, _| alg_none(g, "nOnE"),
    },
    Case {
        name: "alg none keeping the genuine signature",
        forge: |g, _| {
            forged(
                header_changed(g, |h| drop(h.insert("alg".into(), json!("none")))),
                &[],
            )
        },
    },
    Case {
        name: "HS256 keyed with the RSA public key (PEM)",
        forge: |g, c| forged(hmac_signed(g, "HS256", c.pem.as_bytes()), &["HS256"]),
    },
    Case {
        name: "HS384 keyed with the RSA public key (PEM)",
        forge: |g, c| forged(hmac_signed(g, "HS384", c.pem.as_bytes()), &["HS384"]),
    },
    Case {
        name: "HS256 keyed with the RSA public key (JWK)",
        forge: |g, c| {
            forged(
                hmac_signed(g, "HS256", c.jwk.to_string().as_bytes()),
                &["HS256"],
            )
        },
    },
    Case {
        name: "HS384 keyed with the RSA public key (JWK)",
        forge: |g, c| {
            forged(
                hmac_signed(g, "HS384", c.jwk.to_string().as_bytes()),
                &["HS384"],
            )
        },
    },
    Case {
        name: "unknown kid",
        forge: |g, _| {
            forged(
                header_changed(g, |h| drop(h.insert("kid".into(), json!(EVIL_KID)))),
                &[EVIL_KID],
            )
        },
    },
    Case {
        name: "empty kid",
        forge: |g, _| {
            forged(
                header_changed(g, |h| drop(h.insert("kid".into(), json!("")))),
                &[],
            )
        },
    },
    Case {
        name: "path-like kid",
        forge: |g, _| {
            forged(
                header_changed(g, |h| {
                    drop(h.insert("kid".into(), json!("../../etc/passwd")))
                }),
                &["../../etc/passwd", "etc/passwd"],
            )
        },
    },
    Case {
        name: "SQL-like kid",
        forge: |g, _| {
            forged(
                header_changed(g, |h| drop(h.insert("kid".into(), json!("' OR 1=1 --")))),
                &["OR 1=1"],
            )
        },
    },
    Case {
        name: "unknown kid signed by the attacker",
        forge: |g, c| forged(attacker_signed(g, c, |_| {}), &[c.attacker.kid()]),
    },
    Case {
        name: "embedded jwk (the attacker's key)",
        forge: |g, c| {
            let jwk = serde_json::to_value(c.attacker.public_jwk()).unwrap();
            forged(
                attacker_signed(g, c, |h| drop(h.insert("jwk".into(), jwk))),
                &[c.attacker.kid()],
            )
        },
    },
    Case {
        name: "jku pointing at the attacker",
        forge: |g, c| {
            forged(
                attacker_signed(g, c, |h| {
                    drop(h.insert(
                        "jku".into(),
                        json!("https://jku.attacker.example/jwks.json"),
                    ))
                }),
                &["jku.attacker.example", c.attacker.kid()],
            )
        },
    },
    Case {
        name: "x5u pointing at the attacker",
        forge: |g, c| {
            forged(
                attacker_signed(g, c, |h| {
                    drop(h.insert("x5u".into(), json!("https://x5u.attacker.example/cert.pem")))
                }),
                &["x5u.attacker.example", c.attacker.kid()],
            )
        },
    },
    Case {
        name: "x5c with an attacker certificate",
        forge: |g, c| {
            forged(
                attacker_signed(g, c, |h| {
                    drop(h.insert(
                        "x5c".into(),
                        json!([STANDARD.encode(b"attacker-cert-7f3a")]),
                    ))
                }),
                &[c.attacker.kid()],
            )
        },
    },
    Case {
        name: "crit header",
        forge: |g, _| {
            forged(
                header_changed(g, |h| {
                    drop(h.insert("crit".into(), json!(["evil-ext-7f3a"])));
                    drop(h.insert("evil-ext-7f3a".into(), json!(true)));
                }),
                &["evil-ext-7f3a"],
            )
        },
    },
    Case {
        name: "exp an hour ago",
        forge: |g, _| {
            forged(
                payload_changed(g, |p| {
                    let now = p["iat"].as_i64().unwrap();
                    drop(p.insert("exp".into(), json!(now - 3600)));
                }),
                &[],
            )
        },
    },
    Case {
        name: "exp as a string",
        forge: |g, _| {
            forged(
                payload_changed(g, |p| drop(p.insert("exp".into(), json!("9999999999")))),
                &[],
            )
        },
    },
    Case {
        name: "exp float overflow",
        forge: |g, _| forged(raw_payload(g, &payload_text_with(g, "exp", "1e999")), &[]),
    },
    Case {
        name: "exp negative",
        forge: |g, _| {
            forged(
                payload_changed(g, |p| drop(p.insert("exp".into(), json!(-1)))),
                &[],
            )
        },
    },
    Case {
        name: "exp huge",
        forge: |g, _| {
            forged(
                raw_payload(g, &payload_text_with(g, "exp", "99999999999999999999999")),
                &[],
            )
        },
    },
    Case {
        name: "nbf a day ahead",
        forge: |g, _| {
            forged(
                payload_changed(g, |p| {
                    let now = p["iat"].as_i64().unwrap();
                    drop(p.insert("nbf".into(), json!(now + 86_400)));
                }),
                &[],
            )
        },
    },
    Case {
        name: "nbf as a string",
        forge: |g, _| {
            forged(
                payload_changed(g, |p| drop(p.insert("nbf".into(), json!("0")))),
                &[],
            )
        },
    },
    Case {
        name: "iat far in the future",
        forge: |g, _| {
            forged(
                payload_changed(g, |p| drop(p.insert("iat".into(), json!(i64::MAX)))),
                &[],
            )
        },
    },
    Case {
        name: "iat negative float",
        forge: |g, _| {
            forged(
                payload_changed(g, |p| drop(p.insert("iat".into(), json!(-1.5)))),
                &[],
            )
        },
    },
    Case {
        name: "missing iss",
        forge: |g, _| missing(g, "iss"),
    },
    Case {
        name: "missing sub",
        forge: |g, _| missing(g, "sub"),
    },
    Case {
        name: "missing aud",
        forge: |g, _| missing(g, "aud"),
    },
    Case {
        name: "missing exp",
        forge: |g, _| missing(g, "exp"),
    },
    Case {
        name: "wrong iss",
        forge: |g, _| {
            forged(
                payload_changed(g, |p| drop(p.insert("iss".into(), json!(EVIL_ISS)))),
                &[EVIL_ISS],
            )
        },
    },
    Case {
        name: "wrong aud",
        forge: |g, _| {
            forged(
                payload_changed(g, |p| drop(p.insert("aud".into(), json!(EVIL_AUD)))),
                &[EVIL_AUD],
            )
        },
    },
    Case {
        name: "aud array without ours",
        forge: |g, _| {
            forged(
                payload_changed(g, |p| {
                    drop(p.insert("aud".into(), json!([EVIL_AUD, "other-7f3a"])))
                }),
                &[EVIL_AUD, "other-7f3a"],
            )
        },
    },
    Case {
        name: "aud empty array",
        forge: |g, _| {
            forged(
                payload_changed(g, |p| drop(p.insert("aud".into(), json!([])))),
                &[],
            )
        },
    },
    Case {
        name: "aud array with ours, unsigned change",
        forge: |g, _| {
            forged(
                payload_changed(g, |p| {
                    let ours = p["aud"].clone();
                    drop(p.insert("aud".into(), json!([ours, EVIL_AUD])));
                }),
                &[EVIL_AUD],
            )
        },
    },
    Case {
        name: "another organization's genuine token",
        forge: |_, c| {
            let other = c.other_org.as_ref()?;
            forged(format!("{}.{}.{}", other.h, other.p, other.s), &[])
        },
    },
    Case {
        name: "another organization's claims under our signature",
        forge: |g, c| {
            let other = c.other_org.as_ref()?;
            forged(format!("{}.{}.{}", g.h, other.p, g.s), &[])
        },
    },
    Case {
        name: "signature truncated",
        forge: |g, _| forged(with_signature(g, &g.s[..g.s.len() - 8]), &[]),
    },
    Case {
        name: "signature empty",
        forge: |g, _| forged(with_signature(g, ""), &[]),
    },
    Case {
        name: "signature base64 with padding",
        forge: |g, _| {
            let padded = URL_SAFE.encode(sig_bytes(g));
            // A 256-byte signature needs one `=`; without it this case would be the genuine token.
            assert!(padded.ends_with('='), "{padded}");
            forged(with_signature(g, &padded), &[])
        },
    },
    Case {
        name: "signature in the standard alphabet",
        forge: |g, _| {
            let standard = STANDARD
                .encode(sig_bytes(g))
                .trim_end_matches('=')
                .to_owned();
            assert_ne!(standard, g.s, "the signature has no - or _ to re-encode");
            forged(with_signature(g, &standard), &[])
        },
    },
    Case {
        name: "signature with one bit flipped",
        forge: |g, _| {
            let mut bytes = sig_bytes(g);
            bytes[100] ^= 0x01;
            forged(with_signature(g, &b64(&bytes)), &[])
        },
    },
    Case {
        name: "header re-encoded with padding",
        forge: |g, _| {
            let header = URL_SAFE.encode(URL_SAFE_NO_PAD.decode(&g.h).unwrap());
            if !header.ends_with('=') {
                return None;
            }
            forged(format!("{header}.{}.{}", g.p, g.s), &[])
        },
    },
    Case {
        name: "duplicate alg (none, then RS256)",
        forge: |g, _| {
            let mut header = g.header.clone();
            header.remove("alg");
            let rest = serde_json::to_string(&header).unwrap();
            let text = format!("{{\"alg\":\"none\",\"alg\":\"RS256\",{}", &rest[1..]);
            forged(format!("{}.{}.{}", b64(text.as_bytes()), g.p, g.s), &[])
        },
    },
    Case {
        name: "duplicate aud (theirs, then ours)",
        forge: |g, _| {
            let ours = g.payload["aud"].to_string();
            let text = payload_text_with(g, "aud", &format!("\"{EVIL_AUD}\",\"aud\":{ours}"));
            forged(raw_payload(g, &text), &[EVIL_AUD])
        },
    },
    Case {
        name: "duplicate exp (expired, then fine)",
        forge: |g, _| {
            let fine = g.payload["exp"].to_string();
            let text = payload_text_with(g, "exp", &format!("1,\"exp\":{fine}"));
            forged(raw_payload(g, &text), &[])
        },
    },
    Case {
        name: "oversized header (64 KiB)",
        forge: |g, _| {
            forged(
                header_changed(g, |h| drop(h.insert("pad".into(), json!("A".repeat(BIG))))),
                &[],
            )
        },
    },
    Case {
        name: "oversized payload (64 KiB)",
        forge: |g, _| {
            forged(
                payload_changed(g, |p| drop(p.insert("pad".into(), json!("A".repeat(BIG))))),
                &[],
            )
        },
    },
    Case {
        name: "non-UTF-8 header",
        forge: |g, _| {
            let mut bytes = serde_json::to_vec(&g.header).unwrap();
            let at = bytes.iter().position(|b| *b == b':').unwrap() + 2;
            bytes.insert(at, 0xff);
            forged(format!("{}.{}.{}", b64(&bytes), g.p, g.s), &[])
        },
    },
    Case {
        name: "non-UTF-8 payload",
        forge: |g, _| {
            let mut bytes = serde_json::to_vec(&g.payload).unwrap();
            let at = bytes.iter().position(|b| *b == b':').unwrap() + 2;
            bytes.insert(at, 0xfe);
            forged(format!("{}.{}.{}", g.h, b64(&bytes), g.s), &[])
        },
    },
    Case {
        name: "typ swapped (workload token as an access token and back)",
        forge: |g, _| {
            let typ = if g.header["typ"] == "at+jwt" {
                "JWT"
            } else {
                "at+jwt"
            };
            forged(
                header_changed(g, |h| drop(h.insert("typ".into(), json!(typ)))),
                &[],
            )
        },
    },
    Case {
        name: "four parts",
        forge: |g, _| forged(format!("{}.{}.{}.{}", g.h, g.p, g.s, g.s), &[]),
    },
];

/// DER length prefix.
fn der_len(len: usize) -> Vec<u8> {
    match len {
        0..=0x7f => vec![len as u8],
        0x80..=0xff => vec![0x81, len as u8],
        _ => vec![0x82, (len >> 8) as u8, len as u8],
    }
}

fn der(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    out.extend(der_len(body.len()));
    out.extend(body);
    out
}

fn der_uint(bytes: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    if bytes.first().is_some_and(|b| b & 0x80 != 0) {
        body.push(0);
    }
    body.extend(bytes);
    der(0x02, &body)
}

/// The JWK's RSA key as a PEM SubjectPublicKeyInfo, the form `openssl` and most libraries give.
fn rsa_pem(jwk: &Value) -> String {
    let n = URL_SAFE_NO_PAD.decode(jwk["n"].as_str().unwrap()).unwrap();
    let e = URL_SAFE_NO_PAD.decode(jwk["e"].as_str().unwrap()).unwrap();
    let rsa = der(0x30, &[der_uint(&n), der_uint(&e)].concat());
    let mut bits = vec![0u8];
    bits.extend(rsa);
    // rsaEncryption (1.2.840.113549.1.1.1) with NULL parameters.
    let algorithm = [
        0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
    ];
    let spki = der(0x30, &[algorithm.to_vec(), der(0x03, &bits)].concat());
    let body = STANDARD.encode(spki);
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
        lines.join("\n")
    )
}

/// The refusal body without its per-request id, for comparing refusals with each other.
fn without_request_id(body: &str) -> String {
    match serde_json::from_str::<Value>(body) {
        Ok(Value::Object(mut map)) => {
            map.remove("request_id");
            Value::Object(map).to_string()
        }
        _ => body.to_owned(),
    }
}

/// The private half of the signing key `kid`, opened with the installation's master key.
async fn signing_key(
    options: &ServerOptions,
    master: &keyward_store::crypto::MasterKey,
    kid: &str,
) -> SigningKey {
    let store = keyward_store::open(None, &options.data_dir).await.unwrap();
    let row = store
        .signing_keys()
        .await
        .unwrap()
        .into_iter()
        .find(|r| r.kid == kid)
        .unwrap();
    let aad = keyward_store::crypto::Aad::SigningKey { kid }.bytes();
    let der = master
        .open(&aad, row.sealed_private_key.as_ref().unwrap())
        .unwrap();
    SigningKey::from_pkcs8(kid.to_owned(), &der).unwrap()
}

struct World {
    server: Server,
    /// The bootstrapped organization (the owner also belongs to another one).
    org: String,
    gateway: GatewayProcess,
    sim: Sim,
    _upstream: Upstream,
    _dir: tempfile::TempDir,
}

impl World {
    async fn present(&self, target: Target, token: &str) -> (u16, String) {
        let form = |path: String, fields: Vec<(&str, String)>| {
            self.sim
                .http()
                .post(format!("{}{path}", self.sim.base))
                .form(&fields)
        };
        let request = match target {
            Target::Api => self
                .server
                .client()
                .get(format!("{}/api/v1/automations", self.server.url))
                .header("X-Keyward-Organization-Id", &self.org)
                .bearer_auth(token),
            Target::GatewayAccess | Target::GatewayWorkload => self
                .gateway
                .client(false)
                .get(format!("{}/tools/echo", self.gateway.url))
                .bearer_auth(token),
            Target::GcpSts => form(
                "/v1/token".into(),
                vec![
                    (
                        "grant_type",
                        "urn:ietf:params:oauth:grant-type:token-exchange".into(),
                    ),
                    ("audience", gcp_audience("keyward-provider")),
                    (
                        "scope",
                        "https://www.googleapis.com/auth/cloud-platform".into(),
                    ),
                    (
                        "requested_token_type",
                        "urn:ietf:params:oauth:token-type:access_token".into(),
                    ),
                    (
                        "subject_token_type",
                        "urn:ietf:params:oauth:token-type:jwt".into(),
                    ),
                    ("subject_token", token.into()),
                ],
            ),
            Target::AwsSts => form(
                "/".into(),
                vec![
                    ("Action", "AssumeRoleWithWebIdentity".into()),
                    ("Version", "2011-06-15".into()),
                    (
                        "RoleArn",
                        "arn:aws:iam::123456789012:role/keyward-secrets-reader".into(),
                    ),
                    ("RoleSessionName", "keyward-test".into()),
                    ("WebIdentityToken", token.into()),
                ],
            ),
            Target::Entra => form(
                format!("/{TENANT}/oauth2/v2.0/token"),
                vec![
                    ("client_id", APP.into()),
                    (
                        "client_assertion_type",
                        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".into(),
                    ),
                    ("client_assertion", token.into()),
                    ("grant_type", "client_credentials".into()),
                    ("scope", "https://vault.azure.net/.default".into()),
                ],
            ),
        };
        match request.send().await {
            Ok(response) => (response.status().as_u16(), response.text().await.unwrap()),
            // Refused before any verifier ran (HTTP/2 GOAWAY for a header list over the limit).
            Err(e) => (0, format!("{e:?}")),
        }
    }
}

fn audience(target: Target) -> String {
    match target {
        Target::GatewayWorkload => "keyward-gateway".into(),
        Target::GcpSts => gcp_audience("keyward-provider"),
        Target::AwsSts => "sts.amazonaws.com".into(),
        Target::Entra => "api://AzureADTokenExchange".into(),
        Target::Api | Target::GatewayAccess => unreachable!("access tokens are not minted"),
    }
}

async fn minted(server: &Server, automation_token: &str, audience: &str) -> String {
    let (status, body) = mint(server, automation_token, audience).await;
    assert_eq!(status, 200, "{body}");
    body["token"].as_str().unwrap().to_owned()
}

/// A `keyward login` access token for the bootstrap owner, through the device page.
async fn device_login_token(server: &Server) -> String {
    let started = start_device_flow(server).await;
    let user_code = started["user_code"].as_str().unwrap();
    set_owner_password(server).await;
    let cookie = sign_in(server, &format!("/device?user_code={user_code}")).await;
    let (status, html) = decide_on_page(server, &cookie, user_code, "approve").await;
    assert_eq!(status, 200, "{html}");
    // A token of the second the password was set would already be revoked.
    server.advance_clock(1);
    let (status, issued) = poll(server, started["device_code"].as_str().unwrap()).await;
    assert_eq!(status, 200, "{issued}");
    issued["access_token"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn jwt_attacks_are_refused_by_every_verifier() {
    install_crypto();
    let dir = tempfile::tempdir().unwrap();
    // The master key is the test's, so it can take the first signing key's private half
    // before rotation retires it (an attacker who stole it then).
    let (master, master_text) = keyward_store::crypto::MasterKey::generate().unwrap();
    let options = local_options(&Backend::Sqlite, &dir.path().join("kw"))
        .env("KEYWARD_MASTER_KEY", &master_text)
        .env("KEYWARD_KEY_ROTATION_INTERVAL", "100000")
        .env("KEYWARD_KEY_PUBLISH_LEAD", "2")
        .env("KEYWARD_TOKEN_TTL", "60")
        .env("KEYWARD_JWKS_CACHE_AGE", "1");
    let server = Server::start(&options);
    let org = org_id(&server);
    let (_, crew) = automation_with_token(&server, "crew").await;
    let access = device_login_token(&server).await;

    // Another organization with an automation of its own, for its genuine workload tokens.
    let beta = create_as_owner(&server, "/orgs", json!({"name": "Beta"})).await;
    let beta_id = beta["uuid"].as_str().or(beta["id"].as_str()).unwrap();
    let client = server.client();
    let created = client
        .post(format!("{}/api/v1/automations", server.url))
        .bearer_auth(BOOTSTRAP_TOKEN)
        .header("X-Keyward-Organization-Id", beta_id)
        .json(&json!({"name": "beta-crew"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status().as_u16(), 201);
    let issued: Value = client
        .post(format!(
            "{}/api/v1/automations/beta-crew/tokens",
            server.url
        ))
        .bearer_auth(BOOTSTRAP_TOKEN)
        .header("X-Keyward-Organization-Id", beta_id)
        .json(&json!({"name": "ci"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let beta_crew = issued["token"].as_str().unwrap().to_owned();

    let upstream = Upstream::start().await;
    let config = write_routes(
        dir.path(),
        &format!(
            "organization = \"Acme\"\n\n[[route]]\nname = \"tools\"\npath_prefix = \"/tools\"\nupstream = \"{}\"\npolicy = \"permit(principal, action, resource);\"\n",
            upstream.url()
        ),
    );
    let mut gateway_options = GatewayOptions::new(&options, &server, &config);
    gateway_options
        .env
        .insert("KEYWARD_MASTER_KEY".into(), master_text.to_string());
    // The gateway's clock moves with the server's, so its key set ages through the rotation.
    gateway_options.env.insert(
        "KEYWARD_TEST_CLOCK_FILE".into(),
        options.clock_file().display().to_string(),
    );
    let gateway = GatewayProcess::start(&gateway_options);
    let sim = Sim::start(&server, &org, SimWorld::State(&world(&server.url, &org)));
    let w = World {
        server,
        org: org.clone(),
        gateway,
        sim,
        _upstream: upstream,
        _dir: dir,
    };

    let keys = jwks(&w.server).await;
    assert_eq!(keys["keys"].as_array().unwrap().len(), 1, "{keys}");
    let jwk = keys["keys"][0].clone();
    let ctx_for = |other_org: Option<Genuine>| Ctx {
        pem: rsa_pem(&jwk),
        jwk: jwk.clone(),
        attacker: SigningKey::generate().unwrap(),
        other_org,
    };
    // The PEM must be the very key: an HS256 attack with a wrong key would prove nothing.
    assert!(
        jsonwebtoken::DecodingKey::from_rsa_pem(rsa_pem(&jwk).as_bytes()).is_ok(),
        "{}",
        rsa_pem(&jwk)
    );

    let first_key = signing_key(&options, &master, jwk["kid"].as_str().unwrap()).await;

    let mut presented = 0;
    let mut genuine_claims = BTreeMap::new();
    let mut failures = Vec::new();
    let mut bodies: BTreeMap<Target, BTreeSet<String>> = BTreeMap::new();
    for target in Target::ALL {
        let (genuine, other) = match target.kind() {
            Kind::Access => (access.clone(), None),
            Kind::Workload => {
                let aud = audience(target);
                let other = minted(&w.server, &beta_crew, &aud).await;
                (
                    minted(&w.server, &crew, &aud).await,
                    Some(Genuine::parse(&other)),
                )
            }
        };
        let (status, body) = w.present(target, &genuine).await;
        assert_eq!(status, 200, "{target:?} refused the genuine token: {body}");
        let g = Genuine::parse(&genuine);
        genuine_claims.insert(target, g.clone());
        let ctx = ctx_for(other);
        for case in CASES {
            let Some(f) = (case.forge)(&g, &ctx) else {
                continue;
            };
            assert_ne!(f.token, genuine, "{}: forged nothing", case.name);
            presented += 1;
            let (status, body) = w.present(target, &f.token).await;
            // A token in a header beyond the server's header limit never reaches a verifier:
            // the connection refuses it (431, or GOAWAY on HTTP/2), which is refusal enough.
            if f.token.len() > BIG && target.keyward() && matches!(status, 0 | 431) {
                continue;
            }
            if !target.refusals().contains(&status) {
                failures.push(format!("{target:?} / {}: {status} {body}", case.name));
                continue;
            }
            if target.keyward() {
                for needle in &f.injected {
                    if body.contains(needle.as_str()) {
                        failures.push(format!(
                            "{target:?} / {}: the refusal echoes {needle:?}: {body}",
                            case.name
                        ));
                    }
                }
                bodies
                    .entry(target)
                    .or_default()
                    .insert(without_request_id(&body));
            }
        }
    }
    // A token minted with the first key after rotation retired it (the real rotation:
    // `keyward keys rotate`, then the server's clock past the successor's activation and the
    // old key's tokens' lifetime and cache age).
    let (ok, out, err) = keyward_cli(&options, &["keys", "rotate"]);
    assert!(ok, "{out}{err}");
    let old_kid = first_key.kid().to_owned();
    w.server.advance_clock(3);
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    w.server.advance_clock(3 + 60 + 1 + 10);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while kids(&jwks(&w.server).await).contains(&old_kid) {
        assert!(
            std::time::Instant::now() < deadline,
            "the first key was never retired"
        );
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    // Every verifier's cached key set is older than its max-age (1 s) by now.
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let wall = keyward_server::clock::now();
    for target in Target::ALL {
        let g = &genuine_claims[&target];
        let mut header = g.header.clone();
        header.insert("kid".into(), json!(old_kid));
        let mut payload = g.payload.clone();
        // Valid by every verifier's clock (the server's runs ahead of the wall clock).
        // An access token issued before the owner's password was set is refused for that
        // alone; issued now it is refused only for its key.
        let iat = if target.kind() == Kind::Access {
            wall + 5
        } else {
            wall - 60
        };
        payload.insert("iat".into(), json!(iat));
        payload.insert("nbf".into(), json!(wall - 60));
        payload.insert("exp".into(), json!(wall + 3 * 3600));
        let input = format!("{}.{}", json_b64(&header), json_b64(&payload));
        let signature = first_key.sign(input.as_bytes()).unwrap();
        let token = format!("{input}.{}", b64(&signature));
        presented += 1;
        let (status, body) = w.present(target, &token).await;
        if !target.refusals().contains(&status) {
            failures.push(format!("{target:?} / retired key: {status} {body}"));
        } else if target.keyward() {
            if body.contains(&old_kid) {
                failures.push(format!("{target:?} / retired key: echoes the kid: {body}"));
            }
            bodies
                .entry(target)
                .or_default()
                .insert(without_request_id(&body));
        }
    }

    for (target, seen) in &bodies {
        if seen.len() != 1 {
            failures.push(format!(
                "{target:?} answered {} different refusal bodies: {seen:#?}",
                seen.len()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(CASES.len() >= 40, "{} cases", CASES.len());
    eprintln!(
        "jwt_attacks: {} cases (with the retired key) x {} verifiers: {presented} forged tokens refused",
        CASES.len() + 1,
        Target::ALL.len()
    );
}
