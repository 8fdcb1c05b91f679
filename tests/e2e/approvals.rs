//! Just-in-time approvals (issue 17 item 1): requests are created the way the gateway creates
//! them (`Approvals::request_approval`, in this process, on the server's database) and decided
//! through the real API and the `keyward approval` CLI of another process. The decider rules,
//! the conditional transitions, grants, revocation and the audit trail.

use std::sync::Arc;

use keyward_core::api::approvals::{ApprovalMode, GrantKind, Requester};
use keyward_core::{AutomationId, OrgId};
use keyward_server::audit::Auditor;
use keyward_server::domain::approval_service::{Approvals, NewApproval, RequestSummary};
use keyward_server::domain::approval_webhook::ApprovalWebhook;
use keyward_store::crypto::MasterKey;
use keyward_store::{ApprovalRow, Store};
use reqwest::Method;
use serde_json::{Value, json};

use crate::common::*;
use crate::rbac::{open_store, person};

/// A server, the same database opened here, and the service the gateway would use.
pub(crate) struct Fixture {
    pub server: Server,
    pub options: ServerOptions,
    pub store: Arc<dyn Store>,
    pub approvals: Approvals,
    pub org: OrgId,
    _dir: tempfile::TempDir,
}

pub(crate) async fn fixture(backend: &Backend, webhook: Option<ApprovalWebhook>) -> Fixture {
    install_crypto();
    let dir = tempfile::tempdir().unwrap();
    let options = ServerOptions::new(backend, dir.path());
    let server = Server::start(&options);
    let store = open_store(backend, dir.path()).await;
    // The server's own master key (its data directory's file): one audit chain for both.
    let master = MasterKey::load_or_create(None, dir.path()).unwrap();
    let audit = Auditor::new(store.clone(), master.audit_key());
    let approvals = Approvals::new(store.clone(), audit, webhook);
    let org = org_id(&server).parse().unwrap();
    Fixture {
        server,
        options,
        store,
        approvals,
        org,
        _dir: dir,
    }
}

pub(crate) fn now() -> i64 {
    keyward_server::clock::now()
}

/// What the gateway's policy phase hands over for a request of `subject`.
pub(crate) fn asked(org: OrgId, subject: &str, automation: Option<AutomationId>) -> NewApproval {
    NewApproval {
        org,
        route_id: None,
        route_name: "openai".into(),
        requester: Requester {
            kind: if automation.is_some() {
                "automation"
            } else {
                "person"
            }
            .into(),
            subject: subject.into(),
            email: subject.contains('@').then(|| subject.to_owned()),
            automation_id: automation,
        },
        policy_id: "expensive-model".into(),
        reason: "nightly eval run needs gpt-4o".into(),
        summary: RequestSummary {
            method: "POST".into(),
            path: "/openai/chat/completions".into(),
            host: Some("gateway.acme.example".into()),
            model: Some("gpt-4o".into()),
            tool: None,
        },
        mode: ApprovalMode::Hold,
        grant: GrantKind::Once,
        grant_secs: None,
        pending_secs: None,
    }
}

impl Fixture {
    pub(crate) async fn request(
        &self,
        subject: &str,
        automation: Option<AutomationId>,
    ) -> ApprovalRow {
        self.approvals
            .request_approval(asked(self.org, subject, automation), now())
            .await
            .unwrap()
    }

    pub(crate) async fn api(
        &self,
        token: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        call(
            &self.server.client(),
            method,
            &format!("{}/api/v1{path}", self.server.url),
            Some(token),
            body,
        )
        .await
    }

