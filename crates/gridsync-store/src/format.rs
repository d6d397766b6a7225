//! The store's on-disk format: header inspection before SQLite touches a file, the schema,
//! the format marker and version, and the migration hook.
//!
//! A file is inspected byte by byte before it is handed to SQLite, because SQLite happily
//! treats an empty file as a new database and would write its own header over a foreign one
//! when we switch on WAL mode. Only a file that carries our application id gets that far.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use rusqlite::{Connection, ErrorCode, Transaction};

use crate::StoreError;

/// `PRAGMA application_id` of every gridsync store: the ASCII bytes "GSYN".
pub const APPLICATION_ID: i32 = 0x4753_594E;

/// The store format this build writes. Older formats are migrated on open, newer ones refused.
pub const FORMAT_VERSION: i64 = 3;

/// The application name kept in the `format` table beside the version.
pub(crate) const APPLICATION_NAME: &str = "gridsync-store";

/// The first 16 bytes of every SQLite 3 database file.
const SQLITE_MAGIC: &[u8; 16] = b"SQLite format 3\0";

/// Size of the SQLite database header.
const HEADER_LEN: usize = 100;

/// Schema of format version 1. Documents keep their sizes in their row so the compaction
/// check after an append is one upsert; snapshots live in their own table because updating
/// a row rewrites all of its overflow pages, and a snapshot can be megabytes.
const SCHEMA_V1: &str = "
CREATE TABLE format (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    application TEXT NOT NULL,
    version INTEGER NOT NULL
);
CREATE TABLE documents (
    id INTEGER PRIMARY KEY,
    path TEXT NOT NULL UNIQUE,
    snapshot_bytes INTEGER NOT NULL DEFAULT 0,
    chunk_count INTEGER NOT NULL DEFAULT 0,
    chunk_bytes INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE snapshots (
    doc_id INTEGER PRIMARY KEY REFERENCES documents(id),
    bytes BLOB NOT NULL
);
CREATE TABLE chunks (
    id INTEGER PRIMARY KEY,
    doc_id INTEGER NOT NULL REFERENCES documents(id),
    bytes BLOB NOT NULL
);
CREATE INDEX chunks_by_document ON chunks(doc_id, id);
CREATE TABLE sync_states (
    peer TEXT NOT NULL,
    path TEXT NOT NULL,
    state BLOB NOT NULL,
    PRIMARY KEY (peer, path)
);
CREATE TABLE meta (
    key TEXT PRIMARY KEY,
    value BLOB NOT NULL
);
CREATE TABLE provenance (
    path TEXT NOT NULL,
    change_hash BLOB NOT NULL,
    author TEXT NOT NULL,
    via TEXT NOT NULL,
    received_ms INTEGER NOT NULL,
    PRIMARY KEY (path, change_hash)
);
CREATE INDEX provenance_by_via ON provenance(via);
";

/// Format 2 over format 1: each document's heads kept beside it (so a node knows what it
/// holds without loading every document), and a table of values derived from documents
/// (the office's building summaries), each keyed by what it was derived from.
const SCHEMA_V2_ADDITIONS: &str = "
ALTER TABLE documents ADD COLUMN heads BLOB;
CREATE TABLE derived (
    kind TEXT NOT NULL,
    path TEXT NOT NULL,
    source_key BLOB NOT NULL,
    value BLOB NOT NULL,
    PRIMARY KEY (kind, path)
);
";

/// Format 3 over format 2: change signatures, one per document and actor (the signature on
/// the actor's newest change held), kept to hand onward with the changes they vouch for.
const SCHEMA_V3_ADDITIONS: &str = "
CREATE TABLE change_signatures (
    path TEXT NOT NULL,
    actor BLOB NOT NULL,
    seq INTEGER NOT NULL,
    hash BLOB NOT NULL,
    signature BLOB NOT NULL,
    PRIMARY KEY (path, actor)
);
";

/// Migrations from an older format version to the next one: `(from_version, sql)`.
const MIGRATIONS: &[(i64, &str)] = &[(1, SCHEMA_V2_ADDITIONS), (2, SCHEMA_V3_ADDITIONS)];

/// What the header says about a file that passed inspection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HeaderFacts {
    pub page_size: u64,
}

/// Checks the raw header of `db_path` without opening it with SQLite.
///
/// Refuses an empty or short file, a non-SQLite file, a SQLite file without our application
/// id, and a file shorter than its header says (when no WAL or journal could legitimately
/// hold the missing pages).
pub(crate) fn inspect_header(db_path: &Path) -> Result<HeaderFacts, StoreError> {
    let io = |source| StoreError::Io {
        path: db_path.to_owned(),
        source,
    };
    let mut file = File::open(db_path).map_err(io)?;
    let file_len = file.metadata().map_err(io)?.len();
    let mut header = Vec::with_capacity(HEADER_LEN);
    file.by_ref()
        .take(HEADER_LEN as u64)
        .read_to_end(&mut header)
        .map_err(io)?;
    check_header(db_path, &header, file_len, has_pending_log(db_path))
}

