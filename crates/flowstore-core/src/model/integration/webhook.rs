//! Webhooks: where lifecycle events are POSTed, which events, and the secret that
//! signs them. Everything a client sends is checked here, before SQL, so both
//! backends refuse the same input with the same field named.

use rand::RngCore;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::Destinations;
use crate::crypto::{Keyring, Sealed, SecretString};
use crate::ids::{UserId, WebhookId, WorkflowId};
use crate::model::nullable;
use crate::time::Timestamp;
use crate::validate;
use crate::{StoreError, StoreResult};

/// Longest webhook URL accepted, in characters (the column's limit).
pub const MAX_WEBHOOK_URL_CHARS: usize = 2000;
const MAX_EVENT_PATTERNS: usize = 100;
const MAX_HEADERS: usize = 20;

/// A webhook as stored, without its secret.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, sqlx::FromRow)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Webhook {
    /// Its ID.
    pub id: WebhookId,
    /// The user it belongs to; `None` for one only admins manage.
    pub owner_id: Option<UserId>,
    /// Only events of this workflow's runs, when set.
    pub workflow_id: Option<WorkflowId>,
    /// Its name.
    pub name: String,
    /// Where deliveries are POSTed (http or https).
    pub url: String,
    /// The event types it receives: exact (`run.completed`), by area (`task.*`) or
    /// everything (`*`).
    #[sqlx(json)]
    pub events: Vec<String>,
    /// Extra headers sent with every delivery (a JSON object of strings).
    pub headers: Value,
    /// Whether it receives deliveries.
    pub active: bool,
    /// Failed attempts since the last success.
    pub failure_count: i32,
    /// When a delivery was last attempted.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub last_triggered_at: Option<Timestamp>,
    /// The ID of the key that sealed its secret.
    pub encryption_key_id: String,
    /// When it was created.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: Timestamp,
    /// When it last changed.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub updated_at: Timestamp,
}

impl Webhook {
    /// Whether this webhook receives an event of `event_type` about `workflow_id`.
    pub fn matches(&self, event_type: &str, workflow_id: Option<&str>) -> bool {
        if let Some(w) = self.workflow_id {
            if workflow_id != Some(w.to_string().as_str()) {
                return false;
            }
        }
        self.events.iter().any(|p| pattern_matches(p, event_type))
    }

    /// Its extra headers as name → value (they were checked to be strings).
    pub fn header_map(&self) -> std::collections::BTreeMap<String, String> {
        self.headers
            .as_object()
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
                    .collect()
            })
            .unwrap_or_default()
    }
}

fn pattern_matches(pattern: &str, event_type: &str) -> bool {
    if pattern == "*" || pattern == event_type {
        return true;
    }
    match pattern.strip_suffix('*') {
        Some(prefix) => prefix.ends_with('.') && event_type.starts_with(prefix),
        None => false,
    }
}

/// A webhook just created, with its secret: the only time the secret is shown.
#[derive(Clone, Debug)]
pub struct CreatedWebhook {
    /// The webhook.
    pub webhook: Webhook,
    /// Its signing secret.
    pub secret: SecretString,
}

/// What a caller gives to register a webhook.
#[derive(Clone, Debug, Default, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewWebhook {
    /// Its name: required, at most 255 characters.
    pub name: String,
    /// Where to POST: an http:// or https:// URL without user name or password.
    pub url: String,
    /// The event types to receive (at least one; see [`Webhook::events`]).
    pub events: Vec<String>,
    /// The signing secret (16 to 256 visible characters); a random one when absent.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub secret: Option<SecretString>,
    /// Extra headers (a JSON object of strings; not `Content-Type`, `Host` or
    /// `X-Flowstore-*`).
    pub headers: Option<Value>,
    /// Whether it receives deliveries; `true` when absent.
    pub active: Option<bool>,
    /// Only events of this workflow's runs.
    pub workflow_id: Option<WorkflowId>,
    /// The user it belongs to. Not read from request bodies: the server sets it.
    #[serde(skip)]
    pub owner_id: Option<UserId>,
}

patch_struct! {
    /// What a caller may change on a webhook.
    #[derive(Clone, Debug, Default, Deserialize)]
    pub struct WebhookPatch {
        /// A new name.
        pub name: Option<String>,
        /// A new URL.
        pub url: Option<String>,
        /// New event types.
        pub events: Option<Vec<String>>,
        /// New extra headers.
        pub headers: Option<Value>,
        /// Turns deliveries on or off.
        pub active: Option<bool>,
        /// A new signing secret.
        #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
        pub secret: Option<SecretString>,
        /// A new workflow filter; `null` removes it.
        #[serde(deserialize_with = "nullable")]
        pub workflow_id: Option<Option<WorkflowId>>,
    }
}

