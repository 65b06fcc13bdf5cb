//! Problem details (RFC 9457) for every error the API returns, and the extractors
//! that turn malformed requests into them instead of axum's plain-text rejections.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::{self, HeaderValue};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use flowstore_core::StoreError;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// An error answered as `application/problem+json`.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// A URI naming the kind of problem.
    #[serde(rename = "type")]
    pub kind: String,
    /// A short summary of the kind.
    pub title: String,
    /// The HTTP status.
    pub status: u16,
    /// What went wrong in this request.
    pub detail: String,
    /// The request field at fault, when one is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// Seconds to wait before retrying (429 only).
    #[serde(skip)]
    pub retry_after: Option<u64>,
}

/// The error type of every handler.
pub type ApiResult<T> = Result<T, Problem>;

impl Problem {
    /// A problem with `status`, a slug naming its kind and a detail.
    pub fn new(status: StatusCode, slug: &str, detail: impl Into<String>) -> Self {
        Problem {
            kind: format!("https://flowstore.dev/problems/{slug}"),
            title: status.canonical_reason().unwrap_or("Error").to_string(),
            status: status.as_u16(),
            detail: detail.into(),
            field: None,
            retry_after: None,
        }
    }

    /// The same problem, naming the field at fault.
    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    /// 400: the request cannot be read.
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Problem::new(StatusCode::BAD_REQUEST, "malformed-request", detail)
    }

    /// 422: a field is missing, unknown or invalid.
    pub fn invalid(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid-field", detail).with_field(field)
    }

    /// 401: no or an unknown API key.
    pub fn unauthenticated(detail: impl Into<String>) -> Self {
        Problem::new(StatusCode::UNAUTHORIZED, "unauthenticated", detail)
    }

    /// 403: the key's role does not allow this.
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Problem::new(StatusCode::FORBIDDEN, "forbidden", detail)
    }

    /// 404: nothing at this address.
    pub fn not_found(detail: impl Into<String>) -> Self {
        Problem::new(StatusCode::NOT_FOUND, "not-found", detail)
    }

    /// 429 with the seconds to wait.
    pub fn rate_limited(retry_after: u64) -> Self {
        let mut p = Problem::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate-limited",
            format!("too many requests for this API key; retry in {retry_after} s"),
        );
        p.retry_after = Some(retry_after);
        p
    }

    /// Adds `Retry-After` (seconds).
    pub fn retry_in(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs);
        self
    }

    /// 500 with a generic detail; the real cause goes to the log only.
    pub fn internal(cause: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the server failed to handle the request; the cause was logged",
        )
    }
}

