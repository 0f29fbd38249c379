//! Timestamps as SQLite text.
//!
//! SQLite has no timestamp type. We store fixed-width RFC 3339 in UTC with
//! all nine fractional digits (`2025-01-02T03:04:05.000000006Z`): readable in
//! the `sqlite3` shell, exact to the nanosecond, and ordered the same as text
//! and as time, which `ORDER BY created_at` and keyset paging rely on. (The
//! `time` crate's `Rfc3339` trims trailing zeros, which breaks text order.)

use time::format_description::FormatItem;
use time::macros::format_description;
use time::{OffsetDateTime, PrimitiveDateTime, UtcOffset};

const FORMAT: &[FormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:9]Z");

/// The stored form of `t`, converted to UTC. Reading it back gives the same
/// instant (`OffsetDateTime` equality compares instants), in UTC.
///
/// # Errors
/// A year outside 0000..=9999, which has no fixed-width form (RFC 3339
/// cannot express it either).
pub(crate) fn encode(t: OffsetDateTime) -> Result<String, sqlx::Error> {
    let utc = t.to_offset(UtcOffset::UTC);
    if !(0..=9999).contains(&utc.year()) {
        return Err(sqlx::Error::Encode(
            format!("timestamp {t} is outside years 0000..=9999").into(),
        ));
    }
    utc.format(FORMAT)
        .map_err(|e| sqlx::Error::Encode(Box::new(e)))
}

/// Parses what [`encode`] wrote.
pub(crate) fn decode(s: &str) -> Result<OffsetDateTime, time::error::Parse> {
    PrimitiveDateTime::parse(s, FORMAT).map(PrimitiveDateTime::assume_utc)
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    #[test]
    fn round_trips_to_the_nanosecond_as_utc() {
        let t = datetime!(2025-03-04 05:06:07.000000089 +02:00);
        let s = encode(t).expect("encodes");
        assert_eq!(s, "2025-03-04T03:06:07.000000089Z");
        let back = decode(&s).expect("decodes");
        assert_eq!(back, t);
        assert_eq!(back.offset(), UtcOffset::UTC);
    }

    #[test]
    fn text_order_is_time_order() {
        let times = [
            datetime!(1999-12-31 23:59:59.999999999 UTC),
            datetime!(2025-01-01 00:00:00 UTC),
            datetime!(2025-01-01 00:00:00.5 UTC),
            datetime!(2025-01-01 00:00:00.500000001 UTC),
            datetime!(2025-01-01 00:00:01 UTC),
        ];
        let texts: Vec<String> = times.iter().map(|t| encode(*t).expect("encodes")).collect();
        let mut sorted = texts.clone();
        sorted.sort();
        assert_eq!(texts, sorted);
    }

    #[test]
    fn refuses_years_without_a_fixed_width_form() {
        assert!(encode(datetime!(-0001-01-01 00:00 UTC)).is_err());
    }

    #[test]
    fn rejects_text_in_another_format() {
        for s in ["2025-01-01T00:00:00Z", "2025-01-01 00:00:00.000000000Z", ""] {
            assert!(decode(s).is_err(), "{s:?}");
        }
    }
}
