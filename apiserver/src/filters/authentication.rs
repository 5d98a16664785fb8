//! Who sent a request, in kube-apiserver's order: the front proxy's request
//! headers (only on a connection whose certificate the request-header CA
//! signed with an allowed name), the client certificate, a bearer token of
//! this server, then a TokenReview with the host cluster. Nobody: 401.
//! Public paths pass without credentials.

use std::future::Future;
use std::sync::Arc;

use futures::future::Either;

use super::{refuse, refused, Detour, Filter, Next, Request, Response};
use crate::app::App;
use crate::endpoints::routing::{context_of, RequestContext, Route};
use crate::identity::Peer;
use crate::status::ApiError;

/// The authentication filter.
pub struct AuthenticationFilter {
    /// Credentials and the host cluster's reviewer.
    pub app: Arc<App>,
}

impl Filter for AuthenticationFilter {
    const NAME: &'static str = "authentication";

    fn filter<N: Next>(self: Arc<Self>, req: Request, next: N) -> impl Future<Output = Response> + Send + 'static {
        let Some(ctx) = context_of(&req) else { return Either::Left(next.run(req)) };
        if matches!(ctx.info.route, Route::Public) {
            return Either::Left(next.run(req));
        }
        let app = &self.app;
        let bearer = req.headers().get(http::header::AUTHORIZATION).and_then(|v| v.to_str().ok());
        let user = match req.extensions().get::<Peer>() {
            Some(Peer::FrontProxy) => app.request_headers.user(req.headers()).map(Arc::new),
            Some(Peer::User(u)) => Some(u.clone()),
            Some(Peer::None) | None => None,
            Some(Peer::Refused(why)) => {
                tracing::debug!(uri = %ctx.uri, "{why}; the request may still authenticate otherwise");
                None
            }
        }
        .or_else(|| app.authn.bearer(bearer));
        if let Some(user) = user {
            ctx.set_user(user);
            return Either::Left(next.run(req));
        }
        // A token this server does not know: ask the host cluster.
        let token = bearer.and_then(|b| b.strip_prefix("Bearer ")).map(str::trim).filter(|t| !t.is_empty());
        match (&app.token_reviewer, token) {
            (Some(_), Some(token)) => {
                let (token, ctx) = (token.to_string(), ctx.clone());
                Either::Right(reviewed(self, token, ctx, req, next))
            }
            _ => Either::Right(refused(req, ApiError::unauthorized())),
        }
    }
}

/// A request whose bearer `token` the host cluster reviews first (a TokenReview).
fn reviewed<N: Next>(
    filter: Arc<AuthenticationFilter>,
    token: String,
    ctx: Arc<RequestContext>,
    req: Request,
    next: N,
) -> Detour {
    Box::pin(async move {
        let user = match &filter.app.token_reviewer {
            Some(reviewer) => reviewer.review(&token).await.map(Arc::new),
            None => None,
        };
        let Some(user) = user else { return refuse(req, &ApiError::unauthorized()).await };
        ctx.set_user(user);
        next.run(req).await
    })
}