impl From<StoreError> for Problem {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound { .. } => Problem::not_found(e.to_string()),
            StoreError::Conflict { ref field, .. } => {
                let field = field.clone();
                Problem::new(StatusCode::CONFLICT, "conflict", e.to_string()).with_field(field)
            }
            StoreError::Invalid { ref field, .. } => {
                let field = field.clone();
                Problem::invalid(field, e.to_string())
            }
            // Faults of the database or its host: each has its own type, and says what
            // happened without the driver's text (which goes to the log).
            StoreError::Unavailable(ref cause) => {
                tracing::warn!(error = %cause, "database unavailable");
                Problem::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "the database cannot be reached or has no free connection; nothing was written; try again later",
                )
                .retry_in(1)
            }
            StoreError::StorageFull(ref cause) => {
                tracing::error!(error = %cause, "database storage full");
                Problem::new(
                    StatusCode::INSUFFICIENT_STORAGE,
                    "storage-full",
                    "the disk holding the database is full; nothing was written; writes resume once space is freed",
                )
                .retry_in(5)
            }
            StoreError::ReadOnly(ref cause) => {
                tracing::error!(error = %cause, "database read-only");
                Problem::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "read-only",
                    format!(
                        "the database accepts no writes now ({}); nothing was written",
                        read_only_reason(cause)
                    ),
                )
                .retry_in(5)
            }
            StoreError::TimedOut(ref cause) => {
                tracing::warn!(error = %cause, "database timeout");
                Problem::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "timeout",
                    "the database did not finish in time (a statement timeout, or a wait for a lock held by other work); nothing was written; try again",
                )
                .retry_in(1)
            }
            StoreError::Migration(ref cause) => {
                tracing::warn!(error = %cause, "schema not usable");
                Problem::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "schema",
                    "the database schema is not at the version this server needs",
                )
            }
            // Not the client's fault and not a bug: the servers were given different
            // keys. The key's ID is a fingerprint, not the key.
            StoreError::KeyMissing(ref key_id) => {
                tracing::error!(key_id = %key_id, "a value is sealed with a key this server does not hold");
                Problem::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "key-missing",
                    format!(
                        "this value is sealed with encryption key {key_id}, which this server does not hold; \
                         give every server the same key (ENCRYPTION_KEY, or the same key file in \
                         FLOWSTORE_KEY_FILE, with keys a rotation replaced in ENCRYPTION_KEY_PREVIOUS)"
                    ),
                )
            }
            StoreError::Internal(ref cause) => Problem::internal(cause),
        }
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&self).unwrap_or_default();
        let mut res = (status, body).into_response();
        let h = res.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(secs) = self.retry_after {
            h.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if status == StatusCode::UNAUTHORIZED {
            h.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        res
    }
}

/// A JSON body, refused with problem details: malformed JSON is 400 with its line
/// and column, a missing, unknown or mistyped field is 422 naming it, a body over
/// the limit is 413, another content type is 415.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

impl<T, S> FromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Problem> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|ct| {
                let ct = ct
                    .split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase();
                ct == "application/json" || ct.ends_with("+json")
            })
            .unwrap_or(false);
        if !is_json {
            return Err(Problem::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "the body must be JSON (Content-Type: application/json)",
            ));
        }
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(bytes_rejection)?;
        decode(&bytes).map(Json)
    }
}

/// Decodes a JSON body into `T` with the errors [`Json`] describes. A NUL
/// character anywhere in the body (`\u0000` in a string or a key) is refused with
/// 422 naming where it is: no database behind flowstore can keep one everywhere.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> ApiResult<T> {
    // Only a body that spells `\u0000` somewhere is walked; a NUL byte itself is
    // not valid JSON text and fails to parse below.
    if bytes.windows(6).any(|w| w == b"\\u0000") {
        if let Ok(value) = serde_json::from_slice::<serde_json::Value>(bytes) {
            if let Some(path) = flowstore_core::validate::nul_in_json(&value) {
                let field = if path.is_empty() {
                    "body".to_string()
                } else {
                    path
                };
                return Err(Problem::invalid(
                    field,
                    flowstore_core::validate::NUL_MESSAGE,
                ));
            }
        }
    }
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        json_problem(&path, &inner)
    })?;
    Ok(value)
}

fn json_problem(path: &str, e: &serde_json::Error) -> Problem {
    use serde_json::error::Category;
    match e.classify() {
        Category::Syntax | Category::Eof | Category::Io => {
            let msg = e.to_string();
            let what = msg.rfind(" at line ").map_or(msg.as_str(), |i| &msg[..i]);
            Problem::bad_request(format!(
                "malformed JSON at line {} column {}: {what}",
                e.line(),
                e.column()
            ))
        }
        Category::Data => {
            let msg = e.to_string();
            let parent = if path == "." { "" } else { path };
            let named = ["unknown field `", "missing field `"]
                .iter()
                .find_map(|p| msg.strip_prefix(p))
                .and_then(|rest| rest.split('`').next())
                .map(|name| {
                    if parent.is_empty() || parent.ends_with(name) {
                        if parent.is_empty() {
                            name.to_string()
                        } else {
                            parent.to_string()
                        }
                    } else {
                        format!("{parent}.{name}")
                    }
                });
            let field = named.unwrap_or_else(|| parent.to_string());
            let detail = match msg.rfind(" at line ") {
                Some(i) => msg[..i].to_string(),
                None => msg,
            };
            let field = if field.is_empty() {
                "body".into()
            } else {
                field
            };
            Problem::invalid(field, detail)
        }
    }
}

