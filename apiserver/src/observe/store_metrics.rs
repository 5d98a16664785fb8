//! Storage metrics: a [`Store`] that times every call of the store under it,
//! named like kube-apiserver's etcd metrics (`etcd_request_duration_seconds`,
//! `etcd_requests_total`, `etcd_request_errors_total`, by operation and type).

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use bytes::Bytes;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use storage::{Deleted, KeyValue, RangeRequest, RangeResponse, Result, Revision, Store, WatchStream};

/// Labels: the operation and the resource type (the key's prefix below the store prefix).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Labels {
    operation: &'static str,
    r#type: String,
}

/// Latency buckets of store calls (seconds).
const BUCKETS: [f64; 14] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// The storage metrics (registered into the server's registry).
#[derive(Clone)]
pub struct StoreMetrics {
    durations: Family<Labels, Histogram>,
    requests: Family<Labels, Counter>,
    errors: Family<Labels, Counter>,
}

impl StoreMetrics {
    /// Creates the metrics and registers them.
    pub fn register(registry: &mut Registry) -> Self {
        let durations = Family::<Labels, Histogram>::new_with_constructor(|| Histogram::new(BUCKETS));
        let requests = Family::<Labels, Counter>::default();
        let errors = Family::<Labels, Counter>::default();
        registry.register(
            "etcd_request_duration_seconds",
            "Store call latency by operation and type",
            durations.clone(),
        );
        registry.register("etcd_requests", "Store calls by operation and type", requests.clone());
        registry.register("etcd_request_errors", "Failed store calls by operation and type", errors.clone());
        StoreMetrics { durations, requests, errors }
    }

    fn record<T>(&self, operation: &'static str, kind: String, started: Instant, result: &Result<T>) {
        let labels = Labels { operation, r#type: kind };
        self.durations.get_or_create(&labels).observe(started.elapsed().as_secs_f64());
        self.requests.get_or_create(&labels).inc();
        // A lost condition (the key exists, is missing, or changed) is an answer, not an error.
        let answer = matches!(
            result,
            Err(storage::StorageError::AlreadyExists { .. }
                | storage::StorageError::NotFound { .. }
                | storage::StorageError::Conflict { .. })
        );
        if result.is_err() && !answer {
            self.errors.get_or_create(&labels).inc();
        }
    }
}

/// A [`Store`] that records [`StoreMetrics`] for the store it wraps.
pub struct InstrumentedStore {
    inner: Arc<dyn Store>,
    metrics: StoreMetrics,
}

impl InstrumentedStore {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn Store>, metrics: StoreMetrics) -> Self {
        InstrumentedStore { inner, metrics }
    }

    /// The resource type of a key: `<group>/<plural>` or `thirdpartyresources`.
    fn kind(&self, key: &str) -> String {
        let rest = key.strip_prefix(self.inner.prefix()).unwrap_or(key).trim_start_matches('/');
        let mut parts = rest.split('/');
        match (parts.next(), parts.next()) {
            (Some("thirdpartyresources"), _) => "thirdpartyresources".into(),
            (Some(group), Some(plural)) if !group.is_empty() => format!("{plural}.{group}"),
            _ => "unknown".into(),
        }
    }
}

#[async_trait]
impl Store for InstrumentedStore {
    fn prefix(&self) -> &str {
        self.inner.prefix()
    }
    fn progress_on_request(&self) -> bool {
        self.inner.progress_on_request()
    }
    fn local_revision(&self) -> Option<Revision> {
        self.inner.local_revision()
    }
    async fn current_revision(&self) -> Result<Revision> {
        let t = Instant::now();
        let r = self.inner.current_revision().await;
        self.metrics.record("currentRevision", String::new(), t, &r);
        r
    }
    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        let t = Instant::now();
        let r = self.inner.get(key).await;
        self.metrics.record("get", self.kind(key), t, &r);
        r
    }
    async fn range(&self, req: &RangeRequest) -> Result<RangeResponse> {
        let t = Instant::now();
        let r = self.inner.range(req).await;
        self.metrics.record("list", self.kind(&req.prefix), t, &r);
        r
    }
    async fn create(&self, key: &str, value: Bytes) -> Result<KeyValue> {
        let t = Instant::now();
        let r = self.inner.create(key, value).await;
        self.metrics.record("create", self.kind(key), t, &r);
        r
    }
    async fn update(&self, key: &str, value: Bytes, expected: Option<Revision>) -> Result<KeyValue> {
        let t = Instant::now();
        let r = self.inner.update(key, value, expected).await;
        self.metrics.record("update", self.kind(key), t, &r);
        r
    }
    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<Deleted> {
        let t = Instant::now();
        let r = self.inner.delete(key, expected).await;
        self.metrics.record("delete", self.kind(key), t, &r);
        r
    }
    async fn delete_prefix(&self, prefix: &str) -> Result<Vec<Deleted>> {
        let t = Instant::now();
        let r = self.inner.delete_prefix(prefix).await;
        self.metrics.record("deletePrefix", self.kind(prefix), t, &r);
        r
    }
    async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream> {
        let t = Instant::now();
        let r = self.inner.watch(prefix, after).await;
        self.metrics.record("watch", self.kind(prefix), t, &r);
        r
    }
    async fn compact(&self, revision: Revision) -> Result<()> {
        let t = Instant::now();
        let r = self.inner.compact(revision).await;
        self.metrics.record("compact", String::new(), t, &r);
        r
    }
}
