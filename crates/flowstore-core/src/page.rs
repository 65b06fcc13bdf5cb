//! Keyset pagination. Lists are ordered newest first by their time-ordered ID; a
//! cursor is the last ID of the previous page, so a deep page costs what the first one
//! does and rows inserted meanwhile neither shift nor repeat.
//!
//! The lists of seed 000's tables (a workflow's runs, the handlers), whose rows its
//! own clients insert with random (v4) IDs, are ordered by their creation time with
//! the ID breaking ties instead: their cursors carry both ([`encode_time_cursor`]).
//! A cursor of the ID-only form is still accepted there, for a client that started
//! paging before the change: the backend reads that row's time.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::time::Timestamp;
use crate::{StoreError, StoreResult};

/// Page size used when none is asked for.
pub const DEFAULT_PAGE_SIZE: u32 = 50;
/// Largest page size accepted.
pub const MAX_PAGE_SIZE: u32 = 1000;

/// Which page of a list to return.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageRequest {
    /// The `next_cursor` of the previous page, or `None` for the first page.
    pub cursor: Option<String>,
    /// How many items at most; [`DEFAULT_PAGE_SIZE`] when `None`.
    pub limit: Option<u32>,
}

impl PageRequest {
    /// The first page with the given size.
    pub fn first(limit: u32) -> Self {
        PageRequest {
            cursor: None,
            limit: Some(limit),
        }
    }

    /// The page after `cursor`.
    pub fn after(cursor: impl Into<String>, limit: u32) -> Self {
        PageRequest {
            cursor: Some(cursor.into()),
            limit: Some(limit),
        }
    }

    /// The validated page size.
    pub fn limit(&self) -> StoreResult<u32> {
        let limit = self.limit.unwrap_or(DEFAULT_PAGE_SIZE);
        if limit == 0 || limit > MAX_PAGE_SIZE {
            return Err(StoreError::invalid(
                "limit",
                format!("{limit} is outside 1..={MAX_PAGE_SIZE}"),
            ));
        }
        Ok(limit)
    }

    /// The ID after which the page starts, decoded from the cursor.
    pub fn after_id(&self) -> StoreResult<Option<Uuid>> {
        match self.cursor.as_deref() {
            None | Some("") => Ok(None),
            Some(c) => decode_cursor(c).map(Some),
        }
    }

    /// The page size and starting ID, both validated: what a backend needs.
    pub fn parts(&self) -> StoreResult<(u32, Option<Uuid>)> {
        Ok((self.limit()?, self.after_id()?))
    }

    /// The page size and the position after which a time-ordered page starts, both
    /// validated. The time is `None` for a cursor of the ID-only form.
    pub fn time_parts(&self) -> StoreResult<(u32, Option<TimeKey>)> {
        let limit = self.limit()?;
        let key = match self.cursor.as_deref() {
            None | Some("") => None,
            Some(c) => Some(decode_time_cursor(c)?),
        };
        Ok((limit, key))
    }
}

/// A position in a list ordered newest first by time, then by ID.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeKey {
    /// The row's time; `None` when the cursor named only the ID (the older form).
    pub at: Option<Timestamp>,
    /// The row's ID.
    pub id: Uuid,
}

/// One page of a list.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Page<T> {
    /// The items, newest first.
    pub items: Vec<T>,
    /// The cursor of the next page, or `None` when this page is the last.
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// Builds a page from up to `limit + 1` rows fetched by a backend: the extra row,
    /// if present, only tells that another page exists.
    pub fn from_rows(mut rows: Vec<T>, limit: u32, id_of: impl Fn(&T) -> Uuid) -> Self {
        let next_cursor = if rows.len() > limit as usize {
            rows.truncate(limit as usize);
            rows.last().map(|r| encode_cursor(id_of(r)))
        } else {
            None
        };
        Page {
            items: rows,
            next_cursor,
        }
    }
}

impl<T> Page<T> {
    /// As [`Page::from_rows`], for a list ordered by time then ID: `key_of` gives a
    /// row's time and ID.
    pub fn from_timed_rows(
        mut rows: Vec<T>,
        limit: u32,
        key_of: impl Fn(&T) -> (Timestamp, Uuid),
    ) -> Self {
        let next_cursor = if rows.len() > limit as usize {
            rows.truncate(limit as usize);
            rows.last().map(|r| {
                let (at, id) = key_of(r);
                encode_time_cursor(at, id)
            })
        } else {
            None
        };
        Page {
            items: rows,
            next_cursor,
        }
    }
}

/// Encodes a time and an ID as an opaque cursor: `t`, the microseconds since the
/// epoch in hexadecimal, `.`, the ID.
pub fn encode_time_cursor(at: Timestamp, id: Uuid) -> String {
    format!("t{:x}.{}", at.timestamp_micros(), id.simple())
}

/// Decodes a cursor made by [`encode_time_cursor`], or by [`encode_cursor`] (then
/// without a time).
pub fn decode_time_cursor(cursor: &str) -> StoreResult<TimeKey> {
    let bad = || StoreError::invalid("cursor", "is not a cursor this server issued");
    let Some(rest) = cursor.strip_prefix('t') else {
        return Ok(TimeKey {
            at: None,
            id: decode_cursor(cursor)?,
        });
    };
    let (micros, id) = rest.split_once('.').ok_or_else(bad)?;
    let micros = i64::from_str_radix(micros, 16).map_err(|_| bad())?;
    let at = chrono::DateTime::from_timestamp_micros(micros).ok_or_else(bad)?;
    Ok(TimeKey {
        at: Some(at),
        id: decode_cursor(id)?,
    })
}

/// Encodes an ID as an opaque cursor.
pub fn encode_cursor(id: Uuid) -> String {
    id.simple().to_string()
}

/// Decodes a cursor made by [`encode_cursor`].
pub fn decode_cursor(cursor: &str) -> StoreResult<Uuid> {
    Uuid::try_parse(cursor)
        .map_err(|_| StoreError::invalid("cursor", "is not a cursor this server issued"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_checked() {
        assert!(PageRequest::first(0).limit().is_err());
        assert!(PageRequest::first(MAX_PAGE_SIZE + 1).limit().is_err());
        assert_eq!(PageRequest::default().limit().unwrap(), DEFAULT_PAGE_SIZE);
        assert!(PageRequest::after("garbage", 5).after_id().is_err());
    }

    #[test]
    fn pages_know_when_more_exist() {
        let ids: Vec<Uuid> = (0..3).map(|_| Uuid::now_v7()).collect();
        let page = Page::from_rows(ids.clone(), 2, |u| *u);
        assert_eq!(page.items.len(), 2);
        assert_eq!(
            decode_cursor(page.next_cursor.as_deref().unwrap()).unwrap(),
            ids[1]
        );
        let last = Page::from_rows(ids[..2].to_vec(), 2, |u| *u);
        assert!(last.next_cursor.is_none());
    }

    #[test]
    fn time_cursors_round_trip_and_accept_the_id_form() {
        let at = crate::time::now();
        let id = Uuid::new_v4();
        let c = encode_time_cursor(at, id);
        assert_eq!(
            decode_time_cursor(&c).unwrap(),
            TimeKey { at: Some(at), id }
        );
        assert_eq!(
            decode_time_cursor(&encode_cursor(id)).unwrap(),
            TimeKey { at: None, id }
        );
        for bad in [
            "t",
            "tzz.00",
            "t10",
            &format!("t10.{}x", id.simple()),
            "nope",
        ] {
            assert!(decode_time_cursor(bad).is_err(), "{bad}");
        }
    }
}
