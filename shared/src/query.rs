//! Typed access to query parameters: pagination, time ranges, id lists.
//!
//! Every route declares the parameters it knows; anything else is rejected, and each
//! bad value is answered with the parameter's name in the detail.

use std::collections::BTreeMap;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::error::{ApiError, ErrorCode};
use crate::timestamps;

/// Most ids accepted in one comma-separated filter.
pub const MAX_IDS_IN_FILTER: usize = 100;

/// Deepest row a listing pages to: a `page × page_size` above it is answered with 40008.
/// Offset paging reads and drops every row before the page, so a deep page costs as much
/// as listing all of them; a client reads further by narrowing the filters
/// (`create_time__lt` of the last row seen) instead.
pub const PAGE_DEPTH_MAX: u64 = 10_000;

/// `page_size` unless the request gives one.
pub const PAGE_SIZE_DEFAULT: u32 = 10;

/// Largest `page_size`.
pub const PAGE_SIZE_MAX: u32 = 100;

/// The query string of one request.
#[derive(Debug, Clone, Default)]
pub struct Query {
    params: BTreeMap<String, Vec<String>>,
}

/// A page of a listing: `page` ≥ 1 (default 1), `page_size` 1..=100 (default 10), and
/// `page × page_size` at most [`PAGE_DEPTH_MAX`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    /// One-based page number.
    pub page: u32,
    /// Items per page.
    pub page_size: u32,
}

impl Page {
    /// Items to skip before this page.
    pub fn offset(&self) -> usize {
        (self.page as usize - 1) * self.page_size as usize
    }
}

/// Collects one page from a stream of matching items: skips the earlier pages' items,
/// keeps `page_size`, and tells the reader to stop once the page is full.
#[derive(Debug)]
pub struct PageBuffer<T> {
    page: Page,
    skipped: usize,
    items: Vec<T>,
}

impl<T> PageBuffer<T> {
    /// An empty buffer for `page`.
    pub fn new(page: Page) -> PageBuffer<T> {
        PageBuffer {
            page,
            skipped: 0,
            items: Vec::with_capacity(page.page_size as usize),
        }
    }

    /// Offers the next matching item; `Break` once the page is full.
    pub fn offer(&mut self, item: T) -> std::ops::ControlFlow<()> {
        if self.skipped < self.page.offset() {
            self.skipped += 1;
        } else {
            self.items.push(item);
        }
        if self.items.len() == self.page.page_size as usize {
            std::ops::ControlFlow::Break(())
        } else {
            std::ops::ControlFlow::Continue(())
        }
    }

    /// The items of the page.
    pub fn into_items(self) -> Vec<T> {
        self.items
    }
}

/// A half-open time range `[gte, lt)`; either end may be open.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TimeRange {
    /// Included lower bound.
    pub gte: Option<DateTime<Utc>>,
    /// Excluded upper bound.
    pub lt: Option<DateTime<Utc>>,
}

impl TimeRange {
    /// Whether `time` lies in the range.
    pub fn contains(&self, time: DateTime<Utc>) -> bool {
        self.gte.is_none_or(|gte| time >= gte) && self.lt.is_none_or(|lt| time < lt)
    }
}

impl Query {
    /// Builds a query from decoded `name=value` pairs; repeated names keep every value.
    pub fn new(pairs: impl IntoIterator<Item = (String, String)>) -> Query {
        let mut params: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (name, value) in pairs {
            params.entry(name).or_default().push(value);
        }
        Query { params }
    }

    /// Rejects parameters outside `known` with error 12018.
    pub fn reject_unknown(&self, known: &[&str]) -> Result<(), ApiError> {
        match self
            .params
            .keys()
            .find(|name| !known.contains(&name.as_str()))
        {
            Some(name) => Err(ApiError::new(
                ErrorCode::UnsupportedParam,
                format!("Unsupported param '{name}'"),
            )),
            None => Ok(()),
        }
    }

    /// The single value of `name`, if present; a repeated parameter is an error.
    pub fn single(&self, name: &str) -> Result<Option<&str>, ApiError> {
        match self.params.get(name).map(Vec::as_slice) {
            None => Ok(None),
            Some([value]) => Ok(Some(value.as_str())),
            Some(_) => Err(ApiError::bad_query(name, "must be given once")),
        }
    }

    /// A required parameter, answered with 12014 when absent.
    pub fn required(&self, name: &str) -> Result<&str, ApiError> {
        self.single(name)?.ok_or_else(|| {
            ApiError::new(
                ErrorCode::RequiredParamsNotFound,
                format!("Required parameters ['{name}'] not found"),
            )
        })
    }