/// The problem of a body that could not be read (413 when over the limit).
pub(crate) fn bytes_rejection(r: BytesRejection) -> Problem {
    let status = r.status();
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too-large",
            "the request body is larger than this server accepts",
        )
    } else {
        Problem::bad_request(format!("the request body could not be read: {r}"))
    }
}

/// Query parameters, refused with problem details (422 naming the parameter).
#[derive(Debug, Clone, Default)]
pub struct Query<T>(pub T);

impl<T, S> FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Problem> {
        let q = parts.uri.query().unwrap_or("");
        no_nul_in_query(q)?;
        let de = serde_urlencoded_compat(q);
        de.map(Query)
    }
}

/// Refuses a query string with a NUL character (`%00`) in a name or value, with
/// 422 naming the parameter.
fn no_nul_in_query(q: &str) -> ApiResult<()> {
    if !q.contains('\0') && !q.to_ascii_lowercase().contains("%00") {
        return Ok(());
    }
    for (name, value) in url::form_urlencoded::parse(q.as_bytes()) {
        flowstore_core::validate::no_nul(&name, &value)?;
        flowstore_core::validate::no_nul("query", &name)?;
    }
    Ok(())
}

fn serde_urlencoded_compat<T: DeserializeOwned>(q: &str) -> ApiResult<T> {
    let uri: axum::http::Uri = format!("/?{q}")
        .parse()
        .map_err(|_| Problem::bad_request("the query string cannot be read"))?;
    axum::extract::Query::<T>::try_from_uri(&uri)
        .map(|axum::extract::Query(v)| v)
        .map_err(query_rejection)
}

fn query_rejection(r: QueryRejection) -> Problem {
    let text = r.body_text();
    let field = ["unknown field `", "missing field `"]
        .iter()
        .find_map(|p| text.split(p).nth(1))
        .and_then(|rest| rest.split('`').next())
        .unwrap_or("query")
        .to_string();
    Problem::invalid(field, text)
}

/// A path parameter; one that does not parse names nothing that exists (404).
#[derive(Debug, Clone)]
pub struct Path<T>(pub T);

impl<T, S> FromRequestParts<S> for Path<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Problem> {
        // A NUL character in a path parameter is refused like one in any other
        // text input (422), not looked up.
        if let Ok(params) = axum::extract::RawPathParams::from_request_parts(parts, state).await {
            for (name, value) in params.iter() {
                flowstore_core::validate::no_nul(name, value)?;
            }
        }
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(v)| Path(v))
            .map_err(|r| Problem::not_found(format!("no such resource: {}", r.body_text())))
    }
}

/// The kind of read-only state a [`StoreError::ReadOnly`] describes, in words safe to
/// show: the backends start their message with one of these.
fn read_only_reason(cause: &str) -> &'static str {
    if cause.starts_with("read-only transaction") {
        "it is a read-only replica, or set read-only"
    } else {
        "its file, directory or disk is read-only"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct T {
        name: String,
    }

    #[test]
    fn json_errors_name_where() {
        let p = decode::<T>(b"{\"name\": ").unwrap_err();
        assert_eq!(p.status, 400);
        assert!(p.detail.contains("line 1"), "{}", p.detail);
        let p = decode::<T>(b"{\"name\": \"x\", \"nope\": 1}").unwrap_err();
        assert_eq!((p.status, p.field.as_deref()), (422, Some("nope")));
        let p = decode::<T>(b"{}").unwrap_err();
        assert_eq!((p.status, p.field.as_deref()), (422, Some("name")));
        let p = decode::<T>(b"{\"name\": 3}").unwrap_err();
        assert_eq!((p.status, p.field.as_deref()), (422, Some("name")));
    }
}
