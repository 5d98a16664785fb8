//! Who sent a request, in kube-apiserver's order: the front proxy's request
//! headers (only on a connection whose certificate the request-header CA
//! signed with an allowed name), the client certificate, a bearer token of
//! this server, then a TokenReview with the host cluster. Nobody: 401.
//! Public paths pass without credentials.

use std::sync::Arc;

use super::{refuse, Filter, Next, Request, Response};
use crate::app::App;
use crate::endpoints::routing::context_of;
use crate::endpoints::routing::Route;
use crate::identity::Peer;
use crate::status::ApiError;

/// The authentication filter.
pub struct AuthenticationFilter {
    /// Credentials and the host cluster's reviewer.
    pub app: Arc<App>,
}

impl Filter for AuthenticationFilter {
    const NAME: &'static str = "authentication";

    async fn filter<N: Next>(self: Arc<Self>, req: Request, next: N) -> Response {
        let Some(ctx) = context_of(&req) else { return next.run(req).await };
        if matches!(ctx.info.route, Route::Public) {
            return next.run(req).await;
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
        // A token this server does not know: ask the host cluster.
        let token = bearer.and_then(|b| b.strip_prefix("Bearer ")).map(str::trim).filter(|t| !t.is_empty());
        let user = match (user, &app.token_reviewer, token) {
            // Boxed: the host cluster's review is large, and rare.
            (None, Some(reviewer), Some(token)) => Box::pin(reviewer.review(token)).await.map(Arc::new),
            (user, _, _) => user,
        };
        let Some(user) = user else { return refuse(req, &ApiError::unauthorized()).await };
        ctx.set_user(user);
        next.run(req).await
    }
}