    /// The `account_id` every object route requires.
    pub fn account_id(&self) -> Result<Uuid, ApiError> {
        let raw = self.required("account_id")?;
        parse_uuid(raw).ok_or_else(|| ApiError::bad_query("account_id", "not a UUID"))
    }

    /// An optional UUID parameter.
    pub fn uuid(&self, name: &str) -> Result<Option<Uuid>, ApiError> {
        self.single(name)?
            .map(|raw| parse_uuid(raw).ok_or_else(|| ApiError::bad_query(name, "not a UUID")))
            .transpose()
    }

    /// An optional comma-separated list of UUIDs (at most [`MAX_IDS_IN_FILTER`]).
    pub fn uuid_list(&self, name: &str) -> Result<Option<Vec<Uuid>>, ApiError> {
        self.string_list(name)?
            .map(|items| {
                items
                    .iter()
                    .map(|raw| {
                        parse_uuid(raw).ok_or_else(|| {
                            ApiError::bad_query(name, format!("'{raw}' is not a UUID"))
                        })
                    })
                    .collect()
            })
            .transpose()
    }

    /// An optional comma-separated list of non-empty strings (at most [`MAX_IDS_IN_FILTER`]).
    pub fn string_list(&self, name: &str) -> Result<Option<Vec<String>>, ApiError> {
        let Some(raw) = self.single(name)? else {
            return Ok(None);
        };
        let items: Vec<String> = raw.split(',').map(|s| s.trim().to_string()).collect();
        if items.iter().any(String::is_empty) {
            return Err(ApiError::bad_query(name, "empty item in list"));
        }
        if items.len() > MAX_IDS_IN_FILTER {
            return Err(ApiError::bad_query(
                name,
                format!("at most {MAX_IDS_IN_FILTER} items"),
            ));
        }
        Ok(Some(items))
    }

    /// An optional integer within `min..=max`.
    pub fn int<T>(&self, name: &str, min: T, max: T) -> Result<Option<T>, ApiError>
    where
        T: FromStr + PartialOrd + std::fmt::Display + Copy,
    {
        let Some(raw) = self.single(name)? else {
            return Ok(None);
        };
        let value: T = raw
            .parse()
            .map_err(|_| ApiError::bad_query(name, format!("'{raw}' is not an integer")))?;
        if value < min || value > max {
            return Err(ApiError::bad_query(
                name,
                format!("{value} is outside {min}..={max}"),
            ));
        }
        Ok(Some(value))
    }

    /// An optional RFC 3339 time.
    pub fn time(&self, name: &str) -> Result<Option<DateTime<Utc>>, ApiError> {
        self.single(name)?
            .map(|raw| {
                timestamps::parse(raw).ok_or_else(|| {
                    ApiError::bad_query(name, format!("'{raw}' is not an RFC 3339 date-time"))
                })
            })
            .transpose()
    }

    /// `page` and `page_size` with their defaults and bounds.
    pub fn page(&self) -> Result<Page, ApiError> {
        self.page_sized(PAGE_SIZE_DEFAULT)
    }

    /// `page` and `page_size`, the size defaulting to `default_size`; a page that ends
    /// deeper than [`PAGE_DEPTH_MAX`] rows is 40008.
    pub fn page_sized(&self, default_size: u32) -> Result<Page, ApiError> {
        let page = Page {
            page: self.int("page", 1, u32::MAX)?.unwrap_or(1),
            page_size: self
                .int("page_size", 1, PAGE_SIZE_MAX)?
                .unwrap_or(default_size),
        };
        let depth = u64::from(page.page) * u64::from(page.page_size);
        if depth > PAGE_DEPTH_MAX {
            return Err(ApiError::new(
                ErrorCode::PageTooDeep,
                format!(
                    "page {} with page_size {} ends at row {depth}, deeper than the \
                     {PAGE_DEPTH_MAX} rows a listing pages through; narrow the filters \
                     (e.g. create_time__lt) to read further",
                    page.page, page.page_size
                ),
            ));
        }
        Ok(page)
    }

    /// `<field>__gte` and `<field>__lt` as one range.
    pub fn time_range(&self, field: &str) -> Result<TimeRange, ApiError> {
        Ok(TimeRange {
            gte: self.time(&format!("{field}__gte"))?,
            lt: self.time(&format!("{field}__lt"))?,
        })
    }
}

