//! One audit line per request (`--audit-log-path`: time, audit id, user,
//! groups, verb, resource, URI, code, latency), and the request's debug log
//! line.

use std::future::Future;
use std::sync::Arc;

use futures::FutureExt;

use super::{Filter, Next, Request, Response};
use crate::app::App;
use crate::endpoints::routing::{context, RequestContext};

/// The audit filter.
pub struct AuditFilter {
    /// The audit log (if any).
    pub app: Arc<App>,
}

impl Filter for AuditFilter {
    const NAME: &'static str = "audit";

    fn filter<N: Next>(self: Arc<Self>, req: Request, next: N) -> impl Future<Output = Response> + Send + 'static {
        let ctx = context(&req);
        next.run(req).map(move |resp| self.record(ctx, resp))
    }
}

impl AuditFilter {
    /// Logs and audits the answer `resp` to the request of `ctx`.
    fn record(&self, ctx: Option<Arc<RequestContext>>, resp: Response) -> Response {
        let Some(ctx) = ctx else { return resp };
        let logged = tracing::enabled!(tracing::Level::DEBUG);
        if !logged && self.app.audit.is_none() {
            return resp;
        }
        let (code, latency, recorded) = (resp.status().as_u16(), ctx.started.elapsed(), ctx.recorded());
        tracing::debug!(
            request_id = %ctx.audit_id,
            user = ctx.user().map(|u| u.name.as_str()).unwrap_or("system:anonymous"),
            verb = %recorded.verb,
            uri = %ctx.uri,
            code,
            latency_ms = latency.as_secs_f64() * 1e3,
            "request"
        );
        if let Some(audit) = &self.app.audit {
            audit.record(&ctx.audit_id.to_string(), ctx.user(), &recorded, &ctx.uri.to_string(), code, latency);
        }
        resp
    }
}