/// True when a non-empty WAL or rollback journal sits beside the database; then the main
/// file alone may lag behind its header and the size check does not apply.
fn has_pending_log(db_path: &Path) -> bool {
    ["-wal", "-journal"].iter().any(|suffix| {
        let mut name = db_path.as_os_str().to_owned();
        name.push(suffix);
        std::fs::metadata(PathBuf::from(name)).is_ok_and(|m| m.len() > 0)
    })
}

/// The pure part of [`inspect_header`], separated so that it can be tested on byte arrays.
pub(crate) fn check_header(
    db_path: &Path,
    header: &[u8],
    file_len: u64,
    pending_log: bool,
) -> Result<HeaderFacts, StoreError> {
    let path = db_path.to_owned();
    if header.is_empty() {
        return Err(StoreError::Truncated {
            path,
            detail: "the file is empty".into(),
        });
    }
    if header.len() < HEADER_LEN {
        let prefix = header.len().min(SQLITE_MAGIC.len());
        return Err(if header[..prefix] == SQLITE_MAGIC[..prefix] {
            StoreError::Truncated {
                path,
                detail: format!("only {} bytes, shorter than a SQLite header", header.len()),
            }
        } else {
            StoreError::NotSqlite {
                path,
                detail: format!("{} bytes without the SQLite magic", header.len()),
            }
        });
    }
    if &header[..16] != SQLITE_MAGIC {
        return Err(StoreError::NotSqlite {
            path,
            detail: "the file does not start with the SQLite magic".into(),
        });
    }
    let application_id = i32::from_be_bytes([header[68], header[69], header[70], header[71]]);
    if application_id != APPLICATION_ID {
        return Err(StoreError::Foreign {
            path,
            detail: format!(
                "application id {application_id:#010x}, expected {APPLICATION_ID:#010x}"
            ),
        });
    }
    let page_size = match u16::from_be_bytes([header[16], header[17]]) {
        1 => 65536,
        n if n >= 512 && n.is_power_of_two() => u64::from(n),
        n => {
            return Err(StoreError::Corrupt {
                path,
                detail: format!("invalid page size {n} in the header"),
            });
        }
    };
    if !file_len.is_multiple_of(page_size) {
        return Err(StoreError::Truncated {
            path,
            detail: format!("{file_len} bytes is not a whole number of {page_size}-byte pages"),
        });
    }
    let be32 = |at: usize| {
        u32::from_be_bytes([header[at], header[at + 1], header[at + 2], header[at + 3]])
    };
    let change_counter = be32(24);
    let header_pages = u64::from(be32(28));
    let valid_for = be32(92);
    // The in-header size is only meaningful when it was written with the current change
    // counter (SQLite's own rule), and only authoritative when no log holds newer pages.
    if !pending_log && valid_for == change_counter && header_pages != 0 {
        let expected = header_pages * page_size;
        if file_len < expected {
            return Err(StoreError::Truncated {
                path,
                detail: format!("{file_len} bytes, the header says {expected}"),
            });
        }
    }
    Ok(HeaderFacts { page_size })
}

/// Writes the schema and the format marker into a brand-new database, in one transaction.
pub(crate) fn initialize(tx: &Transaction<'_>) -> Result<(), StoreError> {
    tx.pragma_update(None, "application_id", APPLICATION_ID)?;
    tx.pragma_update(None, "user_version", FORMAT_VERSION)?;
    tx.execute_batch(SCHEMA_V1)?;
    tx.execute_batch(SCHEMA_V2_ADDITIONS)?;
    tx.execute_batch(SCHEMA_V3_ADDITIONS)?;
    tx.execute(
        "INSERT INTO format (id, application, version) VALUES (1, ?1, ?2)",
        (APPLICATION_NAME, FORMAT_VERSION),
    )?;
    Ok(())
}

