//! The first filter: makes the request's [`RequestContext`] (an audit id,
//! when it began, what it is) for the others and the endpoints.

use std::sync::Arc;

use http::HeaderValue;

use super::{Filter, Next, Request, Response};
use crate::endpoints::routing::{RequestContext, RequestInfo};
use crate::served::ServedTypes;

/// The first filter: an audit id and the [`RequestInfo`]; answers carry the
/// `Audit-Id` header.
pub struct RequestInfoFilter {
    /// Resolves groups and versions.
    pub served: Arc<ServedTypes>,
}

impl Filter for RequestInfoFilter {
    const NAME: &'static str = "request-info";

    async fn filter<N: Next>(self: Arc<Self>, mut req: Request, next: N) -> Response {
        let info = RequestInfo::resolve(req.method(), req.uri(), &self.served);
        let ctx = Arc::new(RequestContext::new(req.uri().to_string(), info));
        req.extensions_mut().insert(ctx.clone());
        let mut resp = next.run(req).await;
        if let Ok(v) = HeaderValue::from_str(&ctx.audit_id) {
            resp.headers_mut().insert("audit-id", v);
        }
        resp
    }
}
