//! Pending invitations on `/console/members` and `/api/v1/invitations`: listed with who
//! invited whom as what until when (never the link), revoked by whoever may invite (a Member
//! is refused by the server, not only by a missing button), and a revoked link opens nothing.

use reqwest::Method;
use serde_json::{Value, json};

use crate::common::*;
use crate::console_common::{csrf_of, get, member_session, post};
use crate::people::{browser, local_options, set_owner_password, sign_in};
use crate::people_local::form_body;

async fn api(server: &Server, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
    let (status, body) = call(
        &server.client(),
        method,
        &format!("{}{path}", server.url),
        Some(BOOTSTRAP_TOKEN),
        body,
    )
    .await;
    (status, body)
}

/// Invites `email` as a Member; the link's secret.
async fn invite(server: &Server, email: &str) -> String {
    let (status, invited) = api(
        server,
        Method::POST,
        "/api/v1/invitations",
        Some(json!({"email": email, "role": "member"})),
    )
    .await;
    assert_eq!(status, 201, "{invited}");
    let link = invited["invitation_url"].as_str().unwrap();
    link.split_once("/invite#token=").unwrap().1.to_owned()
}

/// Accepting with `token` as a new account: the status and the page.
async fn accept(server: &Server, token: &str) -> (u16, String) {
    let res = browser(server)
        .post(format!("{}/invite", server.url))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form_body(&[
            ("token", token),
            ("password", "a long enough password here"),
        ]))
        .send()
        .await
        .unwrap();
    (res.status().as_u16(), res.text().await.unwrap())
}

async fn pending(server: &Server) -> Vec<Value> {
    let (status, list) = api(server, Method::GET, "/api/v1/invitations", None).await;
    assert_eq!(status, 200, "{list}");
    list.as_array().unwrap().clone()
}

