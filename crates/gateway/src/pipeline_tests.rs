//! The phase order, tested with stand-in phases (the real verifier, Cedar policies and injector
//! are other modules' tests) against a real upstream: a small hyper server in the test.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::AtomicUsize;
use std::time::Duration;

use http::StatusCode;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use keyward_policy::PrincipalKind;
use serde_json::Value;

use async_trait::async_trait;
use http::HeaderMap;
use keyward_core::OrgId;
use keyward_policy::{Accept, CredentialSpec, NoMatch};

use super::*;
use crate::audit::{AuditReceiver, channel};
use crate::credentials::CredentialError;
use crate::phases::PolicyPhase;
use crate::table::tests::entry;
use crate::table::{RouteEntry, Snapshot};
use crate::upstream::{Upstream, UpstreamClients};

/// Permits everything, as a policy would that matched with `permit`.
pub(crate) struct AllowAll;

impl PolicyPhase for AllowAll {
    fn reads_body(&self) -> bool {
        false
    }
    fn decide(&self, _: &Principal, _: &RequestFacts, _: NoMatch) -> Decision {
        Decision {
            effect: Effect::Allow,
            policy_ids: vec!["allow-all".into()],
            approval_required: false,
            no_match: false,
        }
    }
}

/// Reads the body and forbids `model = "expensive"`; `DELETE` asks for approval.
struct ModelPolicy;

impl PolicyPhase for ModelPolicy {
    fn reads_body(&self) -> bool {
        true
    }
    fn decide(&self, _: &Principal, request: &RequestFacts, _: NoMatch) -> Decision {
        let model = request
            .body
            .as_ref()
            .and_then(|b| b.json.get("model"))
            .and_then(Value::as_str);
        let (effect, id, approval) = match (model, request.method.as_str()) {
            (Some("expensive"), _) => (Effect::Deny, "no-expensive", false),
            (_, "DELETE") => (Effect::Allow, "delete-needs-approval", true),
            _ => (Effect::Allow, "cheap-ok", false),
        };
        Decision {
            effect,
            policy_ids: vec![id.into()],
            approval_required: approval,
            no_match: false,
        }
    }
}

/// `Bearer good` is a workload of automation `bot`; anything else is refused.
struct TokenIdentity;

#[async_trait]
impl IdentityPhase for TokenIdentity {
    async fn identify(
        &self,
        headers: &HeaderMap,
        _: &[Accept],
        _: Option<OrgId>,
        _: i64,
    ) -> Result<Principal, IdentityError> {
        match headers.get("authorization").and_then(|v| v.to_str().ok()) {
            None => Err(IdentityError::Missing),
            Some("Bearer good") => Ok(Principal {
                kind: PrincipalKind::Workload,
                org: "00000000-0000-4000-8000-000000000001".into(),
                subject: "automation:bot".into(),
                email: None,
                groups: vec![],
                role: None,
                automation: Some("bot".into()),
            }),
            Some(_) => Err(IdentityError::Refused {
                check: "the token's signature does not verify".into(),
            }),
        }
    }
}

/// Adds `x-upstream-key: injected`, or fails for a `Keyward` spec.
struct HeaderCredential;

#[async_trait]
impl CredentialPhase for HeaderCredential {
    fn needs_body(&self, _: &CredentialSpec) -> bool {
        false
    }
    async fn apply(
        &self,
        _: Option<OrgId>,
        route: &str,
        spec: &CredentialSpec,
        request: &mut http::request::Parts,
        _: Option<&[u8]>,
    ) -> Result<(), CredentialError> {
        if matches!(spec, CredentialSpec::Keyward { .. }) {
            return Err(CredentialError::Unavailable(format!(
                "route {route}: the token could not be minted"
            )));
        }
        request
            .headers
            .insert("x-upstream-key", "injected".parse().unwrap());
        Ok(())
    }
}

