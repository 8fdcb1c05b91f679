//! What the console's page tests share: a signed-in browser's GET and form POST (the answer's
//! status, `Location` and body, redirects not followed) and the form's CSRF field.

use crate::common::Server;
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
