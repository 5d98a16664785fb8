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
}
