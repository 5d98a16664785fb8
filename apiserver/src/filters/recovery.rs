//! A handler that panics answers 500 (a `Status`) instead of taking its
//! connection down: the connection's other requests, and its watches, carry
//! on. The panic is logged.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures::FutureExt;

use super::{Filter, Next, Request, Response};
use crate::endpoints::respond;
use crate::status::ApiError;

/// The panic recovery filter.
pub struct RecoveryFilter;

impl Filter for RecoveryFilter {
    const NAME: &'static str = "recovery";

    async fn filter<N: Next>(self: Arc<Self>, req: Request, next: N) -> Response {
        // Kept for the log line of a panic (a clone shares the URI's bytes).
        let uri = req.uri().clone();
        match AssertUnwindSafe(next.run(req)).catch_unwind().await {
            Ok(resp) => resp,
            Err(panic) => {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a panic".into());
                tracing::error!(uri = %uri, "a handler panicked: {what}");
                respond::error(&ApiError::internal("Internal error occurred: the handler of this request failed"))
            }
        }
    }
}
