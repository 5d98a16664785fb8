//! Routing: what a request is, read from its method, path and query before
//! anything else runs (kube's RequestInfo): a public path, a document, or a
//! resource request with its type, version, namespace, name and verb; and
//! the [`RequestContext`] that carries it (with the audit id and, once
//! authenticated, the user) through the corridor. The filters authorize by
//! it; the endpoints serve by it; metrics and the audit log record it.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use http::Method;

use crate::endpoints::request;
use crate::identity::{Attributes, User};
use crate::observe::Recorded;
use crate::served::{ResourceType, ServedTypes};

/// Where a request goes.
pub enum Route {
    /// Health and `/version`: answered to anyone.
    Public,
    /// `POST /apis/authentication.k8s.io/v1/selfsubjectreviews` (`kubectl auth whoami`).
    WhoAmI,
    /// `/metrics`.
    Metrics,
    /// A document that is no resource: `/`, discovery, OpenAPI.
    Document(Document),
    /// `/apis/<group>/<version>`: the resources of a served group-version.
    GroupVersion {
        /// The group.
        group: String,
        /// The version as named in the path (`stable/v1` too).
        version: String,
        /// Every type of the group that serves the version.
        types: Vec<Arc<ResourceType>>,
    },
    /// An object or collection of a served type.
    Resource(ResourceRequest),
    /// `POST /apis/authorization.k8s.io/v1/selfsubject{access,rules}reviews` (standalone).
    Review(discovery::Builtin),
    /// A path of a served type, but a method that is no Kubernetes verb there.
    MethodNotAllowed,
    /// Nothing is served at this path.
    NotFound,
}

/// The documents that are no resource.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Document {
    /// `/`: every path served.
    Root,
    /// `/api`.
    Api,
    /// `/api/v1`.
    CoreV1,
    /// `/apis`.
    Apis,
    /// `/apis/<group>`.
    Group(String),
    /// `/apis/authorization.k8s.io/v1` (standalone: the reviews).
    Reviews,
    /// `/apis/apiextensions.k8s.io/v1/customresourcedefinitions`: none are
    /// served here (an empty list). kubectl lists them to tell a mistyped
    /// kind from a CRD without a schema.
    NoCustomResourceDefinitions,
    /// `/openapi/v2`.
    OpenApiV2,
    /// `/openapi/v3`.
    OpenApiV3,
    /// `/openapi/v3/apis/<group>/<version>`.
    OpenApiV3GroupVersion(String, String),
    /// Anything else under `/openapi/v3`.
    OpenApiOther,
}

/// A request for objects of a served type.
pub struct ResourceRequest {
    /// The type.
    pub rt: Arc<ResourceType>,
    /// The version named in the path.
    pub version: String,
    /// The namespace of the path (none for cluster-scoped types and all namespaces).
    pub namespace: Option<String>,
    /// The object's name, if the path names one.
    pub name: Option<String>,
    /// get, list, watch, create, update, patch, delete or deletecollection.
    pub verb: &'static str,
    /// A watch: the `/watch/` path or `watch=true`.
    pub watch: bool,
    /// The query parameters.
    pub query: HashMap<String, String>,
}

impl ResourceRequest {
    /// What it asks, for authorization.
    pub fn attributes(&self) -> Attributes<'_> {
        Attributes {
            verb: self.verb,
            group: &self.rt.group,
            version: &self.version,
            resource: &self.rt.plural,
            namespace: self.namespace.as_deref(),
            name: self.name.as_deref(),
        }
    }

    /// What metrics and the audit log record of it.
    pub fn recorded(&self) -> Recorded<'_> {
        Recorded {
            verb: self.verb.into(),
            group: &self.rt.group,
            version: &self.version,
            resource: &self.rt.plural,
            namespace: self.namespace.as_deref().unwrap_or_default(),
            name: self.name.as_deref().unwrap_or_default(),
        }
    }
}

/// A request's route, read once.
pub struct RequestInfo {
    /// The method.
    pub method: Method,
    /// The path (without the query).
    pub path: String,
    /// Where it goes.
    pub route: Route,
}

/// The paths answered without credentials (kube's `system:public-info-viewer`).
const PUBLIC: &[&str] = &["/healthz", "/livez", "/healthz/ping", "/livez/ping", "/readyz", "/version", "/version/"];

