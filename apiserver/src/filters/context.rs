//! The first filter: makes the request's [`RequestContext`] (an audit id,
//! when it began, what it is) for the others and the endpoints; indents
//! JSON answers for people (`pretty`, curl: see [`crate::endpoints::pretty`]).

use std::future::Future;
use std::sync::Arc;

use futures::FutureExt;
use http::{HeaderName, HeaderValue};

use super::{Filter, Next, Request, Response};
use crate::endpoints::routing::{RequestContext, RequestInfo};
use crate::served::ServedTypes;

/// The `Audit-Id` response header.
const AUDIT_ID: HeaderName = HeaderName::from_static("audit-id");

/// The first filter: an audit id and the [`RequestInfo`]; answers carry the
/// `Audit-Id` header.
pub struct RequestInfoFilter {
    /// Resolves groups and versions.
    pub served: Arc<ServedTypes>,
}

impl Filter for RequestInfoFilter {
    const NAME: &'static str = "request-info";

    fn filter<N: Next>(self: Arc<Self>, mut req: Request, next: N) -> impl Future<Output = Response> + Send + 'static {
        let info = RequestInfo::resolve(req.method(), req.uri(), &self.served);
        let ctx = Arc::new(RequestContext::new(req.uri().clone(), info));
        req.extensions_mut().insert(ctx.clone());
        // A watch's stream stays one event per line.
        let watch = matches!(&ctx.info.route, crate::endpoints::routing::Route::Resource(r) if r.watch);
        let pretty = !watch && crate::endpoints::pretty::wanted(req.uri(), req.headers());
        next.run(req).map(move |mut resp| {
            if pretty {
                resp = crate::endpoints::pretty::indent(resp);
            }
            let mut id = uuid::Uuid::encode_buffer();
            if let Ok(mut v) = HeaderValue::from_str(ctx.audit_id.hyphenated().encode_lower(&mut id)) {
                // Never indexed by HPACK: each id is new, and indexing it would
                // only churn the connection's header table.
                v.set_sensitive(true);
                resp.headers_mut().insert(AUDIT_ID, v);
            }
            resp
        })
    }
}
