//! Domain types and the repository trait of each area. Each area's types and its
//! trait live in one module; [`crate::Tx`] gathers the traits.
//!
//! An input struct's `Option` fields carry no `#[serde(default)]`: serde reads an
//! absent `Option` as `None` by itself, and utoipa documents it as not required. Only
//! fields of other types that may be left out (lists, flags) and the nullable fields
//! of patches (whose `deserialize_with` needs it) are marked.

/// Declares a patch: a body of changes in which every field may be left out, an
/// absent field keeping the current value. Each field gets `#[serde(default)]` (a
/// nullable one adds `#[serde(deserialize_with = "nullable")]`, so that `null` clears
/// it), unknown fields are refused, and the `openapi` feature derives its schema. The
/// struct lists its own derives, `Default` and `Deserialize` among them.
macro_rules! patch_struct {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $($(#[$field_meta:meta])* pub $field:ident: $ty:ty,)*
        }
    ) => {
        $(#[$meta])*
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        #[serde(deny_unknown_fields)]
        pub struct $name {
            $($(#[$field_meta])* #[serde(default)] pub $field: $ty,)*
        }
    };
}

pub mod audit;
pub mod audit_chain;
pub mod audit_head;
pub mod dag;
pub mod engine;
pub mod engine_store;
pub mod identity;
pub mod identity_access;
pub mod integration;
pub mod metric;
pub mod notify;
pub mod ops;
pub mod password_policy;
pub mod project;
pub mod pull_request;
pub mod registry;
pub mod run;
pub mod summary;
pub mod task;
pub mod trigger;
pub mod viewer;
pub mod workflow;

use serde::{Deserialize, Deserializer};

/// Deserialises a field of a patch so that an absent field is `None` (leave as is)
/// and an explicit `null` is `Some(None)` (clear it). Use with `#[serde(default)]`, which
/// `patch_struct!` gives every field.
pub fn nullable<'de, T, D>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    T: Deserialize<'de>,
    D: Deserializer<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

#[cfg(test)]
mod tests {
    use super::project::ProjectPatch;

    #[test]
    fn patches_tell_absent_from_null() {
        let p: ProjectPatch = serde_json::from_str(r#"{"description": null}"#).unwrap();
        assert_eq!(p.description, Some(None));
        assert_eq!(p.repository_url, None);
        assert!(serde_json::from_str::<ProjectPatch>(r#"{"bogus": 1}"#).is_err());
    }
}