/// Reads the format marker of an opened file and returns its version, refusing foreign and
/// newer files. Read-only, so a refused file is left as it was.
pub(crate) fn read_version(conn: &Connection, db_path: &Path) -> Result<i64, StoreError> {
    let application_id: i32 = conn
        .pragma_query_value(None, "application_id", |row| row.get(0))
        .map_err(|e| classify(db_path, e))?;
    if application_id != APPLICATION_ID {
        return Err(StoreError::Foreign {
            path: db_path.to_owned(),
            detail: format!("application id {application_id:#010x}"),
        });
    }
    let has_format_table: bool = conn
        .query_row(
            "SELECT EXISTS (SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = 'format')",
            [],
            |row| row.get(0),
        )
        .map_err(|e| classify(db_path, e))?;
    if !has_format_table {
        return Err(StoreError::Foreign {
            path: db_path.to_owned(),
            detail: "no gridsync format table".into(),
        });
    }
    let (application, version): (String, i64) = conn
        .query_row(
            "SELECT application, version FROM format WHERE id = 1",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .map_err(|e| match e {
            rusqlite::Error::QueryReturnedNoRows => StoreError::Corrupt {
                path: db_path.to_owned(),
                detail: "the format table is empty".into(),
            },
            e => classify(db_path, e),
        })?;
    if application != APPLICATION_NAME {
        return Err(StoreError::Foreign {
            path: db_path.to_owned(),
            detail: format!("format marker names application {application:?}"),
        });
    }
    if version > FORMAT_VERSION {
        return Err(StoreError::NewerFormat {
            path: db_path.to_owned(),
            found: version,
            supported: FORMAT_VERSION,
        });
    }
    if version < 1 {
        return Err(StoreError::Corrupt {
            path: db_path.to_owned(),
            detail: format!("invalid format version {version}"),
        });
    }
    Ok(version)
}

/// Runs SQLite's `quick_check` (O(N) over the file, but skips the index cross-checks of
/// `integrity_check`) and turns any finding into [`StoreError::Corrupt`].
pub(crate) fn quick_check(conn: &Connection, db_path: &Path) -> Result<(), StoreError> {
    let findings = (|| {
        let mut statement = conn.prepare("PRAGMA quick_check(5)")?;
        let rows = statement.query_map([], |row| row.get::<_, String>(0))?;
        rows.collect::<Result<Vec<_>, _>>()
    })()
    .map_err(|e| classify(db_path, e))?;
    if findings.len() == 1 && findings[0] == "ok" {
        Ok(())
    } else {
        Err(StoreError::Corrupt {
            path: db_path.to_owned(),
            detail: findings.join("; "),
        })
    }
}

/// Brings a store of an older format up to [`FORMAT_VERSION`], applying each step in turn
/// inside `tx`, so a crash mid-migration leaves the old format intact.
pub(crate) fn migrate(tx: &Transaction<'_>, db_path: &Path, from: i64) -> Result<(), StoreError> {
    let mut version = from;
    while version < FORMAT_VERSION {
        let Some((_, sql)) = MIGRATIONS
            .iter()
            .find(|(step_from, _)| *step_from == version)
        else {
            return Err(StoreError::Corrupt {
                path: db_path.to_owned(),
                detail: format!("no migration from format version {version}"),
            });
        };
        tracing::info!(from = version, to = version + 1, "migrating store format");
        tx.execute_batch(sql)?;
        version += 1;
    }
    tx.execute("UPDATE format SET version = ?1 WHERE id = 1", [version])?;
    tx.pragma_update(None, "user_version", version)?;
    Ok(())
}

/// Maps SQLite's complaints about a file's content to the typed open errors.
pub(crate) fn classify(db_path: &Path, e: rusqlite::Error) -> StoreError {
    match e.sqlite_error_code() {
        Some(ErrorCode::NotADatabase) => StoreError::NotSqlite {
            path: db_path.to_owned(),
            detail: e.to_string(),
        },
        Some(ErrorCode::DatabaseCorrupt) => StoreError::Corrupt {
            path: db_path.to_owned(),
            detail: e.to_string(),
        },
        _ => StoreError::from(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header_with(application_id: i32, page_size: u16, pages: u32) -> Vec<u8> {
        let mut header = vec![0u8; HEADER_LEN];
        header[..16].copy_from_slice(SQLITE_MAGIC);
        header[16..18].copy_from_slice(&page_size.to_be_bytes());
        header[24..28].copy_from_slice(&7u32.to_be_bytes());
        header[28..32].copy_from_slice(&pages.to_be_bytes());
        header[68..72].copy_from_slice(&application_id.to_be_bytes());
        header[92..96].copy_from_slice(&7u32.to_be_bytes());
        header
    }

    #[test]
    fn accepts_a_consistent_header() {
        let header = header_with(APPLICATION_ID, 4096, 3);
        let facts = check_header(Path::new("x"), &header, 3 * 4096, false);
        assert_eq!(facts.ok(), Some(HeaderFacts { page_size: 4096 }));
    }

    #[test]
    fn refuses_short_empty_foreign_and_truncated_files() {
        let p = Path::new("x");
        assert!(matches!(
            check_header(p, b"", 0, false),
            Err(StoreError::Truncated { .. })
        ));
        assert!(matches!(
            check_header(p, b"SQLite f", 8, false),
            Err(StoreError::Truncated { .. })
        ));
        assert!(matches!(
            check_header(p, b"hello", 5, false),
            Err(StoreError::NotSqlite { .. })
        ));
        let foreign = header_with(0, 4096, 3);
        assert!(matches!(
            check_header(p, &foreign, 3 * 4096, false),
            Err(StoreError::Foreign { .. })
        ));
        let ours = header_with(APPLICATION_ID, 4096, 3);
        assert!(matches!(
            check_header(p, &ours, 2 * 4096, false),
            Err(StoreError::Truncated { .. })
        ));
        assert!(matches!(
            check_header(p, &ours, 3 * 4096 - 10, true),
            Err(StoreError::Truncated { .. })
        ));
        // With a WAL beside it, a short main file is legitimate.
        assert!(check_header(p, &ours, 2 * 4096, true).is_ok());
        let bad_page = header_with(APPLICATION_ID, 1000, 3);
        assert!(matches!(
            check_header(p, &bad_page, 3000, false),
            Err(StoreError::Corrupt { .. })
        ));
    }
}
