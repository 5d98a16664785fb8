//! Request dispatch: public paths, authentication, then the resource routes
//! (`/apis/<group>/<version>/[watch/][namespaces/<ns>/]<plural>[/<name>]`).

pub mod negotiate;
pub mod patch;
pub mod request;
pub mod respond;
pub mod watch;
pub mod yaml;

use std::sync::Arc;
use std::time::Duration;

use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use serde_json::{json, Value};
use storage::cache::WatchStart;
use storage::{ListOptions, ReadRevision, Store, WatchRequest};

use crate::auth::authn::{Authenticator, Peer, RequestHeaders, User};
use crate::endpoints::patch::Patch;
use crate::endpoints::respond::Body;
use crate::observe::RequestInfo;
use crate::registry::field_validation::FieldValidation;
use crate::registry::managed_fields;
use crate::registry::selectors::{FieldSelector, LabelSelector};
use crate::registry::{self, meta_str, Preconditions, Scope};
use crate::status::ApiError;
use crate::tpr::served::described;
use crate::tpr::served::ServedTypes;
use crate::tpr::{self, Controller};
use discovery::table::IncludeObject;
use discovery::{documents, openapi};

/// Everything a request handler needs.
pub struct App {
    /// The store (writes and consistent gets).
    pub store: Arc<dyn Store>,
    /// The served types.
    pub served: Arc<ServedTypes>,
    /// The ThirdPartyResource controller.
    pub controller: Arc<Controller>,
    /// Credentials.
    pub authn: Authenticator,
    /// Flips to true when the server shuts down (ends watches).
    pub shutdown: tokio::sync::watch::Receiver<bool>,
    /// Open watches, bounded by `max_watches` (beyond: 429).
    pub watches: Arc<std::sync::atomic::AtomicUsize>,
    /// `--max-watches`.
    pub max_watches: usize,
    /// The front proxy's request headers.
    pub request_headers: RequestHeaders,
    /// Authorization.
    pub authz: crate::auth::authz::Authorizer,
    /// Prometheus metrics (`/metrics`).
    pub metrics: crate::observe::Metrics,
    /// The audit log, if `--audit-log-path` is set.
    pub audit: Option<crate::observe::AuditLog>,
    /// TokenReviews with the host cluster, if `--authentication-kubeconfig` is set.
    pub token_reviewer: Option<crate::aggregation::delegated::TokenReviewer>,
}

/// Who asks, and what the request turned out to be (filled in by routing).
struct Caller<'a> {
    user: &'a User,
    info: &'a mut RequestInfo,
}

/// `kubectl auth whoami`: who the server takes the caller for.
fn self_subject_review(user: &User) -> Value {
    let mut groups = user.groups.clone();
    if !groups.iter().any(|g| g == "system:authenticated") {
        groups.push("system:authenticated".into());
    }
    json!({
        "kind": "SelfSubjectReview",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"creationTimestamp": null},
        "status": {"userInfo": {"username": user.name, "groups": groups, "extra": user.extra}},
    })
}

/// Longest watch a client may ask for with timeoutSeconds.
const MAX_WATCH_TIMEOUT: Duration = Duration::from_secs(24 * 3600);

/// Longest watch when the client gives no timeoutSeconds (kube: 30–60 min).
const DEFAULT_WATCH_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// Answers one request.
pub async fn handle(app: Arc<App>, req: Request<Incoming>, peer: Peer) -> Response<Body> {
    let started = std::time::Instant::now();
    let (parts, body) = req.into_parts();
    let mut body = Some(body);
    let uri = parts.uri.to_string();
    let mut info = RequestInfo { verb: parts.method.as_str().to_ascii_lowercase(), ..Default::default() };
    let mut user = None;
    let mut resp = answer(&app, parts, &mut body, peer, &mut info, &mut user).await;
    let code = resp.status().as_u16();
    let id = uuid::Uuid::new_v4().to_string();
    if let Ok(v) = http::HeaderValue::from_str(&id) {
        resp.headers_mut().insert("audit-id", v);
    }
    app.metrics.observe(&info, code, started.elapsed());
    tracing::debug!(
        request_id = %id,
        user = user.as_ref().map(|u| u.name.as_str()).unwrap_or("system:anonymous"),
        verb = %info.verb,
        uri = %uri,
        code,
        latency_ms = started.elapsed().as_secs_f64() * 1e3,
        "request"
    );
    if let Some(audit) = &app.audit {
        audit.record(&id, user.as_ref(), &info, &uri, code, started.elapsed());
    }
    // A body nobody read is drained in the background (bounded): dropping it
    // would make HTTP/2 reset the stream before the client sees the answer.
    if let Some(unread) = body {
        request::discard(unread);
    }
    resp
}

