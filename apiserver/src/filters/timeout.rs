//! A request that is not a watch is answered within `--request-timeout`:
//! after it, 504 (kube-apiserver's answer; a write cut off there may or may
//! not have been stored). Watches end by their own `timeoutSeconds`.

use std::sync::Arc;

use super::{Filter, Next, Request, Response};
use crate::app::App;
use crate::endpoints::respond;
use crate::endpoints::routing::{context_of, Route};
use crate::status::ApiError;

/// The timeout filter.
pub struct TimeoutFilter {
    /// `--request-timeout`.
    pub app: Arc<App>,
}

impl Filter for TimeoutFilter {
    const NAME: &'static str = "timeout";

    async fn filter<N: Next>(self: Arc<Self>, req: Request, next: N) -> Response {
        let long_running = context_of(&req).is_some_and(|c| matches!(&c.info.route, Route::Resource(r) if r.watch));
        if long_running {
            return next.run(req).await;
        }
        match tokio::time::timeout(self.app.request_timeout, next.run(req)).await {
            Ok(resp) => resp,
            Err(_) => respond::error(&ApiError::timeout(
                "Timeout: request did not complete within requested timeout - context deadline exceeded",
            )),
        }
    }
}
