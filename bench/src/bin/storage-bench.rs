//! Storage benchmark: one local etcd, measured side by side in one run.
//!
//! `cargo run --release -p bench --bin storage-bench` (BENCH_SECS sets the
//! seconds per write measurement, default 3). It prints raw etcd puts/s, the
//! etcd and embedded backends through the storage interface at 1, 16, 64 and
//! 256 requests in flight (with the ratio to raw etcd), a range of 10,000
//! values of 500 bytes, put-to-watcher latency through the watch cache, and
//! the RSS that 100,000 cached values add.
#![forbid(unsafe_code)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use storage::cache::WatchStart;
use storage::{
    CacheConfig, EmbeddedConfig, EmbeddedStore, EtcdConfig, EtcdStore, ListOptions, RangeRequest, ReadRevision, Store,
    WatchCache, WatchItem, WatchRequest,
};

const CONCURRENCY: [usize; 4] = [1, 16, 64, 256];
const VALUE: [u8; 500] = [b'v'; 500];

fn seconds() -> Duration {
    Duration::from_secs_f64(std::env::var("BENCH_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(3.0))
}

/// Runs `op(i)` from `n` tasks for the measurement time; returns ops/s.
async fn throughput<F, Fut>(n: usize, op: F) -> f64
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let op = Arc::new(op);
    let counter = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let until = start + seconds();
    let mut tasks = Vec::new();
    for _ in 0..n {
        let (op, counter, done) = (op.clone(), counter.clone(), done.clone());
        tasks.push(tokio::spawn(async move {
            while Instant::now() < until {
                let i = counter.fetch_add(1, Ordering::Relaxed);
                if op(i).await {
                    done.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    done.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64()
}

async fn store_creates(store: Arc<dyn Store>, n: usize, run: &str) -> f64 {
    let run = run.to_string();
    throughput(n, move |i| {
        let store = store.clone();
        let key = format!("/registry/bench/{run}/k{i:09}");
        async move { store.create(&key, Bytes::from_static(&VALUE)).await.is_ok() }
    })
    .await
}

fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .unwrap_or(0)
        * 1024
}

async fn fill(store: &Arc<dyn Store>, prefix: &str, count: usize) {
    let mut tasks = Vec::new();
    for w in 0..64 {
        let (store, prefix) = (store.clone(), prefix.to_string());
        tasks.push(tokio::spawn(async move {
            for i in (w..count).step_by(64) {
                store.create(&format!("{prefix}k{i:07}"), Bytes::from_static(&VALUE)).await.expect("fill");
            }
        }));
    }
    for t in tasks {
        t.await.expect("fill task");
    }
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
}

/// Latency percentiles: (p50, p99).
type Percentiles = (Duration, Duration);

fn percentiles(mut v: Vec<Duration>) -> Percentiles {
    v.sort();
    (v[v.len() / 2], v[v.len() * 99 / 100])
}

/// Put-to-watcher latency through the cache at low load (one write every
/// 5 ms): from issuing the write, and from its acknowledgement (0 when the
/// event arrived first).
async fn cache_latency(store: Arc<dyn Store>, prefix: &str) -> (Percentiles, Percentiles) {
    let cache = WatchCache::start(store.clone(), prefix, CacheConfig::default()).expect("cache");
    let start = cache
        .list(&ListOptions { prefix: prefix.into(), start: None, limit: 1, revision: ReadRevision::Consistent })
        .await
        .expect("list");
    let mut w = cache
        .watch(&WatchRequest { prefix: prefix.into(), start: WatchStart::After(start.revision) })
        .await
        .expect("watch");
    let sent = Arc::new(std::sync::Mutex::new(std::collections::HashMap::<String, (Instant, Option<Instant>)>::new()));
    let writes = 1000;
    let writer = {
        let (store, sent, prefix) = (store.clone(), sent.clone(), prefix.to_string());
        tokio::spawn(async move {
            for i in 0..writes {
                let key = format!("{prefix}lat{i:05}");
                sent.lock().expect("lock").insert(key.clone(), (Instant::now(), None));
                store.create(&key, Bytes::from_static(&VALUE)).await.expect("write");
                if let Some(entry) = sent.lock().expect("lock").get_mut(&key) {
                    entry.1 = Some(Instant::now());
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    let mut received = Vec::with_capacity(writes);
    while received.len() < writes {
        if let Some(Ok(WatchItem::Event(e))) = w.recv().await {
            received.push((e.object.key.clone(), Instant::now()));
        }
    }
    writer.await.expect("writer");
    let sent = sent.lock().expect("lock");
    let mut from_issue = Vec::new();
    let mut from_ack = Vec::new();
    for (key, at) in received {
        if let Some((issued, acked)) = sent.get(&key) {
            from_issue.push(at - *issued);
            from_ack.push(acked.map(|a| at.saturating_duration_since(a)).unwrap_or_default());
        }
    }
    (percentiles(from_issue), percentiles(from_ack))
}

#[tokio::main]
async fn main() {
    let etcd = testkit::Etcd::start().expect("start etcd (install etcd-server)");
    println!("storage-bench: etcd {} , {:?} per write measurement, values of 500 bytes\n", etcd.endpoint(), seconds());
    let raw = etcd_client::Client::connect([etcd.endpoint()], None).await.expect("raw etcd client");
    let etcd_store: Arc<dyn Store> = Arc::new(
        EtcdStore::connect(&EtcdConfig { endpoints: vec![etcd.endpoint()], ..EtcdConfig::default() })
            .await
            .expect("etcd store"),
    );
    let dir = tempfile::tempdir_in(".").expect("tempdir");
    let embedded: Arc<dyn Store> = Arc::new(EmbeddedStore::open(&EmbeddedConfig::new(dir.path())).expect("embedded"));

    println!("raw put: etcd-client put of a new key; raw txn: etcd-client create-if-absent txn (what a create needs)");
    println!("backends: Store::create of a new key; ratios are to raw put, and to raw txn in brackets\n");
    println!(
        "{:>9} {:>12} {:>12} {:>16} {:>15} {:>18} {:>8}",
        "in flight", "raw put/s", "raw txn/s", "etcd backend/s", "ratio [txn]", "embedded backend/s", "ratio"
    );
    for n in CONCURRENCY {
        let kv = raw.kv_client();
        let raw_rate = throughput(n, move |i| {
            let mut kv = kv.clone();
            async move { kv.put(format!("/raw/{n}/k{i:09}"), VALUE.to_vec(), None).await.is_ok() }
        })
        .await;
        let kv = raw.kv_client();
        let txn_rate = throughput(n, move |i| {
            let mut kv = kv.clone();
            async move {
                let key = format!("/rawtxn/{n}/k{i:09}");
                let txn = etcd_client::Txn::new()
                    .when([etcd_client::Compare::create_revision(key.clone(), etcd_client::CompareOp::Equal, 0)])
                    .and_then([etcd_client::TxnOp::put(key, VALUE.to_vec(), None)]);
                kv.txn(txn).await.is_ok()
            }
        })
        .await;
        let etcd_rate = store_creates(etcd_store.clone(), n, &format!("etcd{n}")).await;
        let emb_rate = store_creates(embedded.clone(), n, &format!("emb{n}")).await;
        println!(
            "{n:>9} {raw_rate:>12.0} {txn_rate:>12.0} {etcd_rate:>16.0} {:>15} {emb_rate:>18.0} {:>8.2}",
            format!("{:.2} [{:.2}]", etcd_rate / raw_rate, etcd_rate / txn_rate),
            emb_rate / raw_rate
        );
    }

    println!("\nrange of 10,000 values of 500 bytes");
    for (name, store) in [("etcd", &etcd_store), ("embedded", &embedded)] {
        fill(store, "/registry/range/", 10_000).await;
        let req = RangeRequest { prefix: "/registry/range/".into(), ..Default::default() };
        let t = Instant::now();
        let page = store.range(&req).await.expect("range");
        let store_time = t.elapsed();
        assert_eq!(page.kvs.len(), 10_000);
        let cache = WatchCache::start(store.clone(), "/registry/range/", CacheConfig::default()).expect("cache");
        let opts = ListOptions {
            prefix: "/registry/range/".into(),
            start: None,
            limit: 0,
            revision: ReadRevision::Consistent,
        };
        cache.list(&opts).await.expect("warm");
        let mut best = Duration::MAX;
        let mut total = Duration::ZERO;
        for _ in 0..20 {
            let t = Instant::now();
            let l = cache.list(&opts).await.expect("list");
            let took = t.elapsed();
            assert_eq!(l.items.len(), 10_000);
            best = best.min(took);
            total += took;
        }
        println!(
            "  {name:<9} store range {:>12}   consistent list from cache: mean {:>10}, best {:>10}",
            ms(store_time),
            ms(total / 20),
            ms(best)
        );
    }

    println!("\nput-to-watcher latency through the watch cache (1,000 writes, one every 5 ms)");
    for (name, store) in [("etcd", &etcd_store), ("embedded", &embedded)] {
        let ((p50, p99), (a50, a99)) = cache_latency(store.clone(), "/registry/latency/").await;
        println!(
            "  {name:<9} from issuing the put: p50 {:>10}  p99 {:>10};   from its acknowledgement: p50 {:>10}  p99 {:>10}",
            ms(p50),
            ms(p99),
            ms(a50),
            ms(a99)
        );
    }

    println!("\nmemory: RSS added by a watch cache of 100,000 values of 500 bytes (embedded store)");
    fill(&embedded, "/registry/memory/", 100_000).await;
    let before = rss_bytes();
    let cache = WatchCache::start(embedded.clone(), "/registry/memory/", CacheConfig::default()).expect("cache");
    let l = cache
        .list(&ListOptions {
            prefix: "/registry/memory/".into(),
            start: None,
            limit: 1,
            revision: ReadRevision::Consistent,
        })
        .await
        .expect("list");
    let after = rss_bytes();
    println!(
        "  {} values cached (remaining {}), RSS +{:.1} MB",
        l.items.len() + l.remaining,
        l.remaining,
        (after.saturating_sub(before)) as f64 / 1e6
    );
}
