//! A JSON Schema validator for the subset of JSON Schema 2020-12 that utoipa writes
//! into the OpenAPI document (`$ref` into `components/schemas`, `type` with
//! `"null"`, `enum`, `properties`, `required`, `additionalProperties`, `items`,
//! `oneOf`/`anyOf`/`allOf`, `format`, `minimum`/`maximum`).
//!
//! It is strict on purpose: a keyword it does not know is reported as an error, so
//! a schema can never pass because part of it was ignored. Annotations
//! (`description`, `title`, `example`, `default`, …) are ignored. In strict mode
//! (for answers) an object may carry no field its schema does not name, so a field
//! a handler adds without documenting it is caught too.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

/// Keywords that only annotate.
const ANNOTATIONS: &[&str] = &[
    "description",
    "title",
    "example",
    "examples",
    "default",
    "deprecated",
    "readOnly",
    "writeOnly",
    "contentMediaType",
];

/// Validates values against schemas that may `$ref` the document's components.
pub struct Validator<'a> {
    components: &'a Map<String, Value>,
    strict: bool,
}

impl<'a> Validator<'a> {
    /// A validator resolving `#/components/schemas/…` in `doc`.
    pub fn new(doc: &'a Value) -> Self {
        Validator {
            components: doc["components"]["schemas"]
                .as_object()
                .expect("the document has components/schemas"),
            strict: false,
        }
    }

    /// A validator that also refuses fields a schema does not name (unless it says
    /// `additionalProperties`).
    pub fn strict(doc: &'a Value) -> Self {
        Validator {
            strict: true,
            ..Validator::new(doc)
        }
    }

    /// Every way `value` breaks `schema`, each with the JSON path where.
    pub fn errors(&self, schema: &Value, value: &Value) -> Vec<String> {
        let mut out = Vec::new();
        self.check(schema, value, "$", true, &mut out);
        out
    }

