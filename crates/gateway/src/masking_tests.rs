use std::collections::VecDeque;
use std::convert::Infallible;

use http_body_util::BodyExt;
use keyward_mask::MaskConfig;

use super::*;

const SECRET: &str = "kw-test-secret-value-7f3a9c";
const CARD: &str = "4111 1111 1111 1111";
const BAD_LUHN: &str = "4111111111111112";
const AWS_SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

/// A body that yields the given frames one by one.
struct Frames(VecDeque<Frame<Bytes>>);

impl Body for Frames {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.0.pop_front().map(Ok))
    }
}

fn chunks(parts: &[&[u8]]) -> Frames {
    Frames(
        parts
            .iter()
            .map(|p| Frame::data(Bytes::copy_from_slice(p)))
            .collect(),
    )
}

fn route_with(config: MaskConfig, org: Option<OrgId>) -> Masker {
    route_masker(Some(&config), org).unwrap().unwrap()
}

async fn collect<B: Body<Data = Bytes> + Unpin>(body: B) -> Vec<u8>
where
    B::Error: std::fmt::Debug,
{
    body.collect().await.unwrap().to_bytes().to_vec()
}

fn response(content_type: &str, length: Option<usize>) -> http::response::Parts {
    let mut builder = http::Response::builder().header(CONTENT_TYPE, content_type);
    if let Some(n) = length {
        builder = builder.header(CONTENT_LENGTH, n);
    }
    builder.body(()).unwrap().into_parts().0
}

#[tokio::test]
async fn an_event_stream_split_at_every_offset_leaks_nothing_and_counts_each_detector() {
    let org = Some(OrgId::new_random());
    report_secret(org, SECRET);
    let route = route_with(MaskConfig::default(), org);
    let event = format!(
        "data: {{\"a\":\"{SECRET}\"}}\n\ndata: card {CARD} order {BAD_LUHN}\n\ndata: aws_secret_access_key={AWS_SECRET}\n\n"
    );
    let bytes = event.as_bytes();
    for cut in 1..bytes.len() {
        let slot = CountSlot::default();
        let mut parts = response("text/event-stream", None);
        let body = wrap_response(
            "masked",
            Some(&route),
            "GET",
            &mut parts,
            chunks(&[&bytes[..cut], &bytes[cut..]]),
            &slot,
        )
        .unwrap()
        .ok()
        .unwrap();
        let out = String::from_utf8(collect(body).await).unwrap();
        for leaked in [SECRET, CARD, AWS_SECRET] {
            assert!(!out.contains(leaked), "cut at {cut}: {out}");
        }
        assert!(out.contains(BAD_LUHN), "cut at {cut}: {out}");
        let counts = slot.lock().unwrap().clone();
        assert_eq!(counts.get("secret"), 1, "cut at {cut}");
        assert_eq!(counts.get("card_number"), 1, "cut at {cut}");
        assert_eq!(counts.get("aws_secret_access_key"), 1, "cut at {cut}");
    }
}

#[tokio::test]
async fn a_bounded_json_response_is_masked_whole_with_its_json_paths() {
    let config = MaskConfig {
        json_paths: vec!["$.user.password".into()],
        ..MaskConfig::default()
    };
    let route = route_with(config, None);
    let json =
        br#"{"user":{"password":"hunter2","email":"jane@example.com"},"n":4111111111111111}"#;
    let slot = CountSlot::default();
    let mut parts = response("application/json", Some(json.len()));
    let body = wrap_response(
        "masked",
        Some(&route),
        "GET",
        &mut parts,
        chunks(&[&json[..20], &json[20..]]),
        &slot,
    )
    .unwrap()
    .ok()
    .unwrap();
    assert!(!parts.headers.contains_key(CONTENT_LENGTH));
    let out: serde_json::Value = serde_json::from_slice(&collect(body).await).unwrap();
    assert_eq!(out["user"]["password"], "[MASKED:json_path]");
    assert_eq!(out["user"]["email"], "[MASKED:email]");
    assert_eq!(out["n"], "[MASKED:card_number]");
    let counts = slot.lock().unwrap().clone();
    assert_eq!(counts.get("json_path"), 1);
    assert_eq!(counts.get("email"), 1);
}

