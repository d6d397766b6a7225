//! Documents, sync states and metadata come back as they were stored.

use automerge::Automerge;
use gridsync_proto::NodeId;
use gridsync_store::{CompactionPolicy, Store, StoreError};

use crate::support::{get, path, put};

#[test]
fn documents_sync_states_and_meta_survive_reopening() {
    let dir = tempfile::tempdir().expect("temp dir");
    let a = path("panhuo/grid-017/bldg-12");
    let b = path("panhuo/grid-017/bldg-02");
    let peer = NodeId::parse("captain-7").expect("valid node id");
    {
        let mut store = Store::create(dir.path()).expect("create");
        assert!(matches!(
            Store::create(dir.path()),
            Err(StoreError::AlreadyExists(_))
        ));
        let mut doc_a = Automerge::new();
        let mut doc_b = Automerge::new();
        for i in 0..10 {
            store
                .append(&a, &put(&mut doc_a, &format!("k{i}"), "a"))
                .expect("append");
        }
        let batch = vec![
            (b.clone(), put(&mut doc_b, "x", "1")),
            (b.clone(), put(&mut doc_b, "y", "2")),
            (a.clone(), put(&mut doc_a, "z", "3")),
        ];
        store.append_batch(&batch).expect("append batch");
        store
            .put_sync_states(&peer, &[(a.clone(), vec![1, 2, 3]), (b.clone(), vec![4])])
            .expect("sync states");
        store
            .put_sync_states(&peer, &[(a.clone(), vec![9])])
            .expect("sync states replaced");
        store.put_meta("node-id", b"office-1").expect("meta");
        store
            .put_meta("node-id", b"office-2")
            .expect("meta replaced");
    }
    let store = Store::open(dir.path()).expect("reopen");
    assert_eq!(
        store.doc_paths().expect("paths"),
        vec![b.clone(), a.clone()]
    );
    assert!(store.has_doc(&a).expect("has"));
    assert!(!store.has_doc(&path("panhuo/none")).expect("has"));
    assert!(
        store
            .load_doc(&path("panhuo/none"))
            .expect("load")
            .is_none()
    );
    let doc_a = store.load_doc(&a).expect("load").expect("present");
    for i in 0..10 {
        assert_eq!(get(&doc_a, &format!("k{i}")).as_deref(), Some("a"));
    }
    assert_eq!(get(&doc_a, "z").as_deref(), Some("3"));
    let doc_b = store.load_doc(&b).expect("load").expect("present");
    assert_eq!(get(&doc_b, "y").as_deref(), Some("2"));
    assert_eq!(store.sync_state(&peer, &a).expect("state"), Some(vec![9]));
    assert_eq!(store.sync_state(&peer, &b).expect("state"), Some(vec![4]));
    let stranger = NodeId::parse("stranger").expect("valid node id");
    assert_eq!(store.sync_state(&stranger, &a).expect("state"), None);
    assert_eq!(
        store.get_meta("node-id").expect("meta"),
        Some(b"office-2".to_vec())
    );
    assert_eq!(store.get_meta("absent").expect("meta"), None);
    let stats = store.stats().expect("stats");
    assert_eq!(stats.documents, 2);
    assert_eq!(stats.chunks, 13);
    assert!(stats.file_bytes > 0);
}

#[test]
fn automatic_and_explicit_compaction_keep_content() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut store = Store::create(dir.path()).expect("create");
    store.set_compaction_policy(CompactionPolicy {
        max_chunks: 8,
        snapshot_factor: 1 << 20,
        min_chunk_bytes: 1 << 30,
    });
    let p = path("street/plan");
    let mut doc = Automerge::new();
    for i in 0..20 {
        store
            .append(&p, &put(&mut doc, &format!("k{i}"), &format!("v{i}")))
            .expect("append");
    }
    let stats = store.stats().expect("stats");
    assert!(stats.chunks <= 8, "auto compaction ran: {stats:?}");
    assert!(stats.snapshot_bytes > 0);
    let loaded = store.load_doc(&p).expect("load").expect("present");
    assert_eq!(loaded.get_heads(), doc.get_heads());
    for i in 0..20 {
        assert_eq!(get(&loaded, &format!("k{i}")), Some(format!("v{i}")));
    }

    // An explicit compaction with a stale copy merges what the store has beyond it.
    let stale = loaded.clone();
    store
        .append(&p, &put(&mut doc, "late", "yes"))
        .expect("append");
    store.compact(&p, &stale).expect("compact");
    assert_eq!(store.stats().expect("stats").chunks, 0);
    let reloaded = store.load_doc(&p).expect("load").expect("present");
    assert_eq!(get(&reloaded, "late").as_deref(), Some("yes"));
    assert_eq!(reloaded.get_heads(), doc.get_heads());

    // Compacting a document the store never saw creates it.
    let mut fresh = Automerge::new();
    put(&mut fresh, "hello", "world");
    let q = path("street/devices");
    store.compact(&q, &fresh).expect("compact new");
    let loaded = store.load_doc(&q).expect("load").expect("present");
    assert_eq!(get(&loaded, "hello").as_deref(), Some("world"));
}

#[test]
fn a_chunk_automerge_cannot_load_is_a_typed_error_naming_the_document() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut store = Store::create(dir.path()).expect("create");
    let p = path("panhuo/grid-001/bldg-1");
    let mut doc = Automerge::new();
    store.append(&p, &put(&mut doc, "ok", "1")).expect("append");
    store
        .append(&p, b"definitely not automerge")
        .expect("append stores bytes");
    match store.load_doc(&p) {
        Err(StoreError::CorruptDocument { path: named, .. }) => assert_eq!(named, p),
        other => panic!("expected CorruptDocument, got {other:?}"),
    }
    // Other documents are unaffected, and automatic compaction does not trip over it.
    let q = path("panhuo/grid-001/bldg-2");
    store.set_compaction_policy(CompactionPolicy {
        max_chunks: 1,
        snapshot_factor: 1,
        min_chunk_bytes: 0,
    });
    store
        .append(&p, &put(&mut doc, "more", "2"))
        .expect("append to the bad document");
    let mut other = Automerge::new();
    store
        .append(&q, &put(&mut other, "a", "b"))
        .expect("append");
    store
        .append(&q, &put(&mut other, "c", "d"))
        .expect("append");
    let loaded = store.load_doc(&q).expect("load").expect("present");
    assert_eq!(get(&loaded, "c").as_deref(), Some("d"));
}

#[test]
fn open_or_create_creates_once_then_opens() {
    let dir = tempfile::tempdir().expect("temp dir");
    let nested = dir.path().join("a/b");
    assert!(matches!(Store::open(&nested), Err(StoreError::Missing(_))));
    {
        let mut store = Store::open_or_create(&nested).expect("create");
        store.put_meta("k", b"v").expect("meta");
    }
    let store = Store::open_or_create(&nested).expect("open");
    assert_eq!(store.get_meta("k").expect("meta"), Some(b"v".to_vec()));
}
