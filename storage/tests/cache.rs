//! The watch cache, on both backends.

mod common;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::{harness, Backend};
use storage::cache::{EventKind, WatchStart};
use storage::{
    CacheConfig, CacheWatcher, ListOptions, ReadRevision, StorageError, WatchCache, WatchItem, WatchRequest,
};

fn val(s: &str) -> Bytes {
    Bytes::from(s.to_string())
}

fn list_all(prefix: &str, revision: ReadRevision) -> ListOptions {
    ListOptions { prefix: prefix.into(), start: None, limit: 0, revision }
}

fn watch_after(prefix: &str, r: i64) -> WatchRequest {
    WatchRequest { prefix: prefix.into(), start: WatchStart::After(r) }
}

/// The next event, skipping bookmarks.
async fn next_event(w: &mut CacheWatcher) -> Arc<storage::CacheEvent> {
    loop {
        match tokio::time::timeout(Duration::from_secs(10), w.recv()).await {
            Ok(Some(Ok(WatchItem::Event(e)))) => return e,
            Ok(Some(Ok(WatchItem::Bookmark(_)))) => {}
            other => panic!("expected an event, got {other:?}"),
        }
    }
}

async fn consistent_list_sees_every_acknowledged_write(b: Backend) {
    let h = harness(b).await;
    let s = &h.store;
    s.create("/registry/g/r/ns/a", val("a")).await.unwrap();
    let cache = WatchCache::start(h.store.clone(), "/registry/g/r/", CacheConfig::default()).unwrap();
    for i in 0..20 {
        let kv = s.create(&format!("/registry/g/r/ns/k{i:02}"), val("v")).await.unwrap();
        let page = cache.list(&list_all("/registry/g/r/", ReadRevision::Consistent)).await.unwrap();
        assert!(page.revision >= kv.mod_revision);
        assert!(
            page.items.iter().any(|o| o.key == kv.key),
            "a consistent list must include the write just acknowledged"
        );
    }
    // A write outside the prefix moves the store revision: consistent reads still answer (via progress).
    let other = s.create("/registry/elsewhere/x", val("x")).await.unwrap();
    let page = cache.list(&list_all("/registry/g/r/", ReadRevision::Consistent)).await.unwrap();
    assert!(page.revision >= other.mod_revision);
    // Pages with a limit and a start key, all at one revision.
    let first = cache
        .list(&ListOptions { prefix: "/registry/g/r/".into(), start: None, limit: 5, revision: ReadRevision::Any })
        .await
        .unwrap();
    assert_eq!((first.items.len(), first.remaining), (5, 16));
    let next = cache
        .list(&ListOptions {
            prefix: "/registry/g/r/".into(),
            start: Some(format!("{}\0", first.items[4].key)),
            limit: 5,
            revision: ReadRevision::Exact(first.revision),
        })
        .await
        .unwrap();
    assert_eq!((next.items.len(), next.remaining, next.revision), (5, 11, first.revision));
    // An exact older revision is served by the store.
    let old = first.revision;
    s.delete("/registry/g/r/ns/a", None).await.unwrap();
    let at_old = cache.list(&list_all("/registry/g/r/", ReadRevision::Exact(old))).await.unwrap();
    assert_eq!((at_old.revision, at_old.items.len()), (old, 21));
    let now = cache.get("/registry/g/r/ns/a", ReadRevision::Consistent).await.unwrap();
    assert_eq!(now, None);
}

async fn watchers_resume_from_the_window_or_the_store_or_get_compacted(b: Backend) {
    let h = harness(b).await;
    let s = &h.store;
    let config = CacheConfig { window: 10, ..CacheConfig::default() };
    let cache = WatchCache::start(h.store.clone(), "/registry/g/r/", config).unwrap();
    cache.list(&list_all("/registry/g/r/", ReadRevision::Consistent)).await.unwrap();
    let a = s.create("/registry/g/r/ns/a", val("1")).await.unwrap();
    let a2 = s.update("/registry/g/r/ns/a", val("2"), None).await.unwrap();
    let d = s.delete("/registry/g/r/ns/a", None).await.unwrap();
    let mut w = cache.watch(&watch_after("/registry/g/r/", a.mod_revision - 1)).await.unwrap();
    let e1 = next_event(&mut w).await;
    let e2 = next_event(&mut w).await;
    let e3 = next_event(&mut w).await;
    assert_eq!((e1.kind, e1.revision), (EventKind::Added, a.mod_revision));
    assert_eq!((e2.kind, e2.revision), (EventKind::Modified, a2.mod_revision));
    assert_eq!(e2.prev.as_deref(), Some(&a));
    assert_eq!((e3.kind, e3.revision), (EventKind::Deleted, d.revision));
    assert_eq!(e3.object.value, val("2"), "a delete carries the last value");
    assert_eq!(e3.object.mod_revision, d.revision);
    // Push the first events out of the window.
    for i in 0..12 {
        s.create(&format!("/registry/g/r/ns/k{i}"), val("v")).await.unwrap();
    }
    cache.list(&list_all("/registry/g/r/", ReadRevision::Consistent)).await.unwrap();
    // Older than the window: served from the store's history, in order, the
    // same events the cache would have sent.
    let mut old = cache.watch(&watch_after("/registry/g/r/", a.mod_revision)).await.unwrap();
    let m = next_event(&mut old).await;
    assert_eq!((m.kind, m.revision, m.prev.as_deref()), (EventKind::Modified, a2.mod_revision, Some(&a)));
    let gone = next_event(&mut old).await;
    assert_eq!((gone.kind, gone.revision, gone.object.value.clone()), (EventKind::Deleted, d.revision, val("2")));
    for i in 0..12 {
        let e = next_event(&mut old).await;
        assert_eq!((e.kind, e.object.key.clone()), (EventKind::Added, format!("/registry/g/r/ns/k{i}")));
    }
    // Once the store compacted that history: Compacted (a 410 to clients).
    s.compact(d.revision).await.unwrap();
    match cache.watch(&watch_after("/registry/g/r/", a.mod_revision)).await {
        Err(StorageError::Compacted { .. }) => {}
        other => panic!("expected Compacted, got {:?}", other.map(|_| ())),
    }
    // Initial state: one ADDED per current key, then live events.
    let mut init = cache
        .watch(&WatchRequest { prefix: "/registry/g/r/ns/".into(), start: WatchStart::WithInitialState })
        .await
        .unwrap();
    for _ in 0..12 {
        assert_eq!(next_event(&mut init).await.kind, EventKind::Added);
    }
    let live = s.update("/registry/g/r/ns/k3", val("x"), None).await.unwrap();
    let e = next_event(&mut init).await;
    assert_eq!((e.kind, e.revision), (EventKind::Modified, live.mod_revision));
    // The first watcher still follows along.
    let mut last = 0;
    while last < live.mod_revision {
        last = next_event(&mut w).await.revision;
    }
}

