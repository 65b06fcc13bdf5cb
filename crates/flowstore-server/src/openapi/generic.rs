//! Passes over the whole document after the handlers' annotations are collected:
//! the statuses any request may meet whatever its route (authentication, roles,
//! limits, the database), problem bodies under their real media type, and unique
//! operation IDs. Doing it here, once, keeps every operation honest without each
//! handler repeating the same lines.

use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::Operation;
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::security::SecurityRequirement;
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, RefOr};
use utoipa::Modify;

/// The media type of every error body (RFC 9457).
pub const PROBLEM_MEDIA_TYPE: &str = "application/problem+json";

/// Adds the generic statuses to every operation, moves problem bodies to
/// `application/problem+json`, and prefixes operation IDs with their tag.
pub struct Generic;

/// Statuses any authenticated request may meet.
const AUTHENTICATED: &[(&str, &str)] = &[
    ("401", "no API key, or an unknown, revoked or expired one"),
    (
        "403",
        "the key's role or scopes (or the object's owner) do not allow this",
    ),
    ("429", "too many requests for this API key; see Retry-After"),
    (
        "503",
        "the database is unavailable, or the request took longer than allowed",
    ),
];

/// Statuses of a request that carries a JSON body.
const WITH_BODY: &[(&str, &str)] = &[
    ("400", "the body is not JSON (the detail says where)"),
    ("413", "the body is larger than the server accepts"),
    (
        "415",
        "the body is not sent as `Content-Type: application/json`",
    ),
    (
        "422",
        "a field is missing, unknown or invalid (`field` names it)",
    ),
];

/// Statuses of a request with path or query parameters.
const WITH_PARAMETERS: &[(&str, &str)] = &[(
    "422",
    "a parameter is unknown or invalid (`field` names it)",
)];

fn problem_response(description: &str) -> RefOr<utoipa::openapi::Response> {
    ResponseBuilder::new()
        .description(description)
        .content(
            PROBLEM_MEDIA_TYPE,
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("Problem")))
                .build(),
        )
        .build()
        .into()
}

/// Whether the operation needs no key (`security(())` on its annotation).
fn is_public(op: &Operation) -> bool {
    op.security.as_ref().is_some_and(|reqs| {
        reqs.iter().all(|r| {
            serde_json::to_value(r)
                .map(|v| v.as_object().is_some_and(|o| o.is_empty()))
                .unwrap_or(false)
        })
    })
}

fn add_generic(op: &mut Operation) {
    let mut generic: Vec<(&str, &str)> = Vec::new();
    if !is_public(op) {
        generic.extend(AUTHENTICATED);
    }
    if op.request_body.is_some() {
        generic.extend(WITH_BODY);
    }
    if op.parameters.as_ref().is_some_and(|p| !p.is_empty()) {
        generic.extend(WITH_PARAMETERS);
    }
    for (status, description) in generic {
        op.responses
            .responses
            .entry(status.to_string())
            .or_insert_with(|| problem_response(description));
    }
    // Every answer carries its request ID; a 429 says when to retry.
    for (status, response) in op.responses.responses.iter_mut() {
        if let RefOr::T(r) = response {
            let id = HeaderBuilder::new()
                .schema(ObjectBuilder::new().schema_type(Type::String))
                .description(Some("the request's ID (the client's own, or a new UUID)"))
                .build();
            r.headers.insert("x-request-id".into(), id);
            if status == "429" {
                let wait = HeaderBuilder::new()
                    .schema(ObjectBuilder::new().schema_type(Type::Integer))
                    .description(Some("seconds to wait before retrying"))
                    .build();
                r.headers.insert("retry-after".into(), wait);
            }
        }
    }
    // utoipa leaves a response without a description empty; OpenAPI requires one.
    for (status, response) in op.responses.responses.iter_mut() {
        if let RefOr::T(r) = response {
            if r.description.is_empty() {
                r.description = status
                    .parse::<u16>()
                    .ok()
                    .and_then(|s| axum::http::StatusCode::from_u16(s).ok())
                    .and_then(|s| s.canonical_reason())
                    .unwrap_or("answer")
                    .to_string();
            }
        }
    }
    // Handlers annotate errors with `body = Problem`, which utoipa files under
    // `application/json`; the server answers them as `application/problem+json`.
    for response in op.responses.responses.values_mut() {
        if let RefOr::T(r) = response {
            if let Some(content) = r.content.shift_remove("application/json") {
                let is_problem = matches!(&content.schema,
                    Some(RefOr::Ref(re)) if re.ref_location.ends_with("/Problem"));
                let key = if is_problem {
                    PROBLEM_MEDIA_TYPE
                } else {
                    "application/json"
                };
                r.content.insert(key.to_string(), content);
            }
        }
    }
    // Handlers in different modules share names (`create`, `get`): prefix the
    // operation IDs with the tag so that each is unique.
    let tag = op.tags.as_ref().and_then(|t| t.first()).cloned();
    if let (Some(tag), Some(id)) = (tag, op.operation_id.as_mut()) {
        *id = format!("{tag}_{id}");
    }
}

/// Names, on every operation that needs a key, the scope that key needs (by
/// [`crate::auth::needed_scope`], the rule the server enforces). Admin operations
/// need `admin` as well, which their 403 covers.
fn add_scope(op: &mut Operation, method: &axum::http::Method, path: &str) {
    if is_public(op) {
        return;
    }
    let scope = crate::auth::needed_scope(method, path);
    op.security = Some(vec![SecurityRequirement::new("bearer", [scope.as_str()])]);
}

impl Modify for Generic {
    fn modify(&self, api: &mut OpenApi) {
        use axum::http::Method;
        for (path, item) in api.paths.paths.iter_mut() {
            for (method, op) in [
                (Method::GET, &mut item.get),
                (Method::POST, &mut item.post),
                (Method::PATCH, &mut item.patch),
                (Method::DELETE, &mut item.delete),
                (Method::PUT, &mut item.put),
            ] {
                if let Some(op) = op {
                    add_generic(op);
                    add_scope(op, &method, path);
                }
            }
        }
    }
}
