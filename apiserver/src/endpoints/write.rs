//! Writes: create (POST) and update (PUT) of an object, with field
//! validation, managedFields, metadata checks, and ThirdPartyResources
//! served before the answer.

use http::StatusCode;
use hyper::body::Incoming;
use serde_json::Value;

use super::request;
use super::resources::Call;
use super::respond::{self, Body};
use crate::app::App;
use crate::registry::field_validation::FieldValidation;
use crate::registry::{self, managed_fields};
use crate::status::ApiError;
use crate::tpr;

type Response = http::Response<Body>;

/// What a write needs besides the call: `fieldValidation` and who writes.
pub struct Writes {
    /// `fieldValidation`.
    pub validation: FieldValidation,
    /// The field manager (see [`field_manager`]).
    pub manager: String,
    /// The URL's `group/version`.
    pub api_version: String,
}

impl Writes {
    /// From the call's query and headers (400 for a bad `fieldValidation` or `fieldManager`).
    pub fn of(call: &Call<'_>) -> Result<Writes, ApiError> {
        Ok(Writes {
            validation: FieldValidation::parse(call.param("fieldValidation"))?,
            manager: field_manager(call.parts, &call.req.query)?,
            api_version: call.scope.rt.api_version(call.scope.version),
        })
    }

    /// The writer managedFields record.
    pub fn writer(&self) -> managed_fields::Writer<'_> {
        managed_fields::Writer { manager: &self.manager, api_version: &self.api_version }
    }
}

/// kube-apiserver's words for a strict field validation failure.
pub fn undecodable<'a>(call: &'a Call<'_>) -> impl Fn(ApiError) -> ApiError + 'a {
    move |e: ApiError| match e.message.starts_with("strict decoding error") {
        true => ApiError::bad_request(format!(
            "{kind} in version \"{version}\" cannot be handled as a {kind}: {}",
            e.message,
            kind = call.scope.rt.kind,
            version = call.scope.version
        )),
        false => e,
    }
}

/// POST: creates an object (201).
pub async fn create(call: &Call<'_>, body: &mut Option<Incoming>) -> Result<Response, ApiError> {
    let w = Writes::of(call)?;
    let known = super::apply::known_fields(&call.scope);
    let (mut obj, mut warnings) =
        read_json_body(call.parts, request::take(body)?, w.validation, known).await.map_err(undecodable(call))?;
    registry::check_meta_types(&obj, &call.scope)?;
    managed_fields::record_update(None, &mut obj, &w.writer());
    warnings.extend(registry::meta::finalizer_warnings(None, &obj));
    if call.is_tpr {
        check_tpr(call.app, &obj)?;
    }
    let name = registry::meta_str(&obj, "name").unwrap_or_default();
    crate::builtin::namespaces::check_create(call.app.store.as_ref(), &call.app.served, &call.scope, name).await?;
    let created = registry::create_answered(call.app.store.as_ref(), call.scope, obj, call.dry_run).await?;
    match (created.answer(), call.is_tpr) {
        // The registry made the answer from the stored bytes: sent as it is.
        (Some(answer), false) => Ok(warned(respond::json_bytes(StatusCode::CREATED, answer), &warnings)),
        _ => {
            let created = created.object()?;
            warnings.extend(serve_if_tpr(call.app, call.is_tpr && !call.dry_run, &created)?);
            Ok(written(call, StatusCode::CREATED, &created, &warnings))
        }
    }
}

/// PUT: replaces an object at its resourceVersion (200).
pub async fn update(call: &Call<'_>, name: &str, body: &mut Option<Incoming>) -> Result<Response, ApiError> {
    let w = Writes::of(call)?;
    let known = super::apply::known_fields(&call.scope);
    let (mut obj, mut warnings) =
        read_json_body(call.parts, request::take(body)?, w.validation, known).await.map_err(undecodable(call))?;
    registry::check_meta_types(&obj, &call.scope)?;
    let old = registry::get(call.app.store.as_ref(), call.scope, name).await?;
    managed_fields::record_update(Some(&old), &mut obj, &w.writer());
    warnings.extend(registry::meta::finalizer_warnings(Some(&old), &obj));
    if call.is_tpr {
        check_tpr(call.app, &obj)?;
    }
    let updated = registry::update(call.app.store.as_ref(), call.scope, name, obj, call.dry_run).await?;
    warnings.extend(serve_if_tpr(call.app, call.is_tpr && !call.dry_run, &updated)?);
    Ok(written(call, StatusCode::OK, &updated, &warnings))
}

