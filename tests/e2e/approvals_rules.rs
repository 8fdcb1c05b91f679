//! Who may see and decide an approval request: a person whose role grants gateway manage, or
//! who holds human_in_the_loop on the requesting automation — never the requester, never an
//! automation token; others do not even see it.

use keyward_core::AutomationId;
use reqwest::Method;
use serde_json::json;

use crate::approvals::{approval_events, audit_verifies, fixture};
use crate::common::*;

#[tokio::test]
async fn only_approvers_who_are_not_the_requester_decide() {
    for backend in backends().await {
        let f = fixture(&backend, None).await;
        let automation = create_as_owner(&f.server, "/automations", json!({"name": "evals"})).await;
        let automation_id: AutomationId = automation["id"].as_str().unwrap().parse().unwrap();
        let member = f.member("member@acme.example", "member").await;
        let (status, role) = f
            .api(
                BOOTSTRAP_TOKEN,
                Method::POST,
                "/roles",
                Some(json!({"name": "outsider", "grants": {"audit_log": "read"}})),
            )
            .await;
        assert_eq!(status, 201, "{role}");
        let outsider = f.member("outsider@acme.example", "outsider").await;

        // The owner's own request: refused, naming the rule.
        let own = f.request("owner@acme.example", None).await;
        let (status, body) = f
            .api(
                BOOTSTRAP_TOKEN,
                Method::POST,
                &format!("/approvals/{}/approve", own.id),
                Some(json!({})),
            )
            .await;
        assert_eq!(
            (status, body["error"].as_str()),
            (403, Some("own_request")),
            "{}: {body}",
            backend.name()
        );
        assert!(
            body["message"]
                .as_str()
                .unwrap()
                .contains("never the requester"),
            "{body}"
        );

        // An automation token is not a person.
        let (_, automation_token) = automation_with_token(&f.server, "bot").await;
        let asked = f
            .request(&format!("automation:{automation_id}"), Some(automation_id))
            .await;
        let approve = format!("/approvals/{}/approve", asked.id);
        let (status, body) = f
            .api(&automation_token, Method::POST, &approve, Some(json!({})))
            .await;
        assert_eq!(
            (status, body["error"].as_str()),
            (403, Some("wrong_token_kind")),
            "{body}"
        );

        // A Member sees requests (gateway read) but may not decide them without a grant.
        let (status, body) = f
            .api(&member, Method::POST, &approve, Some(json!({})))
            .await;
        assert_eq!(status, 403, "{body}");
        assert!(
            body["message"]
                .as_str()
                .unwrap()
                .contains("human_in_the_loop"),
            "{body}"
        );

        // Someone without gateway read and without a grant does not see them at all.
        let (status, list) = f.api(&outsider, Method::GET, "/approvals", None).await;
        assert_eq!(
            (status, list.as_array().map(Vec::len)),
            (200, Some(0)),
            "{list}"
        );
        let (status, _) = f
            .api(
                &outsider,
                Method::GET,
                &format!("/approvals/{}", asked.id),
                None,
            )
            .await;
        assert_eq!(status, 404);
        let (status, _) = f
            .api(&outsider, Method::POST, &approve, Some(json!({})))
            .await;
        assert_eq!(status, 404);

        // human_in_the_loop on the automation lets both see and decide its requests.
        let (status, body) = f
            .api(
                BOOTSTRAP_TOKEN,
                Method::PUT,
                "/automations/evals/permissions",
                Some(json!({"visibility": "public", "grants": [
                    {"user": "member@acme.example", "permissions": ["human_in_the_loop"]},
                    {"user": "outsider@acme.example", "permissions": ["human_in_the_loop"]}]})),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        let (status, list) = f.api(&outsider, Method::GET, "/approvals", None).await;
        assert_eq!(status, 200);
        let ids: Vec<&str> = list
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["id"].as_str().unwrap())
            .collect();
        assert_eq!(
            ids,
            [asked.id.to_string()],
            "only the automation's request, not the owner's"
        );
        let (status, body) = f
            .api(
                &member,
                Method::POST,
                &approve,
                Some(json!({"comment": "fine"})),
            )
            .await;
        assert_eq!(
            (status, body["state"].as_str()),
            (200, Some("approved")),
            "{body}"
        );
        assert_eq!(body["decided_by"]["email"], "member@acme.example");

        // Of two approvers, the second gets a conflict naming the state.
        let (status, body) = f
            .api(&outsider, Method::POST, &approve, Some(json!({})))
            .await;
        assert_eq!(status, 409, "{body}");
        assert!(
            body["message"].as_str().unwrap().contains("is approved"),
            "{body}"
        );

        // Unknown filters and ids are refused cleanly.
        let (status, body) = f
            .api(BOOTSTRAP_TOKEN, Method::GET, "/approvals?state=maybe", None)
            .await;
        assert_eq!(
            (status, body["field"].as_str()),
            (400, Some("state")),
            "{body}"
        );
        let (status, _) = f
            .api(BOOTSTRAP_TOKEN, Method::GET, "/approvals/not-a-uuid", None)
            .await;
        assert_eq!(status, 404);

        let events = approval_events(&f).await;
        assert!(
            events.contains(&("approval.approved".into(), asked.id.to_string())),
            "{events:?}"
        );
        audit_verifies(&f);
    }
}

