//! Opening and creating a store, connection settings, and statistics.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, TransactionBehavior};

use crate::documents::CompactionPolicy;
use crate::{StoreError, format, modes};

/// Name of the database file inside a store directory.
pub const DB_FILE_NAME: &str = "gridsync.db";

/// Name of the file a new store is built in before it is moved into place, so that a crash
/// during creation never leaves a half-made `gridsync.db` behind.
const CREATING_FILE_NAME: &str = "gridsync.db.creating";

/// Prepared statements kept per connection; every statement of the store fits.
const STATEMENT_CACHE: usize = 32;

/// A node's durable store: documents, sync states and metadata in one SQLite file.
///
/// Every method that writes commits one transaction and returns only once SQLite has
/// fsynced it (WAL mode, `synchronous=FULL`).
pub struct Store {
    /// The single connection; the store is used from one blocking thread.
    pub(crate) conn: Connection,
    /// `dir/gridsync.db`, for error messages and statistics.
    pub(crate) db_path: PathBuf,
    /// When an append triggers compaction of its document.
    pub(crate) policy: CompactionPolicy,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("db_path", &self.db_path)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

/// Sizes of a store, for the dashboard and the benchmarks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StoreStats {
    /// Number of documents.
    pub documents: u64,
    /// Incremental chunks not yet folded into a snapshot.
    pub chunks: u64,
    /// Bytes of all snapshots.
    pub snapshot_bytes: u64,
    /// Bytes of all pending chunks.
    pub chunk_bytes: u64,
    /// Size on disk of the database file plus its write-ahead log.
    pub file_bytes: u64,
}