/// Which webhooks a list returns; every field set narrows it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WebhookFilter {
    /// Only this user's.
    pub owner_id: Option<UserId>,
    /// Only those filtered on this workflow.
    pub workflow_id: Option<WorkflowId>,
    /// Only active (or inactive) ones.
    pub active: Option<bool>,
}

/// A webhook checked, with its sealed secret, ready to insert.
#[derive(Clone, Debug)]
pub struct WebhookWrite {
    /// The row as it will be stored.
    pub webhook: Webhook,
    /// The sealed secret.
    pub sealed: Sealed,
    /// The secret, to show once.
    pub secret: SecretString,
}

/// Checks a webhook URL: http or https, with a host, no user name or password (they
/// would be stored unsealed and sent in clear), no fragment, no spaces or control
/// characters, at most [`MAX_WEBHOOK_URL_CHARS`]. Returns it normalised (lower-case
/// scheme and host), so that one endpoint written two ways is one URL.
pub fn webhook_url(field: &str, value: &str) -> StoreResult<String> {
    let text = validate::required_text(field, value, MAX_WEBHOOK_URL_CHARS)?;
    if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(StoreError::invalid(
            field,
            "must not contain spaces or control characters",
        ));
    }
    // Written as scheme://host: the parser alone would read "http:///x" as host x.
    validate::http_url(field, &text, MAX_WEBHOOK_URL_CHARS)?;
    let parsed = url::Url::parse(&text)
        .map_err(|e| StoreError::invalid(field, format!("is not a URL: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(StoreError::invalid(
            field,
            "must be an http:// or https:// URL",
        ));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(StoreError::invalid(field, "must name a host"));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(StoreError::invalid(
            field,
            "must not carry a user name or password; use headers or the signature",
        ));
    }
    if parsed.fragment().is_some() {
        return Err(StoreError::invalid(field, "must not have a #fragment"));
    }
    let normal = parsed.to_string();
    validate::bounded(field, &normal, MAX_WEBHOOK_URL_CHARS)?;
    Ok(normal)
}

/// Checks a list of event patterns: at least one, at most 100, no duplicates, each
/// `*`, `area.*` or `area.name` of lower-case letters, digits and `_`.
pub fn event_patterns(field: &str, events: &[String]) -> StoreResult<Vec<String>> {
    if events.is_empty() {
        return Err(StoreError::invalid(
            field,
            "must name at least one event type (\"*\" for all)",
        ));
    }
    if events.len() > MAX_EVENT_PATTERNS {
        return Err(StoreError::invalid(
            field,
            format!("at most {MAX_EVENT_PATTERNS} event types are allowed"),
        ));
    }
    let mut out: Vec<String> = Vec::with_capacity(events.len());
    for e in events {
        let e = e.trim();
        let word = |w: &str| {
            !w.is_empty()
                && w.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        };
        let parts: Vec<&str> = e.split('.').collect();
        let ok = e == "*"
            || (e.len() <= 100
                && parts.len() >= 2
                && parts[..parts.len() - 1].iter().all(|p| word(p))
                && (word(parts[parts.len() - 1]) || parts[parts.len() - 1] == "*"));
        if !ok {
            return Err(StoreError::invalid(
                field,
                format!(
                    "{e:?} is not an event type such as \"run.completed\", \"task.*\" or \"*\""
                ),
            ));
        }
        if out.iter().any(|o| o == e) {
            return Err(StoreError::invalid(field, format!("{e:?} is listed twice")));
        }
        out.push(e.to_string());
    }
    Ok(out)
}

