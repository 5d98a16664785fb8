//! etcd backend options: mutual TLS, large ranges, automatic compaction.

mod common;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use storage::{spawn_compactor, CompactionPolicy, EtcdConfig, EtcdStore, RangeRequest, StorageError, Store};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connects_to_etcd_over_mutual_tls() {
    let pki = testkit::TestPki::generate("tpr-apiserver").unwrap();
    let (ca, cert, key) = (pki.ca_cert(), pki.client_cert(), pki.client_key());
    let etcd = testkit::Etcd::start_tls(pki).unwrap();
    assert!(etcd.endpoint().starts_with("https://"));
    let cfg = EtcdConfig {
        ca_file: Some(ca.clone()),
        cert_file: Some(cert),
        key_file: Some(key),
        ..common::etcd_config(etcd.endpoint())
    };
    let store = EtcdStore::connect(&cfg).await.unwrap();
    let kv = store.create("/registry/tls/a", Bytes::from_static(b"secret")).await.unwrap();
    assert_eq!(store.get("/registry/tls/a").await.unwrap(), Some(kv));
    // Without a client certificate etcd refuses the connection.
    let anonymous = EtcdConfig { ca_file: Some(ca), ..common::etcd_config(etcd.endpoint()) };
    match EtcdStore::connect(&anonymous).await {
        Err(e) => assert!(matches!(e, StorageError::Unavailable(_)), "{e:?}"),
        Ok(s) => assert!(s.get("/registry/tls/a").await.is_err(), "a client without a certificate must be refused"),
    }
}

async fn large_range(store: Arc<dyn Store>) {
    // 40 values of 700 KB: a 28 MB range, far above gRPC's default 4 MiB.
    let value = Bytes::from(vec![b'x'; 700 * 1024]);
    for i in 0..40 {
        store.create(&format!("/registry/big/k{i:02}"), value.clone()).await.unwrap();
    }
    let page = store.range(&RangeRequest { prefix: "/registry/big/".into(), ..Default::default() }).await.unwrap();
    assert_eq!(page.kvs.len(), 40);
    assert!(page.kvs.iter().all(|kv| kv.value.len() == 700 * 1024));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ranges_of_tens_of_megabytes_work_on_etcd() {
    let h = common::harness(common::Backend::Etcd).await;
    large_range(h.store.clone()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ranges_of_tens_of_megabytes_work_embedded() {
    let h = common::harness(common::Backend::Embedded).await;
    large_range(h.store.clone()).await;
}

async fn compacts_automatically(backend: common::Backend) {
    let h = common::harness(backend).await;
    let first = h.store.create("/registry/auto/a", Bytes::from_static(b"1")).await.unwrap();
    for i in 0..20 {
        h.store.update("/registry/auto/a", Bytes::from(i.to_string()), None).await.unwrap();
    }
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let policy = CompactionPolicy::Revisions { keep: 5, every: Duration::from_millis(50) };
    let task = spawn_compactor(h.store.clone(), policy, async move {
        let _ = stopped.await;
    });
    let at_first =
        RangeRequest { prefix: "/registry/auto/".into(), revision: Some(first.mod_revision), ..Default::default() };
    let mut compacted = false;
    for _ in 0..100 {
        if let Err(StorageError::Compacted { .. }) = h.store.range(&at_first).await {
            compacted = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = stop.send(());
    task.await.unwrap();
    assert!(compacted, "old revisions must be compacted away");
    // The last `keep` revisions stay readable.
    let now = h.store.current_revision().await.unwrap();
    let recent = RangeRequest { prefix: "/registry/auto/".into(), revision: Some(now - 4), ..Default::default() };
    assert_eq!(h.store.range(&recent).await.unwrap().kvs.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compacts_automatically_on_etcd() {
    compacts_automatically(common::Backend::Etcd).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compacts_automatically_embedded() {
    compacts_automatically(common::Backend::Embedded).await;
}
