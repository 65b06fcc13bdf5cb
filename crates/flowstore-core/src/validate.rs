//! Input checks shared by every backend, so that bad input is refused with the same
//! typed error before any SQL runs, whichever database is behind the store.

use serde_json::Value;

use crate::{StoreError, StoreResult};

/// Longest free-text field accepted (descriptions, messages): 1 MiB.
pub const MAX_TEXT_BYTES: usize = 1 << 20;
/// Largest JSON document accepted in one field: 1 MiB when serialised.
pub const MAX_JSON_BYTES: usize = 1 << 20;

/// A required, trimmed, non-empty string of at most `max` characters.
pub fn required_text(field: &str, value: &str, max: usize) -> StoreResult<String> {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Err(StoreError::invalid(field, "must not be empty"));
    }
    bounded(field, trimmed, max)?;
    Ok(trimmed.to_string())
}

/// An optional string: `None` and blank both become `None`; otherwise as
/// [`required_text`].
pub fn optional_text(field: &str, value: Option<&str>, max: usize) -> StoreResult<Option<String>> {
    match value.map(str::trim) {
        None | Some("") => Ok(None),
        Some(v) => bounded(field, v, max).map(|_| Some(v.to_string())),
    }
}

/// Optional free text (a description, a message): as [`optional_text`], at most
/// [`MAX_TEXT_BYTES`] characters.
pub fn free_text(field: &str, value: Option<&str>) -> StoreResult<Option<String>> {
    optional_text(field, value, MAX_TEXT_BYTES)
}

/// Refuses strings longer than `max` characters or containing NUL, which PostgreSQL
/// cannot store and SQLite would truncate in some tools.
pub fn bounded(field: &str, value: &str, max: usize) -> StoreResult<()> {
    no_nul(field, value)?;
    let chars = value.chars().count();
    if chars > max {
        return Err(StoreError::invalid(
            field,
            format!("is {chars} characters long; at most {max} are allowed"),
        ));
    }
    Ok(())
}

/// A JSON value that must be an object, within the size limit.
pub fn json_object(field: &str, value: &Value) -> StoreResult<()> {
    if !value.is_object() {
        return Err(StoreError::invalid(field, "must be a JSON object"));
    }
    json_size(field, value)
}

/// A JSON object within the size limit, handed back (see [`json_object`]).
pub fn object(field: &str, value: Value) -> StoreResult<Value> {
    json_object(field, &value).map(|_| value)
}

/// An optional JSON object: `{}` when absent, otherwise as [`object`].
pub fn object_or_empty(field: &str, value: Option<Value>) -> StoreResult<Value> {
    match value {
        None => Ok(Value::Object(Default::default())),
        Some(v) => object(field, v),
    }
}

/// An optional JSON object: `None` stays `None`; otherwise as [`object`].
pub fn optional_object(field: &str, value: Option<Value>) -> StoreResult<Option<Value>> {
    value.map(|v| object(field, v)).transpose()
}

/// An optional JSON value of any shape: `None` stays `None`; otherwise as
/// [`json_size`].
pub fn optional_json(field: &str, value: Option<Value>) -> StoreResult<Option<Value>> {
    if let Some(v) = &value {
        json_size(field, v)?;
    }
    Ok(value)
}

/// A JSON value of any shape, within the size limit and free of NUL characters
/// (PostgreSQL's JSONB refuses `\u0000`).
pub fn json_size(field: &str, value: &Value) -> StoreResult<()> {
    let text = value.to_string();
    if text.len() > MAX_JSON_BYTES {
        return Err(StoreError::invalid(
            field,
            format!(
                "is {} bytes of JSON; at most {MAX_JSON_BYTES} are allowed",
                text.len()
            ),
        ));
    }
    if text.contains("\\u0000") {
        return Err(StoreError::invalid(field, NUL_MESSAGE));
    }
    Ok(())
}

/// The message every NUL refusal carries.
pub const NUL_MESSAGE: &str = "must not contain NUL characters";

/// Where the first NUL character of a JSON value is (in a string or an object key),
/// as a path such as `definition.steps[2].key`; `None` when there is none.
pub fn nul_in_json(value: &Value) -> Option<String> {
    fn walk(v: &Value, path: &mut String) -> bool {
        match v {
            Value::String(s) => s.contains('\0'),
            Value::Array(items) => items.iter().enumerate().any(|(i, item)| {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                let found = walk(item, path);
                if !found {
                    path.truncate(len);
                }
                found
            }),
            Value::Object(map) => map.iter().any(|(k, item)| {
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(&k.replace('\0', "\\u0000"));
                let found = k.contains('\0') || walk(item, path);
                if !found {
                    path.truncate(len);
                }
                found
            }),
            _ => false,
        }
    }
    let mut path = String::new();
    walk(value, &mut path).then_some(path)
}

