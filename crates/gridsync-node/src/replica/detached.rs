//! Reading documents outside the replica lock, without loading them into its cache: what the
//! office's first aggregation does with every building of a street (20,000 documents would
//! otherwise be loaded one at a time under the lock, evicting each other from the cache).
//!
//! [`Replica::read_detached`] takes, under the lock, what is quick to take: the document
//! itself when it is loaded (it may be ahead of the store: changes staged and not yet
//! committed), else its stored bytes, plus its arrivals for the clock rule. A document that
//! is not loaded is durable as stored (the cache unloads only documents whose state is
//! committed), so its bytes are its current state. [`DetachedRead::load`] then does the slow
//! part, on any thread.

use automerge::Automerge;
use gridsync_model::FirstSight;
use gridsync_proto::DocPath;
use gridsync_store::StoreError;

use super::{Replica, ReplicaError};

/// One document, ready to be loaded and read outside the replica lock.
pub struct DetachedRead {
    path: DocPath,
    source: Source,
    /// When this node first held each change (provenance).
    arrivals: Vec<([u8; 32], i64)>,
}

enum Source {
    /// A copy of the loaded document (boxed: the other variant is a pointer's size).
    Loaded(Box<Automerge>),
    /// The stored bytes of a document not loaded.
    Stored(Vec<u8>),
}

impl DetachedRead {
    /// The document's path.
    pub fn path(&self) -> &DocPath {
        &self.path
    }

    /// The document, and when this node first saw each of its changes as of `now_ms` (see
    /// [`Replica::first_sight`]).
    pub fn load(self, now_ms: i64) -> Result<(Automerge, FirstSight), StoreError> {
        let doc = match self.source {
            Source::Loaded(doc) => *doc,
            Source::Stored(bytes) => gridsync_store::load_document_bytes(&self.path, &bytes)?,
        };
        let sight = FirstSight::of_document(&doc, self.arrivals, now_ms);
        Ok((doc, sight))
    }
}

impl Replica {
    /// What it takes to read the document at `path` outside the lock (`None` when it is not
    /// held). Loads nothing into the cache.
    pub fn read_detached(&mut self, path: &DocPath) -> Result<Option<DetachedRead>, ReplicaError> {
        self.recover_failed_writes();
        let source = match self.docs.get(path) {
            Some(doc) => Source::Loaded(Box::new(doc.clone())),
            None => match self.store.doc_bytes(path)? {
                Some(bytes) => Source::Stored(bytes),
                None => return Ok(None),
            },
        };
        let arrivals = self.store.first_received(path)?;
        Ok(Some(DetachedRead {
            path: path.clone(),
            source,
            arrivals,
        }))
    }
}