    /// A member of the organization with `role`, and their token.
    pub(crate) async fn member(&self, email: &str, role: &str) -> String {
        let (_, token) = person(self.store.as_ref(), email).await;
        let (status, body) = self
            .api(
                BOOTSTRAP_TOKEN,
                Method::POST,
                "/members",
                Some(json!({"email": email, "role": role})),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        token
    }
}

/// A pending request in `org`, written straight through the store (for the foreign-id walk).
pub(crate) async fn store_pending(store: &dyn Store, org: OrgId) -> String {
    let row = ApprovalRow {
        id: keyward_core::ApprovalId::new_random(),
        org_id: org,
        route_id: None,
        route_name: "openai".into(),
        requester_kind: "person".into(),
        requester_subject: "someone@acme.example".into(),
        requester_email: None,
        requester_automation: None,
        policy_id: "p".into(),
        reason: "r".into(),
        summary: json!({}),
        mode: ApprovalMode::Hold,
        grant_kind: GrantKind::Once,
        grant_seconds: 1800,
        state: keyward_core::api::approvals::ApprovalState::Pending,
        created_at: now(),
        expires_at: now() + 3600,
        decided_by_user: None,
        decided_by_email: None,
        decision_comment: None,
        decided_at: None,
        grant_expires_at: None,
        executed_at: None,
        revoked_by_user: None,
        revoked_by_email: None,
        revoke_comment: None,
        revoked_at: None,
    };
    store.create_approval(&row).await.unwrap();
    row.id.to_string()
}

/// The approval events of the audit log, oldest first, as (type, approval id).
pub(crate) async fn approval_events(f: &Fixture) -> Vec<(String, String)> {
    let (status, page) = f
        .api(BOOTSTRAP_TOKEN, Method::GET, "/audit?limit=1000", None)
        .await;
    assert_eq!(status, 200, "{page}");
    page["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"].as_str().unwrap().starts_with("approval."))
        .map(|e| {
            (
                e["type"].as_str().unwrap().to_owned(),
                e["data"]["approval_id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            )
        })
        .collect()
}

pub(crate) fn audit_verifies(f: &Fixture) {
    let (ok, out, err) = keyward_cli(&f.options, &["audit", "verify"]);
    assert!(ok, "audit verify failed: {out} {err}");
}

#[tokio::test]
async fn people_list_show_and_decide_requests_through_the_api_and_the_cli() {
    for backend in backends().await {
        let f = fixture(&backend, None).await;
        let automation = create_as_owner(&f.server, "/automations", json!({"name": "evals"})).await;
        let automation_id: AutomationId = automation["id"].as_str().unwrap().parse().unwrap();
        let subject = format!("automation:{automation_id}");
        let first = f.request(&subject, Some(automation_id)).await;
        let second = f.request(&subject, Some(automation_id)).await;

        // Listed newest first, with what was asked and why; shown by id.
        let (status, list) = f
            .api(
                BOOTSTRAP_TOKEN,
                Method::GET,
                "/approvals?state=pending",
                None,
            )
            .await;
        assert_eq!(status, 200, "{list}");
        let ids: Vec<&str> = list
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["id"].as_str().unwrap())
            .collect();
        assert_eq!(
            ids,
            [second.id.to_string(), first.id.to_string()],
            "{}",
            backend.name()
        );
        assert_eq!(list[0]["reason"], "nightly eval run needs gpt-4o");
        assert_eq!(list[0]["summary"]["model"], "gpt-4o");
        assert_eq!(
            list[0]["requester"]["automation_id"],
            automation_id.to_string()
        );
        let (status, shown) = f
            .api(
                BOOTSTRAP_TOKEN,
                Method::GET,
                &format!("/approvals/{}", first.id),
                None,
            )
            .await;
        assert_eq!(
            (status, shown["state"].as_str()),
            (200, Some("pending")),
            "{shown}"
        );

        // The per-caller bound counts this automation's requests, not another's that shares
        // the organization-wide subject.
        let t0 = now();
        assert_eq!(
            f.store
                .count_pending_for(f.org, &subject, Some(automation_id), t0)
                .await
                .unwrap(),
            2
        );
        assert_eq!(
            f.store
                .count_pending_for(f.org, &subject, Some(AutomationId::new_random()), t0)
                .await
                .unwrap(),
            0
        );

        // The CLI of another process: list, approve with a time box, show.
        let (ok, out, err) = admin_cli(&f.server, &["approval", "list", "--state", "pending"]);
        assert!(ok, "{err}");
        assert!(
            out.contains(&first.id.to_string()) && out.contains("state=pending"),
            "{out}"
        );
        let first_id = first.id.to_string();
        let (ok, out, err) = admin_cli(
            &f.server,
            &[
                "approval",
                "approve",
                &first_id,
                "--comment",
                "ok for tonight",
                "--for",
                "2m",
                "--grant",
                "timebox",
                "-o",
                "text",
            ],
        );
        assert!(ok, "{err}");
        assert!(
            out.contains("state: approved") && out.contains("decided_by: owner@acme.example"),
            "{out}"
        );
        let (ok, out, err) = admin_cli(&f.server, &["approval", "show", &first_id]);
        assert!(ok, "{err}");
        let shown: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(shown["grant"], "timebox");
        assert_eq!(shown["decision_comment"], "ok for tonight");

        // A second decision on it is a conflict naming its state; so is denying it now.
        let (status, body) = f
            .api(
                BOOTSTRAP_TOKEN,
                Method::POST,
                &format!("/approvals/{first_id}/approve"),
                Some(json!({})),
            )
            .await;
        assert_eq!(status, 409, "{body}");
        assert!(
            body["message"].as_str().unwrap().contains("is approved"),
            "{body}"
        );
        let (ok, _, err) = admin_cli(
            &f.server,
            &[
                "approval",
                "deny",
                &first_id,
                "--comment",
                "changed my mind",
            ],
        );
        assert!(!ok);
        assert!(err.contains("is approved"), "{err}");

        // The time-boxed grant covers the requester, route and policy until it ends, then not.
        let t = now();
        let grant = f
            .store
            .find_active_grant(
                f.org,
                &subject,
                Some(automation_id),
                "openai",
                "expensive-model",
                t,
            )
            .await
            .unwrap();
        assert_eq!(grant.as_ref().map(|g| g.id), Some(first.id));
        assert!(
            f.approvals
                .use_grant(grant.as_ref().unwrap(), t)
                .await
                .unwrap()
        );
        assert!(
            f.approvals
                .use_grant(grant.as_ref().unwrap(), t)
                .await
                .unwrap(),
            "a time box is not spent"
        );
        let other = f
            .store
            .find_active_grant(
                f.org,
                &subject,
                Some(automation_id),
                "openai",
                "another-policy",
                t,
            )
            .await
            .unwrap();
        assert!(other.is_none());
        // Workload tokens of an organization-wide subject share it: another automation's
        // requests are not covered by this automation's grant.
        let another = f
            .store
            .find_active_grant(
                f.org,
                &subject,
                Some(AutomationId::new_random()),
                "openai",
                "expensive-model",
                t,
            )
            .await
            .unwrap();
        assert!(another.is_none(), "a grant crossed to another automation");
        let later = t + 121;
        assert!(
            f.store
                .find_active_grant(
                    f.org,
                    &subject,
                    Some(automation_id),
                    "openai",
                    "expensive-model",
                    later
                )
                .await
                .unwrap()
                .is_none()
        );
        assert_eq!(
            f.approvals.expire_due(later).await.unwrap(),
            2,
            "the grant and the undecided request"
        );

        let second_id = second.id.to_string();

        // A one-shot grant, spent once; revoke stops a grant at once.
        let third = f.request(&subject, Some(automation_id)).await;
        let third_id = third.id.to_string();
        let (status, body) = f
            .api(
                BOOTSTRAP_TOKEN,
                Method::POST,
                &format!("/approvals/{third_id}/deny"),
                Some(json!({})),
            )
            .await;
        assert_eq!(
            (status, body["field"].as_str()),
            (400, Some("comment")),
            "{body}"
        );
        let (ok, _, err) = admin_cli(&f.server, &["approval", "approve", &third_id]);
        assert!(ok, "{err}");
        let grant = f
            .store
            .find_active_grant(
                f.org,
                &subject,
                Some(automation_id),
                "openai",
                "expensive-model",
                now(),
            )
            .await
            .unwrap()
            .unwrap();
        assert!(f.approvals.use_grant(&grant, now()).await.unwrap());
        assert!(
            !f.approvals.use_grant(&grant, now()).await.unwrap(),
            "a one-shot grant is spent once"
        );

        let fourth = f.request(&subject, Some(automation_id)).await;
        let fourth_id = fourth.id.to_string();
        let (status, body) = f
            .api(
                BOOTSTRAP_TOKEN,
                Method::POST,
                &format!("/approvals/{fourth_id}/approve"),
                Some(json!({"grant": "timebox", "duration": "49h"})),
            )
            .await;
        assert_eq!(
            (status, body["field"].as_str()),
            (400, Some("duration")),
            "{body}"
        );
        assert!(body["message"].as_str().unwrap().contains("48h"), "{body}");
        let (status, _) = f
            .api(
                BOOTSTRAP_TOKEN,
                Method::POST,
                &format!("/approvals/{fourth_id}/approve"),
                Some(json!({"grant": "timebox", "duration": "30m"})),
            )
            .await;
        assert_eq!(status, 200);
        assert!(
            f.store
                .find_active_grant(
                    f.org,
                    &subject,
                    Some(automation_id),
                    "openai",
                    "expensive-model",
                    now()
                )
                .await
                .unwrap()
                .is_some()
        );
        let (ok, out, err) = admin_cli(
            &f.server,
            &[
                "approval",
                "revoke",
                &fourth_id,
                "--comment",
                "incident 42",
                "-o",
                "text",
            ],
        );
        assert!(ok, "{err}");
        assert!(
            out.contains("state: revoked") && out.contains("revoke_comment: incident 42"),
            "{out}"
        );
        assert!(
            f.store
                .find_active_grant(
                    f.org,
                    &subject,
                    Some(automation_id),
                    "openai",
                    "expensive-model",
                    now()
                )
                .await
                .unwrap()
                .is_none()
        );
        let (ok, _, err) = admin_cli(
            &f.server,
            &["approval", "deny", &fourth_id, "--comment", "too late"],
        );
        assert!(!ok && err.contains("is revoked"), "{err}");

        // Every transition is in the audit log, and the chain verifies.
        let events = approval_events(&f).await;
        for (kind, id) in [
            ("approval.requested", &first_id),
            ("approval.approved", &first_id),
            ("approval.expired", &first_id),
            ("approval.expired", &second_id),
            ("approval.approved", &third_id),
            ("approval.executed", &third_id),
            ("approval.approved", &fourth_id),
            ("approval.revoked", &fourth_id),
        ] {
            assert!(
                events.iter().any(|(k, i)| k == kind && i == id),
                "{kind} {id} missing from {events:?}"
            );
        }
        audit_verifies(&f);
    }
}