/// The path of `kubectl auth whoami`.
pub const WHOAMI: &str = "/apis/authentication.k8s.io/v1/selfsubjectreviews";

impl RequestInfo {
    /// Reads what a request is; `served` resolves group and version.
    pub fn resolve(method: &Method, uri: &http::Uri, served: &ServedTypes) -> RequestInfo {
        let path = uri.path().to_string();
        let route = route(method, uri, &path, served);
        RequestInfo { method: method.clone(), path, route }
    }

    /// The verb of a request that is no resource request: the lower-cased method.
    pub fn method_verb(&self) -> Cow<'static, str> {
        let verb = match self.method {
            Method::GET => "get",
            Method::POST => "post",
            Method::PUT => "put",
            Method::PATCH => "patch",
            Method::DELETE => "delete",
            Method::HEAD => "head",
            Method::OPTIONS => "options",
            _ => return Cow::Owned(self.method.as_str().to_ascii_lowercase()),
        };
        Cow::Borrowed(verb)
    }
}

/// Most path segments a request may have (see [`route`]).
const MAX_SEGMENTS: usize = 12;

fn route(method: &Method, uri: &http::Uri, path: &str, served: &ServedTypes) -> Route {
    if PUBLIC.contains(&path) {
        return Route::Public;
    }
    if path == WHOAMI && method == Method::POST {
        return Route::WhoAmI;
    }
    if path == "/metrics" {
        return Route::Metrics;
    }
    // An API path has at most 9 segments (`/apis/g/v/watch/namespaces/ns/plural/name/x`):
    // they are kept on the stack; a path of more than MAX_SEGMENTS names nothing.
    let mut buf = [""; MAX_SEGMENTS];
    let mut count = 0;
    for segment in path.trim_matches('/').split('/') {
        let Some(slot) = buf.get_mut(count) else { return Route::NotFound };
        *slot = segment;
        count += 1;
    }
    let segments = &buf[..count];
    let document = match segments {
        [""] => Some(Document::Root),
        ["api"] => Some(Document::Api),
        ["apis"] => Some(Document::Apis),
        ["api", "v1"] => Some(Document::CoreV1),
        ["apis", group] => Some(Document::Group(group.to_string())),
        ["openapi", "v2"] => Some(Document::OpenApiV2),
        ["openapi", "v3"] => Some(Document::OpenApiV3),
        ["openapi", "v3", "apis", group, version] => {
            Some(Document::OpenApiV3GroupVersion(group.to_string(), version.to_string()))
        }
        ["openapi", "v3", "api", "v1"] => Some(Document::OpenApiV3GroupVersion(String::new(), "v1".into())),
        ["apis", discovery::builtin::AUTHORIZATION_GROUP, "v1"] if served.builtins() => Some(Document::Reviews),
        ["apis", "apiextensions.k8s.io", "v1", "customresourcedefinitions"] => {
            Some(Document::NoCustomResourceDefinitions)
        }
        ["openapi", "v3", ..] => Some(Document::OpenApiOther),
        _ => None,
    };
    if let Some(d) = document {
        return Route::Document(d);
    }
    if let ["apis", discovery::builtin::AUTHORIZATION_GROUP, "v1", plural] = segments {
        let review = discovery::Builtin::REVIEWS.into_iter().find(|b| b.resource().plural == *plural);
        match review {
            Some(r) if served.builtins() && method == Method::POST => return Route::Review(r),
            Some(_) if served.builtins() => return Route::MethodNotAllowed,
            _ => {}
        }
    }
    let (group, rest) = match segments {
        ["apis", group, rest @ ..] => (*group, rest),
        // The core group: `/api/v1/...` is group "" at version `v1`.
        ["api", rest @ ..] => ("", rest),
        _ => return Route::NotFound,
    };
    let Some(resolved) = served.resolve(group, rest) else { return Route::NotFound };
    if resolved.rest.is_empty() {
        if group.is_empty() {
            return Route::Document(Document::CoreV1);
        }
        let types = served.in_version(group, &resolved.version);
        return Route::GroupVersion { group: group.to_string(), version: resolved.version, types };
    }
    let (watch_path, rest) = match resolved.rest {
        ["watch", rest @ ..] => (true, rest),
        rest => (false, rest),
    };
    let (namespace, plural, name) = match rest {
        ["namespaces", ns, plural] => (Some(*ns), *plural, None),
        ["namespaces", ns, plural, name] => (Some(*ns), *plural, Some(*name)),
        [plural] => (None, *plural, None),
        [plural, name] => (None, *plural, Some(*name)),
        _ => return Route::NotFound,
    };
    let Some(rt) = served.serving(group, plural, &resolved.version) else { return Route::NotFound };
    if (namespace.is_some() && !rt.namespaced) || (name.is_some() && rt.namespaced && namespace.is_none()) {
        return Route::NotFound;
    }
    if watch_path && method != Method::GET {
        return Route::MethodNotAllowed;
    }
    let query = request::query(uri);
    let watch = watch_path || query.get("watch").is_some_and(|v| v == "true" || v == "1");
    let verb = match (method, name) {
        (&Method::GET, _) if watch => "watch",
        (&Method::GET, Some(_)) => "get",
        (&Method::GET, None) => "list",
        (&Method::POST, _) => "create",
        (&Method::PUT, _) => "update",
        (&Method::PATCH, _) => "patch",
        (&Method::DELETE, Some(_)) => "delete",
        (&Method::DELETE, None) => "deletecollection",
        // Not a Kubernetes verb: 405, whoever asks.
        _ => return Route::MethodNotAllowed,
    };
    Route::Resource(ResourceRequest {
        rt,
        version: resolved.version,
        namespace: namespace.map(String::from),
        name: name.map(String::from),
        verb,
        watch,
        query,
    })
}

