//! Failures: the embedded store killed mid-write, etcd stopped and restarted under load.

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use storage::cache::WatchStart;
use storage::{
    CacheConfig, EmbeddedConfig, EmbeddedStore, EtcdStore, StorageError, Store, WatchCache, WatchItem, WatchRequest,
};

const CHILD_DIR: &str = "TPR_DURABILITY_CHILD_DIR";

/// Not a test on its own: the child process of the kill test. It writes with
/// 16 writers and prints every acknowledged write until it is killed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn child_writer_for_the_kill_test() {
    let Ok(dir) = std::env::var(CHILD_DIR) else { return };
    let store = Arc::new(EmbeddedStore::open(&EmbeddedConfig::new(dir)).unwrap());
    let mut tasks = Vec::new();
    for w in 0..16 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0.. {
                let key = format!("/registry/kill/w{w}-{i}");
                let kv = store.create(&key, Bytes::from(vec![b'x'; 200])).await.unwrap();
                println!("ack {} {}", kv.key, kv.mod_revision);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

#[test]
fn embedded_store_keeps_every_acknowledged_write_after_a_kill() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_writer_for_the_kill_test", "--nocapture", "--test-threads=1"])
        .env(CHILD_DIR, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut acked = Vec::new();
    while acked.len() < 3000 {
        let line = lines.next().expect("child ended early").unwrap();
        if let Some(rest) = line.strip_prefix("ack ") {
            acked.push(rest.to_string());
        }
    }
    child.kill().unwrap(); // SIGKILL, mid-write
    child.wait().unwrap();
    // Whatever the child printed before dying was acknowledged too.
    acked.extend(lines.map_while(Result::ok).filter_map(|l| l.strip_prefix("ack ").map(str::to_string)));

    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let store = EmbeddedStore::open(&EmbeddedConfig::new(dir.path())).unwrap();
        for ack in &acked {
            let (key, rev) = ack.split_once(' ').unwrap();
            let kv = store.get(key).await.unwrap().unwrap_or_else(|| panic!("acknowledged write {key} lost"));
            assert_eq!(kv.mod_revision, rev.parse::<i64>().unwrap());
        }
        // The reopened store goes on from where it stopped.
        let before = store.current_revision().await.unwrap();
        let kv = store.create("/registry/kill/after", Bytes::from_static(b"y")).await.unwrap();
        assert_eq!(kv.mod_revision, before + 1);
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_restart_under_load_fails_fast_and_loses_no_event() {
    let mut etcd = testkit::Etcd::start().unwrap();
    let cfg = common::etcd_config(etcd.endpoint());
    let store: Arc<dyn Store> = Arc::new(EtcdStore::connect(&cfg).await.unwrap());
    let cache = WatchCache::start(store.clone(), "/registry/load/", CacheConfig::default()).unwrap();
    let start = store.current_revision().await.unwrap();
    let mut watcher =
        cache.watch(&WatchRequest { prefix: "/registry/load/".into(), start: WatchStart::After(start) }).await.unwrap();

    let acked = Arc::new(Mutex::new(BTreeSet::new()));
    let failures = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..4 {
        let (store, acked, failures, stop) = (store.clone(), acked.clone(), failures.clone(), stop.clone());
        writers.push(tokio::spawn(async move {
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let began = Instant::now();
                match store.create(&format!("/registry/load/w{w}-{i}"), Bytes::from_static(b"v")).await {
                    Ok(kv) => drop(acked.lock().unwrap().insert(kv.mod_revision)),
                    Err(e) => {
                        failures.lock().unwrap().push((e, began.elapsed()));
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
                i += 1;
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before_kill = acked.lock().unwrap().len();
    etcd.kill();
    // Longer than a call waits for an unreachable etcd (1 s), shorter than its deadline.
    tokio::time::sleep(Duration::from_millis(3000)).await;
    etcd.restart().unwrap();
    let restarted = Instant::now();
    // Writes recover.
    while acked.lock().unwrap().iter().filter(|r| **r > 0).count() < before_kill + 200 {
        assert!(restarted.elapsed() < Duration::from_secs(20), "writes did not recover after etcd restarted");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for w in writers {
        w.await.unwrap();
    }
    let failures = failures.lock().unwrap().clone();
    assert!(!failures.is_empty(), "calls made while etcd was down must fail");
    for (e, took) in &failures {
        // Not sent (Unavailable), or sent with the answer lost when etcd died
        // (Indeterminate: it may be stored, and it may show up in the watch).
        assert!(matches!(e, StorageError::Unavailable(_) | StorageError::Indeterminate(_)), "unexpected error {e:?}");
        assert!(*took <= cfg.request_timeout + Duration::from_millis(500), "a call hung for {took:?}");
    }
    // Every acknowledged write reaches the watcher, across the restart.
    let acked = acked.lock().unwrap().clone();
    let last = *acked.iter().next_back().unwrap();
    let mut seen = BTreeSet::new();
    while seen.last().copied().unwrap_or(0) < last {
        match tokio::time::timeout(Duration::from_secs(10), watcher.recv()).await {
            Ok(Some(Ok(WatchItem::Event(e)))) => drop(seen.insert(e.revision)),
            Ok(Some(Ok(WatchItem::Bookmark(_)))) => {}
            other => panic!("watch broke: {other:?}"),
        }
    }
    let lost: Vec<_> = acked.difference(&seen).collect();
    assert!(lost.is_empty(), "acknowledged writes missing from the watch: {lost:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_etcd_gives_timeouts_not_hangs() {
    let etcd = testkit::Etcd::start().unwrap();
    let cfg = common::etcd_config(etcd.endpoint());
    let store = EtcdStore::connect(&cfg).await.unwrap();
    store.create("/registry/hang/a", Bytes::from_static(b"v")).await.unwrap();
    etcd.pause().unwrap();
    let began = Instant::now();
    let write = store.create("/registry/hang/b", Bytes::from_static(b"v")).await;
    let write_took = began.elapsed();
    let began = Instant::now();
    let read = store.get("/registry/hang/a").await;
    let read_took = began.elapsed();
    etcd.resume().unwrap();
    // A write sent and never answered may or may not be stored: its outcome
    // is unknown. A read that was never answered simply timed out.
    assert!(matches!(write, Err(StorageError::Indeterminate(_))), "{write:?}");
    assert!(matches!(read, Err(StorageError::Timeout(_))), "{read:?}");
    for took in [write_took, read_took] {
        assert!(took < cfg.request_timeout + Duration::from_secs(1), "the call took {took:?}");
    }
    // And it works again once etcd answers.
    store.get("/registry/hang/a").await.unwrap().unwrap();
}
