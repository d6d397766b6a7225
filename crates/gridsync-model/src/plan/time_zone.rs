//! The street's time zone, a setting of the street kept in its plan document: where its day
//! starts (daily rounds begin at local midnight) and in which clock every page shows times.
//! The office sets it (`gridsync plan time-zone +08:00`); it travels with the plan to every
//! device, so the office's rounds and the field app's "this round" agree.
//!
//! Stored as the plan document's root scalar `utc_offset_minutes` (minutes east of UTC, an
//! integer): a root scalar, not a nested object, so concurrent writes resolve as any automerge
//! register does and no shared object is ever created after genesis. A value outside
//! [`MIN_UTC_OFFSET_MINUTES`]..=[`MAX_UTC_OFFSET_MINUTES`] or not a whole quarter hour is
//! ignored by readers (reported as a malformed plan entry), never trusted.

use automerge::transaction::{CommitOptions, Transactable};
use automerge::{Automerge, ChangeHash, ROOT, ReadDoc, ScalarValue, Value};

use super::PlanApplyError;

/// The plan document's root key holding the street's offset from UTC, in minutes.
pub const UTC_OFFSET_KEY: &str = "utc_offset_minutes";
/// Westernmost offset in use (UTC-12:00).
pub const MIN_UTC_OFFSET_MINUTES: i32 = -12 * 60;
/// Easternmost offset in use (UTC+14:00).
pub const MAX_UTC_OFFSET_MINUTES: i32 = 14 * 60;
/// Where a street whose plan names no time zone keeps its clock: the reference street's
/// (Ningbo, China Standard Time, UTC+08:00).
pub const DEFAULT_UTC_OFFSET_MINUTES: i32 = 8 * 60;

/// Why an offset is not a time zone a street can have.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UtcOffsetError {
    #[error(
        "time zone {0:?} is not an offset from UTC such as +08:00, -05:30 or +8 (from -12:00 to +14:00, in quarter hours)"
    )]
    Unreadable(String),
    #[error("an offset of {0} minutes is not a time zone (from -720 to +840, in quarter hours)")]
    OutOfRange(i64),
}

/// Checks an offset in minutes.
pub fn check_utc_offset(minutes: i64) -> Result<i32, UtcOffsetError> {
    let in_range =
        (i64::from(MIN_UTC_OFFSET_MINUTES)..=i64::from(MAX_UTC_OFFSET_MINUTES)).contains(&minutes);
    if in_range && minutes % 15 == 0 {
        Ok(minutes as i32)
    } else {
        Err(UtcOffsetError::OutOfRange(minutes))
    }
}

/// Reads `+08:00`, `-05:30`, `+0800`, `+8`, `UTC+8` or `0` as minutes east of UTC.
pub fn parse_utc_offset(text: &str) -> Result<i32, UtcOffsetError> {
    let unreadable = || UtcOffsetError::Unreadable(text.chars().take(40).collect());
    let trimmed = text.trim();
    let body = trimmed
        .strip_prefix("UTC")
        .or_else(|| trimmed.strip_prefix("utc"))
        .unwrap_or(trimmed);
    if body == "0" || body.is_empty() && trimmed != body {
        return Ok(0);
    }
    let (sign, digits) = match body.as_bytes().first() {
        Some(b'+') => (1, &body[1..]),
        Some(b'-') => (-1, &body[1..]),
        _ => return Err(unreadable()),
    };
    let (hours, minutes) = match digits.split_once(':') {
        Some((h, m)) => (h, m),
        None if digits.len() == 4 => digits.split_at(2),
        None => (digits, "0"),
    };
    let number = |part: &str| {
        (!part.is_empty() && part.len() <= 2 && part.bytes().all(|b| b.is_ascii_digit()))
            .then(|| part.parse::<i64>().ok())
            .flatten()
            .ok_or_else(unreadable)
    };
    let (hours, minutes) = (number(hours)?, number(minutes)?);
    if minutes >= 60 {
        return Err(unreadable());
    }
    check_utc_offset(sign * (hours * 60 + minutes))
}

