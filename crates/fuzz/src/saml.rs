//! SAML: the exclusive canonicalization (`keyward_saml::fuzzing::canonicalize`) and the whole
//! response verifier (`ServiceProvider::verify_response`) over responses signed by samlify
//! (fixtures/saml, made once by interop/saml/idp.js with a key that was then thrown away).

use std::future::Future;
use std::sync::OnceLock;
use std::task::{Context, Poll, Waker};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use keyward_saml::{
    IdpConfig, MemoryReplayCache, PendingRequest, ServiceProvider, SpConfig, VerifiedLogin,
};
use time::OffsetDateTime;

pub(crate) const DICT: &[&[u8]] = &[
    b"<!---->",
    b"<!--x-->",
    b"<?pi x?>",
    b"&amp;",
    b"&#x41;",
    b"&#xD;",
    b"<![CDATA[x]]>",
    b" xmlns=\"\"",
    b" xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\"",
    b" xmlns:saml=\"urn:oasis:names:tc:SAML:2.0:assertion\"",
    b" xml:space=\"preserve\"",
    b" ID=\"_x\"",
    b"saml:Assertion",
    b"ds:Signature",
    b"ds:Reference",
    b"<ds:Object>",
    b"</saml:Assertion>",
    b"InResponseTo",
    b"ada@example.com",
    b"admin@example.com",
];

const FIXTURES: &[&str] = &[
    include_str!("../fixtures/saml/generic-assertion.xml"),
    include_str!("../fixtures/saml/generic-both.xml"),
    include_str!("../fixtures/saml/generic-noattrs.xml"),
    include_str!("../fixtures/saml/entra-assertion.xml"),
    include_str!("../fixtures/saml/entra-both.xml"),
];
const CERT: &str = include_str!("../fixtures/saml/idp-cert.pem");
const IDP_ENTITY: &str = "https://idp.test/metadata";
const SP_ENTITY: &str = "https://keyward.test/saml";
const ACS: &str = "https://keyward.test/auth/saml/acs";
/// The fixtures' IssueInstant (nowMs given to idp.js), and their InResponseTo.
const ISSUED: i64 = 1_790_000_000;
const REQUEST_ID: &str = "_fuzz-request-1";

/// Polls a future that never waits on I/O (the verifier's only await is the in-memory replay
/// cache) to completion.
fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
        std::thread::yield_now();
    }
}

struct Fixture {
    /// The default SP, and one that also accepts a response-only signature.
    sps: [ServiceProvider; 2],
    pending: PendingRequest,
    now: OffsetDateTime,
    /// Per SP: the logins the untouched fixtures yield, the only ones any input may yield.
    logins: [Vec<VerifiedLogin>; 2],
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let idp = IdpConfig::new(IDP_ENTITY, "https://idp.test/sso", CERT)
            .expect("the fixture certificate loads");
        let config = SpConfig::new(SP_ENTITY, ACS, idp).expect("the SP config is valid");
        let mut lenient = config.clone();
        lenient.accept_response_signature_only = true;
        let sps =
            [config, lenient].map(|c| ServiceProvider::new(c).expect("the SP config is valid"));
        let pending = PendingRequest {
            id: REQUEST_ID.into(),
            issued_at: ISSUED - 5,
        };
        let now = OffsetDateTime::from_unix_timestamp(ISSUED + 10).expect("a valid time");
        let logins = [0, 1].map(|i| {
            FIXTURES
                .iter()
                .map(|xml| {
                    let replay = MemoryReplayCache::default();
                    let b64 = STANDARD.encode(xml);
                    block_on(sps[i].verify_response(&b64, &pending, now, &replay))
                        .unwrap_or_else(|e| panic!("a fixture response is refused: {e}"))
                })
                .collect()
        });
        Fixture {
            sps,
            pending,
            now,
            logins,
        }
    })
}

/// A response document: whatever is accepted yields one of the logins the IdP signed (so no
/// tampering, wrapping or comment trick changes what is read), and verifying is deterministic.
pub fn saml_response(data: &[u8]) {
    let f = fixture();
    let b64 = STANDARD.encode(data);
    for (sp, known) in f.sps.iter().zip(&f.logins) {
        let replay = MemoryReplayCache::default();
        let Ok(login) = block_on(sp.verify_response(&b64, &f.pending, f.now, &replay)) else {
            continue;
        };
        assert!(
            known.contains(&login),
            "accepted a response whose login differs from every signed one: issuer {}, assertion {}",
            login.issuer,
            login.assertion_id
        );
        // The replay cache consumed the id: the same response again is refused.
        let again = block_on(sp.verify_response(&b64, &f.pending, f.now, &replay));
        assert!(again.is_err(), "a replayed assertion was accepted twice");
    }
}

/// Any document: its canonical form is canonical (c14n of it is itself), with and without
/// comments, and dropping comments commutes with canonicalizing.
pub fn saml_c14n(data: &[u8]) {
    let Ok(xml) = std::str::from_utf8(data) else {
        return;
    };
    for with_comments in [false, true] {
        let Ok(canonical) = keyward_saml::fuzzing::canonicalize(xml, with_comments) else {
            continue;
        };
        // roxmltree takes `<?xml…` inside an element as a processing instruction named `xml`
        // (found by this target) and refuses it as a declaration once c14n wrote it back with
        // a space. The verifier only digests the canonical form, never parses it again.
        if canonical.contains("<?xml") {
            continue;
        }
        match keyward_saml::fuzzing::canonicalize(&canonical, with_comments) {
            Ok(again) => assert_eq!(again, canonical, "c14n is not idempotent"),
            Err(e) => panic!("the canonical form does not canonicalize again: {e}"),
        }
        if with_comments {
            let without = keyward_saml::fuzzing::canonicalize(xml, false);
            let via = keyward_saml::fuzzing::canonicalize(&canonical, false);
            assert_eq!(
                without, via,
                "dropping comments depends on canonicalizing first"
            );
        }
    }
}