async fn answer(
    app: &App,
    parts: http::request::Parts,
    body: &mut Option<Incoming>,
    peer: Peer,
    info: &mut RequestInfo,
    user_out: &mut Option<User>,
) -> Response<Body> {
    let path = parts.uri.path().to_string();
    if let Some(resp) = public(app, &path).await {
        return resp;
    }
    let bearer = parts.headers.get(http::header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    // kube-apiserver's order: the front proxy's headers, the client certificate, a token.
    let user = match peer {
        Peer::FrontProxy => app.request_headers.user(&parts.headers),
        Peer::User(u) => Some(u),
        Peer::None => None,
        Peer::Refused(why) => {
            tracing::debug!(uri = %parts.uri, "{why}; the request may still authenticate otherwise");
            None
        }
    }
    .or_else(|| app.authn.bearer(bearer));
    // A token this server does not know: ask the host cluster.
    let user = match (user, &app.token_reviewer, bearer.and_then(|b| b.strip_prefix("Bearer "))) {
        (None, Some(reviewer), Some(token)) if !token.trim().is_empty() => reviewer.review(token.trim()).await,
        (user, _, _) => user,
    };
    let Some(user) = user else {
        return respond::error(&ApiError::unauthorized());
    };
    *user_out = Some(user.clone());
    if parts.uri.path() == "/apis/authentication.k8s.io/v1/selfsubjectreviews" && parts.method == Method::POST {
        return respond::json(StatusCode::CREATED, &self_subject_review(&user));
    }
    if parts.uri.path() == "/metrics" {
        return match non_resource(app, &parts, &user).await {
            Ok(()) => respond::text(StatusCode::OK, app.metrics.encode()),
            Err(e) => respond::error(&e),
        };
    }
    if !negotiate::accepts_json(&parts) {
        let accept = parts.headers.get(http::header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or("");
        return respond::error(&ApiError::not_acceptable(format!(
            "only the following media types are accepted: application/json (Accept: {accept})"
        )));
    }
    match route(app, parts, body, &mut Caller { user: &user, info }).await {
        Ok(resp) => resp,
        Err(e) => respond::error(&e),
    }
}

/// Authorizes a request for a path that is not a resource (discovery,
/// OpenAPI, `/metrics`, `/`): only GET (and HEAD) is served there.
async fn non_resource(app: &App, parts: &http::request::Parts, user: &User) -> Result<(), ApiError> {
    let verb = parts.method.as_str().to_ascii_lowercase();
    app.authz.authorize_path(user, &verb, parts.uri.path()).await?;
    if parts.method != Method::GET && parts.method != Method::HEAD {
        return Err(ApiError::method_not_allowed(&parts.method, parts.uri.path()));
    }
    Ok(())
}

/// Paths answered without credentials (kube's `system:public-info-viewer`).
async fn public(app: &App, path: &str) -> Option<Response<Body>> {
    Some(match path {
        "/healthz" | "/livez" | "/healthz/ping" | "/livez/ping" => respond::text(StatusCode::OK, "ok"),
        "/readyz" => match app.store.current_revision().await {
            Ok(_) => respond::text(StatusCode::OK, "ok"),
            Err(e) => respond::text(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("[-]storage failed: {e}\nreadyz check failed\n"),
            ),
        },
        "/version" | "/version/" => respond::json(StatusCode::OK, &documents::version()),
        _ => return None,
    })
}

async fn route(
    app: &App,
    parts: http::request::Parts,
    body: &mut Option<Incoming>,
    caller: &mut Caller<'_>,
) -> Result<Response<Body>, ApiError> {
    let path = parts.uri.path().to_string();
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let document = matches!(
        segments.as_slice(),
        [""] | ["api"] | ["apis"] | ["api", "v1"] | ["apis", _] | ["openapi", "v2"] | ["openapi", "v3", ..]
    );
    if document {
        non_resource(app, &parts, caller.user).await?;
    }
    let all = app.served.all();
    let types = described(&all);
    match segments.as_slice() {
        [""] => return Ok(respond::json(StatusCode::OK, &documents::root_paths(&types))),
        ["api"] | ["apis"] => {
            let core = segments[0] == "api";
            return Ok(match negotiate::discovery_output(&parts)? {
                negotiate::DiscoveryOutput::Legacy if core => {
                    respond::json_with_etag(&parts, &documents::core_versions(), "application/json")
                }
                negotiate::DiscoveryOutput::Legacy => {
                    respond::json_with_etag(&parts, &documents::group_list(&types), "application/json")
                }
                negotiate::DiscoveryOutput::Aggregated(v) => respond::json_with_etag(
                    &parts,
                    &discovery::aggregated::aggregated(&types, core, v),
                    &format!("application/json;g=apidiscovery.k8s.io;v={v};as=APIGroupDiscoveryList"),
                ),
            });
        }
        ["openapi", "v2"] => return Ok(respond::json(StatusCode::OK, &openapi::openapi_v2(&types))),
        ["api", "v1"] => return Ok(respond::json(StatusCode::OK, &documents::core_resources())),
        ["openapi", "v3"] => return Ok(respond::json(StatusCode::OK, &openapi::openapi_index(&types))),
        ["openapi", "v3", "apis", group, version] => {
            let doc = openapi::openapi_group_version(&types, group, version);
            if doc["paths"].as_object().is_none_or(|p| p.is_empty()) {
                return Err(ApiError::no_route(&path));
            }
            return Ok(respond::json(StatusCode::OK, &doc));
        }
        ["apis", group] => {
            let doc = documents::group(&types, group).ok_or_else(|| ApiError::no_route(&path))?;
            return Ok(respond::json(StatusCode::OK, &doc));
        }
        _ => {}
    }
    let ["apis", group, rest @ ..] = segments.as_slice() else { return Err(ApiError::no_route(&path)) };
    let resolved = app.served.resolve(group, rest).ok_or_else(|| ApiError::no_route(&path))?;
    let version = resolved.version.clone();
    let mut warning = tpr::version_warning(&version);
    if resolved.rest.is_empty() {
        non_resource(app, &parts, caller.user).await?;
        let mut resp =
            respond::json(StatusCode::OK, &documents::resource_list(&described(&resolved.types), group, &version));
        if let Some(w) = warning.take() {
            respond::warn(&mut resp, &w);
        }
        return Ok(resp);
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
        _ => return Err(ApiError::no_route(&path)),
    };
    let rt = resolved.types.iter().find(|t| t.plural == plural).cloned().ok_or_else(|| ApiError::no_route(&path))?;
    if namespace.is_some() && !rt.namespaced {
        return Err(ApiError::no_route(&path));
    }
    if name.is_some() && rt.namespaced && namespace.is_none() {
        return Err(ApiError::no_route(&path));
    }
    let scope = Scope { rt: &rt, version: &version, namespace };
    let mut resp = serve(app, parts, body, scope, name, watch_path, caller).await?;
    if let Some(w) = warning {
        respond::warn(&mut resp, &w);
    }
    Ok(resp)
}

async fn serve(
    app: &App,
    parts: http::request::Parts,
    body: &mut Option<Incoming>,
    scope: Scope<'_>,
    name: Option<&str>,
    watch_path: bool,
    caller: &mut Caller<'_>,
) -> Result<Response<Body>, ApiError> {
    let q = request::query(&parts.uri);
    let rt = scope.rt;
    let dry_run = q.get("dryRun").is_some_and(|v| v == "All");
    let validation = FieldValidation::parse(q.get("fieldValidation").map(String::as_str))?;
    let manager = field_manager(&parts, &q)?;
    let api_version = rt.api_version(scope.version);
    let writer = managed_fields::Writer { manager: &manager, api_version: &api_version };
    // kube-apiserver's words for a strict field validation failure.
    let undecodable = |e: ApiError| match e.message.starts_with("strict decoding error") {
        true => ApiError::bad_request(format!(
            "{kind} in version \"{version}\" cannot be handled as a {kind}: {}",
            e.message,
            kind = rt.kind,
            version = scope.version
        )),
        false => e,
    };
    let is_tpr = std::ptr::eq(rt, app.controller.tpr_type().as_ref());
    let method = parts.method.clone();
    let wants_watch = watch_path || q.get("watch").is_some_and(|v| v == "true" || v == "1");
    if watch_path && method != Method::GET {
        return Err(ApiError::method_not_allowed(&method, parts.uri.path()));
    }
    let verb = match (&method, name) {
        (&Method::GET, _) if wants_watch => "watch",
        (&Method::GET, Some(_)) => "get",
        (&Method::GET, None) => "list",
        (&Method::POST, _) => "create",
        (&Method::PUT, _) => "update",
        (&Method::PATCH, _) => "patch",
        (&Method::DELETE, Some(_)) => "delete",
        (&Method::DELETE, None) => "deletecollection",
        // Not a Kubernetes verb: 405, whoever asks.
        (m, _) => return Err(ApiError::method_not_allowed(m, parts.uri.path())),
    };
    let attributes = crate::auth::authz::Attributes {
        verb,
        group: &rt.group,
        version: scope.version,
        resource: &rt.plural,
        namespace: scope.namespace,
        name,
    };
    *caller.info = RequestInfo {
        verb: verb.into(),
        group: rt.group.clone(),
        version: scope.version.to_string(),
        resource: rt.plural.clone(),
        namespace: scope.namespace.unwrap_or_default().to_string(),
        name: name.unwrap_or_default().to_string(),
    };
    app.authz.authorize(caller.user, &attributes).await?;
    // TPR writes on this replica go one at a time: conflict check, store, serve.
    let _tpr_writes = match (is_tpr, &method) {
        (true, &Method::POST | &Method::PUT | &Method::PATCH) => Some(app.controller.lock_writes().await),
        _ => None,
    };
    match (method, name) {
        (Method::GET, _) if wants_watch => {
            let gauge = app.metrics.watch_opened(caller.info);
            start_watch(app, scope, name, &q, table_output(&parts, &q, is_tpr)?, gauge).await
        }
        (Method::GET, Some(name)) => {
            let obj = registry::get_cached(scope, name, read_revision(&q)?).await?;
            match table_output(&parts, &q, is_tpr)? {
                Some(t) => Ok(respond::json(StatusCode::OK, &t.single(obj))),
                None => Ok(respond::json(StatusCode::OK, &obj)),
            }
        }
        (Method::GET, None) => list(scope, &q, table_output(&parts, &q, is_tpr)?).await,
        (Method::POST, None) => {
            let (mut obj, mut warnings) = read_json_body(&parts, take(body)?, validation).await.map_err(undecodable)?;
            registry::check_meta_types(&obj, &scope)?;
            managed_fields::record_update(None, &mut obj, &writer);
            warnings.extend(crate::registry::meta::finalizer_warnings(None, &obj));
            if is_tpr {
                check_tpr(app, &obj)?;
            }
            let created = registry::create(app.store.as_ref(), scope, obj, dry_run).await?;
            warnings.extend(serve_if_tpr(app, is_tpr && !dry_run, &created)?);
            Ok(json_warned(StatusCode::CREATED, &created, &warnings))
        }
        (Method::PUT, Some(name)) => {
            let (mut obj, mut warnings) = read_json_body(&parts, take(body)?, validation).await.map_err(undecodable)?;
            registry::check_meta_types(&obj, &scope)?;
            let old = registry::get(app.store.as_ref(), scope, name).await?;
            managed_fields::record_update(Some(&old), &mut obj, &writer);
            warnings.extend(crate::registry::meta::finalizer_warnings(Some(&old), &obj));
            if is_tpr {
                check_tpr(app, &obj)?;
            }
            let updated = registry::update(app.store.as_ref(), scope, name, obj, dry_run).await?;
            warnings.extend(serve_if_tpr(app, is_tpr && !dry_run, &updated)?);
            Ok(json_warned(StatusCode::OK, &updated, &warnings))
        }
        (Method::PATCH, Some(name)) => {
            let ct = request::content_type(&parts);
            if !crate::endpoints::patch::ACCEPTED.contains(&ct.as_str()) {
                return Err(ApiError::unsupported_media_type(&ct, crate::endpoints::patch::ACCEPTED));
            }
            if ct == crate::endpoints::patch::APPLY {
                let raw = request::read_bytes(&parts, take(body)?).await?;
                let (mut applied, duplicates) = crate::endpoints::patch::parse_apply(&raw)?;
                registry::check_meta_types(&applied, &scope)?;
                if applied.pointer("/metadata/managedFields").is_some_and(|m| !m.is_null()) {
                    return Err(ApiError::bad_request("invalid object: metadata.managedFields must be nil"));
                }
                let mut warnings = validation.check_duplicates(duplicates).map_err(undecodable)?;
                warnings.extend(validation.check_object(&mut applied).map_err(undecodable)?);
                let force = q.get("force").is_some_and(|v| v == "true");
                if !q.contains_key("fieldManager") {
                    return Err(ApiError::bad_request("fieldManager is required for apply requests"));
                }
                let opts = WriteOptions { dry_run, is_tpr, validation, writer: &writer };
                let (code, stored, more) = server_side_apply(app, scope, name, applied, force, &opts).await?;
                warnings.extend(more);
                warnings.extend(serve_if_tpr(app, is_tpr && !dry_run, &stored)?);
                return Ok(json_warned(code, &stored, &warnings));
            }
            let (patch, raw) = request::read_json_raw(&parts, take(body)?).await?;
            // Duplicate fields in the patch itself; unknown metadata in the result.
            let mut warnings = validation.check_body(&raw).map_err(undecodable)?;
            let patch = Patch::parse(&ct, patch, raw.len())?;
            let opts = WriteOptions { dry_run, is_tpr, validation, writer: &writer };
            let (updated, more) = apply_patch(app, scope, name, &patch, &opts).await.map_err(undecodable)?;
            warnings.extend(more);
            warnings.extend(serve_if_tpr(app, is_tpr && !dry_run, &updated)?);
            Ok(json_warned(StatusCode::OK, &updated, &warnings))
        }
        (Method::DELETE, Some(name)) => {
            let opts = delete_options(&parts, take(body)?, &q).await?;
            if opts.ignore_read_errors {
                // KEP-3926: a second authorization, for the unsafe verb.
                let unsafe_verb = crate::auth::authz::Attributes { verb: UNSAFE_DELETE_VERB, ..attributes };
                app.authz.authorize(caller.user, &unsafe_verb).await.map_err(|e| {
                    ApiError::forbidden(format!("not permitted to do \"{UNSAFE_DELETE_VERB}\", reason: {}", e.message))
                })?;
                if dry_run {
                    return Err(ApiError::bad_request(
                        "ignoreStoreReadErrorWithClusterBreakingPotential cannot be used with dryRun",
                    ));
                }
                return Ok(respond::json(
                    StatusCode::OK,
                    &registry::delete_corrupt(app.store.as_ref(), scope, name).await?,
                ));
            }
            if is_tpr && !dry_run {
                return delete_tpr(app, scope, name, &opts.preconditions).await;
            }
            let deleted = registry::delete(app.store.as_ref(), scope, name, &opts.preconditions, dry_run, None).await?;
            Ok(respond::json(StatusCode::OK, &deleted))
        }
        (Method::DELETE, None) if !is_tpr => {
            if delete_options(&parts, take(body)?, &q).await?.ignore_read_errors {
                return Err(ApiError::invalid(
                    &scope.target(""),
                    "DeleteOptions",
                    vec![crate::status::Cause {
                        reason: "FieldValueInvalid",
                        message: "Invalid value: true: is not allowed with DELETECOLLECTION, try again after removing the option".into(),
                        field: "ignoreStoreReadErrorWithClusterBreakingPotential".into(),
                    }],
                ));
            }
            delete_collection(app, scope, &q, dry_run).await
        }
        (m, _) => Err(ApiError::method_not_allowed(&m, parts.uri.path())),
    }
}

/// A stored ThirdPartyResource is served at once, before the answer; a
/// warning says so when it is not (an older TPR that raced it serves the same).
fn serve_if_tpr(app: &App, is_tpr: bool, stored: &Value) -> Result<Vec<String>, ApiError> {
    if !is_tpr {
        return Ok(Vec::new());
    }
    Ok(app
        .controller
        .observe(stored)?
        .map(|why| format!("this ThirdPartyResource is not served: {why}"))
        .into_iter()
        .collect())
}

/// A ThirdPartyResource about to be written: valid (422), and in no
/// conflict with another stored TPR (409).
fn check_tpr(app: &App, tpr: &Value) -> Result<(), ApiError> {
    tpr::validate(tpr)?;
    app.controller.check_conflicts(tpr)
}

/// Applies a patch to the current object (see [`crate::endpoints::patch`]). A patch that
/// does not pin `metadata.resourceVersion` is retried on a conflict with a
/// fresh read, as kube-apiserver does, so that racing writers never make it fail.
async fn apply_patch(
    app: &App,
    scope: Scope<'_>,
    name: &str,
    patch: &Patch,
    opts: &WriteOptions<'_>,
) -> Result<(Value, Vec<String>), ApiError> {
    let pinned = patch.pins_resource_version();
    let mut attempts = 0;
    loop {
        let mut current = registry::get(app.store.as_ref(), scope, name).await?;
        let before = current.clone();
        let rv = meta_str(&current, "resourceVersion").map(String::from);
        patch.apply(&mut current)?;
        registry::check_meta_types(&current, &scope)?;
        managed_fields::record_update(Some(&before), &mut current, opts.writer);
        let mut warnings = opts.validation.check_object(&mut current)?;
        warnings.extend(crate::registry::meta::finalizer_warnings(Some(&before), &current));
        if !pinned {
            if let (Some(rv), Some(Value::Object(m))) = (rv, current.get_mut("metadata")) {
                m.insert("resourceVersion".into(), Value::String(rv));
            }
        }
        if opts.is_tpr {
            check_tpr(app, &current)?;
        }
        match registry::update(app.store.as_ref(), scope, name, current, opts.dry_run).await {
            Err(e) if e.reason == "Conflict" && !pinned && attempts < 5 => attempts += 1,
            result => return result.map(|updated| (updated, warnings)),
        }
    }
}

/// How a write is done: dry run, on the TPR type, field validation, field manager.
struct WriteOptions<'a> {
    dry_run: bool,
    is_tpr: bool,
    validation: FieldValidation,
    writer: &'a managed_fields::Writer<'a>,
}

/// Server-side apply: creates the object when it is missing (201), otherwise
/// merges the applied configuration by field ownership (200). Retried on a
/// storage conflict unless the configuration pins a resourceVersion.
async fn server_side_apply(
    app: &App,
    scope: Scope<'_>,
    name: &str,
    mut applied: Value,
    force: bool,
    opts: &WriteOptions<'_>,
) -> Result<(StatusCode, Value, Vec<String>), ApiError> {
    let target = scope.target(name);
    match meta_str(&applied, "name") {
        Some(n) if n != name => {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({n}) does not match the name on the URL ({name})"
            )))
        }
        Some(_) => {}
        None => {
            if let Some(Value::Object(m)) = applied.get_mut("metadata") {
                m.insert("name".into(), Value::String(name.into()));
            } else if let Value::Object(m) = &mut applied {
                m.insert("metadata".into(), json!({ "name": name }));
            }
        }
    }
    let pinned = meta_str(&applied, "resourceVersion").map(String::from);
    let mut attempts = 0;
    loop {
        let current = match registry::get(app.store.as_ref(), scope, name).await {
            Ok(obj) => Some(obj),
            Err(e) if e.code == 404 => None,
            Err(e) => return Err(e),
        };
        // The applied object and the stored one are bounded: so is this (the
        // store checks it again before writing).
        let mut merged = managed_fields::apply(current.as_ref(), &applied, opts.writer, force, &target)?;
        let warnings = crate::registry::meta::finalizer_warnings(current.as_ref(), &merged);
        if opts.is_tpr {
            check_tpr(app, &merged)?;
        }
        let result = match &current {
            None => registry::create(app.store.as_ref(), scope, merged, opts.dry_run)
                .await
                .map(|o| (StatusCode::CREATED, o)),
            Some(cur) => {
                let rv = pinned.clone().or_else(|| meta_str(cur, "resourceVersion").map(String::from));
                if let (Some(rv), Some(Value::Object(m))) = (rv, merged.get_mut("metadata")) {
                    m.insert("resourceVersion".into(), Value::String(rv));
                }
                registry::update(app.store.as_ref(), scope, name, merged, opts.dry_run)
                    .await
                    .map(|o| (StatusCode::OK, o))
            }
        };
        match result {
            Err(e) if (e.reason == "Conflict" || e.reason == "AlreadyExists") && pinned.is_none() && attempts < 5 => {
                attempts += 1
            }
            result => return result.map(|(code, obj)| (code, obj, warnings)),
        }
    }
}

