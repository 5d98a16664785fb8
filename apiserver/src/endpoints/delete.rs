//! DELETE of an object (marked while finalizers remain; ThirdPartyResources
//! delete their objects first; corrupt objects with the unsafe option) and
//! deletecollection, with DeleteOptions.

use http::StatusCode;
use hyper::body::Incoming;
use serde_json::{json, Value};
use storage::{ListOptions, ReadRevision};

use super::read::note_corrupt;
use super::request;
use super::resources::Call;
use super::respond::{self, Body};
use crate::app::App;
use crate::registry::selectors::{FieldSelector, LabelSelector};
use crate::registry::{self, meta_str, Preconditions, Scope};
use crate::status::ApiError;
use crate::tpr;

type Response = http::Response<Body>;

/// DELETE of one object.
pub async fn delete(call: &Call<'_>, name: &str, body: &mut Option<Incoming>) -> Result<Response, ApiError> {
    let (app, scope) = (call.app, call.scope);
    let opts = delete_options(call.parts, request::take(body)?, &call.req.query).await?;
    if opts.ignore_read_errors {
        // KEP-3926: a second authorization, for the unsafe verb.
        let unsafe_verb = crate::identity::Attributes { verb: UNSAFE_DELETE_VERB, ..call.req.attributes() };
        let user = call.user.ok_or_else(ApiError::unauthorized)?;
        app.authz.authorize(user, &unsafe_verb).await.map_err(|e| {
            ApiError::forbidden(format!("not permitted to do \"{UNSAFE_DELETE_VERB}\", reason: {}", e.message))
        })?;
        if call.dry_run {
            return Err(ApiError::bad_request(
                "ignoreStoreReadErrorWithClusterBreakingPotential cannot be used with dryRun",
            ));
        }
        return Ok(respond::json(StatusCode::OK, &registry::delete_corrupt(app.store.as_ref(), scope, name).await?));
    }
    if call.is_tpr && !call.dry_run {
        return delete_tpr(app, scope, name, &opts.preconditions).await;
    }
    let deleted = registry::delete(app.store.as_ref(), scope, name, &opts.preconditions, call.dry_run, None).await?;
    Ok(respond::json(StatusCode::OK, &deleted))
}

/// deletecollection: every object the selectors match (not with the unsafe option).
pub async fn collection(call: &Call<'_>, body: &mut Option<Incoming>) -> Result<Response, ApiError> {
    if delete_options(call.parts, request::take(body)?, &call.req.query).await?.ignore_read_errors {
        return Err(ApiError::invalid(
            &call.scope.target(""),
            "DeleteOptions",
            vec![crate::status::Cause {
                reason: "FieldValueInvalid",
                message:
                    "Invalid value: true: is not allowed with DELETECOLLECTION, try again after removing the option"
                        .into(),
                field: "ignoreStoreReadErrorWithClusterBreakingPotential".into(),
            }],
        ));
    }
    delete_collection(call.app, call.scope, &call.req.query, call.dry_run).await
}

/// The authorization verb of a delete that ignores read errors (KEP-3926).
const UNSAFE_DELETE_VERB: &str = "unsafe-delete-ignore-read-errors";

/// What a DeleteOptions body (or the query) asks of a delete.
struct DeleteOptions {
    preconditions: Preconditions,
    /// `ignoreStoreReadErrorWithClusterBreakingPotential`: delete a corrupt object.
    ignore_read_errors: bool,
}

/// A DeleteOptions body in its media type: JSON (also under curl's form
/// default), YAML, or the protobuf client-go's typed clients send; others are
/// a 415, as kube-apiserver answers.
fn decode_options(parts: &http::request::Parts, raw: &[u8]) -> Result<Value, ApiError> {
    let ct = request::content_type(parts);
    match ct.as_str() {
        "" | "application/json" | "application/x-www-form-urlencoded" | "*/*" => crate::limits::parse_body(raw),
        "application/yaml" => Ok(super::yaml::parse_body(raw, "the request body")?.value),
        super::protobuf::PROTOBUF => match super::protobuf::decode(raw)? {
            opts if opts["kind"] == "DeleteOptions" => Ok(opts),
            other => Err(ApiError::bad_request(format!(
                "the body of a delete must be DeleteOptions, not {}",
                other["kind"].as_str().unwrap_or_default()
            ))),
        },
        _ => Err(ApiError::unsupported_media_type(&ct, request::OBJECT_BODY_TYPES)),
    }
}

/// DeleteOptions from the body, if any, and the query. Fields of the wrong
/// type are a 400, as kube-apiserver's decoder answers.
async fn delete_options(
    parts: &http::request::Parts,
    body: Incoming,
    q: &std::collections::HashMap<String, String>,
) -> Result<DeleteOptions, ApiError> {
    let raw = request::read_bytes(parts, body).await?;
    let opts = if raw.iter().all(u8::is_ascii_whitespace) { json!({}) } else { decode_options(parts, &raw)? };
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
async fn delete_tpr(app: &App, scope: Scope<'_>, name: &str, pre: &Preconditions) -> Result<Response, ApiError> {
    let marked = registry::delete(app.store.as_ref(), scope, name, pre, false, Some(tpr::OBJECTS_FINALIZER)).await?;
    let revision = meta_str(&marked, "resourceVersion").and_then(|r| r.parse().ok()).unwrap_or(0);
    tokio::spawn(app.controller.clone().finish_delete(marked.clone(), revision));
    Ok(respond::json(StatusCode::OK, &marked))
}

/// Deletes every object of the list the selectors match.
async fn delete_collection(
    app: &App,
    scope: Scope<'_>,
    q: &std::collections::HashMap<String, String>,
    dry_run: bool,
) -> Result<Response, ApiError> {
    let labels = LabelSelector::parse(q.get("labelSelector").map(String::as_str).unwrap_or(""))?;
    let fields = FieldSelector::parse_for(
        q.get("fieldSelector").map(String::as_str).unwrap_or(""),
        scope.rt.builtin.map_or(&[], |b| b.field_labels()),
    )?;
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
