//! The endpoints: the innermost service of the corridor ([`Router`]),
//! answering each request by its [`Route`]: public paths and documents
//! ([`documents`]), and resource requests by verb ([`resources`]: reads,
//! writes, patches and applies, deletes, watches). Request bodies, answers
//! and content negotiation are [`request`], [`respond`] and [`negotiate`];
//! patch and apply bodies are [`patch`] and [`yaml`].

pub mod apply;
pub mod delete;
pub mod documents;
pub mod list_stream;
pub mod negotiate;
pub mod patch;
pub mod pretty;
pub mod protobuf;
pub mod read;
pub mod request;
pub mod resources;
pub mod respond;
pub mod reviews;
pub mod routing;
pub mod watch;
pub mod write;
pub mod yaml;

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::FutureExt;

use tower::Service;

use respond::Body;

use crate::app::App;
use crate::status::ApiError;
use routing::{context, Route};

/// A request as the corridor carries it.
pub type Request = http::Request<hyper::body::Incoming>;
/// An answer.
pub type Response = http::Response<Body>;
/// The future of an answer.
pub type ResponseFuture = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Response, Infallible>> + Send>>;

/// Names the steps of a service stack, outermost first.
pub trait Layered {
    /// The steps' names.
    fn layers(&self) -> Vec<&'static str>;
}

/// The endpoints as the corridor's last service.
#[derive(Clone)]
pub struct Router {
    app: Arc<App>,
}

impl Router {
    /// The endpoints of `app`.
    pub fn new(app: Arc<App>) -> Self {
        Router { app }
    }

    /// Answers `req` (the corridor's last step: no `Service` box of its own).
    pub async fn serve(self, req: Request) -> Response {
        route(&self.app, req).await
    }
}

impl Layered for Router {
    fn layers(&self) -> Vec<&'static str> {
        vec!["router"]
    }
}

impl Service<Request> for Router {
    type Response = Response;
    type Error = Infallible;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request) -> ResponseFuture {
        Box::pin(self.clone().serve(req).map(Ok))
    }
}

/// Answers a request by its route. A body nobody read is drained first
/// (bounded, see [`request::drain`]): dropping it would make HTTP/2 reset the
/// stream before the client sees the answer.
async fn route(app: &App, req: Request) -> Response {
    let Some(ctx) = context(&req) else { return respond::error(&ApiError::internal("no request context")) };
    if app.panic_path.as_deref() == Some(ctx.info.path.as_str()) {
        panic!("the test panic path {} was asked for", ctx.info.path);
    }
    let (parts, body) = req.into_parts();
    let mut body = Some(body);
    let answer = match &ctx.info.route {
        Route::Public => Ok(Box::pin(documents::public(app, &ctx.info.path)).await),
        Route::WhoAmI => Ok(documents::whoami(ctx.user())),
        Route::Metrics => Ok(documents::metrics(app, &parts)),
        Route::Document(d) => documents::document(app, &parts, d),
        Route::GroupVersion { group, version, types } => documents::group_version(&parts, group, version, types),
        Route::Resource(r) => resources::serve(app, &parts, &mut body, r, ctx.user()).await,
        Route::Review(b) => Box::pin(reviews::serve(app, &parts, &mut body, *b, ctx.user())).await,
        Route::MethodNotAllowed => Err(ApiError::method_not_allowed(&parts.method, parts.uri.path())),
        // Not loaded yet (the store did not answer at start): not "not found".
        Route::NotFound if !app.controller.is_synced() && parts.uri.path().starts_with("/apis/") => {
            Err(ApiError::unavailable("the server is loading the stored ThirdPartyResources; retry").retry_after(1))
        }
        Route::NotFound => Err(ApiError::no_route(parts.uri.path())),
    };
    if let Some(unread) = body {
        request::drain(unread).await;
    }
    answer.unwrap_or_else(|e| respond::error(&e))
}