/// The field manager of a write: `fieldManager`, or the client's name from its
/// User-Agent (`kubectl/v1.32.0 (...)` → `kubectl`), as kube-apiserver does.
fn field_manager(
    parts: &http::request::Parts,
    q: &std::collections::HashMap<String, String>,
) -> Result<String, ApiError> {
    if let Some(m) = q.get("fieldManager") {
        if m.is_empty() || m.len() > 128 || m.chars().any(|c| c.is_control()) {
            return Err(ApiError::bad_request("fieldManager must be 1 to 128 printable characters"));
        }
        return Ok(m.clone());
    }
    let agent = parts.headers.get(http::header::USER_AGENT).and_then(|v| v.to_str().ok()).unwrap_or("");
    let name: String = agent.split('/').next().unwrap_or("").chars().filter(|c| !c.is_control()).take(128).collect();
    Ok(if name.trim().is_empty() { "unknown".into() } else { name.trim().to_string() })
}

/// The request body, once.
fn take(body: &mut Option<Incoming>) -> Result<Incoming, ApiError> {
    body.take().ok_or_else(|| ApiError::internal("the request body was already read"))
}

/// The JSON object of a create or update, checked by `fieldValidation`; the
/// warnings to answer with.
async fn read_json_body(
    parts: &http::request::Parts,
    body: Incoming,
    validation: FieldValidation,
) -> Result<(Value, Vec<String>), ApiError> {
    let ct = request::content_type(parts);
    if !ct.is_empty() && ct != "application/json" && ct != "application/x-www-form-urlencoded" && ct != "*/*" {
        return Err(ApiError::unsupported_media_type(&ct, &["application/json"]));
    }
    let (mut obj, raw) = request::read_json_raw(parts, body).await?;
    let warnings = validation.check(&raw, &mut obj)?;
    Ok((obj, warnings))
}

