//! gridsync-store: the durable local store of a node.
//!
//! It keeps three things in one SQLite file (`gridsync.db`): the automerge documents the node
//! holds (a snapshot plus the incremental chunks appended since), the per-(peer, document)
//! automerge sync states that make reconnection cheap, and small key-value metadata such as
//! the node's identity and configuration. The API is synchronous; the node calls it from a
//! blocking thread.
//!
//! Why SQLite (through rusqlite, bundled) rather than redb: its atomic commit is proven by
//! decades of crash testing, a field laptop's store can be inspected with the stock `sqlite3`
//! shell when something goes wrong, and the office's tables can later be mirrored into
//! PostgreSQL with ordinary SQL. The database runs in WAL mode with `synchronous=FULL`, so
//! every commit fsyncs the write-ahead log before it returns: a write the store reports `Ok`
//! survives a power cut. (`synchronous=NORMAL` would skip that fsync and lose the last
//! commits on power loss, which breaks the promise made to the volunteer.) One append is
//! therefore one `fdatasync`: about 1,300-1,500 appends/s on this machine's disk when idle,
//! and only what the disk allows when it is busy; callers with many records use
//! [`Store::append_batch`] (one fsync for the lot).
//!
//! Opening checks the file header itself, then runs `PRAGMA quick_check`, which reads the
//! whole file: about 40 ms for a 54 MB store with a warm page cache (gridsync-bench's `store_open`).
//!
//! Layout: `format` (file header inspection, schema, format version and migrations),
//! `store` (opening, creating, statistics), `documents` (append, load, compaction),
//! `sync_states` and `meta` (small keyed blobs), `contents` (a store's rows, for comparing
//! two stores), `modes` (owner-only directory and files: the
//! store holds the device's keys), `error` (the typed [`StoreError`]).

mod contents;
mod derived;
mod documents;
mod error;
mod format;
mod meta;
mod modes;
mod provenance;
mod signatures;
mod store;
mod sync_states;
mod write_batch;

pub use derived::DerivedEntry;
pub use documents::{CompactionPolicy, StoredHeads, load_document_bytes};
pub use error::StoreError;
pub use format::{APPLICATION_ID, FORMAT_VERSION};
pub use provenance::{ArrivalCounts, ChangeOrigin};
pub use store::{DB_FILE_NAME, Store, StoreStats};
pub use write_batch::{DocumentAppend, SyncStateWrite, WriteBatch};