/// One request's context (a request extension).
pub struct RequestContext {
    /// Its audit id (also the `Audit-Id` response header).
    pub audit_id: uuid::Uuid,
    /// When it arrived.
    pub started: Instant,
    /// Its URI, as sent.
    pub uri: http::Uri,
    /// What it is.
    pub info: RequestInfo,
    user: OnceLock<Arc<User>>,
    /// Set when authorization judged it as a resource request.
    judged: AtomicBool,
}

impl RequestContext {
    /// The context of a request to `uri` that is `info`, with a new audit id.
    pub fn new(uri: http::Uri, info: RequestInfo) -> Self {
        RequestContext {
            audit_id: uuid::Uuid::new_v4(),
            started: Instant::now(),
            uri,
            info,
            user: OnceLock::new(),
            judged: AtomicBool::new(false),
        }
    }

    /// Who sent it, once authenticated.
    pub fn user(&self) -> Option<&User> {
        self.user.get().map(|u| &**u)
    }

    /// Records who sent it (the authentication filter).
    pub fn set_user(&self, user: Arc<User>) {
        let _ = self.user.set(user);
    }

    /// Marks it as judged by resource attributes (then recorded with them).
    pub fn mark_judged(&self) {
        self.judged.store(true, Ordering::Relaxed);
    }

    /// What metrics and the audit log record: the resource once
    /// authorization judged the request by it, else the lower-cased method.
    pub fn recorded(&self) -> Recorded<'_> {
        match &self.info.route {
            Route::Resource(r) if self.judged.load(Ordering::Relaxed) => r.recorded(),
            _ => Recorded { verb: self.info.method_verb(), ..Default::default() },
        }
    }
}

/// The context of a request (made by the corridor's first filter), to keep
/// past the request (see [`context_of`] to look only).
pub fn context(req: &super::Request) -> Option<Arc<RequestContext>> {
    context_of(req).cloned()
}

/// The context of a request, borrowed from it.
pub fn context_of(req: &super::Request) -> Option<&Arc<RequestContext>> {
    req.extensions().get::<Arc<RequestContext>>()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route_of(path: &str) -> Route {
        let uri: http::Uri = path.parse().expect("uri");
        route(&Method::GET, &uri, uri.path(), &ServedTypes::default())
    }

    #[test]
    fn paths_of_any_length_are_answered() {
        assert!(matches!(route_of("/apis"), Route::Document(Document::Apis)));
        assert!(matches!(route_of("/openapi/v3/a/b/c/d/e/f/g/h/i/j"), Route::Document(Document::OpenApiOther)));
        // More segments than any API path has: nothing, and no panic.
        let long = format!("/apis{}", "/x".repeat(MAX_SEGMENTS));
        assert!(matches!(route_of(&long), Route::NotFound));
        assert!(matches!(route_of("/apis/prsn.io/v1/watch/namespaces/default/mysqldbs/a"), Route::NotFound));
    }
}
