//! The dashboard served by the API server, on SQLite and PostgreSQL: its page and
//! assets (with their content security policy), and its sign-in, whose session
//! travels in an HttpOnly cookie and whose changes need the session's CSRF token.

use std::sync::Arc;

use axum::body::Body;
use axum::http::Request;
use flowstore_core::Backend;
use flowstore_testkit::fixtures::PASSWORD;
use flowstore_testkit::{both_backends, Answer, TestApp};
use serde_json::{json, Value};

both_backends!(
    the_page_and_its_assets_are_served,
    a_cookie_session_reads_and_changes_only_with_its_csrf_token,
);

async fn the_page_and_its_assets_are_served(b: Arc<dyn Backend>) {
    let c = TestApp::new(b).await;
    for (path, kind, needle) in [
        ("/", "text/html", "/ui/app.js"),
        ("/ui/app.js", "text/javascript", "x-csrf-token"),
        ("/ui/app.css", "text/css", "prefers-color-scheme"),
    ] {
        let a = c.raw("GET", path, None, None).await;
        assert_eq!(a.code(), 200, "{path}");
        assert!(
            a.content_type.starts_with(kind),
            "{path}: {}",
            a.content_type
        );
        let policy = a.header("content-security-policy").unwrap_or_default();
        assert!(
            policy.contains("script-src 'self'") && policy.contains("frame-ancestors 'none'"),
            "{policy}"
        );
        assert!(a.body.as_str().unwrap().contains(needle), "{path}");
    }
}

/// A request with the given cookies and headers.
async fn send(
    c: &TestApp,
    method: &str,
    path: &str,
    cookies: &str,
    csrf: Option<&str>,
    body: Option<Value>,
) -> Answer {
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header("cookie", cookies);
    if let Some(t) = csrf {
        req = req.header("x-csrf-token", t);
    }
    let body = match body {
        Some(b) => {
            req = req.header("content-type", "application/json");
            Body::from(b.to_string())
        }
        None => Body::empty(),
    };
    c.send_request(req.body(body).unwrap()).await
}

/// The `name=value` parts of the answer's Set-Cookie headers, and the headers whole.
fn cookies(a: &Answer) -> (String, Vec<String>) {
    let all: Vec<String> = a
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    let pairs = all
        .iter()
        .map(|c| c.split(';').next().unwrap().to_string())
        .collect::<Vec<_>>()
        .join("; ");
    (pairs, all)
}

async fn a_cookie_session_reads_and_changes_only_with_its_csrf_token(b: Arc<dyn Backend>) {
    let c = TestApp::new(b).await;
    c.password_user("ada@x.io", "user").await;

    let wrong = send(
        &c,
        "POST",
        "/ui/session",
        "",
        None,
        Some(json!({"email": "ada@x.io", "password": "nope"})),
    )
    .await;
    assert_eq!(wrong.code(), 401);
    assert!(wrong.headers.get("set-cookie").is_none());

    let signed = send(
        &c,
        "POST",
        "/ui/session",
        "",
        None,
        Some(json!({"email": "ada@x.io", "password": PASSWORD})),
    )
    .await;
    assert_eq!(signed.code(), 201, "{}", signed.body);
    assert!(
        signed.body.get("token").is_none(),
        "the token is the cookie's alone"
    );
    let csrf = signed.body["csrf_token"].as_str().unwrap().to_string();
    let (jar, set) = cookies(&signed);
    let session = set
        .iter()
        .find(|c| c.starts_with("flowstore_session="))
        .expect("session cookie");
    assert!(
        session.contains("HttpOnly") && session.contains("SameSite=Strict"),
        "{session}"
    );
    assert!(!session.contains("Secure"), "plain HTTP: {session}");
    let readable = set
        .iter()
        .find(|c| c.starts_with("flowstore_csrf="))
        .expect("csrf cookie");
    assert!(
        !readable.contains("HttpOnly") && readable.contains(&csrf),
        "{readable}"
    );

    // Reads need no token.
    let who = send(&c, "GET", "/api/v1/sessions/current", &jar, None, None).await;
    assert_eq!(who.code(), 200, "{}", who.body);
    assert_eq!(who.body["credential"], "session");
    assert_eq!(who.body["user"]["email"], "ada@x.io");
    // Changes need the session's token, exactly.
    let new = || Some(json!({"name": "from the dashboard", "definition": {"steps": []}}));
    for token in [None, Some("0".repeat(64).as_str()), Some(&csrf[..63])] {
        let refused = send(&c, "POST", "/api/v1/workflows", &jar, token, new()).await;
        assert_eq!(refused.code(), 403, "{token:?}: {}", refused.body);
        assert!(
            refused.body["type"].as_str().unwrap().ends_with("/csrf"),
            "{}",
            refused.body
        );
    }
    let made = send(&c, "POST", "/api/v1/workflows", &jar, Some(&csrf), new()).await;
    assert_eq!(made.code(), 201, "{}", made.body);
    // A bearer header wins over the cookie and needs no CSRF token.
    let key = c.user.clone();
    let mut req = Request::builder()
        .method("POST")
        .uri("/api/v1/workflows")
        .header("cookie", &jar)
        .header("authorization", format!("Bearer {key}"))
        .header("content-type", "application/json");
    req = req.header("x-request-id", "bearer-wins");
    let by_key = c
        .send_request(
            req.body(Body::from(
                json!({"name": "by key", "definition": {"steps": []}}).to_string(),
            ))
            .unwrap(),
        )
        .await;
    assert_eq!(by_key.code(), 201, "{}", by_key.body);
    // An API key put in the cookie is not taken.
    let keyed = send(
        &c,
        "GET",
        "/api/v1/sessions/current",
        &format!("flowstore_session={key}"),
        None,
        None,
    )
    .await;
    assert_eq!(keyed.code(), 401);

    // Signing out ends the session and clears the cookies.
    let out = send(
        &c,
        "DELETE",
        "/api/v1/sessions/current",
        &jar,
        Some(&csrf),
        None,
    )
    .await;
    assert_eq!(out.code(), 204, "{}", out.body);
    let (_, cleared) = cookies(&out);
    assert!(
        cleared
            .iter()
            .any(|c| c.starts_with("flowstore_session=;") && c.contains("Max-Age=0")),
        "{cleared:?}"
    );
    let after = send(&c, "GET", "/api/v1/sessions/current", &jar, None, None).await;
    assert_eq!(after.code(), 401);
}