/// Parses a UUID in its hyphenated form (any case).
pub fn parse_uuid(raw: &str) -> Option<Uuid> {
    (raw.len() == 36)
        .then(|| Uuid::try_parse(raw).ok())
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(pairs: &[(&str, &str)]) -> Query {
        Query::new(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())))
    }

    #[test]
    fn page_defaults_and_bounds() {
        assert_eq!(
            query(&[]).page().unwrap(),
            Page {
                page: 1,
                page_size: 10
            }
        );
        let page = query(&[("page", "3"), ("page_size", "100")])
            .page()
            .unwrap();
        assert_eq!(page.offset(), 200);
        for (name, value) in [
            ("page_size", "0"),
            ("page_size", "101"),
            ("page", "0"),
            ("page", "-1"),
            ("page", "x"),
        ] {
            let err = query(&[(name, value)]).page().unwrap_err();
            assert_eq!(err.code, ErrorCode::BadQuery, "{name}={value}");
        }
    }

    #[test]
    fn pages_end_at_the_listing_depth() {
        let deepest = query(&[("page", "100"), ("page_size", "100")]).page();
        assert_eq!(deepest.unwrap().offset(), 9_900);
        assert!(query(&[("page", "1000")]).page().is_ok());
        for (page, size) in [("1001", "10"), ("101", "100"), ("4294967295", "100")] {
            let err = query(&[("page", page), ("page_size", size)])
                .page()
                .unwrap_err();
            assert_eq!(err.code, ErrorCode::PageTooDeep, "{page} x {size}");
            assert!(err.detail.contains("10000"), "{}", err.detail);
        }
        let sized = query(&[]).page_sized(PAGE_SIZE_MAX).unwrap();
        assert_eq!(sized.page_size, 100);
    }

    #[test]
    fn page_buffer_skips_earlier_pages_and_stops_when_full() {
        let mut buffer = PageBuffer::new(Page {
            page: 2,
            page_size: 3,
        });
        let flow: Vec<bool> = (0..6).map(|i| buffer.offer(i).is_break()).collect();
        assert_eq!(flow, [false, false, false, false, false, true]);
        assert_eq!(buffer.into_items(), vec![3, 4, 5]);
    }

    #[test]
    fn account_id_is_required_and_must_be_a_uuid() {
        assert_eq!(
            query(&[]).account_id().unwrap_err().code,
            ErrorCode::RequiredParamsNotFound
        );
        assert_eq!(
            query(&[("account_id", "nope")])
                .account_id()
                .unwrap_err()
                .code,
            ErrorCode::BadQuery
        );
        let id = Uuid::new_v4();
        assert_eq!(
            query(&[("account_id", &id.to_string())])
                .account_id()
                .unwrap(),
            id
        );
    }

    #[test]
    fn unknown_and_repeated_parameters_are_rejected() {
        let q = query(&[("page", "1"), ("pgae", "2")]);
        assert_eq!(
            q.reject_unknown(&["page"]).unwrap_err().code,
            ErrorCode::UnsupportedParam
        );
        let repeated = query(&[("page", "1"), ("page", "2")]);
        assert_eq!(repeated.page().unwrap_err().code, ErrorCode::BadQuery);
    }

    #[test]
    fn time_range_is_half_open() {
        let q = query(&[
            ("create_time__gte", "2020-01-01T00:00:00Z"),
            ("create_time__lt", "2020-01-02T00:00:00Z"),
        ]);
        let range = q.time_range("create_time").unwrap();
        assert!(range.contains(timestamps::parse("2020-01-01T00:00:00Z").unwrap()));
        assert!(!range.contains(timestamps::parse("2020-01-02T00:00:00Z").unwrap()));
        let bad = query(&[("create_time__lt", "2020-01-02")]);
        assert_eq!(
            bad.time_range("create_time").unwrap_err().code,
            ErrorCode::BadQuery
        );
    }

    #[test]
    fn id_lists_are_checked_item_by_item() {
        let a = Uuid::new_v4();
        let q = query(&[("face_ids", &format!("{a},not-a-uuid"))]);
        assert_eq!(
            q.uuid_list("face_ids").unwrap_err().code,
            ErrorCode::BadQuery
        );
        let ok = query(&[("face_ids", &a.to_string())]);
        assert_eq!(ok.uuid_list("face_ids").unwrap(), Some(vec![a]));
        let many = (0..=MAX_IDS_IN_FILTER)
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(",");
        assert!(query(&[("tags", &many)]).string_list("tags").is_err());
    }
}
