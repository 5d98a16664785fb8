//! PATCH: merge and JSON patches (applied with their bounds, see
//! [`super::patch`]) and server-side apply, retried on a storage conflict
//! unless the client pins a resourceVersion, as kube-apiserver does.

use http::StatusCode;
use hyper::body::Incoming;
use serde_json::{json, Value};

use super::patch::{self, Patch};
use super::request;
use super::resources::Call;
use super::respond::Body;
use super::write::{check_tpr, json_warned, serve_if_tpr, undecodable, Writes};
use crate::app::App;
use crate::registry::field_validation::FieldValidation;
use crate::registry::{self, managed_fields, meta_str, Scope};
use crate::status::ApiError;

type Response = http::Response<Body>;

/// PATCH of an object: a merge or JSON patch, or a server-side apply.
pub async fn patch(call: &Call<'_>, name: &str, body: &mut Option<Incoming>) -> Result<Response, ApiError> {
    let ct = request::content_type(call.parts);
    if !patch::ACCEPTED.contains(&ct.as_str()) {
        return Err(ApiError::unsupported_media_type(&ct, patch::ACCEPTED));
    }
    let w = Writes::of(call)?;
    let writer = w.writer();
    let (validation, undecodable) = (w.validation, undecodable(call));
    let opts = WriteOptions { dry_run: call.dry_run, is_tpr: call.is_tpr, validation, writer: &writer };
    if ct == patch::APPLY {
        let raw = request::read_bytes(call.parts, request::take(body)?).await?;
        let (mut applied, duplicates) = patch::parse_apply(&raw)?;
        registry::check_meta_types(&applied, &call.scope)?;
        if applied.pointer("/metadata/managedFields").is_some_and(|m| !m.is_null()) {
            return Err(ApiError::bad_request("invalid object: metadata.managedFields must be nil"));
        }
        let mut warnings = validation.check_duplicates(duplicates).map_err(&undecodable)?;
        warnings.extend(validation.check_object(&mut applied, known_fields(&call.scope)).map_err(&undecodable)?);
        let force = call.param("force") == Some("true");
        if !call.req.query.contains_key("fieldManager") {
            return Err(ApiError::bad_request("fieldManager is required for apply requests"));
        }
        let (code, stored, more) = server_side_apply(call.app, call.scope, name, applied, force, &opts).await?;
        warnings.extend(more);
        warnings.extend(serve_if_tpr(call.app, call.is_tpr && !call.dry_run, &stored)?);
        return Ok(json_warned(code, &stored, &warnings));
    }
    let (body, raw) = request::read_json_raw(call.parts, request::take(body)?).await?;
    // Duplicate fields in the patch itself; unknown metadata in the result.
    let mut warnings = validation.check_body(&raw).map_err(&undecodable)?;
    let patch = Patch::parse(&ct, body, raw.len())?;
    let (updated, more) = apply_patch(call.app, call.scope, name, &patch, &opts).await.map_err(&undecodable)?;
    warnings.extend(more);
    warnings.extend(serve_if_tpr(call.app, call.is_tpr && !call.dry_run, &updated)?);
    Ok(json_warned(StatusCode::OK, &updated, &warnings))
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
        let mut warnings = opts.validation.check_object(&mut current, known_fields(&scope))?;
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

/// A built-in type's top-level fields (None: any field is kept).
pub fn known_fields(scope: &Scope<'_>) -> Option<&'static [&'static str]> {
    scope.rt.builtin.map(|b| b.fields())
}

/// How a write is done: dry run, on the TPR type, field validation, field manager.
pub struct WriteOptions<'a> {
    /// Store nothing.
    pub dry_run: bool,
    /// The type is ThirdPartyResource.
    pub is_tpr: bool,
    /// `fieldValidation`.
    pub validation: FieldValidation,
    /// Who writes.
    pub writer: &'a managed_fields::Writer<'a>,
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
            None => {
                crate::builtin::namespaces::check_create(app.store.as_ref(), &app.served, &scope, name).await?;
                registry::create(app.store.as_ref(), scope, merged, opts.dry_run)
                    .await
                    .map(|o| (StatusCode::CREATED, o))
            }
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
