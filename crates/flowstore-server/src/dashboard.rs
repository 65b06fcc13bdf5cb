//! The dashboard: a page and its script and style, embedded in the binary and served
//! at `/` by the same server (no separate build, no Node toolchain), and the
//! dashboard's sign-in, which carries the session in cookies rather than in the
//! answer.
//!
//! The session token travels in an HttpOnly, SameSite=Strict cookie the page's
//! scripts cannot read; a change made with it must also send the session's CSRF
//! token ([`crate::auth::csrf_token`]), which the sign-in answers and a second,
//! readable cookie keeps across reloads. Everything else the page shows comes from
//! the public API (`/api/v1/...`), under the same access rules as any client. The
//! page allows scripts, styles and connections from its own origin only (CSP).

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json as AxumJson, Router};
use flowstore_core::model::identity::User;
use flowstore_core::model::identity_access::Session;
use serde::Serialize;

use crate::auth::{csrf_token, Origin, CSRF_COOKIE, SESSION_COOKIE};
use crate::error::{ApiResult, Json};
use crate::routes::sessions::{open_session, LoginBody};
use crate::state::AppState;

const INDEX: &str = include_str!("../ui/index.html");
const SCRIPT: &str = include_str!("../ui/app.js");
const STYLE: &str = include_str!("../ui/app.css");

/// What the page may load: its own script, style and API; no framing.
const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    img-src 'self' data:; connect-src 'self'; form-action 'self'; base-uri 'none'; \
    frame-ancestors 'none'";

/// The dashboard's routes: the page, its assets and its sign-in.
pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/",
            get(|| async { asset("text/html; charset=utf-8", INDEX) }),
        )
        .route(
            "/ui/app.js",
            get(|| async { asset("text/javascript; charset=utf-8", SCRIPT) }),
        )
        .route(
            "/ui/app.css",
            get(|| async { asset("text/css; charset=utf-8", STYLE) }),
        )
        .route("/ui/session", post(sign_in))
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut r = body.into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(POLICY),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    r
}

/// The answer of a dashboard sign-in: everything `POST /api/v1/sessions` answers
/// but the token, which only the cookie carries.
#[derive(Serialize)]
struct DashboardSession {
    session: Session,
    user: User,
    csrf_token: String,
}

/// Signs in as `POST /api/v1/sessions` does (same throttles, same audit entries) and
/// sets the session and CSRF cookies.
async fn sign_in(
    State(state): State<AppState>,
    origin: Origin,
    headers: HeaderMap,
    Json(body): Json<LoginBody>,
) -> ApiResult<Response> {
    let signed = open_session(&state, &origin, &body).await?;
    let csrf = csrf_token(&signed.token);
    let max_age = state.config().session_ttl.as_secs();
    // `Secure` whenever the browser reached us over TLS (directly or through a proxy
    // that says so); a plain-HTTP localhost keeps working.
    let secure = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|p| p.eq_ignore_ascii_case("https"));
    let flags = format!(
        "Path=/; Max-Age={max_age}; SameSite=Strict{}",
        if secure { "; Secure" } else { "" }
    );
    let mut answer = (
        StatusCode::CREATED,
        AxumJson(DashboardSession {
            session: signed.session,
            user: signed.user,
            csrf_token: csrf.clone(),
        }),
    )
        .into_response();
    let h = answer.headers_mut();
    for cookie in [
        format!("{SESSION_COOKIE}={}; HttpOnly; {flags}", signed.token),
        format!("{CSRF_COOKIE}={csrf}; {flags}"),
    ] {
        if let Ok(v) = HeaderValue::from_str(&cookie) {
            h.append(header::SET_COOKIE, v);
        }
    }
    Ok(answer)
}

/// Makes the browser forget the dashboard's cookies (on sign-out).
pub(crate) fn clear_cookies(h: &mut HeaderMap) {
    for name in [SESSION_COOKIE, CSRF_COOKIE] {
        let v = format!("{name}=; Path=/; Max-Age=0; SameSite=Strict");
        if let Ok(v) = HeaderValue::from_str(&v) {
            h.append(header::SET_COOKIE, v);
        }
    }
}