/// An upstream answering with what it received (method, path, query, headers, body); a path
/// starting `/slow` waits 3 s first. Counts requests.
pub(crate) async fn echo_upstream() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let counter = counter.clone();
            tokio::spawn(async move {
                let service = service_fn(move |request: Request<hyper::body::Incoming>| {
                    counter.fetch_add(1, Ordering::SeqCst);
                    async move {
                        if request.uri().path().starts_with("/v1/slow") {
                            tokio::time::sleep(Duration::from_secs(3)).await;
                        }
                        let headers: serde_json::Map<String, Value> = request
                            .headers()
                            .iter()
                            .map(|(k, v)| (k.to_string(), json!(v.to_str().unwrap())))
                            .collect();
                        let method = request.method().to_string();
                        let path = request.uri().path().to_owned();
                        let query = request.uri().query().map(str::to_owned);
                        let body = request.into_body().collect().await.unwrap().to_bytes();
                        let answer = json!({
                            "method": method, "path": path, "query": query,
                            "headers": headers, "body": String::from_utf8_lossy(&body),
                        });
                        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(
                            answer.to_string(),
                        ))))
                    }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (addr, hits)
}

pub(crate) fn route_to(addr: SocketAddr, policy: Arc<dyn PolicyPhase>) -> RouteEntry {
    let mut route = entry("openai", None, Some("/openai"));
    route.upstream = Upstream::new(
        url::Url::parse(&format!("http://{addr}/v1")).unwrap(),
        UpstreamClients::default()
            .client(None, Duration::from_secs(1))
            .unwrap(),
    );
    route.policy = policy;
    route.inspect_limit = 64;
    route.timeout = Duration::from_millis(500);
    route
}

pub(crate) fn test_gateway(routes: Vec<RouteEntry>) -> (Gateway, AuditReceiver) {
    let (audit, rx) = channel(100);
    let table = RouteTable::new(Snapshot {
        generation: 1,
        routes: routes.into_iter().map(Arc::new).collect(),
    });
    let gateway = Gateway {
        table: Arc::new(table),
        identity: Arc::new(TokenIdentity),
        credentials: Arc::new(HeaderCredential),
        approvals: Arc::new(crate::phases::NoApprovals),
        recordings: None,
        audit,
        clock: Clock::system(),
    };
    (gateway, rx)
}

pub(crate) fn request(
    method: &str,
    uri: &str,
    token: Option<&str>,
    body: &str,
) -> Request<Full<Bytes>> {
    let mut builder = Request::builder()
        .method(method)
        .uri(uri)
        .header("host", "gateway.test:8444")
        .header("x-api-key", "caller-secret")
        .header("cookie", "session=caller");
    if let Some(token) = token {
        builder = builder.header("authorization", format!("Bearer {token}"));
    }
    builder
        .body(Full::new(Bytes::from(body.to_owned())))
        .unwrap()
}

