//! A handler that panics answers 500 (a `Status`) instead of taking its
//! connection down: the connection's other requests, and its watches, carry
//! on. The panic is logged.

use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures::future::Either;
use futures::FutureExt;

use super::{Filter, Next, Request, Response};
use crate::endpoints::respond;
use crate::endpoints::routing::{context, RequestContext};
use crate::status::ApiError;

/// The panic recovery filter.
pub struct RecoveryFilter;

impl Filter for RecoveryFilter {
    const NAME: &'static str = "recovery";

    fn filter<N: Next>(self: Arc<Self>, req: Request, next: N) -> impl Future<Output = Response> + Send + 'static {
        // For the log line of a panic.
        let ctx = context(&req);
        // The steps after this one check the request now, as they are called.
        match std::panic::catch_unwind(AssertUnwindSafe(move || next.run(req))) {
            Ok(answer) => Either::Left(
                AssertUnwindSafe(answer)
                    .catch_unwind()
                    .map(move |answered| answered.unwrap_or_else(|panic| recovered(ctx.as_deref(), panic))),
            ),
            Err(panic) => Either::Right(std::future::ready(recovered(ctx.as_deref(), panic))),
        }
    }
}

/// The answer to a request whose handler panicked with `panic`.
fn recovered(ctx: Option<&RequestContext>, panic: Box<dyn Any + Send>) -> Response {
    let what = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic".into());
    let uri = ctx.map(|c| c.uri.to_string()).unwrap_or_default();
    tracing::error!(uri = %uri, "a handler panicked: {what}");
    respond::error(&ApiError::internal("Internal error occurred: the handler of this request failed"))
}