    /// The field names a schema names, through `$ref` and `allOf`.
    fn known(&self, schema: &Value, names: &mut BTreeSet<String>) {
        if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
            self.known(self.resolve(r), names);
        }
        if let Some(props) = schema.get("properties").and_then(Value::as_object) {
            names.extend(props.keys().cloned());
        }
        for sub in schema
            .get("allOf")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            self.known(sub, names);
        }
    }

    /// In strict mode, reports the fields of `value` that `schema` does not name.
    fn unnamed(&self, schema: &Value, value: &Value, at: &str, out: &mut Vec<String>) {
        let Some(obj) = value.as_object() else { return };
        let mut names = BTreeSet::new();
        self.known(schema, &mut names);
        for name in obj.keys().filter(|k| !names.contains(*k)) {
            out.push(format!("{at}: the field {name:?} is not documented"));
        }
    }

    fn resolve(&self, reference: &str) -> &'a Value {
        let name = reference
            .strip_prefix("#/components/schemas/")
            .unwrap_or_else(|| panic!("unsupported $ref {reference}"));
        self.components
            .get(name)
            .unwrap_or_else(|| panic!("$ref to a missing schema {name}"))
    }

    /// Checks `value` at `at`; `whole` is false for a branch of an `allOf`, whose
    /// siblings name the other fields.
    fn check(&self, schema: &Value, value: &Value, at: &str, whole: bool, out: &mut Vec<String>) {
        let full = schema;
        let schema = match schema {
            Value::Bool(true) => return,
            Value::Bool(false) => return out.push(format!("{at}: nothing is allowed here")),
            Value::Object(o) => o,
            other => panic!("a schema is an object or a boolean, not {other}"),
        };
        for (keyword, arg) in schema {
            match keyword.as_str() {
                "$ref" => self.check(self.resolve(arg.as_str().unwrap()), value, at, whole, out),
                "type" => check_type(arg, value, at, out),
                "enum" => {
                    if !arg.as_array().unwrap().contains(value) {
                        out.push(format!("{at}: {} is not one of {arg}", brief(value)));
                    }
                }
                "const" => {
                    if arg != value {
                        out.push(format!("{at}: {} is not {arg}", brief(value)));
                    }
                }
                "format" => check_format(arg.as_str().unwrap(), value, at, out),
                "minimum" | "maximum" => {
                    if let (Some(bound), Some(n)) = (arg.as_f64(), value.as_f64()) {
                        let bad = if keyword == "minimum" {
                            n < bound
                        } else {
                            n > bound
                        };
                        if bad {
                            out.push(format!("{at}: {n} is outside its {keyword} {bound}"));
                        }
                    }
                }
                "properties" => {
                    if let Some(obj) = value.as_object() {
                        for (name, sub) in arg.as_object().unwrap() {
                            if let Some(v) = obj.get(name) {
                                self.check(sub, v, &format!("{at}.{name}"), true, out);
                            }
                        }
                        if self.strict && whole && !schema.contains_key("additionalProperties") {
                            self.unnamed(full, value, at, out);
                        }
                    }
                }
                "required" => {
                    if let Some(obj) = value.as_object() {
                        for name in arg.as_array().unwrap() {
                            let name = name.as_str().unwrap();
                            if !obj.contains_key(name) {
                                out.push(format!("{at}: the required field {name:?} is missing"));
                            }
                        }
                    }
                }
                "additionalProperties" => {
                    if let Some(obj) = value.as_object() {
                        let known = schema.get("properties").and_then(Value::as_object);
                        for (name, v) in obj {
                            if known.is_some_and(|k| k.contains_key(name)) {
                                continue;
                            }
                            self.check(arg, v, &format!("{at}.{name}"), true, out);
                        }
                    }
                }
                "items" => {
                    if let Some(items) = value.as_array() {
                        for (i, v) in items.iter().enumerate() {
                            self.check(arg, v, &format!("{at}[{i}]"), true, out);
                        }
                    }
                }
                "allOf" => {
                    for sub in arg.as_array().unwrap() {
                        self.check(sub, value, at, false, out);
                    }
                    if self.strict && whole {
                        self.unnamed(full, value, at, out);
                    }
                }
                "oneOf" | "anyOf" => {
                    let matching = arg
                        .as_array()
                        .unwrap()
                        .iter()
                        .filter(|sub| self.errors(sub, value).is_empty())
                        .count();
                    let ok = if keyword == "oneOf" {
                        matching == 1
                    } else {
                        matching >= 1
                    };
                    if !ok {
                        let why: Vec<String> = arg
                            .as_array()
                            .unwrap()
                            .iter()
                            .flat_map(|sub| self.errors(sub, value))
                            .collect();
                        out.push(format!(
                            "{at}: {matching} of the {keyword} alternatives match ({})",
                            why.join("; ")
                        ));
                    }
                }
                k if ANNOTATIONS.contains(&k) => {}
                k => out.push(format!(
                    "{at}: the validator does not know the keyword {k:?}"
                )),
            }
        }
    }
}

/// A value cut short for a message.
fn brief(value: &Value) -> String {
    let text = value.to_string();
    match text.char_indices().nth(80) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text,
    }
}

fn type_matches(name: &str, value: &Value) -> bool {
    match name {
        "null" => value.is_null(),
        "boolean" => value.is_boolean(),
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "number" => value.is_number(),
        "integer" => value.is_i64() || value.is_u64(),
        other => panic!("unknown JSON Schema type {other}"),
    }
}

fn check_type(arg: &Value, value: &Value, at: &str, out: &mut Vec<String>) {
    let ok = match arg {
        Value::String(t) => type_matches(t, value),
        Value::Array(ts) => ts.iter().any(|t| type_matches(t.as_str().unwrap(), value)),
        other => panic!("type is a name or a list of names, not {other}"),
    };
    if !ok {
        out.push(format!("{at}: {} is not of type {arg}", brief(value)));
    }
}