#[tokio::test]
async fn a_json_body_longer_than_announced_is_streamed_not_held() {
    let config = MaskConfig {
        json_document_limit: 64,
        json_paths: vec!["$.x".into()],
        ..MaskConfig::default()
    };
    let route = route_with(config, None);
    let json = format!(r#"{{"x":"{}","mail":"jane@example.com"}}"#, "a".repeat(100));
    let slot = CountSlot::default();
    let mut parts = response("application/json", Some(10));
    let body = wrap_response(
        "masked",
        Some(&route),
        "GET",
        &mut parts,
        chunks(&[json.as_bytes()]),
        &slot,
    )
    .unwrap()
    .ok()
    .unwrap();
    let out = String::from_utf8(collect(body).await).unwrap();
    assert!(
        out.contains("[MASKED:email]") && !out.contains("jane@"),
        "{out}"
    );
    serde_json::from_str::<serde_json::Value>(&out).unwrap();
}

#[tokio::test]
async fn a_compressed_response_is_refused_and_identity_is_asked_for() {
    let route = route_with(MaskConfig::default(), None);
    let mut parts = response("application/json", None);
    parts
        .headers
        .insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    let refused = wrap_response(
        "masked",
        Some(&route),
        "GET",
        &mut parts,
        chunks(&[]),
        &CountSlot::default(),
    );
    match refused {
        Err(GatewayError::BadGateway(m)) => {
            assert!(m.contains("gzip") && m.contains("compressed"), "{m}")
        }
        _ => panic!("a gzip body must be refused"),
    }
    let mut headers = HeaderMap::new();
    headers.insert(ACCEPT_ENCODING, HeaderValue::from_static("gzip, br"));
    prepare_upstream_request(Some(&route), &mut headers);
    assert_eq!(headers[ACCEPT_ENCODING], "identity");
    // A route without masking is left alone.
    let mut headers = HeaderMap::new();
    headers.insert(ACCEPT_ENCODING, HeaderValue::from_static("gzip"));
    prepare_upstream_request(None, &mut headers);
    assert_eq!(headers[ACCEPT_ENCODING], "gzip");
    let mut parts = response("text/plain", Some(3));
    assert!(
        wrap_response(
            "plain",
            None,
            "GET",
            &mut parts,
            chunks(&[b"abc"]),
            &CountSlot::default()
        )
        .unwrap()
        .is_err()
    );
    assert!(parts.headers.contains_key(CONTENT_LENGTH));
}

#[tokio::test]
async fn trailers_come_after_the_held_back_bytes() {
    let route = route_with(MaskConfig::default(), None);
    let mut trailers = HeaderMap::new();
    trailers.insert("x-done", HeaderValue::from_static("1"));
    let body = Frames(VecDeque::from([
        Frame::data(Bytes::from_static(b"mail jane@exa")),
        Frame::data(Bytes::from_static(b"mple.com")),
        Frame::trailers(trailers),
    ]));
    let slot = CountSlot::default();
    let mut parts = response("text/plain", None);
    let body = wrap_response("masked", Some(&route), "GET", &mut parts, body, &slot)
        .unwrap()
        .ok()
        .unwrap();
    let collected = body.collect().await.unwrap();
    assert_eq!(collected.trailers().unwrap()["x-done"], "1");
    assert_eq!(&collected.to_bytes()[..], b"mail [MASKED:email]");
}

#[test]
fn a_request_body_is_masked_whole_only_when_the_route_asks() {
    let asks = route_with(
        MaskConfig {
            requests: true,
            ..MaskConfig::default()
        },
        None,
    );
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(CONTENT_LENGTH, HeaderValue::from_static("29"));
    let slot = CountSlot::default();
    let body = Bytes::from_static(br#"{"card":"4111 1111 1111 1111"}"#);
    assert!(masks_requests(Some(&asks)));
    let out = mask_request(
        "masked",
        Some(&asks),
        &mut headers,
        Some(body.clone()),
        &slot,
    )
    .unwrap();
    assert_eq!(&out[..], br#"{"card":"[MASKED:card_number]"}"#);
    assert_eq!(headers[CONTENT_LENGTH], out.len().to_string().as_str());
    assert_eq!(slot.lock().unwrap().get("card_number"), 1);

    let responses_only = route_with(MaskConfig::default(), None);
    assert!(!masks_requests(Some(&responses_only)));
    let out = mask_request(
        "masked",
        Some(&responses_only),
        &mut headers,
        Some(body.clone()),
        &slot,
    )
    .unwrap();
    assert_eq!(out, body);
}

#[test]
fn reported_secrets_join_the_org_set_once_and_other_orgs_never_see_them() {
    let org = Some(OrgId::new_random());
    let other = Some(OrgId::new_random());
    report_secret(org, "first-secret-value");
    report_secret(org, "first-secret-value");
    set_static_values(org, vec![Zeroizing::new("static-value-123".to_owned())]);
    assert_eq!(org_secrets(org).current().len(), 2);
    assert!(org_secrets(other).current().is_empty());
    let masker = route_masker(Some(&MaskConfig::default()), org)
        .unwrap()
        .unwrap();
    let (out, _) = masker.mask(
        ContentKind::Text,
        b"a first-secret-value b static-value-123",
    );
    assert_eq!(out, b"a [MASKED:secret] b [MASKED:secret]");
    // A value reported after the route was loaded is masked too (the set is shared).
    report_secret(org, "later-secret-value");
    let (out, _) = masker.mask(ContentKind::Text, b"later-secret-value");
    assert_eq!(out, b"[MASKED:secret]");
}