/// A JSON response with a `Warning` header per message, bounded as
/// kube-apiserver bounds them: at most 4096 characters in all, each message
/// cut to 256 characters when they would be more.
fn json_warned(code: StatusCode, value: &Value, warnings: &[String]) -> Response<Body> {
    const TOTAL: usize = 4096;
    const EACH: usize = 256;
    let mut resp = respond::json(code, value);
    let long = warnings.iter().map(|w| w.chars().count()).sum::<usize>() > TOTAL;
    let mut used = 0;
    for w in warnings {
        let w: String = if long { w.chars().take(EACH).collect() } else { w.clone() };
        used += w.chars().count();
        if used > TOTAL {
            break;
        }
        respond::warn(&mut resp, &w);
    }
    resp
}

/// The authorization verb of a delete that ignores read errors (KEP-3926).
const UNSAFE_DELETE_VERB: &str = "unsafe-delete-ignore-read-errors";

/// What a DeleteOptions body (or the query) asks of a delete.
struct DeleteOptions {
    preconditions: Preconditions,
    /// `ignoreStoreReadErrorWithClusterBreakingPotential`: delete a corrupt object.
    ignore_read_errors: bool,
}

/// DeleteOptions from the body, if any, and the query. Fields of the wrong
/// type are a 400, as kube-apiserver's decoder answers.
async fn delete_options(
    parts: &http::request::Parts,
    body: Incoming,
    q: &std::collections::HashMap<String, String>,
) -> Result<DeleteOptions, ApiError> {
    let raw = request::read_bytes(parts, body).await?;
    let opts = if raw.iter().all(u8::is_ascii_whitespace) { json!({}) } else { crate::limits::parse_body(&raw)? };
    let bad = |field: &str, want: &str| {
        ApiError::bad_request(format!(
            "DeleteOptions cannot be handled: json: cannot unmarshal into Go struct field DeleteOptions.{field} of type {want}"
        ))
    };
    if !opts.is_object() {
        return Err(bad("", "v1.DeleteOptions"));
    }
    let pre = match opts.get("preconditions") {
        None | Some(Value::Null) => &Value::Null,
        Some(p @ Value::Object(_)) => p,
        Some(_) => return Err(bad("preconditions", "v1.Preconditions")),
    };
    let text = |v: &Value, field: &str| match v.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(bad(&format!("preconditions.{field}"), "string")),
    };
    let resource_version = match text(pre, "resourceVersion")? {
        Some(rv) => Some(
            rv.parse().map_err(|_| ApiError::bad_request(format!("invalid resourceVersion precondition {rv:?}")))?,
        ),
        None => None,
    };
    for (field, ok) in [
        ("gracePeriodSeconds", opts.get("gracePeriodSeconds").is_none_or(|v| v.is_null() || v.is_i64())),
        ("orphanDependents", opts.get("orphanDependents").is_none_or(|v| v.is_null() || v.is_boolean())),
        ("propagationPolicy", opts.get("propagationPolicy").is_none_or(|v| v.is_null() || v.is_string())),
        (
            "dryRun",
            opts.get("dryRun")
                .is_none_or(|v| v.is_null() || v.as_array().is_some_and(|a| a.iter().all(Value::is_string))),
        ),
    ] {
        if !ok {
            return Err(bad(field, "the documented type"));
        }
    }
    const IGNORE: &str = "ignoreStoreReadErrorWithClusterBreakingPotential";
    let ignore_read_errors = match (opts.get(IGNORE), q.get(IGNORE).map(String::as_str)) {
        (Some(Value::Bool(b)), _) => *b,
        (None | Some(Value::Null), None) => false,
        (None | Some(Value::Null), Some("true")) => true,
        (None | Some(Value::Null), Some("false" | "")) => false,
        _ => return Err(bad(IGNORE, "bool")),
    };
    Ok(DeleteOptions { preconditions: Preconditions { uid: text(pre, "uid")?, resource_version }, ignore_read_errors })
}