fn check_format(format: &str, value: &Value, at: &str, out: &mut Vec<String>) {
    let Some(s) = value.as_str() else {
        return; // formats constrain strings only; numeric formats are annotations
    };
    let ok = match format {
        "uuid" => uuid::Uuid::parse_str(s).is_ok(),
        "date-time" => is_rfc3339(s),
        "password" => true,
        other => panic!("unknown string format {other}"),
    };
    if !ok {
        out.push(format!("{at}: {s:?} is not a {format}"));
    }
}

/// `YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)`, checked by shape (RFC 3339).
fn is_rfc3339(s: &str) -> bool {
    let b = s.as_bytes();
    let digits =
        |r: std::ops::Range<usize>| r.clone().all(|i| b.get(i).is_some_and(u8::is_ascii_digit));
    if b.len() < 20 || !digits(0..4) || b[4] != b'-' || !digits(5..7) || b[7] != b'-' {
        return false;
    }
    if !digits(8..10) || !matches!(b[10], b'T' | b't') || !digits(11..13) || b[13] != b':' {
        return false;
    }
    if !digits(14..16) || b[16] != b':' || !digits(17..19) {
        return false;
    }
    let mut i = 19;
    if b[i] == b'.' {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return false;
        }
    }
    match &s[i..] {
        "Z" | "z" => true,
        tz => {
            let t = tz.as_bytes();
            t.len() == 6
                && matches!(t[0], b'+' | b'-')
                && t[1..3].iter().all(u8::is_ascii_digit)
                && t[3] == b':'
                && t[4..6].iter().all(u8::is_ascii_digit)
        }
    }
}

#[test]
fn the_validator_catches_what_it_should() {
    let doc = serde_json::json!({"components": {"schemas": {
        "Id": {"type": "string", "format": "uuid"},
        "Thing": {"type": "object", "required": ["id", "at"], "additionalProperties": false,
            "properties": {"id": {"$ref": "#/components/schemas/Id"},
                "at": {"type": "string", "format": "date-time"},
                "status": {"type": "string", "enum": ["a", "b"]},
                "n": {"type": ["integer", "null"], "minimum": 0},
                "owner": {"oneOf": [{"type": "null"}, {"$ref": "#/components/schemas/Id"}]}}}
    }}});
    let v = Validator::new(&doc);
    let thing = serde_json::json!({"$ref": "#/components/schemas/Thing"});
    let good = serde_json::json!({"id": "0190b6a0-0000-7000-8000-000000000000",
        "at": "2026-01-02T03:04:05.123456Z", "status": "a", "n": null, "owner": null});
    assert_eq!(v.errors(&thing, &good), Vec::<String>::new());
    let bad = serde_json::json!({"id": "nope", "at": "yesterday", "status": "c", "n": -1,
        "owner": 3, "extra": true});
    let errors = v.errors(&thing, &bad);
    assert_eq!(errors.len(), 6, "{errors:#?}");
    let missing = v.errors(&thing, &serde_json::json!({}));
    assert_eq!(missing.len(), 2, "{missing:#?}");
    let unknown = v.errors(&serde_json::json!({"patternProperties": {}}), &good);
    assert_eq!(unknown.len(), 1, "an unknown keyword is an error");
    let open = serde_json::json!({"type": "object", "properties": {"a": {"type": "integer"}}});
    let extra = serde_json::json!({"a": 1, "b": 2});
    assert!(v.errors(&open, &extra).is_empty());
    let strict = Validator::strict(&doc);
    assert_eq!(
        strict.errors(&open, &extra).len(),
        1,
        "strict: b is not documented"
    );
    let both = serde_json::json!({"allOf": [open, {"properties": {"b": {"type": "integer"}}}]});
    assert!(
        strict.errors(&both, &extra).is_empty(),
        "allOf names both fields"
    );
}
