//! The storage contract, run unchanged against a real etcd and the embedded store.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::{harness, Backend};
use storage::{Event, RangeRequest, Revision, StorageError, Store, WatchMessage, WatchStream};

fn val(s: &str) -> Bytes {
    Bytes::from(s.to_string())
}

/// Reads watch messages until an event at `until` (or later) arrives.
async fn collect_until(w: &mut WatchStream, until: Revision) -> Vec<Event> {
    let mut out = Vec::new();
    while out.last().map(Event::revision).unwrap_or(0) < until {
        match tokio::time::timeout(Duration::from_secs(10), w.recv()).await {
            Ok(Some(Ok(WatchMessage::Events(evs)))) => out.extend(evs),
            Ok(Some(Ok(WatchMessage::Progress(_)))) => {}
            other => panic!("watch ended early after {} events: {other:?}", out.len()),
        }
    }
    out
}

async fn revisions_grow_by_one_per_write(b: Backend) {
    let h = harness(b).await;
    let s = &h.store;
    let r0 = s.current_revision().await.unwrap();
    let a = s.create("/registry/t/a", val("1")).await.unwrap();
    assert_eq!((a.create_revision, a.mod_revision), (r0 + 1, r0 + 1));
    let a2 = s.update("/registry/t/a", val("2"), Some(a.mod_revision)).await.unwrap();
    assert_eq!((a2.create_revision, a2.mod_revision), (r0 + 1, r0 + 2));
    let b1 = s.create("/registry/t/b", val("x")).await.unwrap();
    assert_eq!(b1.mod_revision, r0 + 3);
    assert_eq!(s.current_revision().await.unwrap(), r0 + 3);
    let got = s.get("/registry/t/a").await.unwrap().unwrap();
    assert_eq!(got, a2);
    let d = s.delete("/registry/t/a", None).await.unwrap();
    assert_eq!(d.revision, r0 + 4);
    assert_eq!(d.prev, a2);
    assert_eq!(s.get("/registry/t/a").await.unwrap(), None);
    // Re-created: a new create revision.
    let a3 = s.create("/registry/t/a", val("3")).await.unwrap();
    assert_eq!(a3.create_revision, r0 + 5);
}

async fn conditional_writes_return_the_winner(b: Backend) {
    let h = harness(b).await;
    let s = &h.store;
    let a = s.create("/registry/t/a", val("1")).await.unwrap();
    match s.create("/registry/t/a", val("other")).await {
        Err(StorageError::AlreadyExists { current }) => assert_eq!(*current, a),
        other => panic!("expected AlreadyExists, got {other:?}"),
    }
    let a2 = s.update("/registry/t/a", val("2"), Some(a.mod_revision)).await.unwrap();
    match s.update("/registry/t/a", val("stale"), Some(a.mod_revision)).await {
        Err(StorageError::Conflict { expected, current }) => {
            assert_eq!(expected, a.mod_revision);
            assert_eq!(*current, a2);
        }
        other => panic!("expected Conflict, got {other:?}"),
    }
    match s.delete("/registry/t/a", Some(a.mod_revision)).await {
        Err(StorageError::Conflict { current, .. }) => assert_eq!(*current, a2),
        other => panic!("expected Conflict, got {other:?}"),
    }
    assert!(matches!(s.update("/registry/t/missing", val("x"), None).await, Err(StorageError::NotFound { .. })));
    assert!(matches!(s.update("/registry/t/missing", val("x"), Some(3)).await, Err(StorageError::NotFound { .. })));
    assert!(matches!(s.delete("/registry/t/missing", None).await, Err(StorageError::NotFound { .. })));
    // Unconditional update and a correct conditional delete succeed.
    let a3 = s.update("/registry/t/a", val("3"), None).await.unwrap();
    s.delete("/registry/t/a", Some(a3.mod_revision)).await.unwrap();

    // Racing updates with the same expected revision: exactly one wins.
    let base = s.create("/registry/t/race", val("0")).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..8 {
        let s = h.store.clone();
        tasks.push(tokio::spawn(async move {
            s.update("/registry/t/race", val(&i.to_string()), Some(base.mod_revision)).await
        }));
    }
    let mut wins = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => wins += 1,
            Err(StorageError::Conflict { current, .. }) => assert!(current.mod_revision > base.mod_revision),
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert_eq!(wins, 1);
}

