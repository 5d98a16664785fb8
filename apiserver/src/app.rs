//! The server's shared state: what the filters and the endpoints reach
//! through one `Arc<App>`.

use std::sync::Arc;

use storage::Store;

use crate::aggregation::delegated::TokenReviewer;
use crate::auth::authn::{Authenticator, RequestHeaders};
use crate::auth::authz::Authorizer;
use crate::observe::{AuditLog, Metrics};
use crate::served::ServedTypes;
use crate::tpr::Controller;

/// Everything a request needs.
pub struct App {
    /// The store (writes and consistent gets).
    pub store: Arc<dyn Store>,
    /// The served types.
    pub served: Arc<ServedTypes>,
    /// The ThirdPartyResource controller.
    pub controller: Arc<Controller>,
    /// Credentials.
    pub authn: Authenticator,
    /// Flips to true when the server shuts down (ends watches).
    pub shutdown: tokio::sync::watch::Receiver<bool>,
    /// Open watches, bounded by `max_watches` (beyond: 429).
    pub watches: Arc<std::sync::atomic::AtomicUsize>,
    /// `--max-watches`.
    pub max_watches: usize,
    /// The front proxy's request headers.
    pub request_headers: RequestHeaders,
    /// Authorization.
    pub authz: Authorizer,
    /// Prometheus metrics (`/metrics`).
    pub metrics: Metrics,
    /// The audit log, if `--audit-log-path` is set.
    pub audit: Option<AuditLog>,
    /// TokenReviews with the host cluster, if `--authentication-kubeconfig` is set.
    pub token_reviewer: Option<TokenReviewer>,
    /// Flips to true when shutdown begins (`/readyz` fails from then on).
    pub draining: tokio::sync::watch::Receiver<bool>,
    /// Requests in flight, bounded by `--max-requests-inflight` and `--max-mutating-requests-inflight`.
    pub inflight: Arc<InFlight>,
    /// `--request-timeout`: a request that is not a watch is answered within it (504 after).
    pub request_timeout: std::time::Duration,
    /// Tests only (`TPR_APISERVER_TEST_PANIC_PATH`): a path whose handler panics.
    pub panic_path: Option<String>,
}

/// Requests in flight that are not watches (watches are bounded by `--max-watches`).
#[derive(Debug, Default)]
pub struct InFlight {
    /// Reads (and other requests that change nothing) in flight.
    pub readonly: std::sync::atomic::AtomicUsize,
    /// Writes in flight.
    pub mutating: std::sync::atomic::AtomicUsize,
    /// `--max-requests-inflight` (0: no limit).
    pub max_readonly: usize,
    /// `--max-mutating-requests-inflight` (0: no limit).
    pub max_mutating: usize,
}

impl InFlight {
    /// Limits of `max_readonly` reads and `max_mutating` writes.
    pub fn new(max_readonly: usize, max_mutating: usize) -> Self {
        InFlight { max_readonly, max_mutating, ..Default::default() }
    }
}
