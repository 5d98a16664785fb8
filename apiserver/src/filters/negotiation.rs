//! The `Accept` header must allow JSON (406 otherwise), but for health,
//! `/metrics` and `kubectl auth whoami`.

use std::future::Future;
use std::sync::Arc;

use futures::future::Either;

use super::{refused, Filter, Next, Request, Response};
use crate::endpoints::negotiate;
use crate::endpoints::routing::context_of;
use crate::endpoints::routing::Route;
use crate::status::ApiError;

/// The negotiation filter.
pub struct NegotiationFilter;

impl Filter for NegotiationFilter {
    const NAME: &'static str = "negotiation";

    fn filter<N: Next>(self: Arc<Self>, req: Request, next: N) -> impl Future<Output = Response> + Send + 'static {
        let route = context_of(&req).map(|c| &c.info.route);
        let exempt = route.is_none_or(|r| matches!(r, Route::Public | Route::WhoAmI | Route::Metrics));
        // `/openapi/v2` is also served as protobuf (kubectl asks only for that).
        let openapi_pb = route
            .is_some_and(|r| matches!(r, Route::Document(crate::endpoints::routing::Document::OpenApiV2)))
            && negotiate::wants_openapi_protobuf(req.headers());
        if exempt || openapi_pb || negotiate::accepts_json(req.headers()) {
            return Either::Left(next.run(req));
        }
        let accept = req.headers().get(http::header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
        let e = ApiError::not_acceptable(format!(
            "only the following media types are accepted: application/json (Accept: {accept})"
        ));
        Either::Right(refused(req, e))
    }
}