async fn revoked_events(server: &Server) -> Vec<Value> {
    let (status, page) = api(
        server,
        Method::GET,
        "/api/v1/audit?type=invitation.revoked&limit=100",
        None,
    )
    .await;
    assert_eq!(status, 200, "{page}");
    page["events"].as_array().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn pending_invitations_are_listed_and_revoked_on_the_console_and_the_link_dies() {
    install_crypto();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&local_options(&Backend::Sqlite, dir.path()));
    set_owner_password(&server).await;
    let owner = sign_in(&server, "/console").await;
    let bob = member_session(&server).await;
    let carol = invite(&server, "carol@acme.example").await;

    // The API lists it (bob's was accepted, so it is not pending), never with its secret.
    let list = pending(&server).await;
    assert_eq!(list.len(), 1, "{list:?}");
    let id = list[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(list[0]["email"], "carol@acme.example");
    assert_eq!(list[0]["role"], "member");
    assert_eq!(list[0]["invited_by"], "owner@acme.example");
    assert!(list[0]["expires_at"].as_str().is_some());
    let listed = serde_json::to_string(&list).unwrap();
    assert!(
        !listed.contains(&carol) && !listed.contains("kwi_"),
        "{listed}"
    );

    // The owner's page shows it with who invited and until when, and a revoke form.
    let page = get(&server, &owner, "/console/members").await;
    assert_eq!(page.status, 200, "{}", page.body);
    let row = page
        .body
        .split(&format!("<tr id=\"invitation-{id}\">"))
        .nth(1)
        .unwrap_or_else(|| panic!("no row for {id}: {}", page.body));
    let row = &row[..row.find("</tr>").unwrap()];
    assert!(row.contains(">carol@acme.example</td>"), "{row}");
    assert!(row.contains(">member</td>"), "{row}");
    assert!(row.contains(">owner@acme.example</td>"), "{row}");
    assert!(
        row.contains(list[0]["expires_at"].as_str().unwrap()),
        "{row}"
    );
    let revoke = format!("/console/members/invitations/{id}/revoke");
    assert!(row.contains(&format!("action=\"{revoke}\"")), "{row}");
    assert!(
        !page.body.contains(&carol),
        "the link's secret is never shown again"
    );
    let owners_csrf = csrf_of(&page.body);

    // A Member reads the list but may not revoke: no form, and the server refuses the post.
    let members_view = get(&server, &bob, "/console/members").await;
    assert_eq!(members_view.status, 200, "{}", members_view.body);
    assert!(members_view.body.contains(">carol@acme.example</td>"));
    assert!(!members_view.body.contains(&revoke));
    let bobs_csrf = csrf_of(&members_view.body);
    let refused = post(&server, &bob, &revoke, &[("csrf", &bobs_csrf)]).await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(refused.body.contains("does not grant"), "{}", refused.body);
    // Without this session's CSRF token the owner is refused too.
    let forged = post(&server, &owner, &revoke, &[("csrf", &bobs_csrf)]).await;
    assert_eq!(forged.status, 403, "{}", forged.body);
    assert_eq!(pending(&server).await.len(), 1, "nothing was revoked yet");
    assert!(revoked_events(&server).await.is_empty());

    // The owner revokes it: gone from the page and the API, audited, and the link is dead.
    let done = post(&server, &owner, &revoke, &[("csrf", &owners_csrf)]).await;
    assert_eq!(done.status, 303, "{}", done.body);
    assert_eq!(done.location, "/console/members?done=revoked");
    let after = get(&server, &owner, &done.location).await;
    assert!(
        after.body.contains("The invitation was revoked"),
        "{}",
        after.body
    );
    assert!(!after.body.contains("carol@acme.example"), "{}", after.body);
    assert!(after.body.contains("id=\"no-invitations\""));
    assert!(pending(&server).await.is_empty());
    let events = revoked_events(&server).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["data"]["email"], "carol@acme.example");
    assert_eq!(events[0]["data"]["id"], id.as_str());
    let (status, body) = accept(&server, &carol).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("invalid, used or expired"), "{body}");

    // Revoking it again finds nothing.
    let again = post(&server, &owner, &revoke, &[("csrf", &owners_csrf)]).await;
    assert_eq!(again.status, 404, "{}", again.body);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_invitation_revoked_through_the_api_can_no_longer_be_accepted() {
    install_crypto();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&local_options(&Backend::Sqlite, dir.path()));
    let dave = invite(&server, "dave@acme.example").await;
    let erin = invite(&server, "erin@acme.example").await;
    let list = pending(&server).await;
    let emails: Vec<&str> = list.iter().map(|i| i["email"].as_str().unwrap()).collect();
    assert_eq!(emails, ["dave@acme.example", "erin@acme.example"]);
    let id = list[0]["id"].as_str().unwrap();

    let (status, gone) = api(
        &server,
        Method::DELETE,
        &format!("/api/v1/invitations/{id}"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{gone}");
    assert_eq!(gone["email"], "dave@acme.example");
    let (status, again) = api(
        &server,
        Method::DELETE,
        &format!("/api/v1/invitations/{id}"),
        None,
    )
    .await;
    assert_eq!(status, 404, "{again}");
    assert_eq!(revoked_events(&server).await.len(), 1);

    let (status, body) = accept(&server, &dave).await;
    assert_eq!(status, 400, "{body}");
    // The other invitation is untouched and still works, once; then it is no longer pending.
    let (status, body) = accept(&server, &erin).await;
    assert_eq!(status, 303, "{body}");
    assert!(pending(&server).await.is_empty());
    // An accepted invitation cannot be revoked.
    let (status, body) = api(
        &server,
        Method::DELETE,
        &format!("/api/v1/invitations/{}", list[1]["id"].as_str().unwrap()),
        None,
    )
    .await;
    assert_eq!(status, 404, "{body}");
}

/// Invites `email` as `role` with the owner's token; the link's secret.
async fn invite_as(server: &Server, email: &str, role: &str) -> String {
    let (status, invited) = api(
        server,
        Method::POST,
        "/api/v1/invitations",
        Some(json!({"email": email, "role": role})),
    )
    .await;
    assert_eq!(status, 201, "{invited}");
    let link = invited["invitation_url"].as_str().unwrap();
    link.split_once("/invite#token=").unwrap().1.to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_admin_cannot_revoke_an_invitation_to_a_role_above_their_own() {
    install_crypto();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&local_options(&Backend::Sqlite, dir.path()));
    // Amy joins as an admin (every feature at manage, but not an Owner) and signs in to the
    // console with her password.
    let grants: serde_json::Map<String, Value> = keyward_core::permission::Feature::ALL
        .iter()
        .map(|f| (f.as_str().to_owned(), json!("manage")))
        .collect();
    let (status, role) = api(
        &server,
        Method::POST,
        "/api/v1/roles",
        Some(json!({"name": "admin", "grants": grants})),
    )
    .await;
    assert_eq!(status, 201, "{role}");
    let amy = invite_as(&server, "amy@acme.example", "admin").await;
    let (status, body) = accept(&server, &amy).await;
    assert_eq!(status, 303, "{body}");
    let res = browser(&server)
        .post(format!("{}/login", server.url))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form_body(&[
            ("email", "amy@acme.example"),
            ("password", "a long enough password here"),
            ("next", "/console/members"),
        ]))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 303, "{:?}", res.text().await);
    let session = res.headers()["set-cookie"].to_str().unwrap();
    let session = session.split(';').next().unwrap().to_owned();

    invite_as(&server, "olga@acme.example", "owner").await;
    invite_as(&server, "max@acme.example", "member").await;
    let ids: Vec<(String, String)> = pending(&server)
        .await
        .iter()
        .map(|i| {
            (
                i["email"].as_str().unwrap().to_owned(),
                i["id"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let id_of = |email: &str| ids.iter().find(|(e, _)| e == email).unwrap().1.clone();
    let page = get(&server, &session, "/console/members").await;
    assert_eq!(page.status, 200, "{}", page.body);
    let csrf = csrf_of(&page.body);

    // The Owner's offer of an Owner seat stands against an Admin…
    let owner_offer = format!(
        "/console/members/invitations/{}/revoke",
        id_of("olga@acme.example")
    );
    let refused = post(&server, &session, &owner_offer, &[("csrf", &csrf)]).await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(
        refused.body.contains("role_escalation") || refused.body.contains("grants more"),
        "{}",
        refused.body
    );
    assert_eq!(pending(&server).await.len(), 2, "nothing was revoked");
    // …who may take back a Member's.
    let member_offer = format!(
        "/console/members/invitations/{}/revoke",
        id_of("max@acme.example")
    );
    let done = post(&server, &session, &member_offer, &[("csrf", &csrf)]).await;
    assert_eq!(done.status, 303, "{}", done.body);
    let left: Vec<Value> = pending(&server).await;
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(left[0]["email"], "olga@acme.example");
    assert_eq!(revoked_events(&server).await.len(), 1);
}
