//! Reads of the embedded store race compactions: a read at a revision gets
//! that revision whole, or `Compacted`, never a page with keys missing.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use storage::{EmbeddedConfig, EmbeddedStore, RangeRequest, StorageError, Store};

const KEYS: usize = 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_racing_compactions_are_whole_or_compacted() {
    let dir = tempfile::tempdir().unwrap();
    let s = Arc::new(EmbeddedStore::open(&EmbeddedConfig::new(dir.path())).unwrap());
    for k in 0..KEYS {
        s.create(&format!("/registry/race/k{k:02}"), Bytes::from_static(b"0")).await.unwrap();
    }
    // From here on, every key exists at every revision.
    let all_exist = s.current_revision().await.unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    // Every key is updated over and over: each revision supersedes an older row.
    let writer = {
        let (s, stop) = (s.clone(), stop.clone());
        tokio::spawn(async move {
            let mut i = 0usize;
            while !stop.load(Ordering::Relaxed) {
                let key = format!("/registry/race/k{:02}", i % KEYS);
                s.update(&key, Bytes::from(i.to_string()), None).await.unwrap();
                i += 1;
            }
        })
    };
    // Compactions follow close behind the writes.
    let compactor = {
        let (s, stop) = (s.clone(), stop.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let now = s.current_revision().await.unwrap();
                match s.compact(now - 3).await {
                    Ok(()) | Err(StorageError::Compacted { .. }) => {}
                    Err(e) => panic!("compaction failed: {e:?}"),
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
    };
    let (mut whole, mut compacted) = (0, 0);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    while tokio::time::Instant::now() < deadline {
        let now = s.current_revision().await.unwrap();
        for revision in [now, now - 2, now - 5].into_iter().filter(|r| *r >= all_exist) {
            let req = RangeRequest { prefix: "/registry/race/".into(), revision: Some(revision), ..Default::default() };
            match s.range(&req).await {
                Ok(page) => {
                    assert_eq!(page.kvs.len(), KEYS, "a read at {revision} lost keys");
                    assert!(page.kvs.iter().all(|kv| kv.mod_revision <= revision));
                    whole += 1;
                }
                Err(StorageError::Compacted { .. }) => compacted += 1,
                Err(e) => panic!("unexpected {e:?}"),
            }
        }
        for k in 0..KEYS {
            assert!(s.get(&format!("/registry/race/k{k:02}")).await.unwrap().is_some());
        }
    }
    stop.store(true, Ordering::Relaxed);
    writer.await.unwrap();
    compactor.await.unwrap();
    assert!(whole > 0 && compacted > 0, "the race was not run: {whole} whole reads, {compacted} compacted");
}