/// Deleting a TPR marks it (a deletionTimestamp and a finalizer of the
/// server's); the controller deletes its objects, then it.
async fn delete_tpr(app: &App, scope: Scope<'_>, name: &str, pre: &Preconditions) -> Result<Response<Body>, ApiError> {
    let marked = registry::delete(app.store.as_ref(), scope, name, pre, false, Some(tpr::OBJECTS_FINALIZER)).await?;
    let revision = meta_str(&marked, "resourceVersion").and_then(|r| r.parse().ok()).unwrap_or(0);
    tokio::spawn(app.controller.clone().finish_delete(marked.clone(), revision));
    Ok(respond::json(StatusCode::OK, &marked))
}

/// The read revision of `resourceVersion` and `resourceVersionMatch`.
fn read_revision(q: &std::collections::HashMap<String, String>) -> Result<ReadRevision, ApiError> {
    let rv = q.get("resourceVersion").map(String::as_str).unwrap_or("");
    let parse = |s: &str| parse_revision(s);
    Ok(match (rv, q.get("resourceVersionMatch").map(String::as_str)) {
        ("", None | Some("")) => ReadRevision::Consistent,
        ("", Some(m)) => {
            return Err(ApiError::bad_request(format!("resourceVersionMatch {m:?} needs a resourceVersion")))
        }
        ("0", None | Some("") | Some("NotOlderThan")) => ReadRevision::Any,
        ("0", Some("Exact")) => {
            return Err(ApiError::bad_request("resourceVersionMatch \"Exact\" is forbidden for resourceVersion \"0\""))
        }
        (r, None | Some("") | Some("NotOlderThan")) => ReadRevision::NotOlderThan(parse(r)?),
        (r, Some("Exact")) => ReadRevision::Exact(parse(r)?),
        (_, Some(m)) => {
            return Err(ApiError::bad_request(format!("unknown resourceVersionMatch {m:?}; use NotOlderThan or Exact")))
        }
    })
}

