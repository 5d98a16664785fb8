//! The request corridor: the filters every request passes between its
//! connection and the endpoints, as `tower` layers, outermost first (kube's
//! `DefaultBuildHandlerChain` is the model):
//!
//! 1. [`context::RequestInfoFilter`]: an audit id, and what the request is
//!    ([`crate::endpoints::routing::RequestInfo`]); answers carry `Audit-Id`.
//! 2. [`metrics::MetricsFilter`]: counts and times every answer.
//! 3. [`audit::AuditFilter`]: one audit line per request (and the debug log line).
//! 4. [`recovery::RecoveryFilter`]: a handler that panics answers 500; its connection carries on.
//! 5. [`timeout::TimeoutFilter`]: what is not a watch is answered within `--request-timeout` (504).
//! 6. [`authentication::AuthenticationFilter`]: who sent it, or 401 (public paths pass).
//! 7. [`inflight::InFlightFilter`]: at most `--max-requests-inflight` reads and
//!    `--max-mutating-requests-inflight` writes in flight, else 429.
//! 8. [`negotiation::NegotiationFilter`]: the `Accept` header must allow JSON, or 406.
//! 9. [`authorization::AuthorizationFilter`]: the user may do it, or 403.
//! 10. [`crate::endpoints::Router`]: the endpoints.
//!
//! Each filter is infallible: it answers every request, passing it on or
//! answering itself (a `Status`). A new concern is one more [`Filter`] in
//! [`corridor`].
//!
//! The layers are built with `tower`; a request runs through them by
//! [`Handle`]. A filter does its checks when it is called and returns a
//! small future that holds the rest of the corridor's future and what it
//! needs afterwards (never the request): the steps nest in one allocation,
//! with the endpoints' large future boxed once behind them. A path few
//! requests take (a refusal, a call to the host cluster) is a boxed
//! [`Detour`].

pub mod audit;
pub mod authentication;
pub mod authorization;
pub mod context;
pub mod inflight;
pub mod metrics;
pub mod negotiation;
pub mod recovery;
pub mod timeout;

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll};

use tower::{Layer, Service, ServiceBuilder};

use crate::app::App;
use crate::endpoints::Router;

pub use crate::endpoints::{Layered, Request, Response, ResponseFuture};

/// One step of the corridor: answers a request itself or passes it on.
pub trait Filter: Send + Sync + 'static {
    /// Its name, as [`Layered::layers`] lists it.
    const NAME: &'static str;

    /// Answers `req`, calling `next` to pass it on.
    /// Checks come first, as it is called; the future it returns answers.
    fn filter<N: Next>(self: Arc<Self>, req: Request, next: N) -> impl Future<Output = Response> + Send + 'static;
}

/// The rest of the corridor after a filter.
pub trait Next: Send + 'static {
    /// Passes the request on: the steps after run their checks now, and
    /// the future answers.
    fn run(self, req: Request) -> impl Future<Output = Response> + Send + 'static;
}

/// The service after a filter, as its [`Next`].
pub struct Inner<S>(S);

impl<S: Handle> Next for Inner<S> {
    fn run(self, req: Request) -> impl Future<Output = Response> + Send + 'static {
        self.0.handle(req)
    }
}

/// A step of the corridor, run without `tower`'s `Service` machinery (no
/// `poll_ready`, no clone per call).
pub trait Handle: Clone + Send + Sync + 'static {
    /// Serves `req`.
    fn handle(self, req: Request) -> impl Future<Output = Response> + Send + 'static;
}

impl Handle for Router {
    fn handle(self, req: Request) -> impl Future<Output = Response> + Send + 'static {
        // Boxed: the endpoints' future is large, and every filter's holds it.
        Box::pin(self.serve(req))
    }
}

/// A filter's path that few requests take, boxed so that the common path's
/// future stays small.
pub type Detour = std::pin::Pin<Box<dyn Future<Output = Response> + Send>>;

impl<F: Filter, S: Handle> Handle for Filtered<F, S> {
    fn handle(self, req: Request) -> impl Future<Output = Response> + Send + 'static {
        self.filter.filter(req, Inner(self.inner))
    }
}

/// A [`Filter`] as a `tower` layer.
pub struct FilterLayer<F>(Arc<F>);

impl<F> FilterLayer<F> {
    /// The layer of `filter`.
    pub fn new(filter: F) -> Self {
        FilterLayer(Arc::new(filter))
    }
}

impl<F, S> Layer<S> for FilterLayer<F> {
    type Service = Filtered<F, S>;

    fn layer(&self, inner: S) -> Filtered<F, S> {
        Filtered { filter: self.0.clone(), inner }
    }
}

/// A [`Filter`] in front of the service `S`.
pub struct Filtered<F, S> {
    filter: Arc<F>,
    inner: S,
}

impl<F, S: Clone> Clone for Filtered<F, S> {
    fn clone(&self) -> Self {
        Filtered { filter: self.filter.clone(), inner: self.inner.clone() }
    }
}

