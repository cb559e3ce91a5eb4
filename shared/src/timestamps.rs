//! Timestamps as the API shows them: RFC 3339 in UTC with microseconds.
//!
//! The fixed-width form also sorts lexicographically, which the DynamoDB sort keys rely on.

use chrono::{DateTime, SecondsFormat, Utc};

/// Formats a time as `2026-11-23T15:33:00.123456+00:00`.
pub fn format(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Micros, false)
}

/// Parses an RFC 3339 time with any offset; `None` when malformed.
pub fn parse(raw: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(raw)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// The current time, truncated to what [`format`] keeps so stored and shown times agree.
pub fn now() -> DateTime<Utc> {
    let now = Utc::now();
    parse(&format(now)).unwrap_or(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_sort_like_times() {
        let a = parse("2018-08-11T09:11:41.674Z").unwrap();
        let b = parse("2018-08-11T10:11:41.674+01:00").unwrap();
        let c = parse("2018-08-11T09:11:41.675Z").unwrap();
        assert_eq!(a, b);
        assert_eq!(format(a), "2018-08-11T09:11:41.674000+00:00");
        assert!(format(a) < format(c));
    }

    #[test]
    fn rejects_times_without_offset() {
        assert!(parse("2018-08-11T09:11:41").is_none());
        assert!(parse("yesterday").is_none());
    }
}