/// Checks extra headers: a JSON object of at most 20 string values; names are HTTP
/// tokens that flowstore does not set itself; values have no line breaks.
pub fn webhook_headers(field: &str, headers: Option<Value>) -> StoreResult<Value> {
    let headers = headers.unwrap_or_else(|| Value::Object(Map::new()));
    let Value::Object(map) = &headers else {
        return Err(StoreError::invalid(
            field,
            "must be a JSON object of header names to strings",
        ));
    };
    if map.len() > MAX_HEADERS {
        return Err(StoreError::invalid(
            field,
            format!("at most {MAX_HEADERS} headers are allowed"),
        ));
    }
    for (name, value) in map {
        let lower = name.to_ascii_lowercase();
        let token = !name.is_empty()
            && name.len() <= 100
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c));
        if !token {
            return Err(StoreError::invalid(
                field,
                format!("{name:?} is not a header name"),
            ));
        }
        if lower.starts_with("x-flowstore-")
            || matches!(
                lower.as_str(),
                "content-type" | "content-length" | "host" | "transfer-encoding" | "connection"
            )
        {
            return Err(StoreError::invalid(
                field,
                format!("{name} is set by flowstore and may not be given"),
            ));
        }
        match value {
            Value::String(v) if v.len() <= 1000 && !v.chars().any(|c| c.is_control()) => {}
            _ => {
                return Err(StoreError::invalid(
                    field,
                    format!("the value of {name} must be a string of at most 1000 characters without line breaks"),
                ))
            }
        }
    }
    Ok(headers)
}

/// Checks a given signing secret, or makes a random one (`whsec_` and 64 hex digits).
pub fn webhook_secret(field: &str, secret: Option<SecretString>) -> StoreResult<SecretString> {
    match secret {
        Some(s) => {
            let len = s.expose().chars().count();
            if !(16..=256).contains(&len) {
                return Err(StoreError::invalid(
                    field,
                    "must be 16 to 256 characters long",
                ));
            }
            if s.expose()
                .chars()
                .any(|c| c.is_whitespace() || c.is_control())
            {
                return Err(StoreError::invalid(
                    field,
                    "must not contain spaces or control characters",
                ));
            }
            Ok(s)
        }
        None => {
            let mut bytes = [0u8; 32];
            rand::thread_rng().fill_bytes(&mut bytes);
            Ok(SecretString::new(format!("whsec_{}", hex::encode(bytes))))
        }
    }
}

/// Checks `value` as [`webhook_url`] does, then that `destinations` lets
/// deliveries go to its host; nothing is looked up, so a server may call it
/// before its transaction.
pub fn webhook_destination(
    field: &str,
    value: &str,
    destinations: &Destinations,
) -> StoreResult<()> {
    let normal = webhook_url(field, value)?;
    let parsed = url::Url::parse(&normal)
        .map_err(|e| StoreError::invalid(field, format!("is not a URL: {e}")))?;
    destinations.check_url(field, &parsed)
}

impl NewWebhook {
    /// Checks that its URL is a destination `destinations` allows (see
    /// [`webhook_destination`]). The store checks the URL's form only, since it
    /// does not know the server's allow-list; the HTTP server calls this first.
    pub fn check_destination(&self, destinations: &Destinations) -> StoreResult<()> {
        webhook_destination("url", &self.url, destinations)
    }

    /// Checks every field and seals the secret with `ring`.
    pub fn prepare(self, ring: &Keyring, now: Timestamp) -> StoreResult<WebhookWrite> {
        let name = validate::required_text("name", &self.name, 255)?;
        let url = webhook_url("url", &self.url)?;
        let events = event_patterns("events", &self.events)?;
        let headers = webhook_headers("headers", self.headers)?;
        let secret = webhook_secret("secret", self.secret)?;
        let sealed = ring.seal(secret.expose().as_bytes())?;
        Ok(WebhookWrite {
            webhook: Webhook {
                id: WebhookId::new(),
                owner_id: self.owner_id,
                workflow_id: self.workflow_id,
                name,
                url,
                events,
                headers,
                active: self.active.unwrap_or(true),
                failure_count: 0,
                last_triggered_at: None,
                encryption_key_id: sealed.key_id.clone(),
                created_at: now,
                updated_at: now,
            },
            sealed,
            secret,
        })
    }
}

impl WebhookPatch {
    /// Checks that a new URL, when given, is a destination `destinations` allows
    /// (see [`NewWebhook::check_destination`]).
    pub fn check_destination(&self, destinations: &Destinations) -> StoreResult<()> {
        match &self.url {
            Some(url) => webhook_destination("url", url, destinations),
            None => Ok(()),
        }
    }