/// A stored ThirdPartyResource is served at once, before the answer; a
/// warning says so when it is not (an older TPR that raced it serves the same).
pub fn serve_if_tpr(app: &App, is_tpr: bool, stored: &Value) -> Result<Vec<String>, ApiError> {
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
pub fn check_tpr(app: &App, tpr: &Value) -> Result<(), ApiError> {
    tpr::validate(tpr)?;
    app.controller.check_conflicts(tpr)
}

/// The field manager of a write: `fieldManager`, or the client's name from its
/// User-Agent (`kubectl/v1.32.0 (...)` → `kubectl`), as kube-apiserver does.
pub fn field_manager(
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

/// The JSON object of a create or update, checked by `fieldValidation`; the
/// warnings to answer with.
async fn read_json_body(
    parts: &http::request::Parts,
    body: Incoming,
    validation: FieldValidation,
    known: Option<&[&str]>,
) -> Result<(Value, Vec<String>), ApiError> {
    let ct = request::content_type(parts);
    let (mut obj, raw) = match ct.as_str() {
        "" | "application/json" | "application/x-www-form-urlencoded" | "*/*" => {
            request::read_json_raw(parts, body).await?
        }
        // As kube-apiserver reads them (`curl --data-binary @obj.yaml`).
        "application/yaml" => {
            let parsed = super::yaml::parse_body(&request::read_bytes(parts, body).await?, "the request body")?;
            let mut obj = parsed.value;
            let mut warnings = validation.check_duplicates(parsed.duplicates)?;
            warnings.extend(validation.check_object(&mut obj, known)?);
            return Ok((obj, warnings));
        }
        // kubectl's typed commands send built-in objects as protobuf.
        super::protobuf::PROTOBUF => {
            let obj = super::protobuf::decode(&request::read_bytes(parts, body).await?)?;
            let raw = serde_json::to_vec(&obj).unwrap_or_default().into();
            (obj, raw)
        }
        _ => {
            // Read the body out first: dropped unread, it would reset the
            // stream before the answer is out.
            request::drain(body).await;
            return Err(ApiError::unsupported_media_type(&ct, request::OBJECT_BODY_TYPES));
        }
    };
    let warnings = validation.check(&raw, &mut obj, known)?;
    Ok((obj, warnings))
}

/// A JSON response with a `Warning` header per message, bounded as
/// kube-apiserver bounds them: at most 4096 characters in all, each message
/// cut to 256 characters when they would be more.
pub fn json_warned(code: StatusCode, value: &Value, warnings: &[String]) -> Response {
    warned(respond::json(code, value), warnings)
}

/// A written object's answer, its bytes also kept as GET, lists and
/// watches serve them (see [`crate::served::EncodedObjects`]), so that
/// nothing parses the new version again.
fn written(call: &Call<'_>, code: StatusCode, obj: &Value, warnings: &[String]) -> Response {
    let (name, revision) = (registry::meta_str(obj, "name"), registry::meta_str(obj, "resourceVersion"));
    let revision = revision.and_then(|r| r.parse::<i64>().ok());
    // The registry kept the answer, made from the stored bytes.
    if let (Some(name), Some(revision), false) = (name, revision, call.dry_run) {
        let key = call.scope.rt.key(call.scope.namespace, name);
        let (group, version) = (&call.scope.rt.group, call.scope.version);
        if let Some(bytes) = call.scope.rt.encoded.get_in(&key, revision, group, version) {
            return warned(respond::json_bytes(code, bytes), warnings);
        }
    }
    match (serde_json::to_vec(obj), name, revision) {
        (Ok(bytes), Some(name), Some(revision)) if !call.dry_run => {
            let bytes = bytes::Bytes::from(bytes);
            let api_version = call.scope.rt.api_version(call.scope.version);
            call.scope.rt.encoded.put(
                &call.scope.rt.key(call.scope.namespace, name),
                revision,
                &api_version,
                bytes.clone(),
            );
            warned(respond::json_bytes(code, bytes), warnings)
        }
        _ => json_warned(code, obj, warnings),
    }
}

/// `resp` with a `Warning` header per message (see [`json_warned`]).
fn warned(mut resp: Response, warnings: &[String]) -> Response {
    const TOTAL: usize = 4096;
    const EACH: usize = 256;
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