async fn bad_input_is_refused_and_writes_nothing(b: Backend) {
    let h = harness(b).await;
    let s = &h.store;
    let r0 = s.current_revision().await.unwrap();
    let invalid = |r: Result<_, StorageError>| matches!(r, Err(StorageError::InvalidKey { .. }));
    assert!(invalid(s.create("", val("x")).await.map(|_| ())));
    assert!(invalid(s.create("/elsewhere/a", val("x")).await.map(|_| ())));
    assert!(invalid(s.create("/registry/", val("x")).await.map(|_| ())));
    assert!(invalid(s.update("/elsewhere/a", val("x"), None).await.map(|_| ())));
    assert!(invalid(s.delete("", None).await.map(|_| ())));
    assert!(invalid(s.delete_prefix("/elsewhere/").await.map(|_| ())));
    assert!(invalid(s.get("/elsewhere/a").await.map(|_| ())));
    assert!(invalid(s.watch("/elsewhere/", 0).await.map(|_| ())));
    let req = RangeRequest { prefix: "/registry/t/".into(), start: Some("/registry/u/a".into()), ..Default::default() };
    assert!(invalid(s.range(&req).await.map(|_| ())));
    let req = RangeRequest { prefix: "/elsewhere/".into(), ..Default::default() };
    assert!(invalid(s.range(&req).await.map(|_| ())));
    let future = RangeRequest { prefix: "/registry/t/".into(), revision: Some(r0 + 1000), ..Default::default() };
    match s.range(&future).await {
        Err(StorageError::FutureRevision { requested, .. }) => assert_eq!(requested, r0 + 1000),
        other => panic!("expected FutureRevision, got {other:?}"),
    }
    assert_eq!(s.current_revision().await.unwrap(), r0, "a refused call must not write");
}

async fn pages_read_at_one_revision_while_writes_race(b: Backend) {
    let h = harness(b).await;
    let s = &h.store;
    for i in 0..100 {
        s.create(&format!("/registry/p/k{i:03}"), val(&format!("v{i}"))).await.unwrap();
    }
    let mut req = RangeRequest { prefix: "/registry/p/".into(), limit: 10, ..Default::default() };
    let first = s.range(&req).await.unwrap();
    assert_eq!((first.kvs.len(), first.remaining), (10, 90));
    let snapshot = first.revision;
    // Writers change everything while the pages are read.
    let writer = {
        let s = h.store.clone();
        tokio::spawn(async move {
            for i in 0..100 {
                let _ = s.update(&format!("/registry/p/k{i:03}"), val("changed"), None).await;
                let _ = s.create(&format!("/registry/p/k{i:03}x"), val("new")).await;
                if i % 3 == 0 {
                    let _ = s.delete(&format!("/registry/p/k{i:03}"), None).await;
                }
            }
        })
    };
    let mut seen: Vec<_> = first.kvs.clone();
    req.revision = Some(snapshot);
    while let Some(last) = seen.last().filter(|_| seen.len() < 100) {
        req.start = Some(format!("{}\0", last.key));
        let page = s.range(&req).await.unwrap();
        assert_eq!(page.revision, snapshot);
        assert_eq!(page.remaining, 100 - seen.len() - page.kvs.len());
        seen.extend(page.kvs);
    }
    writer.await.unwrap();
    assert_eq!(seen.len(), 100);
    for (i, kv) in seen.iter().enumerate() {
        assert_eq!(kv.key, format!("/registry/p/k{i:03}"));
        assert_eq!(kv.value, val(&format!("v{i}")));
    }
    // The current state has moved on.
    let now = s.range(&RangeRequest { prefix: "/registry/p/".into(), ..Default::default() }).await.unwrap();
    assert_eq!(now.kvs.len(), 100 + 100 - 34);
}