/// Refuses a text input (a query or path parameter, a header) that holds a NUL
/// character: PostgreSQL cannot store one, so both backends refuse it up front.
pub fn no_nul(field: &str, value: &str) -> StoreResult<()> {
    if value.contains('\0') {
        return Err(StoreError::invalid(field, NUL_MESSAGE));
    }
    Ok(())
}

/// A list of tags: each non-empty, at most 100 characters, at most 100 tags, no
/// duplicates. Returns them trimmed, in the order given.
pub fn tags(field: &str, tags: &[String]) -> StoreResult<Vec<String>> {
    if tags.len() > 100 {
        return Err(StoreError::invalid(field, "at most 100 tags are allowed"));
    }
    let mut out: Vec<String> = Vec::with_capacity(tags.len());
    for tag in tags {
        let tag = required_text(field, tag, 100)?;
        if out.contains(&tag) {
            return Err(StoreError::invalid(
                field,
                format!("tag {tag:?} is repeated"),
            ));
        }
        out.push(tag);
    }
    Ok(out)
}

/// An integer within `min..=max`.
pub fn range_i64(field: &str, value: i64, min: i64, max: i64) -> StoreResult<()> {
    if value < min || value > max {
        return Err(StoreError::invalid(
            field,
            format!("{value} is outside {min}..={max}"),
        ));
    }
    Ok(())
}

/// An HTTP or HTTPS URL of at most `max` characters.
pub fn http_url(field: &str, value: &str, max: usize) -> StoreResult<String> {
    let v = required_text(field, value, max)?;
    let lower = v.to_ascii_lowercase();
    let rest = lower
        .strip_prefix("https://")
        .or_else(|| lower.strip_prefix("http://"));
    match rest {
        Some(host)
            if !host.is_empty() && !host.starts_with('/') && !v.contains(char::is_whitespace) =>
        {
            Ok(v)
        }
        _ => Err(StoreError::invalid(
            field,
            "must be an http:// or https:// URL",
        )),
    }
}

/// An optional HTTP or HTTPS URL: `None` and blank both become `None`; otherwise as
/// [`http_url`].
pub fn optional_http_url(
    field: &str,
    value: Option<&str>,
    max: usize,
) -> StoreResult<Option<String>> {
    match value.map(str::trim) {
        None | Some("") => Ok(None),
        Some(v) => http_url(field, v, max).map(Some),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_limits() {
        assert!(required_text("name", "  ", 10).is_err());
        assert_eq!(required_text("name", " a ", 10).unwrap(), "a");
        let err = required_text("name", &"x".repeat(11), 10).unwrap_err();
        assert_eq!(err.field(), Some("name"));
        assert!(required_text("name", "a\0b", 10).is_err());
        assert_eq!(optional_text("d", Some("  "), 5).unwrap(), None);
    }

    #[test]
    fn json_checks() {
        assert!(json_object("settings", &serde_json::json!([1])).is_err());
        assert!(json_object("settings", &serde_json::json!({"a": 1})).is_ok());
        assert!(json_size("x", &serde_json::json!("a\u{0}b")).is_err());
    }

    #[test]
    fn tag_rules() {
        assert!(tags("tags", &["a".into(), "a".into()]).is_err());
        assert!(tags("tags", &["".into()]).is_err());
        assert_eq!(
            tags("tags", &[" a ".into()]).unwrap(),
            vec!["a".to_string()]
        );
    }

    #[test]
    fn nul_is_found_where_it_is() {
        let v = serde_json::json!({"a": {"b": [1, "x\u{0}"]}, "c": "ok"});
        assert_eq!(nul_in_json(&v).as_deref(), Some("a.b[1]"));
        assert_eq!(nul_in_json(&serde_json::json!({"c": "ok"})), None);
        assert_eq!(
            nul_in_json(&serde_json::json!({"k\u{0}": 1})).as_deref(),
            Some("k\\u0000")
        );
        assert!(no_nul("q", "a\0b").is_err() && no_nul("q", "ab").is_ok());
    }

    #[test]
    fn urls() {
        assert!(http_url("url", "ftp://x", 100).is_err());
        assert!(http_url("url", "https://", 100).is_err());
        assert!(http_url("url", "https://example.com/a", 100).is_ok());
    }
}
