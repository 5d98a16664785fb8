//! Requests in flight are bounded (kube-apiserver's `--max-requests-inflight`
//! and `--max-mutating-requests-inflight`): beyond, 429 with `Retry-After`,
//! at once, so that what is admitted keeps its latency. Watches are bounded
//! by `--max-watches` instead; health paths and `system:masters` are not
//! limited, as kube exempts them, so that probes and an admin get through.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use futures::future::Either;
use futures::FutureExt;
use http::Method;

use super::{refused, Filter, Next, Request, Response};
use crate::app::{App, InFlight};
use crate::endpoints::routing::{context_of, Route};
use crate::status::ApiError;

/// The in-flight filter.
pub struct InFlightFilter {
    /// The counters and limits.
    pub app: Arc<App>,
}

/// A place taken among the writes (`mutating`) or the reads; given back when dropped.
struct Slot {
    flight: Arc<InFlight>,
    mutating: bool,
}

impl Slot {
    fn count(&self) -> &AtomicUsize {
        match self.mutating {
            true => &self.flight.mutating,
            false => &self.flight.readonly,
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.count().fetch_sub(1, Ordering::AcqRel);
    }
}

/// A place among the writes or the reads of `flight`, if one is free.
fn take(flight: &Arc<InFlight>, mutating: bool) -> Option<Slot> {
    let (count, max) = match mutating {
        true => (&flight.mutating, flight.max_mutating),
        false => (&flight.readonly, flight.max_readonly),
    };
    match max {
        0 => {
            count.fetch_add(1, Ordering::AcqRel);
        }
        _ => {
            count.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < max).then_some(n + 1)).ok()?;
        }
    }
    Some(Slot { flight: flight.clone(), mutating })
}

impl Filter for InFlightFilter {
    const NAME: &'static str = "inflight";

    fn filter<N: Next>(self: Arc<Self>, req: Request, next: N) -> impl Future<Output = Response> + Send + 'static {
        let Some(ctx) = context_of(&req) else { return Either::Left(Either::Left(next.run(req))) };
        let exempt = matches!(ctx.info.route, Route::Public)
            || ctx.user().is_some_and(|u| u.groups.iter().any(|g| g == "system:masters"));
        if exempt || matches!(&ctx.info.route, Route::Resource(r) if r.watch) {
            return Either::Left(Either::Left(next.run(req)));
        }
        let mutating = matches!(*req.method(), Method::POST | Method::PUT | Method::PATCH | Method::DELETE);
        let Some(slot) = take(&self.app.inflight, mutating) else {
            return Either::Right(refused(req, ApiError::too_many("Too many requests, please try again later.")));
        };
        // The place is held until the answer is out, or the request gone.
        Either::Left(Either::Right(next.run(req).map(move |resp| {
            drop(slot);
            resp
        })))
    }
}
