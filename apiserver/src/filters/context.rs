//! The request's context, made by the first filter and read by the others:
//! its audit id, when it began, what it is ([`RequestInfo`]) and, once
//! authenticated, who sent it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use http::HeaderValue;

use super::request_info::{RequestInfo, Route};
use super::{Filter, Next, Request, Response};
use crate::identity::User;
use crate::observe::Recorded;
use crate::tpr::served::ServedTypes;

/// One request's context (a request extension).
pub struct RequestContext {
    /// Its audit id (also the `Audit-Id` response header).
    pub audit_id: String,
    /// When it arrived.
    pub started: Instant,
    /// Its URI, as sent.
    pub uri: String,
    /// What it is.
    pub info: RequestInfo,
    user: OnceLock<User>,
    /// Set when authorization judged it as a resource request.
    judged: AtomicBool,
}

impl RequestContext {
    /// Who sent it, once authenticated.
    pub fn user(&self) -> Option<&User> {
        self.user.get()
    }

    /// Records who sent it (the authentication filter).
    pub fn set_user(&self, user: User) {
        let _ = self.user.set(user);
    }

    /// Marks it as judged by resource attributes (then recorded with them).
    pub fn mark_judged(&self) {
        self.judged.store(true, Ordering::Relaxed);
    }

    /// What metrics and the audit log record: the resource once
    /// authorization judged the request by it, else the lower-cased method.
    pub fn recorded(&self) -> Recorded {
        match &self.info.route {
            Route::Resource(r) if self.judged.load(Ordering::Relaxed) => r.recorded(),
            _ => Recorded { verb: self.info.method_verb(), ..Default::default() },
        }
    }
}

/// The context of a request that went through [`RequestInfoFilter`].
pub fn context(req: &Request) -> Option<Arc<RequestContext>> {
    req.extensions().get::<Arc<RequestContext>>().cloned()
}

/// The first filter: an audit id and the [`RequestInfo`]; answers carry the
/// `Audit-Id` header.
pub struct RequestInfoFilter {
    /// Resolves groups and versions.
    pub served: Arc<ServedTypes>,
}

impl Filter for RequestInfoFilter {
    const NAME: &'static str = "request-info";

    async fn filter<N: Next>(&self, mut req: Request, next: N) -> Response {
        let ctx = Arc::new(RequestContext {
            audit_id: uuid::Uuid::new_v4().to_string(),
            started: Instant::now(),
            uri: req.uri().to_string(),
            info: RequestInfo::resolve(req.method(), req.uri(), &self.served),
            user: OnceLock::new(),
            judged: AtomicBool::new(false),
        });
        req.extensions_mut().insert(ctx.clone());
        let mut resp = next.run(req).await;
        if let Ok(v) = HeaderValue::from_str(&ctx.audit_id) {
            resp.headers_mut().insert("audit-id", v);
        }
        resp
    }
}
