//! The one error type of the store, with variants a caller can act on.

use std::path::PathBuf;

use gridsync_proto::DocPath;

/// Why a store operation failed.
///
/// Opening distinguishes every way a file can be unusable, so that the node can tell the
/// operator what happened instead of silently starting over with an empty store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("no gridsync store at {0}")]
    Missing(PathBuf),
    #[error("a gridsync store already exists at {0}")]
    AlreadyExists(PathBuf),
    #[error("{path} is not a SQLite database ({detail})")]
    NotSqlite { path: PathBuf, detail: String },
    #[error("{path} is truncated ({detail})")]
    Truncated { path: PathBuf, detail: String },
    #[error("{path} is a SQLite database of another application ({detail})")]
    Foreign { path: PathBuf, detail: String },
    #[error("{path} is corrupt ({detail})")]
    Corrupt { path: PathBuf, detail: String },
    #[error(
        "{path} has store format version {found}, newer than the supported {supported}; upgrade gridsync"
    )]
    NewerFormat {
        path: PathBuf,
        found: i64,
        supported: i64,
    },
    #[error("stored chunks of document {path} cannot be loaded")]
    CorruptDocument {
        path: DocPath,
        #[source]
        source: Box<automerge::AutomergeError>,
    },
    #[error("stored document path {0:?} is invalid")]
    BadStoredPath(String),
    #[error("the disk is full; the write was rolled back and nothing stored before was lost")]
    DiskFull(#[source] rusqlite::Error),
    #[error("store file i/o failed on {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("sqlite operation failed")]
    Sqlite(#[source] rusqlite::Error),
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        if e.sqlite_error_code() == Some(rusqlite::ErrorCode::DiskFull) {
            StoreError::DiskFull(e)
        } else {
            StoreError::Sqlite(e)
        }
    }
}
