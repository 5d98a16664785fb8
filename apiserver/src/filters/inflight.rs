//! Requests in flight are bounded (kube-apiserver's `--max-requests-inflight`
//! and `--max-mutating-requests-inflight`): beyond, 429 with `Retry-After`,
//! at once, so that what is admitted keeps its latency. Watches are bounded
//! by `--max-watches` instead; health paths and `system:masters` are not
//! limited, as kube exempts them, so that probes and an admin get through.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use http::Method;

use super::{refuse, Filter, Next, Request, Response};
use crate::app::App;
use crate::endpoints::routing::{context_of, Route};
use crate::status::ApiError;

/// The in-flight filter.
pub struct InFlightFilter {
    /// The counters and limits.
    pub app: Arc<App>,
}

/// A place taken; given back when dropped.
struct Slot<'a>(&'a AtomicUsize);

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

fn take(count: &AtomicUsize, max: usize) -> Option<Slot<'_>> {
    if max == 0 {
        count.fetch_add(1, Ordering::AcqRel);
        return Some(Slot(count));
    }
    count.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < max).then_some(n + 1)).ok()?;
    Some(Slot(count))
}

impl Filter for InFlightFilter {
    const NAME: &'static str = "inflight";

    async fn filter<N: Next>(self: Arc<Self>, req: Request, next: N) -> Response {
        let Some(ctx) = context_of(&req) else { return next.run(req).await };
        let exempt = matches!(ctx.info.route, Route::Public)
            || ctx.user().is_some_and(|u| u.groups.iter().any(|g| g == "system:masters"));
        if matches!(&ctx.info.route, Route::Resource(r) if r.watch) {
            return next.run(req).await;
        }
        if exempt {
            return next.run(req).await;
        }
        let flight = &self.app.inflight;
        let mutating = matches!(*req.method(), Method::POST | Method::PUT | Method::PATCH | Method::DELETE);
        let (count, max) = match mutating {
            true => (&flight.mutating, flight.max_mutating),
            false => (&flight.readonly, flight.max_readonly),
        };
        let Some(_slot) = take(count, max) else {
            return refuse(req, &ApiError::too_many("Too many requests, please try again later.")).await;
        };
        next.run(req).await
    }
}