async fn watch_from_a_revision_has_no_gaps_or_duplicates(b: Backend) {
    let h = harness(b).await;
    let s = &h.store;
    let start = s.current_revision().await.unwrap();
    let mut early = s.watch("/registry/w/", start).await.unwrap();
    let mut writers = Vec::new();
    for w in 0..8 {
        let s = h.store.clone();
        writers.push(tokio::spawn(async move {
            for i in 0..40 {
                let key = format!("/registry/w/{w}-{}", i % 5);
                match s.get(&key).await.unwrap() {
                    None => drop(s.create(&key, val("c")).await.unwrap()),
                    Some(kv) if i % 4 == 3 => drop(s.delete(&key, Some(kv.mod_revision)).await.unwrap()),
                    Some(kv) => drop(s.update(&key, val(&i.to_string()), Some(kv.mod_revision)).await.unwrap()),
                }
            }
        }));
    }
    // A watcher that joins mid-way, from a revision in the past.
    tokio::time::sleep(Duration::from_millis(30)).await;
    let middle = s.current_revision().await.unwrap();
    let mut late = s.watch("/registry/w/", middle).await.unwrap();
    for w in writers {
        w.await.unwrap();
    }
    let end = s.current_revision().await.unwrap();
    assert_eq!(end - start, 8 * 40, "one revision per write");
    let all = collect_until(&mut early, end).await;
    let revs: Vec<Revision> = all.iter().map(Event::revision).collect();
    assert_eq!(revs, ((start + 1)..=end).collect::<Vec<_>>(), "every event exactly once, in order");
    let tail = collect_until(&mut late, end).await;
    assert_eq!(tail.iter().map(Event::revision).collect::<Vec<_>>(), ((middle + 1)..=end).collect::<Vec<_>>());
    // Deletes carry the previous value; replaying the events gives the final state.
    let mut state = BTreeMap::new();
    for e in &all {
        match e {
            Event::Put { kv, .. } => drop(state.insert(kv.key.clone(), kv.value.clone())),
            Event::Delete { key, prev, .. } => {
                assert_eq!(prev.as_ref().map(|p| p.key.as_str()), Some(key.as_str()));
                state.remove(key);
            }
        }
    }
    let now = s.range(&RangeRequest { prefix: "/registry/w/".into(), ..Default::default() }).await.unwrap();
    let expected: BTreeMap<_, _> = now.kvs.into_iter().map(|kv| (kv.key, kv.value)).collect();
    assert_eq!(state, expected);
}

async fn compaction_discards_old_revisions(b: Backend) {
    let h = harness(b).await;
    let s = &h.store;
    let a = s.create("/registry/c/a", val("1")).await.unwrap();
    let a2 = s.update("/registry/c/a", val("2"), None).await.unwrap();
    s.create("/registry/c/b", val("b")).await.unwrap();
    let keep = s.update("/registry/c/a", val("3"), None).await.unwrap().mod_revision;
    s.delete("/registry/c/b", None).await.unwrap();
    s.compact(keep).await.unwrap();
    let at = |rev| RangeRequest { prefix: "/registry/c/".into(), revision: Some(rev), ..Default::default() };
    match s.range(&at(a2.mod_revision)).await {
        Err(StorageError::Compacted { requested, .. }) => assert_eq!(requested, a2.mod_revision),
        other => panic!("expected Compacted, got {other:?}"),
    }
    let still = s.range(&at(keep)).await.unwrap();
    assert_eq!(still.kvs.iter().map(|kv| kv.value.clone()).collect::<Vec<_>>(), vec![val("3"), val("b")]);
    // Watching from before the compaction fails with the distinct error...
    let compacted = match s.watch("/registry/c/", a.mod_revision).await {
        Err(e) => e,
        Ok(mut w) => match tokio::time::timeout(Duration::from_secs(5), w.recv()).await {
            Ok(Some(Err(e))) => e,
            other => panic!("expected a compacted error, got {other:?}"),
        },
    };
    assert!(matches!(compacted, StorageError::Compacted { .. }), "{compacted:?}");
    // ...while watching from the compaction revision on still works.
    let mut w = s.watch("/registry/c/", keep - 1).await.unwrap();
    let evs = collect_until(&mut w, keep + 1).await;
    assert_eq!(evs.iter().map(Event::revision).collect::<Vec<_>>(), vec![keep, keep + 1]);
    assert!(matches!(s.compact(keep).await, Err(StorageError::Compacted { .. })));
}

