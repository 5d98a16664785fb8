//! A 3-member etcd cluster loses a member, then its leader, under writes and
//! a watch: while two members (a quorum) are up no call fails, the writes in
//! flight when the leader dies are resolved (applied once, or retried), and
//! the watch sees every acknowledged write exactly once.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use storage::cache::WatchStart;
use storage::{CacheConfig, EtcdConfig, EtcdStore, Store, WatchCache, WatchItem, WatchRequest};

/// What the writers saw: acknowledged revisions (with the write), failures,
/// and the acknowledgement times (for the longest pause).
#[derive(Default)]
struct Ledger {
    acked: BTreeMap<i64, String>,
    failures: Vec<String>,
    ack_times: Vec<Instant>,
}

impl Ledger {
    fn ack(&mut self, revision: i64, what: String) {
        let dup = self.acked.insert(revision, what.clone());
        assert!(dup.is_none(), "two acknowledged writes share revision {revision}: {dup:?} and {what}");
        self.ack_times.push(Instant::now());
    }

    /// The longest time without an acknowledgement between `from` and `to`.
    fn longest_pause(&self, from: Instant, to: Instant) -> Duration {
        let mut times: Vec<Instant> = self.ack_times.iter().copied().filter(|t| *t >= from && *t <= to).collect();
        times.sort();
        times.insert(0, from);
        times.push(to);
        times.windows(2).map(|w| w[1] - w[0]).max().unwrap_or_default()
    }
}

/// Writers that create a key, update it twice (compare-and-swap) and delete
/// it, over and over, until stopped.
fn spawn_writers(
    store: Arc<dyn Store>,
    ledger: Arc<Mutex<Ledger>>,
    stop: Arc<AtomicBool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..6)
        .map(|w| {
            let (store, ledger, stop) = (store.clone(), ledger.clone(), stop.clone());
            tokio::spawn(async move {
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    i += 1;
                    let key = format!("/registry/fo/w{w}-{i}");
                    let value = |step: &str| Bytes::from(format!("{{\"w\":{w},\"i\":{i},\"step\":\"{step}\"}}"));
                    let failed =
                        |e: storage::StorageError| ledger.lock().unwrap().failures.push(format!("{key}: {e:?}"));
                    let mut rev = match store.create(&key, value("create")).await {
                        Ok(kv) => kv.mod_revision,
                        Err(e) => {
                            failed(e);
                            continue;
                        }
                    };
                    ledger.lock().unwrap().ack(rev, format!("create {key}"));
                    for step in ["update-1", "update-2"] {
                        match store.update(&key, value(step), Some(rev)).await {
                            Ok(kv) => {
                                rev = kv.mod_revision;
                                ledger.lock().unwrap().ack(rev, format!("{step} {key}"));
                            }
                            Err(e) => failed(e),
                        }
                    }
                    match store.delete(&key, Some(rev)).await {
                        Ok(d) => ledger.lock().unwrap().ack(d.revision, format!("delete {key}")),
                        Err(e) => failed(e),
                    }
                }
            })
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quorum_up_means_no_call_fails() {
    let mut cluster = testkit::EtcdCluster::start(3).expect("start a 3-member etcd");
    let cfg = EtcdConfig {
        endpoints: cluster.members.iter().map(|m| m.endpoint()).collect(),
        request_timeout: Duration::from_secs(5),
        dial_timeout: Duration::from_secs(1),
        ..EtcdConfig::default()
    };
    let store: Arc<dyn Store> = Arc::new(EtcdStore::connect(&cfg).await.expect("connect"));
    let cache = Arc::new(WatchCache::start(store.clone(), "/registry/fo/", CacheConfig::default()).expect("cache"));
    let start = store.current_revision().await.expect("revision");
    // A watcher reads along (as a client does); cut off as too slow, it
    // resumes from the last revision it saw.
    let (seen_tx, mut seen_rx) = tokio::sync::mpsc::unbounded_channel();
    let reader_cache = cache.clone();
    tokio::spawn(async move {
        let mut last = start;
        loop {
            let req = WatchRequest { prefix: "/registry/fo/".into(), start: WatchStart::After(last) };
            let mut watcher = reader_cache.watch(&req).await.expect("watch");
            loop {
                match watcher.recv().await {
                    Some(Ok(WatchItem::Event(e))) => {
                        last = e.revision;
                        if seen_tx.send(Ok(e.revision)).is_err() {
                            return;
                        }
                    }
                    Some(Ok(WatchItem::Bookmark(_))) => {}
                    Some(Err(storage::StorageError::WatcherTooSlow { .. })) => break,
                    other => {
                        let _ = seen_tx.send(Err(format!("{other:?}")));
                        return;
                    }
                }
            }
        }
    });
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let writers = spawn_writers(store.clone(), ledger.clone(), stop.clone());
    tokio::time::sleep(Duration::from_millis(500)).await;

    // A follower down for two seconds, then the leader (a new one is elected).
    let mut windows = Vec::new();
    for role in ["follower", "leader"] {
        let leader = tokio::task::block_in_place(|| cluster.leader()).expect("a leader");
        let victim = if role == "leader" { leader } else { (leader + 1) % 3 };
        let killed = Instant::now();
        cluster.members[victim].kill();
        tokio::time::sleep(Duration::from_secs(2)).await;
        let pause = ledger.lock().unwrap().longest_pause(killed, Instant::now());
        windows.push((role, pause));
        tokio::task::block_in_place(|| cluster.members[victim].restart()).expect("restart the member");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.await.unwrap();
    }
    for (role, pause) in &windows {
        eprintln!("{role} killed: longest pause between acknowledged writes {pause:?}");
    }
    let ledger = std::mem::take(&mut *ledger.lock().unwrap());
    eprintln!("{} acknowledged writes, {} failed", ledger.acked.len(), ledger.failures.len());
    assert!(ledger.failures.is_empty(), "calls failed while a quorum was up: {:#?}", ledger.failures);
    assert!(ledger.acked.len() > 100, "too few writes to tell: {}", ledger.acked.len());

    // The watch sees every acknowledged write, once, in order.
    let last = *ledger.acked.keys().next_back().unwrap();
    let mut seen = Vec::new();
    while seen.last().copied().unwrap_or(0) < last {
        match tokio::time::timeout(Duration::from_secs(10), seen_rx.recv()).await {
            Ok(Some(Ok(revision))) => seen.push(revision),
            other => panic!("the watch broke: {other:?}"),
        }
    }
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "the watch repeated or reordered events");
    let missing: Vec<_> = ledger.acked.iter().filter(|(r, _)| seen.binary_search(r).is_err()).collect();
    assert!(missing.is_empty(), "acknowledged writes missing from the watch: {missing:?}");
}