    /// Applies the patch to `w`; returns the new secret sealed with `ring` when the
    /// patch replaces it.
    pub fn apply<'k>(
        self,
        w: &mut Webhook,
        ring: impl FnOnce() -> StoreResult<&'k Keyring>,
        now: Timestamp,
    ) -> StoreResult<Option<Sealed>> {
        if let Some(name) = self.name {
            w.name = validate::required_text("name", &name, 255)?;
        }
        if let Some(url) = self.url {
            w.url = webhook_url("url", &url)?;
        }
        if let Some(events) = self.events {
            w.events = event_patterns("events", &events)?;
        }
        if let Some(headers) = self.headers {
            w.headers = webhook_headers("headers", Some(headers))?;
        }
        if let Some(active) = self.active {
            w.active = active;
            if active {
                // Turned back on: it starts with a clean record.
                w.failure_count = 0;
            }
        }
        if let Some(wf) = self.workflow_id {
            w.workflow_id = wf;
        }
        let sealed = match self.secret {
            Some(s) => {
                let secret = webhook_secret("secret", Some(s))?;
                let sealed = ring()?.seal(secret.expose().as_bytes())?;
                w.encryption_key_id = sealed.key_id.clone();
                Some(sealed)
            }
            None => None,
        };
        w.updated_at = now;
        Ok(sealed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked_and_normalised() {
        for bad in [
            "ftp://x.example",
            "javascript:alert(1)",
            "https://",
            "http:///path",
            "https://user:pw@example.com/",
            "https://example.com/a b",
            "https://example.com/\r\nX-Evil: 1",
            "https://example.com/#frag",
            "file:///etc/passwd",
            "",
        ] {
            let e = webhook_url("url", bad).unwrap_err();
            assert_eq!(e.field(), Some("url"), "{bad}");
        }
        assert_eq!(
            webhook_url("url", "HTTPS://Example.COM/hook?a=1").unwrap(),
            "https://example.com/hook?a=1"
        );
        let long = format!("https://example.com/{}", "a".repeat(2000));
        assert!(webhook_url("url", &long).is_err());
    }

    #[test]
    fn destinations_are_checked_on_new_urls_only() {
        let d = Destinations::default();
        let new = |url: &str| NewWebhook {
            url: url.into(),
            ..NewWebhook::default()
        };
        let e = new("http://127.0.0.1:9/x")
            .check_destination(&d)
            .unwrap_err();
        assert_eq!(e.field(), Some("url"));
        // A malformed URL is refused as such, naming the same field.
        let e = new("ftp://x.example").check_destination(&d).unwrap_err();
        assert_eq!(e.field(), Some("url"));
        assert!(new("https://hooks.example.com/x")
            .check_destination(&d)
            .is_ok());
        let allowed = Destinations::new(["127.0.0.1/32"]).unwrap();
        assert!(new("http://127.0.0.1:9/x")
            .check_destination(&allowed)
            .is_ok());
        let patch = WebhookPatch {
            url: Some("http://[::1]/".into()),
            ..WebhookPatch::default()
        };
        assert_eq!(
            patch.check_destination(&d).unwrap_err().field(),
            Some("url")
        );
        assert!(WebhookPatch::default().check_destination(&d).is_ok());
    }

    #[test]
    fn event_patterns_match() {
        assert!(event_patterns("events", &[]).is_err());
        for bad in [
            "run",
            "Run.completed",
            "run.",
            ".x",
            "run.*.x",
            "a b.c",
            "**",
        ] {
            assert!(event_patterns("events", &[bad.into()]).is_err(), "{bad}");
        }
        assert!(event_patterns("events", &["a.b".into(), "a.b".into()]).is_err());
        assert!(pattern_matches("*", "run.completed"));
        assert!(pattern_matches("task.*", "task.failed"));
        assert!(!pattern_matches("task.*", "taskx.failed"));
        assert!(!pattern_matches("run.completed", "run.failed"));
    }

    #[test]
    fn headers_are_checked() {
        assert!(webhook_headers("headers", Some(serde_json::json!([]))).is_err());
        assert!(webhook_headers("headers", Some(serde_json::json!({"Host": "x"}))).is_err());
        assert!(webhook_headers(
            "headers",
            Some(serde_json::json!({"X-Flowstore-Signature": "x"}))
        )
        .is_err());
        assert!(webhook_headers("headers", Some(serde_json::json!({"X-A": "a\r\nb"}))).is_err());
        assert!(webhook_headers("headers", Some(serde_json::json!({"X-A": 1}))).is_err());
        assert!(webhook_headers("headers", Some(serde_json::json!({"X-Team": "ops"}))).is_ok());
    }

    #[test]
    fn secrets_are_checked_or_made() {
        assert!(webhook_secret("secret", Some(SecretString::new("short"))).is_err());
        let made = webhook_secret("secret", None).unwrap();
        assert!(made.expose().starts_with("whsec_") && made.expose().len() == 70);
    }
}