impl Store {
    /// Creates a new store in `dir` (creating the directory, mode 0700); refuses if one
    /// exists.
    ///
    /// The database is built under a temporary name and linked into place only when
    /// complete, so `gridsync.db` either does not exist or is a whole store. It is mode 0600
    /// from its first instant, and so are its log and index (see `modes`).
    pub fn create(dir: &Path) -> Result<Store, StoreError> {
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| StoreError::Io { path, source }
        };
        modes::create_private_dir(dir).map_err(io(dir))?;
        let db_path = dir.join(DB_FILE_NAME);
        if db_path.exists() {
            return Err(StoreError::AlreadyExists(db_path));
        }
        let creating = dir.join(CREATING_FILE_NAME);
        // A leftover from a crashed create carries our own temporary name: safe to remove.
        for suffix in ["", "-journal", "-wal", "-shm"] {
            let mut name = creating.clone().into_os_string();
            name.push(suffix);
            match std::fs::remove_file(&name) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(io(Path::new(&name))(e));
                }
                _ => {}
            }
        }
        // Ours, with mode 0600, before SQLite opens it: SQLite would create it 0644 less the
        // umask, and gives the journal and log it creates the database's mode.
        drop(modes::create_private_file(&creating).map_err(io(&creating))?);
        {
            let mut conn = Connection::open_with_flags(
                &creating,
                OpenFlags::SQLITE_OPEN_READ_WRITE
                    | OpenFlags::SQLITE_OPEN_CREATE
                    | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )?;
            conn.pragma_update(None, "synchronous", "FULL")?;
            let tx = conn.transaction()?;
            format::initialize(&tx)?;
            tx.commit()?;
            conn.close().map_err(|(_, e)| StoreError::from(e))?;
        }
        File::open(&creating)
            .and_then(|f| f.sync_all())
            .map_err(io(&creating))?;
        // A hard link fails instead of replacing a store that appeared meanwhile.
        match std::fs::hard_link(&creating, &db_path) {
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let _ = std::fs::remove_file(&creating);
                return Err(StoreError::AlreadyExists(db_path));
            }
            other => other.map_err(io(&db_path))?,
        }
        std::fs::remove_file(&creating).map_err(io(&creating))?;
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io(dir))?;
        Store::open(dir)
    }

    /// Opens an existing store.
    ///
    /// Refuses, with a typed error and without writing to the file, anything that is not a
    /// healthy gridsync store of this or an older format: a missing, empty, truncated,
    /// non-SQLite or foreign file, one of a newer format, or one failing `quick_check`.
    ///
    /// A directory or store file open to other users (an older version's, or a careless
    /// copy's) is first tightened to 0700 / 0600, with a warning naming it.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        let db_path = dir.join(DB_FILE_NAME);
        if !db_path.is_file() {
            return Err(StoreError::Missing(db_path));
        }
        // Before SQLite opens it: a leftover log keeps its mode (SQLite only sets the mode of
        // the files it creates).
        modes::tighten_store(dir, &db_path);
        format::inspect_header(&db_path)?;
        // No SQLITE_OPEN_CREATE: a file that vanished meanwhile is an error, not a new store.
        let mut conn = Connection::open_with_flags(
            &db_path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| format::classify(&db_path, e))?;
        conn.busy_timeout(Duration::from_secs(5))?;
        let version = format::read_version(&conn, &db_path)?;
        format::quick_check(&conn, &db_path)?;
        // WAL with synchronous=FULL fsyncs the log at every commit: an Ok is on disk.
        let mode: String = conn
            .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
            .map_err(|e| format::classify(&db_path, e))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Corrupt {
                path: db_path,
                detail: format!("cannot switch to WAL mode (journal mode is {mode})"),
            });
        }
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        if version < format::FORMAT_VERSION {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            format::migrate(&tx, &db_path, version)?;
            tx.commit()?;
        }
        Ok(Store {
            conn,
            db_path,
            policy: CompactionPolicy::default(),
        })
    }

    /// A second connection to this (already opened, checked and migrated) store, for a
    /// thread that commits writes while this connection keeps serving reads. WAL mode lets
    /// the two work at once; SQLite serializes their writes (each waits up to the busy
    /// timeout for the other's).
    pub fn open_another_connection(&self) -> Result<Store, StoreError> {
        let conn = Connection::open_with_flags(
            &self.db_path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| format::classify(&self.db_path, e))?;
        conn.busy_timeout(Duration::from_secs(5))?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        Ok(Store {
            conn,
            db_path: self.db_path.clone(),
            policy: self.policy,
        })
    }

    /// Opens the store in `dir`, creating it if there is none.
    pub fn open_or_create(dir: &Path) -> Result<Store, StoreError> {
        if dir.join(DB_FILE_NAME).exists() {
            return Store::open(dir);
        }
        match Store::create(dir) {
            Err(StoreError::AlreadyExists(_)) => Store::open(dir),
            other => other,
        }
    }

    /// Writes a consistent, compacted copy of the whole store to `target` (which must not
    /// exist), while the store stays in use: SQLite's `VACUUM INTO`, one read transaction.
    /// The copy is a complete store: [`Store::restore`] installs it in a data directory.
    /// It holds the device's keys, so it is mode 0600; on failure no file is left behind.
    pub fn backup_to(&self, target: &Path) -> Result<(), StoreError> {
        let io = |source| StoreError::Io {
            path: target.to_owned(),
            source,
        };
        let target_str = target
            .to_str()
            .ok_or_else(|| io(std::io::Error::other("the path is not valid UTF-8")))?;
        // Created empty with mode 0600 first (`VACUUM INTO` accepts an empty file): SQLite
        // would create it 0644 less the umask, readable by everyone for as long as it lives.
        let file = match modes::create_private_file(target) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(StoreError::AlreadyExists(target.to_owned()));
            }
            Err(e) => return Err(io(e)),
        };
        let written = self
            .conn
            .execute("VACUUM INTO ?1", [target_str])
            .map_err(StoreError::from)
            .and_then(|_| file.sync_all().map_err(io));
        if written.is_err() {
            // The file is ours (created above) and incomplete: a half backup must not look
            // like one.
            let _ = std::fs::remove_file(target);
        }
        written
    }

    /// Installs a backup made by [`Store::backup_to`] as the store of `dir` (which must not
    /// hold one yet) and opens it; a file that is not a sound gridsync store is refused and
    /// nothing is left behind.
    pub fn restore(backup: &Path, dir: &Path) -> Result<Store, StoreError> {
        let db_path = dir.join(DB_FILE_NAME);
        if db_path.exists() {
            return Err(StoreError::AlreadyExists(db_path));
        }
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| StoreError::Io { path, source }
        };
        modes::create_private_dir(dir).map_err(io(dir))?;
        let staging = dir.join(format!("{DB_FILE_NAME}.restoring"));
        let mut source = File::open(backup).map_err(io(backup))?;
        // Not `fs::copy`, which gives the copy the backup's mode: the store is 0600 whatever
        // the backup went through. A leftover of a crashed restore carries our own name.
        match std::fs::remove_file(&staging) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(&staging)(e)),
            _ => {}
        }
        let mut copy = modes::create_private_file(&staging).map_err(io(&staging))?;
        let copied = std::io::copy(&mut source, &mut copy)
            .map_err(io(backup))
            .and_then(|_| copy.sync_all().map_err(io(&staging)))
            .and_then(|_| std::fs::rename(&staging, &db_path).map_err(io(&db_path)));
        if let Err(e) = copied {
            let _ = std::fs::remove_file(&staging);
            return Err(e);
        }
        match Store::open(dir) {
            Ok(store) => Ok(store),
            Err(e) => {
                let _ = std::fs::remove_file(&db_path);
                Err(e)
            }
        }
    }

    /// Path of the database file.
    pub fn db_path(&self) -> &Path {
        &self.db_path
    }

    /// Counts documents, chunks and bytes.
    pub fn stats(&self) -> Result<StoreStats, StoreError> {
        let (documents, chunks, snapshot_bytes, chunk_bytes) = self
            .conn
            .prepare_cached(
                "SELECT COUNT(*), COALESCE(SUM(chunk_count), 0), COALESCE(SUM(snapshot_bytes), 0),
                        COALESCE(SUM(chunk_bytes), 0)
                 FROM documents",
            )?
            .query_row([], crate::documents::four_counts)?;
        let mut wal = self.db_path.clone().into_os_string();
        wal.push("-wal");
        let file_len = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
        let as_u64 = |n: i64| u64::try_from(n).unwrap_or(0);
        Ok(StoreStats {
            documents: as_u64(documents),
            chunks: as_u64(chunks),
            snapshot_bytes: as_u64(snapshot_bytes),
            chunk_bytes: as_u64(chunk_bytes),
            file_bytes: file_len(&self.db_path) + file_len(Path::new(&wal)),
        })
    }
}