#[tokio::test]
async fn concurrent_approvals_of_one_request_have_one_winner() {
    for backend in backends().await {
        let f = fixture(&backend, None).await;
        let asked = f.request("ci@acme.example", None).await;
        let path = format!("/approvals/{}/approve", asked.id);
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let client = f.server.client();
            let url = format!("{}/api/v1{path}", f.server.url);
            tasks.push(tokio::spawn(async move {
                call(
                    &client,
                    Method::POST,
                    &url,
                    Some(BOOTSTRAP_TOKEN),
                    Some(json!({})),
                )
                .await
                .0
            }));
        }
        let mut statuses = Vec::new();
        for t in tasks {
            statuses.push(t.await.unwrap());
        }
        assert_eq!(
            statuses.iter().filter(|s| **s == 200).count(),
            1,
            "{statuses:?}"
        );
        assert_eq!(
            statuses.iter().filter(|s| **s == 409).count(),
            7,
            "{statuses:?}"
        );
        let approved = approval_events(&f)
            .await
            .into_iter()
            .filter(|(k, i)| k == "approval.approved" && *i == asked.id.to_string())
            .count();
        assert_eq!(approved, 1);
    }
}

/// `keyward approval approve <id>...`: a batch; one id that cannot be decided is named with the
/// reason and fails the command, and every other id is still approved.
#[tokio::test]
async fn a_cli_batch_decides_every_id_and_names_the_one_it_could_not() {
    for backend in backends().await {
        let f = fixture(&backend, None).await;
        let first = f.request("ci@acme.example", None).await.id.to_string();
        let second = f.request("ci@acme.example", None).await.id.to_string();
        let unknown = keyward_core::ApprovalId::new_random().to_string();
        let (ok, out, err) = admin_cli_async(
            &f.server,
            &[
                "approval",
                "approve",
                &first,
                &unknown,
                &second,
                "--comment",
                "batch",
                "-o",
                "text",
            ],
        )
        .await;
        assert!(
            !ok,
            "{}: a batch with an unknown id succeeded: {out}",
            backend.name()
        );
        assert!(err.contains(&format!("approval {unknown}: ")), "{err}");
        assert!(err.contains("1 of 3 approvals failed"), "{err}");
        for id in [&first, &second] {
            assert!(out.contains(&format!("id={id}  state=approved")), "{out}");
            let (status, shown) = f
                .api(
                    BOOTSTRAP_TOKEN,
                    Method::GET,
                    &format!("/approvals/{id}"),
                    None,
                )
                .await;
            assert_eq!((status, shown["state"].as_str()), (200, Some("approved")));
        }
    }
}
