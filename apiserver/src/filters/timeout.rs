//! A request that is not a watch is answered within `--request-timeout`:
//! after it, 504 (kube-apiserver's answer; a write cut off there may or may
//! not have been stored). Watches end by their own `timeoutSeconds`.

use std::future::Future;
use std::sync::Arc;

use futures::future::Either;
use futures::FutureExt;

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

    fn filter<N: Next>(self: Arc<Self>, req: Request, next: N) -> impl Future<Output = Response> + Send + 'static {
        let long_running = context_of(&req).is_some_and(|c| matches!(&c.info.route, Route::Resource(r) if r.watch));
        let answer = next.run(req);
        if long_running {
            return Either::Left(answer);
        }
        Either::Right(tokio::time::timeout(self.app.request_timeout, answer).map(|answered| {
            answered.unwrap_or_else(|_| {
                respond::error(&ApiError::timeout(
                    "Timeout: request did not complete within requested timeout - context deadline exceeded",
                ))
            })
        }))
    }
}
