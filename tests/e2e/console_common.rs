//! What the console's page tests share: a signed-in browser's GET and form POST (the answer's
//! status, `Location` and body, redirects not followed) and the form's CSRF field.

use reqwest::Method;
use serde_json::json;

use crate::common::{BOOTSTRAP_TOKEN, Server, call};
use crate::people::browser;
use crate::people_local::form_body;

pub struct Answer {
    pub status: u16,
    pub location: String,
    pub body: String,
}

pub async fn get(server: &Server, cookie: &str, path: &str) -> Answer {
    let res = browser(server)
        .get(format!("{}{path}", server.url))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    answer(res).await
}

/// Posts `fields` as they are (a test that wants the CSRF token adds it).
pub async fn post(server: &Server, cookie: &str, path: &str, fields: &[(&str, &str)]) -> Answer {
    let res = browser(server)
        .post(format!("{}{path}", server.url))
        .header("cookie", cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form_body(fields))
        .send()
        .await
        .unwrap();
    answer(res).await
}

async fn answer(res: reqwest::Response) -> Answer {
    Answer {
        status: res.status().as_u16(),
        location: res
            .headers()
            .get("location")
            .map_or(String::new(), |l| l.to_str().unwrap().to_owned()),
        body: res.text().await.unwrap(),
    }
}

/// The value of the page's first `csrf` field.
pub fn csrf_of(html: &str) -> String {
    html.split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_else(|| panic!("no csrf field in {html}"))
        .to_owned()
}

/// Invites bob as a Member; he joins with a password. Returns his console session cookie.
pub async fn member_session(server: &Server) -> String {
    let (status, invited) = call(
        &server.client(),
        Method::POST,
        &format!("{}/api/v1/invitations", server.url),
        Some(BOOTSTRAP_TOKEN),
        Some(json!({"email": "bob@acme.example", "role": "member"})),
    )
    .await;
    assert_eq!(status, 201, "{invited}");
    let link = invited["invitation_url"].as_str().unwrap();
    let token = link.split_once("/invite#token=").unwrap().1;
    let res = browser(server)
        .post(format!("{}/invite", server.url))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form_body(&[
            ("token", token),
            ("password", "bob's long enough password"),
        ]))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 303);
    let cookie = res.headers()["set-cookie"].to_str().unwrap();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"));
    cookie.split(';').next().unwrap().to_owned()
}
