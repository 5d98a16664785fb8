//! Errors of the API server, and the one place they become Kubernetes
//! `Status` responses.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode};
use http_body_util::Full;
use serde_json::{json, Value};
use storage::StorageError;

/// What a request was about, for error messages and `details`.
#[derive(Clone, Debug, Default)]
pub struct Target {
    /// API group ("" for none).
    pub group: String,
    /// Resource (plural) name, e.g. `mysqldbs`.
    pub resource: String,
    /// Object name, if any.
    pub name: String,
}

impl Target {
    fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.resource.clone()
        } else {
            format!("{}.{}", self.resource, self.group)
        }
    }
}

/// One field-level cause of an Invalid (422) error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cause {
    /// e.g. `FieldValueInvalid`.
    pub reason: &'static str,
    /// What is wrong.
    pub message: String,
    /// The field path, e.g. `metadata.name`.
    pub field: String,
}

/// An error answered to the client as a `Status`.
#[derive(Clone, Debug, thiserror::Error)]
#[error("{code} {reason}: {message}")]
pub struct ApiError {
    /// HTTP status code.
    pub code: u16,
    /// `Status.reason`, e.g. `NotFound`.
    pub reason: &'static str,
    /// Human-readable message.
    pub message: String,
    /// `Status.details`.
    pub details: Option<Value>,
    /// Seconds after which a retry may succeed (`Retry-After`, and
    /// `details.retryAfterSeconds`, as kube-apiserver answers 429 and 503).
    pub retry_after: Option<u16>,
}

