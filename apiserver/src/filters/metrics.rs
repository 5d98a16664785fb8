//! Counts and times every answer in `/metrics` (`apiserver_request_total`,
//! `apiserver_request_duration_seconds`), with labels from closed sets.

use std::future::Future;
use std::sync::Arc;

use futures::FutureExt;

use super::{Filter, Next, Request, Response};
use crate::app::App;
use crate::endpoints::routing::context;

/// The metrics filter.
pub struct MetricsFilter {
    /// The server's metrics.
    pub app: Arc<App>,
}

impl Filter for MetricsFilter {
    const NAME: &'static str = "metrics";

    fn filter<N: Next>(self: Arc<Self>, req: Request, next: N) -> impl Future<Output = Response> + Send + 'static {
        let ctx = context(&req);
        next.run(req).map(move |resp| {
            if let Some(ctx) = ctx {
                self.app.metrics.observe(&ctx.recorded(), resp.status().as_u16(), ctx.started.elapsed());
            }
            resp
        })
    }
}
