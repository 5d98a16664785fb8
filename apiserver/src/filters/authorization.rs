//! The user may do what the request asks, or 403: resource requests by their
//! attributes, documents and `/metrics` by path (kube's `nonResourceURLs`).
//! Health, `/version` and `kubectl auth whoami` need no authorization; paths
//! that serve nothing answer 404 and methods that are no verb 405, whoever asks.

use std::future::Future;
use std::sync::Arc;

use futures::future::Either;

use super::{refuse, refused, Filter, Next, Request, Response};
use crate::app::App;
use crate::endpoints::routing::{context_of, RequestContext, Route};
use crate::status::ApiError;

/// The authorization filter.
pub struct AuthorizationFilter {
    /// The authorizer.
    pub app: Arc<App>,
}

impl Filter for AuthorizationFilter {
    const NAME: &'static str = "authorization";

    fn filter<N: Next>(self: Arc<Self>, req: Request, next: N) -> impl Future<Output = Response> + Send + 'static {
        let Some(ctx) = context_of(&req) else { return Either::Left(next.run(req)) };
        let Some(user) = ctx.user() else { return Either::Left(next.run(req)) };
        let decision = match &ctx.info.route {
            Route::Resource(r) => {
                ctx.mark_judged();
                self.app.authz.authorize_locally(user, &r.attributes())
            }
            // A review asks about its caller: every authenticated user may (kube's system:basic-user).
            Route::Public | Route::WhoAmI | Route::Review(_) | Route::MethodNotAllowed | Route::NotFound => {
                Some(Ok(()))
            }
            Route::Metrics | Route::Document(_) | Route::GroupVersion { .. } => None,
        };
        match decision {
            Some(Ok(())) => Either::Left(next.run(req)),
            Some(Err(e)) => Either::Right(refused(req, e)),
            // A webhook's call, or a path's rules: few requests make them.
            None => {
                let ctx = ctx.clone();
                Either::Right(Box::pin(async move {
                    match self.authorize(&ctx).await {
                        Ok(()) => next.run(req).await,
                        Err(e) => refuse(req, &e).await,
                    }
                }))
            }
        }
    }
}

impl AuthorizationFilter {
    /// Whether the user of `ctx` may do what it asks, asking a webhook if need be.
    async fn authorize(&self, ctx: &RequestContext) -> Result<(), ApiError> {
        let Some(user) = ctx.user() else { return Ok(()) };
        match &ctx.info.route {
            Route::Resource(r) => self.app.authz.authorize(user, &r.attributes()).await,
            _ => self.app.authz.authorize_path(user, &ctx.info.method_verb(), &ctx.info.path).await,
        }
    }
}