async fn prefix_delete_sends_one_event_per_key(b: Backend) {
    let h = harness(b).await;
    let s = &h.store;
    for i in 0..5 {
        s.create(&format!("/registry/g/mysqldbs/ns{}/db{i}", i % 2), val(&format!("db{i}"))).await.unwrap();
    }
    s.create("/registry/g/other/ns0/x", val("keep")).await.unwrap();
    let start = s.current_revision().await.unwrap();
    let mut w = s.watch("/registry/g/", start).await.unwrap();
    let deleted = s.delete_prefix("/registry/g/mysqldbs/").await.unwrap();
    assert_eq!(deleted.len(), 5);
    let revs: Vec<Revision> = deleted.iter().map(|d| d.revision).collect();
    assert_eq!(revs, ((start + 1)..=(start + 5)).collect::<Vec<_>>(), "one revision per deleted key");
    let evs = collect_until(&mut w, start + 5).await;
    assert_eq!(evs.len(), 5);
    for e in &evs {
        match e {
            Event::Delete { key, prev: Some(prev), .. } => {
                assert!(key.starts_with("/registry/g/mysqldbs/"));
                assert!(prev.value.starts_with(b"db"));
            }
            other => panic!("expected a delete with its previous value, got {other:?}"),
        }
    }
    let left = s.range(&RangeRequest { prefix: "/registry/g/".into(), ..Default::default() }).await.unwrap();
    assert_eq!(left.kvs.len(), 1);
    assert!(s.delete_prefix("/registry/g/mysqldbs/").await.unwrap().is_empty());
}

async fn progress_tells_a_quiet_watcher_the_revision(b: Backend) {
    let h = harness(b).await;
    let s = &h.store;
    let start = s.current_revision().await.unwrap();
    let w = s.watch("/registry/quiet/", start).await.unwrap();
    s.create("/registry/busy/a", val("1")).await.unwrap();
    let now = s.current_revision().await.unwrap();
    let mut w = w;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        w.request_progress();
        match tokio::time::timeout(Duration::from_millis(200), w.recv()).await {
            Ok(Some(Ok(WatchMessage::Progress(r)))) if r >= now => break,
            Ok(Some(Ok(WatchMessage::Progress(_)))) | Err(_) => {}
            other => panic!("unexpected {other:?}"),
        }
        assert!(tokio::time::Instant::now() < deadline, "no progress notification reached revision {now}");
    }
}

async fn concurrent_creates_all_land(b: Backend) {
    let h = harness(b).await;
    let mut tasks = Vec::new();
    for i in 0..64 {
        let s: Arc<dyn Store> = h.store.clone();
        tasks.push(tokio::spawn(async move {
            s.create(&format!("/registry/cc/{i}"), val("x")).await.unwrap().mod_revision
        }));
    }
    let mut revs = Vec::new();
    for t in tasks {
        revs.push(t.await.unwrap());
    }
    revs.sort();
    revs.dedup();
    assert_eq!(revs.len(), 64, "every write has its own revision");
}

contract_tests!(
    revisions_grow_by_one_per_write,
    conditional_writes_return_the_winner,
    bad_input_is_refused_and_writes_nothing,
    pages_read_at_one_revision_while_writes_race,
    watch_from_a_revision_has_no_gaps_or_duplicates,
    compaction_discards_old_revisions,
    prefix_delete_sends_one_event_per_key,
    progress_tells_a_quiet_watcher_the_revision,
    concurrent_creates_all_land,
);
