//! Document paths: the names every replicated document goes by.
//!
//! A path is a `/`-separated list of segments such as `panhuo/grid-017/bldg-12`. Scopes are
//! path prefixes, so "everything in grid 17" is the prefix `panhuo/grid-017`. Paths arrive
//! from peers and files, so parsing bounds every length and the alphabet.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Longest accepted path, in bytes.
pub const MAX_PATH_LEN: usize = 200;
/// Most segments in one path.
pub const MAX_SEGMENTS: usize = 8;
/// Longest segment, in bytes.
pub const MAX_SEGMENT_LEN: usize = 64;

/// Why a string is not a valid document path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("document path is empty")]
    Empty,
    #[error("document path is longer than {MAX_PATH_LEN} bytes")]
    TooLong,
    #[error("document path has more than {MAX_SEGMENTS} segments")]
    TooManySegments,
    #[error("document path has an empty segment (leading, trailing or double '/')")]
    EmptySegment,
    #[error("document path segment {0:?} is longer than {MAX_SEGMENT_LEN} bytes")]
    SegmentTooLong(String),
    #[error(
        "document path segment {0:?} has a character outside a-z, 0-9, '-', '_' and '.' (or is '.' / '..')"
    )]
    BadCharacter(String),
}

/// A validated document path, e.g. `panhuo/grid-017/bldg-12`.
///
/// Ordering is byte-wise on the string, which keeps every prefix range contiguous: all
/// documents under `panhuo/grid-017` sort together. The inventory's range reconciliation
/// relies on that.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DocPath(String);

/// Checks one path segment. Also used for ids that become segments (street, grid, building).
pub fn validate_segment(segment: &str) -> Result<(), PathError> {
    if segment.is_empty() {
        return Err(PathError::EmptySegment);
    }
    if segment.len() > MAX_SEGMENT_LEN {
        return Err(PathError::SegmentTooLong(
            segment.chars().take(80).collect(),
        ));
    }
    let allowed =
        |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.');
    if segment == "." || segment == ".." || !segment.chars().all(allowed) {
        return Err(PathError::BadCharacter(segment.chars().take(80).collect()));
    }
    Ok(())
}

impl DocPath {
    /// Parses and validates a path.
    pub fn parse(s: &str) -> Result<Self, PathError> {
        if s.is_empty() {
            return Err(PathError::Empty);
        }
        if s.len() > MAX_PATH_LEN {
            return Err(PathError::TooLong);
        }
        let mut count = 0;
        for segment in s.split('/') {
            count += 1;
            if count > MAX_SEGMENTS {
                return Err(PathError::TooManySegments);
            }
            validate_segment(segment)?;
        }
        Ok(DocPath(s.to_owned()))
    }

    /// Builds a path from segments, validating each.
    pub fn from_segments<S: AsRef<str>>(segments: &[S]) -> Result<Self, PathError> {
        let joined = segments
            .iter()
            .map(|s| s.as_ref())
            .collect::<Vec<_>>()
            .join("/");
        Self::parse(&joined)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn segments(&self) -> impl Iterator<Item = &str> {
        self.0.split('/')
    }

    /// A child path `self/segment`.
    pub fn join(&self, segment: &str) -> Result<Self, PathError> {
        Self::parse(&format!("{}/{}", self.0, segment))
    }

    /// True when `self` equals `prefix` or lies below it. Works on whole segments:
    /// `a/bc` is not under `a/b`.
    pub fn is_under(&self, prefix: &DocPath) -> bool {
        self.0 == prefix.0
            || (self.0.len() > prefix.0.len()
                && self.0.starts_with(&prefix.0)
                && self.0.as_bytes()[prefix.0.len()] == b'/')
    }
}

impl fmt::Display for DocPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for DocPath {
    type Error = PathError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        DocPath::parse(&s)
    }
}

impl From<DocPath> for String {
    fn from(p: DocPath) -> String {
        p.0
    }
}

impl std::str::FromStr for DocPath {
    type Err = PathError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DocPath::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_hierarchical_paths() {
        let p = DocPath::parse("panhuo/grid-017/bldg-12").expect("valid test input");
        assert_eq!(p.segments().count(), 3);
        assert!(p.is_under(&DocPath::parse("panhuo/grid-017").expect("valid test input")));
        assert!(p.is_under(&DocPath::parse("panhuo").expect("valid test input")));
        assert!(!p.is_under(&DocPath::parse("panhuo/grid-01").expect("valid test input")));
    }

    #[test]
    fn rejects_bad_paths() {
        assert_eq!(DocPath::parse(""), Err(PathError::Empty));
        assert_eq!(DocPath::parse("a//b"), Err(PathError::EmptySegment));
        assert_eq!(DocPath::parse("/a"), Err(PathError::EmptySegment));
        assert!(matches!(
            DocPath::parse("a/B"),
            Err(PathError::BadCharacter(_))
        ));
        assert!(matches!(
            DocPath::parse("a/.."),
            Err(PathError::BadCharacter(_))
        ));
        assert_eq!(DocPath::parse(&"ab/".repeat(70)), Err(PathError::TooLong));
        assert_eq!(
            DocPath::parse("a/b/c/d/e/f/g/h/i"),
            Err(PathError::TooManySegments)
        );
    }
}