/// `+08:00` for 480.
pub fn format_utc_offset(minutes: i32) -> String {
    let sign = if minutes < 0 { '-' } else { '+' };
    let m = minutes.unsigned_abs();
    format!("{sign}{:02}:{:02}", m / 60, m % 60)
}

/// Sets the street's time zone in its plan document, in one change at `now_ms`. Returns the
/// change, or `None` when the plan already says so.
pub fn set_utc_offset(
    doc: &mut Automerge,
    minutes: i32,
    now_ms: i64,
) -> Result<Option<ChangeHash>, PlanApplyError> {
    let minutes = check_utc_offset(i64::from(minutes))?;
    if read_utc_offset(doc) == Ok(Some(minutes)) {
        return Ok(None);
    }
    let result = doc.transact_with(
        |_| CommitOptions::default().with_time(now_ms),
        |tx| tx.put(ROOT, UTC_OFFSET_KEY, i64::from(minutes)),
    );
    match result {
        Ok(success) => Ok(success.hash),
        Err(failure) => Err(failure.error.into()),
    }
}

/// The street's time zone as its plan document says (`None` when it says nothing), or what is
/// wrong with the value found.
pub fn read_utc_offset<R: ReadDoc>(doc: &R) -> Result<Option<i32>, String> {
    match doc.get(ROOT, UTC_OFFSET_KEY) {
        Ok(None) => Ok(None),
        Ok(Some((Value::Scalar(value), _))) => match value.as_ref() {
            ScalarValue::Int(n) => check_utc_offset(*n).map(Some).map_err(|e| e.to_string()),
            ScalarValue::Uint(n) => i64::try_from(*n)
                .map_err(|_| format!("an offset of {n} minutes is not a time zone"))
                .and_then(|n| check_utc_offset(n).map(Some).map_err(|e| e.to_string())),
            _ => Err("the time zone is not a number of minutes".to_owned()),
        },
        Ok(Some(_)) => Err("the time zone is not a number of minutes".to_owned()),
        Err(e) => Err(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{DocKind, genesis, read_plan};

    #[test]
    fn offsets_are_read_in_the_forms_people_write() {
        for (text, minutes) in [
            ("+08:00", 480),
            ("+8", 480),
            ("UTC+8", 480),
            ("+0800", 480),
            ("-05:30", -330),
            ("+05:45", 345),
            ("0", 0),
            ("UTC", 0),
            ("+14:00", 840),
            ("-12:00", -720),
        ] {
            assert_eq!(parse_utc_offset(text), Ok(minutes), "{text}");
            assert_eq!(parse_utc_offset(&format_utc_offset(minutes)), Ok(minutes));
        }
        for bad in [
            "",
            "8",
            "+",
            "+8:",
            "+08:60",
            "+15:00",
            "-13:00",
            "+08:10",
            "Asia/Shanghai",
            "+800000",
        ] {
            assert!(parse_utc_offset(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_plan_document_carries_the_time_zone_to_every_reader() {
        let mut doc = genesis(DocKind::StreetPlan);
        assert_eq!(read_plan(&doc).0.utc_offset_minutes(), None);
        assert!(set_utc_offset(&mut doc, 330, 1).expect("set").is_some());
        assert!(
            set_utc_offset(&mut doc, 330, 2).expect("same").is_none(),
            "no op when unchanged"
        );
        let (plan, malformed) = read_plan(&doc);
        assert_eq!(plan.utc_offset_minutes(), Some(330));
        assert!(malformed.is_empty());
        assert!(set_utc_offset(&mut doc, 10_000, 3).is_err());
    }

    #[test]
    fn a_value_no_time_zone_has_is_reported_not_trusted() {
        let mut doc = genesis(DocKind::StreetPlan);
        doc.transact::<_, _, automerge::AutomergeError>(|tx| {
            tx.put(ROOT, UTC_OFFSET_KEY, 100_000i64)?;
            Ok(())
        })
        .expect("write");
        let (plan, malformed) = read_plan(&doc);
        assert_eq!(plan.utc_offset_minutes(), None);
        assert!(
            malformed.iter().any(|m| m.key == UTC_OFFSET_KEY),
            "{malformed:?}"
        );
    }
}
