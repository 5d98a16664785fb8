//! A resource request, by verb: what every verb shares (the scope, dry
//! run, whether the type is ThirdPartyResource), then reads ([`super::read`]),
//! writes ([`super::write`]), patches and applies ([`super::apply`]),
//! deletes ([`super::delete`]) and watches ([`super::watch`]).

use std::sync::Arc;

use http::Method;
use hyper::body::Incoming;

use super::respond::{self, Body};
use super::{apply, delete, read, watch, write};
use crate::app::App;
use crate::endpoints::routing::ResourceRequest;
use crate::identity::User;
use crate::registry::Scope;
use crate::status::ApiError;
use crate::tpr;

/// What every verb of one resource request shares.
pub struct Call<'a> {
    /// The server.
    pub app: &'a App,
    /// The request's head.
    pub parts: &'a http::request::Parts,
    /// What it asks.
    pub req: &'a ResourceRequest,
    /// Who asks (authenticated).
    pub user: Option<&'a User>,
    /// Its type, version and namespace.
    pub scope: Scope<'a>,
    /// The type is ThirdPartyResource itself.
    pub is_tpr: bool,
    /// `dryRun=All`: validate, store nothing.
    pub dry_run: bool,
}

impl Call<'_> {
    /// The query parameter `key`.
    pub fn param(&self, key: &str) -> Option<&str> {
        self.req.query.get(key).map(String::as_str)
    }
}

/// Serves a resource request (authorized by the corridor) by its verb.
pub async fn serve(
    app: &App,
    parts: &http::request::Parts,
    body: &mut Option<Incoming>,
    req: &ResourceRequest,
    user: Option<&User>,
) -> Result<http::Response<Body>, ApiError> {
    let call = Call {
        app,
        parts,
        req,
        user,
        scope: Scope { rt: &req.rt, version: &req.version, namespace: req.namespace.as_deref() },
        is_tpr: Arc::ptr_eq(&req.rt, app.controller.tpr_type()),
        dry_run: req.query.get("dryRun").is_some_and(|v| v == "All"),
    };
    // TPR writes on this replica go one at a time: conflict check, store, serve.
    let _tpr_writes = match (call.is_tpr, &parts.method) {
        (true, &Method::POST | &Method::PUT | &Method::PATCH) => Some(app.controller.lock_writes().await),
        _ => None,
    };
    let name = req.name.as_deref();
    // Reads run in place; the other verbs are boxed, so that a read's future
    // (copied as it is set up) is not as large as a patch's.
    let mut resp = match (&parts.method, name) {
        (&Method::GET, _) if req.watch => Box::pin(watch::start(&call)).await,
        (&Method::GET, Some(name)) => read::get(&call, name).await,
        (&Method::GET, None) => read::list(&call).await,
        // Writes take the body when they read it; one left unread is drained by the router.
        (&Method::POST, None) => Box::pin(write::create(&call, body)).await,
        (&Method::PUT, Some(name)) => Box::pin(write::update(&call, name, body)).await,
        (&Method::PATCH, Some(name)) => Box::pin(apply::patch(&call, name, body)).await,
        (&Method::DELETE, Some(name)) => Box::pin(delete::delete(&call, name, body)).await,
        (&Method::DELETE, None) if !call.is_tpr => Box::pin(delete::collection(&call, body)).await,
        (m, _) => Err(ApiError::method_not_allowed(m, parts.uri.path())),
    }?;
    if let Some(w) = tpr::version_warning(&req.version) {
        respond::warn(&mut resp, &w);
    }
    Ok(resp)
}
