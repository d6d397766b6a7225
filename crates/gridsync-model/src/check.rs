//! Field-level checks shared by writers (before a record enters a document) and readers (a
//! peer's record is held to the same bounds before it is believed).

use gridsync_proto::{PathError, path::validate_segment};

use crate::records::{MAX_FUTURE_SKEW_MS, MIN_TIME_MS, RecordIdError};
use crate::vocab::UnknownValue;

/// What is wrong with one field of a record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FieldProblem {
    #[error("field {0} is empty")]
    Empty(&'static str),
    #[error("field {field} has {chars} characters, more than {max}")]
    TooLong {
        field: &'static str,
        chars: usize,
        max: usize,
    },
    #[error("field {0} contains a control character")]
    ControlCharacter(&'static str),
    #[error("field {field} has {count} entries, more than {max}")]
    TooMany {
        field: &'static str,
        count: usize,
        max: usize,
    },
    #[error("time {at_ms} is more than ten minutes after now ({now_ms})")]
    InFuture { at_ms: i64, now_ms: i64 },
    #[error("time {at_ms} is before 2000-01-01")]
    BeforeMinimum { at_ms: i64 },
    #[error("bad record id: {0}")]
    BadId(#[from] RecordIdError),
    #[error(transparent)]
    UnknownValue(#[from] UnknownValue),
    #[error("field {0} is missing")]
    Missing(&'static str),
    #[error("field {0} has the wrong type or is out of range")]
    WrongType(&'static str),
    #[error("field {field} is not a valid id: {source}")]
    BadSegment {
        field: &'static str,
        source: PathError,
    },
}

/// Checks a bounded single-line text; `allow_empty` for optional fields.
pub(crate) fn short_text(
    field: &'static str,
    text: &str,
    max: usize,
    allow_empty: bool,
) -> Result<(), FieldProblem> {
    if text.is_empty() && !allow_empty {
        return Err(FieldProblem::Empty(field));
    }
    let chars = text.chars().count();
    if chars > max {
        return Err(FieldProblem::TooLong { field, chars, max });
    }
    if text.chars().any(char::is_control) {
        return Err(FieldProblem::ControlCharacter(field));
    }
    Ok(())
}

/// Checks a free-text note: bounded, line breaks and tabs allowed, other controls not.
pub(crate) fn note_text(field: &'static str, text: &str, max: usize) -> Result<(), FieldProblem> {
    let chars = text.chars().count();
    if chars > max {
        return Err(FieldProblem::TooLong { field, chars, max });
    }
    if text
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\t'))
    {
        return Err(FieldProblem::ControlCharacter(field));
    }
    Ok(())
}

/// Checks an id that may become a path segment or joins a comma-separated list.
pub(crate) fn segment_id(field: &'static str, id: &str) -> Result<(), FieldProblem> {
    if id.is_empty() {
        return Err(FieldProblem::Empty(field));
    }
    validate_segment(id).map_err(|source| FieldProblem::BadSegment { field, source })
}

/// Checks a record time against the year-2000 floor.
pub(crate) fn time_floor(at_ms: i64) -> Result<(), FieldProblem> {
    if at_ms < MIN_TIME_MS {
        return Err(FieldProblem::BeforeMinimum { at_ms });
    }
    Ok(())
}

/// Checks a record time against the floor and the caller's clock (writes only).
pub(crate) fn time_now(at_ms: i64, now_ms: i64) -> Result<(), FieldProblem> {
    time_floor(at_ms)?;
    if at_ms > now_ms.saturating_add(MAX_FUTURE_SKEW_MS) {
        return Err(FieldProblem::InFuture { at_ms, now_ms });
    }
    Ok(())
}