impl<F: Filter, S: Handle> Service<Request> for Filtered<F, S> {
    type Response = Response;
    type Error = Infallible;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request) -> ResponseFuture {
        let this = self.clone();
        Box::pin(async move { Ok(this.handle(req).await) })
    }
}

impl<F: Filter, S: Layered> Layered for Filtered<F, S> {
    fn layers(&self) -> Vec<&'static str> {
        let mut names = vec![F::NAME];
        names.extend(self.inner.layers());
        names
    }
}

/// `Filtered<A, Filtered<B, ...>>` of filters `A, B, ...` in front of `S`.
macro_rules! stack {
    ($service:ty) => { $service };
    ($filter:ty, $($rest:ty),+) => { Filtered<$filter, stack!($($rest),+)> };
}

/// The corridor's concrete type.
pub type Corridor = stack!(
    context::RequestInfoFilter,
    metrics::MetricsFilter,
    audit::AuditFilter,
    recovery::RecoveryFilter,
    timeout::TimeoutFilter,
    authentication::AuthenticationFilter,
    inflight::InFlightFilter,
    negotiation::NegotiationFilter,
    authorization::AuthorizationFilter,
    Router
);

/// The filters in order, in front of the endpoints.
pub fn corridor(app: Arc<App>) -> Corridor {
    ServiceBuilder::new()
        .layer(FilterLayer::new(context::RequestInfoFilter { served: app.served.clone() }))
        .layer(FilterLayer::new(metrics::MetricsFilter { app: app.clone() }))
        .layer(FilterLayer::new(audit::AuditFilter { app: app.clone() }))
        .layer(FilterLayer::new(recovery::RecoveryFilter))
        .layer(FilterLayer::new(timeout::TimeoutFilter { app: app.clone() }))
        .layer(FilterLayer::new(authentication::AuthenticationFilter { app: app.clone() }))
        .layer(FilterLayer::new(inflight::InFlightFilter { app: app.clone() }))
        .layer(FilterLayer::new(negotiation::NegotiationFilter))
        .layer(FilterLayer::new(authorization::AuthorizationFilter { app: app.clone() }))
        .service(Router::new(app))
}

/// Answers a request a filter refuses, draining its body first (bounded, see
/// [`crate::endpoints::request::drain`]), so that HTTP/2 clients see the
/// whole answer.
pub async fn refuse(req: Request, e: &crate::status::ApiError) -> Response {
    crate::endpoints::request::drain(req.into_body()).await;
    crate::endpoints::respond::error(e)
}

/// [`refuse`] as a filter's [`Detour`].
pub fn refused(req: Request, e: crate::status::ApiError) -> Detour {
    Box::pin(async move { refuse(req, &e).await })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server's state on an embedded store in `dir`.
    fn app(dir: &std::path::Path) -> Arc<App> {
        let store: Arc<dyn storage::Store> =
            Arc::new(storage::EmbeddedStore::open(&storage::EmbeddedConfig::new(dir)).expect("store"));
        let served = Arc::new(crate::served::ServedTypes::default());
        let controller = crate::tpr::Controller::new(store.clone(), served.clone()).expect("controller");
        let (authn, _) = crate::auth::authn::Authenticator::load(None, None).expect("authenticator");
        Arc::new(App {
            store,
            served,
            controller,
            authn,
            shutdown: tokio::sync::watch::channel(false).1,
            watches: Default::default(),
            max_watches: 10,
            request_headers: Default::default(),
            authz: crate::auth::authz::Authorizer::AlwaysAllow,
            metrics: Default::default(),
            audit: None,
            token_reviewer: None,
            draining: tokio::sync::watch::channel(false).1,
            inflight: Arc::new(crate::app::InFlight::new(1, 1)),
            request_timeout: std::time::Duration::from_millis(200),
            panic_path: Some("/panic".into()),
        })
    }

    /// The size of the future `f` returns.
    fn future_size<F: Fn(Request) -> Fut, Fut>(_: &F) -> usize {
        std::mem::size_of::<Fut>()
    }

    /// Every open watch holds its corridor's future: the filters' futures
    /// hold what they need afterwards, never the request, and the
    /// endpoints' future is boxed (208 bytes when written; async filters
    /// nested unboxed, each holding the request, made it 6.4 KB and an idle
    /// watcher 4.7 KiB larger).
    #[tokio::test]
    async fn the_corridor_future_stays_small() {
        let dir = tempfile::tempdir().expect("tempdir");
        let stack = corridor(app(dir.path()));
        let handle = |req| stack.clone().handle(req);
        assert!(future_size(&handle) <= 512, "{} bytes", future_size(&handle));
    }

    #[tokio::test]
    async fn the_corridor_is_in_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        let stack = corridor(app(dir.path()));
        assert_eq!(
            stack.layers(),
            [
                "request-info",
                "metrics",
                "audit",
                "recovery",
                "timeout",
                "authentication",
                "inflight",
                "negotiation",
                "authorization",
                "router"
            ]
        );
    }
}
