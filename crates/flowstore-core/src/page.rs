//! Keyset pagination. Lists are ordered newest first by their time-ordered ID; a
//! cursor is the last ID of the previous page, so a deep page costs what the first one
//! does and rows inserted meanwhile neither shift nor repeat.

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

    /// The page size and the position after which a list ordered by time, then ID,
    /// resumes (see [`Page::from_timed_rows`]).
    pub fn timed_parts(&self) -> StoreResult<(u32, Option<(Timestamp, Uuid)>)> {
        let after = match self.cursor.as_deref() {
            None | Some("") => None,
            Some(c) => Some(decode_timed_cursor(c)?),
        };
        Ok((self.limit()?, after))
    }
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
    /// Like [`Page::from_rows`] for a list ordered by a time, then ID (newest
    /// first), where IDs alone do not follow time (rows written by other clients
    /// with random IDs): the cursor holds both.
    pub fn from_timed_rows(
        mut rows: Vec<T>,
        limit: u32,
        key_of: impl Fn(&T) -> (Timestamp, Uuid),
    ) -> Self {
        let next_cursor = if rows.len() > limit as usize {
            rows.truncate(limit as usize);
            rows.last().map(|r| {
                let (t, id) = key_of(r);
                format!("{}.{}", t.timestamp_micros(), id.simple())
            })
        } else {
            None
        };
        Page {
            items: rows,
            next_cursor,
        }
    }

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

/// Encodes an ID as an opaque cursor.
pub fn encode_cursor(id: Uuid) -> String {
    id.simple().to_string()
}

/// Decodes a cursor made by [`encode_cursor`].
pub fn decode_cursor(cursor: &str) -> StoreResult<Uuid> {
    Uuid::try_parse(cursor)
        .map_err(|_| StoreError::invalid("cursor", "is not a cursor this server issued"))
}

/// Reads a cursor of [`Page::from_timed_rows`].
fn decode_timed_cursor(cursor: &str) -> StoreResult<(Timestamp, Uuid)> {
    let bad = || StoreError::invalid("cursor", "is not a cursor this server issued");
    let (micros, id) = cursor.split_once('.').ok_or_else(bad)?;
    let t = micros
        .parse::<i64>()
        .ok()
        .and_then(chrono::DateTime::from_timestamp_micros)
        .ok_or_else(bad)?;
    Ok((t, Uuid::try_parse(id).map_err(|_| bad())?))
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
    fn timed_cursors_round_trip() {
        let t = crate::time::now();
        let ids: Vec<Uuid> = (0..3).map(|_| Uuid::new_v4()).collect();
        let page = Page::from_timed_rows(ids.clone(), 2, |u| (t, *u));
        let next = PageRequest::after(page.next_cursor.unwrap(), 2);
        assert_eq!(next.timed_parts().unwrap(), (2, Some((t, ids[1]))));
        for bad in ["x", "12.zz", "abc.0190c5a0e2a27c2e8b3b0a1c2d3e4f50", "."] {
            assert!(PageRequest::after(bad, 2).timed_parts().is_err(), "{bad}");
        }
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
}