/// A resourceVersion: a non-negative integer (400 otherwise).
fn parse_revision(s: &str) -> Result<i64, ApiError> {
    s.parse::<i64>()
        .ok()
        .filter(|r| *r >= 0)
        .ok_or_else(|| ApiError::bad_request(format!("invalid resourceVersion {s:?}: must be a non-negative integer")))
}

/// Tables when the Accept header asks for them (`kubectl get`), else `None`.
fn table_output(
    parts: &http::request::Parts,
    q: &std::collections::HashMap<String, String>,
    tpr: bool,
) -> Result<Option<watch::TableOutput>, ApiError> {
    match negotiate::output(parts)? {
        negotiate::Output::Json => Ok(None),
        negotiate::Output::Table(version) => {
            let include =
                IncludeObject::parse(q.get("includeObject").map(String::as_str)).map_err(ApiError::bad_request)?;
            Ok(Some(watch::TableOutput { version, include, tpr }))
        }
    }
}

async fn list(
    scope: Scope<'_>,
    q: &std::collections::HashMap<String, String>,
    table: Option<watch::TableOutput>,
) -> Result<Response<Body>, ApiError> {
    let labels = LabelSelector::parse(q.get("labelSelector").map(String::as_str).unwrap_or(""))?;
    let fields = FieldSelector::parse(q.get("fieldSelector").map(String::as_str).unwrap_or(""))?;
    let limit: usize = q.get("limit").and_then(|l| l.parse().ok()).unwrap_or(0);
    let prefix = scope.rt.list_prefix(scope.namespace);
    let (revision, start) = match q.get("continue").filter(|c| !c.is_empty()) {
        Some(token) => {
            let (rv, start) = crate::registry::paging::decode_continue(token)?;
            if !start.starts_with(&prefix) {
                return Err(ApiError::bad_request("the continue token does not belong to this list"));
            }
            (ReadRevision::Exact(rv), Some(start))
        }
        None => (read_revision(q)?, None),
    };
    let target = scope.target("");
    let api_version = scope.rt.api_version(scope.version);
    let mut items = Vec::new();
    let mut corrupt = Vec::new();
    let mut opts = ListOptions { prefix: prefix.clone(), start, limit: 0, revision };
    // Read in pages until `limit` matching objects are found (or the end).
    let (read_at, next) = 'pages: loop {
        opts.limit = if limit == 0 { 0 } else { (limit - items.len()).max(64) };
        let page = scope.rt.cache.list(&opts).await.map_err(|e| match e {
            storage::StorageError::Compacted { .. } | storage::StorageError::TooOld { .. } if opts.start.is_some() => ApiError::expired(
                "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.",
            ),
            e => ApiError::from_storage(e, &target),
        })?;
        opts.revision = ReadRevision::Exact(page.revision);
        for (i, kv) in page.items.iter().enumerate() {
            let obj = match registry::decode(kv, &api_version) {
                Ok(obj) => obj,
                Err(e) => {
                    note_corrupt(&mut corrupt, kv, e);
                    continue;
                }
            };
            if labels.matches(&obj) && fields.matches(&obj) {
                items.push(obj);
                if limit > 0 && items.len() == limit {
                    let more = i + 1 < page.items.len() || page.remaining > 0;
                    break 'pages (page.revision, more.then(|| format!("{}\0", kv.key)));
                }
            }
        }
        match page.items.last() {
            Some(last) if page.remaining > 0 && limit > 0 => opts.start = Some(format!("{}\0", last.key)),
            _ => break (page.revision, None),
        }
    };
    if !corrupt.is_empty() {
        return Err(ApiError::storage_read_error(&target, corrupt));
    }
    let mut metadata = json!({"resourceVersion": read_at.to_string()});
    if let Some(next) = next {
        metadata["continue"] = Value::String(crate::registry::paging::encode_continue(read_at, &next));
    }
    if let Some(t) = table {
        return Ok(respond::json(StatusCode::OK, &t.table(items, metadata)));
    }
    let body = json!({
        "kind": format!("{}List", scope.rt.kind),
        "apiVersion": api_version,
        "metadata": metadata,
        "items": items,
    });
    Ok(respond::json(StatusCode::OK, &body))
}

