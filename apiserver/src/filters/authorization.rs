//! The user may do what the request asks, or 403: resource requests by their
//! attributes, documents and `/metrics` by path (kube's `nonResourceURLs`).
//! Health, `/version` and `kubectl auth whoami` need no authorization; paths
//! that serve nothing answer 404 and methods that are no verb 405, whoever asks.

use std::sync::Arc;

use super::{refuse, Filter, Next, Request, Response};
use crate::app::App;
use crate::endpoints::routing::context_of;
use crate::endpoints::routing::Route;

/// The authorization filter.
pub struct AuthorizationFilter {
    /// The authorizer.
    pub app: Arc<App>,
}

impl Filter for AuthorizationFilter {
    const NAME: &'static str = "authorization";

    async fn filter<N: Next>(self: Arc<Self>, req: Request, next: N) -> Response {
        let Some(ctx) = context_of(&req) else { return next.run(req).await };
        let Some(user) = ctx.user() else { return next.run(req).await };
        let decision = match &ctx.info.route {
            Route::Metrics | Route::Document(_) | Route::GroupVersion { .. } => {
                Box::pin(self.app.authz.authorize_path(user, &ctx.info.method_verb(), &ctx.info.path)).await
            }
            Route::Resource(r) => {
                ctx.mark_judged();
                let attributes = r.attributes();
                match self.app.authz.authorize_locally(user, &attributes) {
                    Some(decision) => decision,
                    // Boxed: a webhook's call is large, and most requests never make it.
                    None => Box::pin(self.app.authz.authorize(user, &attributes)).await,
                }
            }
            // A review asks about its caller: every authenticated user may (kube's system:basic-user).
            Route::Public | Route::WhoAmI | Route::Review(_) | Route::MethodNotAllowed | Route::NotFound => Ok(()),
        };
        match decision {
            Ok(()) => next.run(req).await,
            Err(e) => refuse(req, &e).await,
        }
    }
}
