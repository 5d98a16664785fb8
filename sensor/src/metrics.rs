//! The sensor's metrics (Prometheus text format) and its `/metrics` and
//! `/healthz` endpoint.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;

/// Counters and gauges, shared by the source and the delivery.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Changes delivered.
    pub delivered: AtomicU64,
    /// Attempts that failed and were retried.
    pub retried: AtomicU64,
    /// Changes written to the dead-letter file.
    pub dead_lettered: AtomicU64,
    /// Re-lists (410, resync, first start).
    pub relists: AtomicU64,
    /// The newest revision seen from the server (events and bookmarks).
    pub seen_revision: AtomicU64,
    /// Every change up to this revision was delivered.
    pub delivered_revision: AtomicU64,
    /// When the oldest undelivered change arrived (ms since the epoch; 0: none waiting).
    pub oldest_waiting_ms: AtomicU64,
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

impl Metrics {
    /// Marks that a change is waiting (the lag clock starts if it is the oldest).
    pub fn waiting(&self) {
        let _ = self.oldest_waiting_ms.compare_exchange(0, now_ms(), Ordering::Relaxed, Ordering::Relaxed);
    }

    /// Nothing is waiting.
    pub fn caught_up(&self) {
        self.oldest_waiting_ms.store(0, Ordering::Relaxed);
    }

    /// The Prometheus text.
    pub fn encode(&self) -> String {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let waiting = get(&self.oldest_waiting_ms);
        let lag_seconds = if waiting == 0 { 0.0 } else { now_ms().saturating_sub(waiting) as f64 / 1000.0 };
        let lag_revisions = get(&self.seen_revision).saturating_sub(get(&self.delivered_revision));
        format!(
            "# HELP tpr_sensor_deliveries_total Changes delivered to the sink.\n# TYPE tpr_sensor_deliveries_total counter\ntpr_sensor_deliveries_total {}\n\
             # HELP tpr_sensor_retries_total Delivery attempts that failed and were retried.\n# TYPE tpr_sensor_retries_total counter\ntpr_sensor_retries_total {}\n\
             # HELP tpr_sensor_dead_letters_total Changes given up on and written to the dead-letter file.\n# TYPE tpr_sensor_dead_letters_total counter\ntpr_sensor_dead_letters_total {}\n\
             # HELP tpr_sensor_relists_total Full lists (first start, 410 Gone, resync).\n# TYPE tpr_sensor_relists_total counter\ntpr_sensor_relists_total {}\n\
             # HELP tpr_sensor_lag_seconds How long the oldest undelivered change has waited.\n# TYPE tpr_sensor_lag_seconds gauge\ntpr_sensor_lag_seconds {lag_seconds:.3}\n\
             # HELP tpr_sensor_lag_revisions The newest revision seen minus the last fully delivered one.\n# TYPE tpr_sensor_lag_revisions gauge\ntpr_sensor_lag_revisions {lag_revisions}\n\
             # HELP tpr_sensor_delivered_revision Every change up to this revision was delivered.\n# TYPE tpr_sensor_delivered_revision gauge\ntpr_sensor_delivered_revision {}\n",
            get(&self.delivered),
            get(&self.retried),
            get(&self.dead_lettered),
            get(&self.relists),
            get(&self.delivered_revision),
        )
    }
}

/// Serves `/metrics` and `/healthz` on `listener` until the process ends.
pub async fn serve(listener: tokio::net::TcpListener, metrics: Arc<Metrics>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else { continue };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                let metrics = metrics.clone();
                async move {
                    let (code, body) = match req.uri().path() {
                        "/metrics" => (200, metrics.encode()),
                        "/healthz" | "/livez" | "/readyz" => (200, "ok".to_string()),
                        _ => (404, "not found".to_string()),
                    };
                    hyper::Response::builder()
                        .status(code)
                        .header("content-type", "text/plain; version=0.0.4")
                        .body(Full::new(Bytes::from(body)))
                }
            });
            let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
        });
    }
}