/// The response's status and JSON body, and the audit event written once the body is done.
pub(crate) async fn exchange(
    gateway: &Gateway,
    rx: &mut AuditReceiver,
    request: Request<Full<Bytes>>,
) -> (StatusCode, Value, GatewayEvent) {
    let response = gateway.handle(request).await;
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let event = tokio::time::timeout(Duration::from_secs(2), rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(event.data["bytes_out"], bytes.len() as u64);
    (status, json, event)
}

#[tokio::test]
async fn an_allowed_request_reaches_the_upstream_with_the_route_credential_only() {
    let (addr, hits) = echo_upstream().await;
    let (gw, mut rx) = test_gateway(vec![route_to(addr, Arc::new(AllowAll))]);
    let (status, echo, event) = exchange(
        &gw,
        &mut rx,
        request(
            "POST",
            "/openai/chat/completions?stream=true",
            Some("good"),
            "{}",
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    // The prefix is stripped, joined onto the upstream's /v1, the query kept.
    assert_eq!(echo["path"], "/v1/chat/completions");
    assert_eq!(echo["query"], "stream=true");
    let headers = &echo["headers"];
    assert_eq!(headers["host"], addr.to_string());
    assert_eq!(headers["x-upstream-key"], "injected");
    for stripped in ["authorization", "x-api-key", "cookie"] {
        assert!(
            headers.get(stripped).is_none(),
            "{stripped} reached the upstream"
        );
    }
    assert_eq!(event.actor, "automation:bot");
    assert_eq!(event.data["decision"], "allow");
    assert_eq!(event.data["policy_ids"], json!(["allow-all"]));
    assert_eq!(event.data["status"], 200);
    assert_eq!(event.data["upstream_status"], 200);
    assert_eq!(event.data["bytes_in"], 2);
    assert_eq!(event.data["automation"], "bot");
    assert_eq!(event.data["principal_kind"], "workload");
    assert!(!event.data.to_string().contains("caller-secret"));
}

#[tokio::test]
async fn no_token_is_401_before_anything_else_happens() {
    let (addr, hits) = echo_upstream().await;
    let (gw, mut rx) = test_gateway(vec![route_to(addr, Arc::new(ModelPolicy))]);
    let (status, body, event) =
        exchange(&gw, &mut rx, request("POST", "/openai/x", None, "{}")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"], "unauthenticated");
    assert_eq!(event.actor, "anonymous");
    assert_eq!(event.data["decision"], "deny");
    // Nothing looked at the body of an unknown caller: it was only read to be dropped (so an
    // HTTP/2 caller can finish sending and read the 401), and the upstream never saw it.
    assert_eq!(event.data["bytes_in"], 2);
    let (status, body, _) = exchange(
        &gw,
        &mut rx,
        request("POST", "/openai/x", Some("forged-token-value"), "{}"),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(!body.to_string().contains("forged-token-value"));
    assert_eq!(hits.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_policy_reading_the_body_denies_with_its_id_and_over_the_limit_is_413() {
    let (addr, hits) = echo_upstream().await;
    let (gw, mut rx) = test_gateway(vec![route_to(addr, Arc::new(ModelPolicy))]);
    let (status, body, event) = exchange(
        &gw,
        &mut rx,
        request(
            "POST",
            "/openai/x",
            Some("good"),
            r#"{"model":"expensive"}"#,
        ),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["error"], "forbidden");
    assert_eq!(body["policy_ids"], json!(["no-expensive"]));
    assert_eq!(event.data["policy_ids"], json!(["no-expensive"]));

    let (status, echo, _) = exchange(
        &gw,
        &mut rx,
        request("POST", "/openai/x", Some("good"), r#"{"model":"cheap"}"#),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    // The buffered body is what the upstream receives.
    assert_eq!(echo["body"], r#"{"model":"cheap"}"#);

    let big = format!(r#"{{"model":"cheap","pad":"{}"}}"#, "x".repeat(100));
    let (status, body, _) = exchange(
        &gw,
        &mut rx,
        request("POST", "/openai/x", Some("good"), &big),
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(body["error"], "payload_too_large");
    assert_eq!(hits.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_permit_needing_approval_is_refused_until_approvals_exist() {
    let (addr, hits) = echo_upstream().await;
    let (gw, mut rx) = test_gateway(vec![route_to(addr, Arc::new(ModelPolicy))]);
    let (status, body, event) = exchange(
        &gw,
        &mut rx,
        request("DELETE", "/openai/x", Some("good"), ""),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["error"], "approval_required");
    assert_eq!(body["policy_ids"], json!(["delete-needs-approval"]));
    assert_eq!(event.data["decision"], "deny");
    assert_eq!(hits.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn no_route_is_404_and_a_missing_credential_is_502() {
    let (addr, hits) = echo_upstream().await;
    let mut route = route_to(addr, Arc::new(AllowAll));
    route.credential = CredentialSpec::Keyward {
        automation: "bot".into(),
        token_env: "T".into(),
        audience: "a".into(),
    };
    let (gw, mut rx) = test_gateway(vec![route]);
    let (status, body, event) =
        exchange(&gw, &mut rx, request("GET", "/elsewhere", Some("good"), "")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"], "no_route");
    assert_eq!(event.data["route"], Value::Null);
    let (status, body, _) =
        exchange(&gw, &mut rx, request("GET", "/openai/x", Some("good"), "")).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert_eq!(body["error"], "credential_unavailable");
    assert_eq!(hits.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_slow_upstream_is_504_within_the_timeout() {
    let (addr, _) = echo_upstream().await;
    let (gw, mut rx) = test_gateway(vec![route_to(addr, Arc::new(AllowAll))]);
    let started = Instant::now();
    let (status, body, event) = exchange(
        &gw,
        &mut rx,
        request("GET", "/openai/slow", Some("good"), ""),
    )
    .await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(body["error"], "gateway_timeout");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains(&addr.to_string())
    );
    // The route's timeout is 500 ms; the upstream would take 3 s.
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "{:?}",
        started.elapsed()
    );
    assert!(event.data.get("upstream_status").is_none());
}

/// Keeps the facts it was asked about.
struct Recording(std::sync::Mutex<Option<RequestFacts>>);

impl PolicyPhase for Recording {
    fn reads_body(&self) -> bool {
        true
    }
    fn decide(&self, principal: &Principal, request: &RequestFacts, no_match: NoMatch) -> Decision {
        *self.0.lock().unwrap() = Some(request.clone());
        AllowAll.decide(principal, request, no_match)
    }
}

#[tokio::test]
async fn the_policy_sees_the_request_but_never_a_credentials_value() {
    let (addr, _) = echo_upstream().await;
    let policy = Arc::new(Recording(std::sync::Mutex::new(None)));
    let (gw, mut rx) = test_gateway(vec![route_to(addr, policy.clone())]);
    // An HTTP/2 request: absolute URI, no Host header.
    let request = Request::builder()
        .method("POST")
        .uri("https://gateway.test:8444/openai/chat?model=a%20b&x=1")
        .header("authorization", "Bearer good")
        .header("x-api-key", "caller-secret")
        .header("X-Custom", "v")
        .body(Full::new(Bytes::from_static(br#"{"model":"gpt-4o"}"#)))
        .unwrap();
    let (status, _, _) = exchange(&gw, &mut rx, request).await;
    assert_eq!(status, StatusCode::OK);
    let facts = policy.0.lock().unwrap().clone().unwrap();
    assert_eq!(facts.route, "openai");
    assert_eq!(facts.method, "POST");
    // The path as received, before the prefix is stripped; the query decoded.
    assert_eq!(facts.path, "/openai/chat");
    assert_eq!(
        facts.query,
        vec![("model".into(), "a b".into()), ("x".into(), "1".into())]
    );
    let header = |name: &str| {
        facts
            .headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(header("x-custom").as_deref(), Some("v"));
    assert_eq!(header("host").as_deref(), Some("gateway.test:8444"));
    // Named, never valued.
    assert_eq!(header("authorization").as_deref(), Some(""));
    assert_eq!(header("x-api-key").as_deref(), Some(""));
    assert_eq!(facts.body.unwrap().json["model"], "gpt-4o");
}

#[tokio::test]
async fn a_caller_of_another_organization_is_refused_whatever_the_policy() {
    let (addr, hits) = echo_upstream().await;
    let mut other = route_to(addr, Arc::new(AllowAll));
    other.org = Some("00000000-0000-4000-8000-000000000002".parse().unwrap());
    let mut own = route_to(addr, Arc::new(AllowAll));
    own.name = "own".into();
    own.path_prefix = Some("/own".into());
    own.org = Some("00000000-0000-4000-8000-000000000001".parse().unwrap());
    let (gw, mut rx) = test_gateway(vec![other, own]);
    let (status, body, event) =
        exchange(&gw, &mut rx, request("GET", "/openai/x", Some("good"), "")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["error"], "forbidden");
    assert_eq!(hits.load(Ordering::SeqCst), 0);
    // The event belongs to the route's organization and names the caller.
    assert_eq!(
        event.org.map(|o| o.to_string()).as_deref(),
        Some("00000000-0000-4000-8000-000000000002")
    );
    assert_eq!(event.actor, "automation:bot");
    let (status, _, _) = exchange(&gw, &mut rx, request("GET", "/own/x", Some("good"), "")).await;
    assert_eq!(status, StatusCode::OK);
}

/// Attack: a path that leaves the route's prefix after normalization, or hides a separator in an
/// escape, must not reach the route's upstream outside its base path.
#[tokio::test]
async fn a_path_is_matched_and_forwarded_in_its_normalized_form() {
    let (addr, hits) = echo_upstream().await;
    let (gw, mut rx) = test_gateway(vec![route_to(addr, Arc::new(AllowAll))]);
    // `/openai/../admin` is `/admin`: no route, the upstream never sees it.
    let (status, body, _) = exchange(
        &gw,
        &mut rx,
        request("GET", "/openai/../admin", Some("good"), ""),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(hits.load(Ordering::SeqCst), 0);
    // An encoded slash is refused rather than interpreted one way here and another upstream.
    for path in ["/openai/..%2Fadmin", "/openai/x%5c..%5cadmin"] {
        let (status, body, _) =
            exchange(&gw, &mut rx, request("GET", path, Some("good"), "")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {body}");
    }
    assert_eq!(hits.load(Ordering::SeqCst), 0);
    // Dots and escaped letters inside the route reach the upstream resolved.
    let (status, echo, event) = exchange(
        &gw,
        &mut rx,
        request("GET", "/openai/a/./b/../%63hat", Some("good"), ""),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(echo["path"], "/v1/a/chat");
    assert_eq!(event.data["path"], "/openai/a/chat");
}
