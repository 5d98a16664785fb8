//! HTTP helpers: the response body type, JSON responses, bounded request
//! bodies and query parameters.

use std::collections::HashMap;
use std::convert::Infallible;

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use serde_json::Value;

use crate::status::ApiError;

/// Every response body: a whole buffer or a watch stream.
pub type Body = UnsyncBoxBody<Bytes, Infallible>;

pub use crate::limits::MAX_BODY;

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

/// Reads a JSON body of at most [`MAX_BODY`] bytes: 413 when larger (without
/// reading it whole when Content-Length says so), 415 for other media types,
/// 400 for malformed or too deeply nested JSON (see [`crate::limits`]).
pub async fn read_json(parts: &http::request::Parts, body: Incoming) -> Result<Value, ApiError> {
    Ok(read_json_raw(parts, body).await?.0)
}

/// Like [`read_json`], also returning the raw bytes (for field validation).
pub async fn read_json_raw(parts: &http::request::Parts, body: Incoming) -> Result<(Value, Bytes), ApiError> {
    let bytes = read_bytes(parts, body).await?;
    // serde_json refuses nesting deeper than 128 levels while parsing; the
    // server's own bound is lower (see `limits`).
    let value = crate::limits::parse_body(&bytes)?;
    Ok((value, bytes))
}

/// When a request must have been read (`--request-timeout` after it began);
/// set by the connection as a request extension.
#[derive(Clone, Copy, Debug)]
pub struct Deadline(pub tokio::time::Instant);

/// Reads a body of at most [`MAX_BODY`] bytes (413 beyond, without reading it
/// whole when Content-Length says so), by the request's [`Deadline`] (408
/// after it).
pub async fn read_bytes(parts: &http::request::Parts, body: Incoming) -> Result<Bytes, ApiError> {
    match parts.extensions.get::<Deadline>() {
        Some(Deadline(at)) => match tokio::time::timeout_at(*at, read_bounded(parts, body)).await {
            Ok(result) => result,
            Err(_) => Err(ApiError::request_timeout("the request body was not received in time (--request-timeout)")),
        },
        None => read_bounded(parts, body).await,
    }
}

async fn read_bounded(parts: &http::request::Parts, body: Incoming) -> Result<Bytes, ApiError> {
    let declared = parts
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > MAX_BODY) {
        discard(body);
        return Err(ApiError::too_large(MAX_BODY));
    }
    let mut body = body;
    let mut buf = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| ApiError::bad_request(format!("cannot read the request body: {e}")))?;
        if let Some(data) = frame.data_ref() {
            if buf.len() + data.len() > MAX_BODY {
                discard(body);
                return Err(ApiError::too_large(MAX_BODY));
            }
            buf.extend_from_slice(data);
        }
    }
    Ok(Bytes::from(buf))
}

/// Most of a refused body that is read and thrown away, so that an HTTP/2
/// client receives the 413 before its stream is reset.
const DISCARD_LIMIT: usize = 64 * 1024 * 1024;

/// Reads and drops the rest of a refused body in the background (bounded in
/// bytes and time), without keeping it.
pub fn discard(mut body: Incoming) {
    tokio::spawn(async move {
        let mut seen = 0usize;
        let drain = async {
            while let Some(Ok(frame)) = body.frame().await {
                seen += frame.data_ref().map_or(0, |d| d.len());
                if seen > DISCARD_LIMIT {
                    break;
                }
            }
        };
        let _ = tokio::time::timeout(std::time::Duration::from_secs(30), drain).await;
    });
}

/// The media type of the request body (without parameters).
pub fn content_type(parts: &http::request::Parts) -> String {
    parts
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or("").trim().to_ascii_lowercase())
        .unwrap_or_default()
}

/// True when the `Accept` header allows JSON (or is absent).
pub fn accepts_json(parts: &http::request::Parts) -> bool {
    let Some(accept) = parts.headers.get(http::header::ACCEPT).and_then(|v| v.to_str().ok()) else { return true };
    accept.trim().is_empty()
        || accept.split(',').any(|range| {
            let media = range.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
            matches!(media.as_str(), "application/json" | "application/*" | "*/*" | "")
        })
}

