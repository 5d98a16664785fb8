//! Responses: the body type, JSON and text answers, `Status` errors,
//! `Warning` headers, and documents with an ETag.

use std::convert::Infallible;

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use serde_json::Value;

use crate::status::ApiError;

/// Every response body: a whole buffer or a watch stream.
pub type Body = UnsyncBoxBody<Bytes, Infallible>;

/// A whole-buffer body.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed_unsync()
}

/// A JSON response.
pub fn json(code: StatusCode, value: &Value) -> Response<Body> {
    let mut resp = Response::new(full(value.to_string()));
    *resp.status_mut() = code;
    resp.headers_mut().insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

/// A JSON response of bytes already encoded.
pub fn json_bytes(code: StatusCode, bytes: Bytes) -> Response<Body> {
    let mut resp = Response::new(full(bytes));
    *resp.status_mut() = code;
    resp.headers_mut().insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

/// A plain-text response.
pub fn text(code: StatusCode, body: impl Into<String>) -> Response<Body> {
    let mut resp = Response::new(full(body.into()));
    *resp.status_mut() = code;
    resp.headers_mut().insert(http::header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    resp
}

/// The `Status` response of an error.
pub fn error(e: &ApiError) -> Response<Body> {
    e.to_response().map(|b| b.boxed_unsync())
}

/// Adds a `Warning: 299 - "..."` header, as kube-apiserver's warnings.
pub fn warn(resp: &mut Response<Body>, message: &str) {
    let escaped = message.replace('\\', "\\\\").replace('"', "\\\"");
    if let Ok(v) = HeaderValue::from_str(&format!("299 - \"{escaped}\"")) {
        resp.headers_mut().append(http::header::WARNING, v);
    }
}

/// A JSON document with an ETag (a hash of its bytes): 304 without a body when
/// the request's If-None-Match names it. `content_type` is the exact media type.
pub fn json_with_etag(headers: &http::HeaderMap, value: &Value, content_type: &str) -> Response<Body> {
    bytes_with_etag(headers, value.to_string().into_bytes(), content_type)
}

/// `body` with a strong ETag (its hash): 304 when `If-None-Match` names it.
pub fn bytes_with_etag(headers: &http::HeaderMap, body: Vec<u8>, content_type: &str) -> Response<Body> {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    body.hash(&mut hasher);
    let etag = format!("\"{:016x}\"", hasher.finish());
    let matches = headers
        .get(http::header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let mut resp = if matches {
        let mut r = Response::new(full(Bytes::new()));
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        r
    } else {
        Response::new(full(body))
    };
    let headers = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(content_type) {
        headers.insert(http::header::CONTENT_TYPE, v);
    }
    if let Ok(v) = HeaderValue::from_str(&etag) {
        headers.insert(http::header::ETAG, v);
    }
    headers.insert(http::header::VARY, HeaderValue::from_static("Accept"));
    resp
}