/// Most unreadable objects named in one StorageReadError, as kube-apiserver.
const MAX_CORRUPT_NAMED: usize = 100;

/// Notes an object a list cannot read, for its StorageReadError.
fn note_corrupt(causes: &mut Vec<crate::status::Cause>, kv: &storage::KeyValue, e: ApiError) {
    tracing::error!(key = %kv.key, error = %e.message, "a stored object cannot be read");
    match causes.len() {
        n if n < MAX_CORRUPT_NAMED => causes.push(crate::status::Cause {
            reason: "UnexpectedServerResponse",
            message: e.message,
            field: kv.key.clone(),
        }),
        n if n == MAX_CORRUPT_NAMED => causes.push(crate::status::Cause {
            reason: "TooMany",
            message: "too many errors, the list is truncated".into(),
            field: String::new(),
        }),
        _ => {}
    }
}

async fn start_watch(
    app: &App,
    scope: Scope<'_>,
    name: Option<&str>,
    q: &std::collections::HashMap<String, String>,
    table: Option<watch::TableOutput>,
    gauge: crate::observe::WatchGauge,
) -> Result<Response<Body>, ApiError> {
    let labels = LabelSelector::parse(q.get("labelSelector").map(String::as_str).unwrap_or(""))?;
    let mut fields = FieldSelector::parse(q.get("fieldSelector").map(String::as_str).unwrap_or(""))?;
    if let Some(name) = name {
        fields = FieldSelector::parse(&format!("metadata.name={name}"))?;
    }
    let send_initial = q.get("sendInitialEvents").is_some_and(|v| v == "true");
    let rv = q.get("resourceVersion").map(String::as_str).unwrap_or("");
    let start = match rv {
        "" | "0" => WatchStart::WithInitialState,
        _ if send_initial => WatchStart::WithInitialState,
        r => WatchStart::After(parse_revision(r)?),
    };
    let timeout = q
        .get("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .map(|t| Duration::from_secs(t.min(MAX_WATCH_TIMEOUT.as_secs())))
        .unwrap_or(DEFAULT_WATCH_TIMEOUT);
    let slot = watch::WatchSlot::acquire(&app.watches, app.max_watches).ok_or_else(|| {
        ApiError::too_many(format!("too many open watches (at most {}); retry later", app.max_watches))
    })?;
    let req = WatchRequest { prefix: scope.rt.list_prefix(scope.namespace), start };
    let watcher = match scope.rt.cache.watch(&req).await {
        Ok(w) => w,
        Err(e @ (storage::StorageError::TooOld { .. } | storage::StorageError::Compacted { .. })) => {
            return Ok(watch::error_stream(&ApiError::from_storage(e, &scope.target(""))));
        }
        Err(e) => return Err(ApiError::from_storage(e, &scope.target(""))),
    };
    let params = watch::WatchParams {
        api_version: scope.rt.api_version(scope.version),
        kind: scope.rt.kind.clone(),
        key_prefix: scope.rt.key_prefix.clone(),
        labels,
        fields,
        bookmarks: q.get("allowWatchBookmarks").is_some_and(|v| v == "true"),
        initial_events_end: send_initial,
        timeout,
        shutdown: app.shutdown.clone(),
        slot,
        table,
        gauge: Some(gauge),
    };
    Ok(watch::respond(watcher, params))
}

async fn delete_collection(
    app: &App,
    scope: Scope<'_>,
    q: &std::collections::HashMap<String, String>,
    dry_run: bool,
) -> Result<Response<Body>, ApiError> {
    let labels = LabelSelector::parse(q.get("labelSelector").map(String::as_str).unwrap_or(""))?;
    let fields = FieldSelector::parse(q.get("fieldSelector").map(String::as_str).unwrap_or(""))?;
    let opts = ListOptions {
        prefix: scope.rt.list_prefix(scope.namespace),
        start: None,
        limit: 0,
        revision: ReadRevision::Consistent,
    };
    let page = scope.rt.cache.list(&opts).await.map_err(|e| ApiError::from_storage(e, &scope.target("")))?;
    let api_version = scope.rt.api_version(scope.version);
    let mut corrupt = Vec::new();
    let objects: Vec<Value> = page
        .items
        .iter()
        .filter_map(|kv| registry::decode(kv, &api_version).map_err(|e| note_corrupt(&mut corrupt, kv, e)).ok())
        .collect();
    if !corrupt.is_empty() {
        return Err(ApiError::storage_read_error(&scope.target(""), corrupt));
    }
    let mut deleted = Vec::new();
    for obj in objects {
        if !(labels.matches(&obj) && fields.matches(&obj)) {
            continue;
        }
        let name = meta_str(&obj, "name").unwrap_or_default().to_string();
        let ns = meta_str(&obj, "namespace").map(String::from);
        let s = Scope { namespace: ns.as_deref().or(scope.namespace), ..scope };
        match registry::delete(app.store.as_ref(), s, &name, &Preconditions::default(), dry_run, None).await {
            Ok(o) => deleted.push(o),
            Err(e) if e.code == 404 => {}
            Err(e) => return Err(e),
        }
    }
    let body = json!({"kind": format!("{}List", scope.rt.kind), "apiVersion": api_version, "metadata": {"resourceVersion": page.revision.to_string()}, "items": deleted});
    Ok(respond::json(StatusCode::OK, &body))
}
