//! Counts and times every answer in `/metrics` (`apiserver_request_total`,
//! `apiserver_request_duration_seconds`), with labels from closed sets.

use std::sync::Arc;

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

    async fn filter<N: Next>(self: Arc<Self>, req: Request, next: N) -> Response {
        let ctx = context(&req);
        let resp = next.run(req).await;
        if let Some(ctx) = ctx {
            self.app.metrics.observe(&ctx.recorded(), resp.status().as_u16(), ctx.started.elapsed());
        }
        resp
    }
}
