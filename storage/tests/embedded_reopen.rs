//! The embedded store keeps its key index in memory and rebuilds it from the
//! history when it opens: a reopened store answers every read as before.

use std::time::Duration;

use bytes::Bytes;
use storage::{EmbeddedConfig, EmbeddedStore, Event, RangeRequest, Revision, StorageError, Store, WatchMessage};

fn val(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

fn at(revision: Option<Revision>) -> RangeRequest {
    RangeRequest { prefix: "/registry/r/".into(), revision, ..Default::default() }
}

/// The values a range returns.
async fn values(s: &EmbeddedStore, req: &RangeRequest) -> Vec<Bytes> {
    s.range(req).await.unwrap().kvs.into_iter().map(|kv| kv.value).collect()
}

/// Waits until the writer of a dropped store has let go of the file.
async fn reopen(dir: &std::path::Path) -> EmbeddedStore {
    tokio::time::sleep(Duration::from_millis(50)).await;
    EmbeddedStore::open(&EmbeddedConfig::new(dir)).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reopened_store_reads_every_revision_as_before() {
    let dir = tempfile::tempdir().unwrap();
    let s = EmbeddedStore::open(&EmbeddedConfig::new(dir.path())).unwrap();
    let a1 = s.create("/registry/r/a", val("a1")).await.unwrap();
    let b1 = s.create("/registry/r/b", val("b1")).await.unwrap();
    let a2 = s.update("/registry/r/a", val("a2"), Some(a1.mod_revision)).await.unwrap();
    let gone = s.delete("/registry/r/b", None).await.unwrap();
    let c1 = s.create("/registry/r/c", val("c1")).await.unwrap();
    let before: Vec<Vec<Bytes>> = {
        let mut all = Vec::new();
        for rev in a1.mod_revision..=c1.mod_revision {
            all.push(values(&s, &at(Some(rev))).await);
        }
        all
    };
    drop(s);

    let s = reopen(dir.path()).await;
    for (rev, expected) in (a1.mod_revision..=c1.mod_revision).zip(&before) {
        assert_eq!(&values(&s, &at(Some(rev))).await, expected, "at revision {rev}");
    }
    assert_eq!(values(&s, &at(Some(b1.mod_revision))).await, [val("a1"), val("b1")]);
    assert_eq!(s.get("/registry/r/a").await.unwrap().map(|kv| kv.mod_revision), Some(a2.mod_revision));
    assert_eq!(s.get("/registry/r/b").await.unwrap(), None);
    // A limited page counts what follows it.
    let page = s.range(&RangeRequest { limit: 1, ..at(None) }).await.unwrap();
    assert_eq!((page.kvs.len(), page.remaining), (1, 1));
    // Conditions see the reopened state.
    assert!(matches!(s.create("/registry/r/a", val("x")).await, Err(StorageError::AlreadyExists { .. })));
    assert!(matches!(
        s.update("/registry/r/a", val("x"), Some(a1.mod_revision)).await,
        Err(StorageError::Conflict { .. })
    ));
    // A key created again after its delete starts a new life.
    let b2 = s.create("/registry/r/b", val("b2")).await.unwrap();
    assert_eq!(b2.create_revision, b2.mod_revision);
    // Replayed events carry the previous values from the history.
    let mut w = s.watch("/registry/r/", a1.mod_revision).await.unwrap();
    let mut events = Vec::new();
    while events.len() < 5 {
        match tokio::time::timeout(Duration::from_secs(5), w.recv()).await {
            Ok(Some(Ok(WatchMessage::Events(e)))) => events.extend(e),
            Ok(Some(Ok(WatchMessage::Progress(_)))) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    match &events[..] {
        [Event::Put { prev: None, .. }, Event::Put { prev: Some(pa), .. }, Event::Delete { prev: Some(pb), revision, .. }, Event::Put { prev: None, .. }, Event::Put { prev: None, kv }] =>
        {
            assert_eq!((pa.value.clone(), pb.value.clone()), (val("a1"), val("b1")));
            assert_eq!(*revision, gone.revision);
            assert_eq!(kv.value, val("b2"));
        }
        other => panic!("unexpected events {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_survives_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let s = EmbeddedStore::open(&EmbeddedConfig::new(dir.path())).unwrap();
    let a1 = s.create("/registry/r/a", val("a1")).await.unwrap();
    s.create("/registry/r/b", val("b1")).await.unwrap();
    let a2 = s.update("/registry/r/a", val("a2"), None).await.unwrap();
    s.delete("/registry/r/b", None).await.unwrap();
    let keep = s.create("/registry/r/c", val("c1")).await.unwrap().mod_revision;
    s.compact(keep).await.unwrap();
    drop(s);

    let s = reopen(dir.path()).await;
    assert!(matches!(s.range(&at(Some(a1.mod_revision))).await, Err(StorageError::Compacted { .. })));
    assert_eq!(values(&s, &at(Some(keep))).await, [val("a2"), val("c1")]);
    assert!(matches!(s.compact(a2.mod_revision).await, Err(StorageError::Compacted { .. })));
    // The deleted key's tombstone is gone: it is created anew.
    let b2 = s.create("/registry/r/b", val("b2")).await.unwrap();
    assert_eq!(b2.create_revision, b2.mod_revision);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_with_the_old_key_index_opens() {
    let dir = tempfile::tempdir().unwrap();
    let s = EmbeddedStore::open(&EmbeddedConfig::new(dir.path())).unwrap();
    let a = s.create("/registry/r/a", val("a1")).await.unwrap();
    drop(s);
    tokio::time::sleep(Duration::from_millis(50)).await;
    // Earlier versions kept an index by key on disk.
    let conn = rusqlite::Connection::open(dir.path().join("store.sqlite")).unwrap();
    conn.execute_batch("CREATE UNIQUE INDEX history_by_key ON history(key, rev);").unwrap();
    drop(conn);

    let s = reopen(dir.path()).await;
    assert_eq!(s.get("/registry/r/a").await.unwrap().map(|kv| kv.mod_revision), Some(a.mod_revision));
    s.update("/registry/r/a", val("a2"), Some(a.mod_revision)).await.unwrap();
    assert_eq!(values(&s, &at(None)).await, [val("a2")]);
}