async fn a_stalled_watcher_is_cut_off_and_others_continue(b: Backend) {
    let h = harness(b).await;
    let s = &h.store;
    let config = CacheConfig { watcher_buffer: 32, ..CacheConfig::default() };
    let cache = WatchCache::start(h.store.clone(), "/registry/g/r/", config).unwrap();
    let start = cache.list(&list_all("/registry/g/r/", ReadRevision::Consistent)).await.unwrap().revision;
    let mut stalled = cache.watch(&watch_after("/registry/g/r/", start)).await.unwrap();
    let mut reader = cache.watch(&watch_after("/registry/g/r/", start)).await.unwrap();
    // The reader reports each revision it sees; the writer lets it catch up
    // every few writes, so only the stalled watcher can overflow (on a busy
    // machine a reader task may otherwise not run for a while).
    let (seen_tx, mut seen) = tokio::sync::mpsc::unbounded_channel();
    let reading = tokio::spawn(async move {
        let mut revs = Vec::new();
        while revs.len() < 100 {
            let r = next_event(&mut reader).await.revision;
            revs.push(r);
            let _ = seen_tx.send(r);
        }
        revs
    });
    let mut written = Vec::new();
    for i in 0..100 {
        let r = s.create(&format!("/registry/g/r/ns/k{i}"), val("v")).await.unwrap().mod_revision;
        written.push(r);
        if i % 8 == 7 {
            while seen.recv().await.is_some_and(|got| got < r) {}
        }
    }
    assert_eq!(reading.await.unwrap(), written, "the reading watcher gets every event");
    let mut got = 0;
    let err = loop {
        match stalled.recv().await {
            Some(Ok(WatchItem::Event(_))) => got += 1,
            Some(Ok(WatchItem::Bookmark(_))) => {}
            Some(Err(e)) => break e,
            None => panic!("the stalled watcher ended without an error"),
        }
    };
    assert_eq!(got, 32, "the stalled watcher keeps what fitted in its buffer");
    match err {
        StorageError::WatcherTooSlow { last_revision } => {
            assert_eq!(last_revision, written[31]);
            // It can resume from where it was cut off, and misses nothing.
            let mut resumed = cache.watch(&watch_after("/registry/g/r/", last_revision)).await.unwrap();
            assert_eq!(next_event(&mut resumed).await.revision, written[32]);
        }
        other => panic!("expected WatcherTooSlow, got {other:?}"),
    }
    assert_eq!(cache.watcher_count(), 0, "cut-off and dropped watchers are unregistered");
}

async fn quiet_watchers_get_bookmarks(b: Backend) {
    let h = harness(b).await;
    let config = CacheConfig { progress_interval: Duration::from_millis(100), ..CacheConfig::default() };
    let cache = WatchCache::start(h.store.clone(), "/registry/g/r/", config).unwrap();
    let start = cache.list(&list_all("/registry/g/r/", ReadRevision::Consistent)).await.unwrap().revision;
    let mut w = cache.watch(&watch_after("/registry/g/r/", start)).await.unwrap();
    let other = h.store.create("/registry/elsewhere/x", val("x")).await.unwrap();
    loop {
        match tokio::time::timeout(Duration::from_secs(5), w.recv()).await {
            Ok(Some(Ok(WatchItem::Bookmark(r)))) if r >= other.mod_revision => break,
            Ok(Some(Ok(WatchItem::Bookmark(_)))) => {}
            other => panic!("expected a bookmark, got {other:?}"),
        }
    }
}

contract_tests!(
    consistent_list_sees_every_acknowledged_write,
    watchers_resume_from_the_window_or_the_store_or_get_compacted,
    a_stalled_watcher_is_cut_off_and_others_continue,
    quiet_watchers_get_bookmarks,
);