/// How an object or list is answered, chosen by the Accept header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    /// The objects as JSON.
    Json,
    /// A `meta.k8s.io` Table of this version (`v1` or `v1beta1`), as `kubectl get` asks.
    Table(&'static str),
}

/// The Accept header's media ranges in order: a JSON-compatible type
/// (`application/json`, `application/*`, `*/*`) with its parameters, or `None`
/// for a type that is not JSON. No header (or an empty one) is plain JSON.
fn accepted(parts: &http::request::Parts) -> Vec<Option<HashMap<String, String>>> {
    let accept = parts.headers.get(http::header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or("");
    if accept.trim().is_empty() {
        return vec![Some(HashMap::new())];
    }
    accept
        .split(',')
        .map(|range| {
            let mut fields = range.split(';');
            let media = fields.next().unwrap_or("").trim().to_ascii_lowercase();
            matches!(media.as_str(), "application/json" | "application/*" | "*/*" | "").then(|| {
                fields
                    .filter_map(|p| p.split_once('='))
                    .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().trim_matches('"').to_string()))
                    .collect()
            })
        })
        .collect()
}

fn accept_header(parts: &http::request::Parts) -> &str {
    parts.headers.get(http::header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or("")
}

/// The first media type of the Accept header that can be served: plain JSON,
/// or JSON `as=Table` (meta.k8s.io v1 or v1beta1). 406 when none can.
pub fn output(parts: &http::request::Parts) -> Result<Output, ApiError> {
    for params in accepted(parts).into_iter().flatten() {
        let param = |k: &str| params.get(k).map(String::as_str);
        match (param("as"), param("g"), param("v")) {
            (None, _, _) => return Ok(Output::Json),
            (Some("Table"), Some("meta.k8s.io"), Some("v1")) => return Ok(Output::Table("v1")),
            (Some("Table"), Some("meta.k8s.io"), Some("v1beta1")) => return Ok(Output::Table("v1beta1")),
            _ => continue,
        }
    }
    Err(ApiError::not_acceptable(format!(
        "only the following media types are accepted: application/json, application/json;as=Table;v=v1;g=meta.k8s.io (Accept: {})",
        accept_header(parts)
    )))
}

/// How `/api` and `/apis` are answered, chosen by the Accept header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DiscoveryOutput {
    /// `APIVersions` / `APIGroupList`.
    Legacy,
    /// `APIGroupDiscoveryList` of apidiscovery.k8s.io at this version (`v2` or `v2beta1`).
    Aggregated(&'static str),
}

/// The first discovery form the Accept header allows; 406 when none.
pub fn discovery_output(parts: &http::request::Parts) -> Result<DiscoveryOutput, ApiError> {
    for params in accepted(parts).into_iter().flatten() {
        let param = |k: &str| params.get(k).map(String::as_str);
        match (param("as"), param("g"), param("v")) {
            (None, _, _) => return Ok(DiscoveryOutput::Legacy),
            (Some("APIGroupDiscoveryList"), Some("apidiscovery.k8s.io"), Some("v2")) => {
                return Ok(DiscoveryOutput::Aggregated("v2"))
            }
            (Some("APIGroupDiscoveryList"), Some("apidiscovery.k8s.io"), Some("v2beta1")) => {
                return Ok(DiscoveryOutput::Aggregated("v2beta1"))
            }
            _ => continue,
        }
    }
    Err(ApiError::not_acceptable(format!(
        "only the following media types are accepted: application/json, application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList (Accept: {})",
        accept_header(parts)
    )))
}

/// A JSON document with an ETag (a hash of its bytes): 304 without a body when
/// the request's If-None-Match names it. `content_type` is the exact media type.
pub fn json_with_etag(parts: &http::request::Parts, value: &Value, content_type: &str) -> Response<Body> {
    use std::hash::{Hash, Hasher};
    let body = value.to_string();
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    body.hash(&mut hasher);
    let etag = format!("\"{:016x}\"", hasher.finish());
    let matches = parts
        .headers
        .get(http::header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let mut resp = if matches {
        let mut r = Response::new(full(String::new()));
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

/// Query parameters (last one wins; unknown ones are ignored by callers).
pub fn query(uri: &http::Uri) -> HashMap<String, String> {
    uri.query().map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect()).unwrap_or_default()
}
