//! Durable create throughput of the embedded store at a given concurrency:
//! `cargo run --release -p storage --example embedded_writes -- 1 64`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use storage::{EmbeddedConfig, EmbeddedStore, Store};

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir_in(".").expect("tempdir");
    let store = Arc::new(EmbeddedStore::open(&EmbeddedConfig::new(dir.path())).expect("open"));
    // Each run writes keys of its own (`1 1` measures one writer twice).
    for (run, arg) in std::env::args().skip(1).enumerate() {
        let n: usize = arg.parse().expect("concurrency");
        let done = Arc::new(AtomicU64::new(0));
        let start = Instant::now();
        let until = start + Duration::from_secs(3);
        let tasks: Vec<_> = (0..n)
            .map(|w| {
                let (store, done) = (store.clone(), done.clone());
                tokio::spawn(async move {
                    let mut i = 0u64;
                    while Instant::now() < until {
                        store
                            .create(&format!("/registry/x/{run}-{n}-{w}-{i}"), Bytes::from_static(&[b'v'; 500]))
                            .await
                            .expect("create");
                        done.fetch_add(1, Ordering::Relaxed);
                        i += 1;
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.expect("task");
        }
        println!(
            "{n:>4} in flight: {:.0} durable creates/s",
            done.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64()
        );
    }
}