impl ApiError {
    fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        ApiError { code, reason, message: message.into(), details: None, retry_after: None }
    }

    fn with_target(mut self, t: &Target) -> Self {
        let mut d = json!({ "name": t.name, "group": t.group, "kind": t.resource });
        if t.name.is_empty() {
            d.as_object_mut().map(|m| m.remove("name"));
        }
        self.details = Some(d);
        self
    }

    /// 400 BadRequest.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    /// 401 Unauthorized.
    pub fn unauthorized() -> Self {
        Self::new(401, "Unauthorized", "Unauthorized")
    }

    /// 403 Forbidden.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(403, "Forbidden", message)
    }

    /// 403 Forbidden with the resource in `details`.
    pub fn forbidden_on(message: String, group: &str, resource: &str, name: &str) -> Self {
        let t = Target { group: group.into(), resource: resource.into(), name: name.into() };
        Self::new(403, "Forbidden", message).with_target(&t)
    }

    /// 404 NotFound for an object.
    pub fn not_found(t: &Target) -> Self {
        Self::new(404, "NotFound", format!("{} \"{}\" not found", t.qualified(), t.name)).with_target(t)
    }

    /// 404 NotFound for a path that serves nothing.
    pub fn no_route(path: &str) -> Self {
        Self::new(404, "NotFound", format!("the server could not find the requested resource ({path})"))
    }

    /// 405 MethodNotAllowed.
    pub fn method_not_allowed(method: &http::Method, path: &str) -> Self {
        Self::new(405, "MethodNotAllowed", format!("{method} is not supported on {path}"))
    }

    /// 406 NotAcceptable.
    pub fn not_acceptable(message: impl Into<String>) -> Self {
        Self::new(406, "NotAcceptable", message)
    }

    /// 408 with reason Timeout: the client did not send its request in time.
    pub fn request_timeout(message: impl Into<String>) -> Self {
        Self::new(408, "Timeout", message)
    }

    /// 409 AlreadyExists.
    pub fn already_exists(t: &Target) -> Self {
        Self::new(409, "AlreadyExists", format!("{} \"{}\" already exists", t.qualified(), t.name)).with_target(t)
    }

    /// 409 Conflict (a stale resourceVersion or a failed precondition).
    pub fn conflict(t: &Target, why: impl std::fmt::Display) -> Self {
        Self::new(409, "Conflict", format!("Operation cannot be fulfilled on {} \"{}\": {why}", t.qualified(), t.name))
            .with_target(t)
    }

    /// 409 Conflict of a server-side apply: the message and one cause per field.
    pub fn conflict_with_causes(t: &Target, message: String, causes: Vec<Cause>) -> Self {
        let mut e = Self::new(409, "Conflict", message).with_target(t);
        if let Some(Value::Object(d)) = &mut e.details {
            let list = causes.iter().map(|c| json!({"reason": c.reason, "message": c.message, "field": c.field}));
            d.insert("causes".into(), Value::Array(list.collect()));
        }
        e
    }

    /// 410 Expired (Gone).
    pub fn expired(message: impl Into<String>) -> Self {
        Self::new(410, "Expired", message)
    }

    /// 413 RequestEntityTooLarge.
    pub fn too_large(limit: usize) -> Self {
        Self::new(413, "RequestEntityTooLarge", format!("the request body is larger than {limit} bytes"))
    }

    /// 413 RequestEntityTooLarge with a message of its own.
    pub fn too_large_message(message: impl Into<String>) -> Self {
        Self::new(413, "RequestEntityTooLarge", message)
    }

    /// 413 RequestEntityTooLarge for an object the server would store, as kube-apiserver words it.
    pub fn too_large_object(limit: usize) -> Self {
        Self::new(413, "RequestEntityTooLarge", format!("Request entity too large: limit is {limit}"))
    }

    /// 415 UnsupportedMediaType.
    pub fn unsupported_media_type(got: &str, accepted: &[&str]) -> Self {
        Self::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format ({got}); accepted media types include: {}",
                accepted.join(", ")
            ),
        )
    }

    /// 422 Invalid without field causes (e.g. a JSON patch that cannot apply).
    pub fn unprocessable(message: impl Into<String>) -> Self {
        Self::new(422, "Invalid", message)
    }

    /// 422 Invalid with field causes.
    pub fn invalid(t: &Target, kind: &str, causes: Vec<Cause>) -> Self {
        let summary: Vec<String> = causes.iter().map(|c| format!("{}: {}", c.field, c.message)).collect();
        let mut e = Self::new(422, "Invalid", format!("{kind} \"{}\" is invalid: {}", t.name, summary.join(", ")));
        e.details = Some(json!({
            "name": t.name, "group": t.group, "kind": kind,
            "causes": causes.iter().map(|c| json!({"reason": c.reason, "message": c.message, "field": c.field})).collect::<Vec<_>>(),
        }));
        e
    }

    /// 429 TooManyRequests.
    pub fn too_many(message: impl Into<String>) -> Self {
        Self::new(429, "TooManyRequests", message).retry_after(1)
    }

    /// The same error, telling the client when to retry.
    pub fn retry_after(mut self, seconds: u16) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    /// 500 InternalError for a stored object that cannot be read (a bug or a
    /// hand edit of the store), worded as kube-apiserver's, with the way out.
    pub fn corrupt(key: &str, why: impl std::fmt::Display) -> Self {
        Self::new(
            500,
            "InternalError",
            format!(
                "Internal error occurred: StorageError: corrupt object, Key: {key}, AdditionalErrorMsg: object not decodable: {why}; \
                 an administrator can delete it with the delete option ignoreStoreReadErrorWithClusterBreakingPotential: true"
            ),
        )
    }

    /// 500 StorageReadError: a list met objects it cannot read; one cause per
    /// object (its key), as kube-apiserver answers (KEP-3926).
    pub fn storage_read_error(t: &Target, causes: Vec<Cause>) -> Self {
        let mut e = Self::new(
            500,
            "StorageReadError",
            format!("failed to read one or more {} from the storage", t.qualified()),
        );
        e.details = Some(json!({
            "name": "list", "group": t.group, "kind": t.resource,
            "causes": causes.iter().map(|c| json!({"reason": c.reason, "message": c.message, "field": c.field})).collect::<Vec<_>>(),
        }));
        e
    }

    /// 500 InternalError.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(500, "InternalError", message)
    }

    /// 503 ServiceUnavailable.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(503, "ServiceUnavailable", message)
    }

    /// 504 Timeout.
    pub fn timeout(message: impl Into<String>) -> Self {
        Self::new(504, "Timeout", message)
    }

    /// Maps a storage error about `t` to what the client sees.
    pub fn from_storage(e: StorageError, t: &Target) -> Self {
        match e {
            StorageError::NotFound { .. } => Self::not_found(t),
            StorageError::AlreadyExists { .. } => Self::already_exists(t),
            StorageError::Conflict { .. } => Self::conflict(
                t,
                "the object has been modified; please apply your changes to the latest version and try again",
            ),
            StorageError::Compacted { .. } | StorageError::TooOld { .. } => {
                Self::expired(format!("too old resource version: {e}"))
            }
            StorageError::FutureRevision { requested, current } => {
                Self::timeout(format!("Too large resource version: {requested}, current resource version: {current}"))
            }
            StorageError::WatcherTooSlow { .. } => Self::expired(e.to_string()),
            StorageError::InvalidKey { .. } => Self::bad_request(e.to_string()),
            // Certainly not applied: retry.
            StorageError::Unavailable(_) => Self::unavailable(e.to_string()).retry_after(1),
            // Maybe applied (or a read that took too long): kube's answer for an unknown outcome.
            StorageError::Timeout(_) | StorageError::Indeterminate(_) => Self::timeout(e.to_string()),
            StorageError::Internal(_) => Self::internal(e.to_string()),
        }
    }

    /// The `Status` object.
    pub fn to_status(&self) -> Value {
        let mut s = json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": self.message, "reason": self.reason, "code": self.code,
        });
        if let (Some(d), Some(m)) = (&self.details, s.as_object_mut()) {
            m.insert("details".into(), d.clone());
        }
        if let Some(secs) = self.retry_after {
            if !s["details"].is_object() {
                s["details"] = json!({});
            }
            s["details"]["retryAfterSeconds"] = json!(secs);
        }
        s
    }

    /// The HTTP response carrying the `Status`.
    pub fn to_response(&self) -> Response<Full<Bytes>> {
        let mut resp = Response::new(Full::new(Bytes::from(self.to_status().to_string())));
        *resp.status_mut() = StatusCode::from_u16(self.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        resp.headers_mut().insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if let Some(secs) = self.retry_after {
            resp.headers_mut().insert(http::header::RETRY_AFTER, HeaderValue::from(secs));
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_errors_map_to_kubernetes_reasons() {
        let t = Target { group: "prsn.io".into(), resource: "mysqldbs".into(), name: "db".into() };
        let nf = ApiError::from_storage(StorageError::NotFound { key: "k".into() }, &t);
        assert_eq!((nf.code, nf.reason), (404, "NotFound"));
        assert_eq!(nf.message, "mysqldbs.prsn.io \"db\" not found");
        let s = nf.to_status();
        assert_eq!(s["details"]["kind"], "mysqldbs");
        assert_eq!(s["kind"], "Status");
        let gone = ApiError::from_storage(StorageError::TooOld { requested: 1, oldest: 5 }, &t);
        assert_eq!((gone.code, gone.reason), (410, "Expired"));
        let un = ApiError::from_storage(StorageError::Unavailable("down".into()), &t);
        assert_eq!((un.code, un.retry_after), (503, Some(1)));
        assert_eq!(un.to_status()["details"]["retryAfterSeconds"], 1);
        assert_eq!(un.to_response().headers()["retry-after"], "1");
        let unknown = ApiError::from_storage(StorageError::Indeterminate("answer lost".into()), &t);
        assert_eq!((unknown.code, unknown.reason, unknown.retry_after), (504, "Timeout", None));
    }
}
