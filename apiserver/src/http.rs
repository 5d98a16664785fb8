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

/// Largest request body (as kube-apiserver's 3 MiB).
pub const MAX_BODY: usize = 3 * 1024 * 1024;

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
/// 400 for malformed or too deeply nested JSON.
pub async fn read_json(parts: &http::request::Parts, body: Incoming) -> Result<Value, ApiError> {
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
    let bytes = Bytes::from(buf);
    // serde_json refuses nesting deeper than 128 levels: that bounds depth.
    serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::bad_request(format!("the request body is not valid JSON: {e}")))
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

/// The first media type of the Accept header that can be served: plain JSON,
/// or JSON `as=Table` (meta.k8s.io v1 or v1beta1). 406 when none can.
pub fn output(parts: &http::request::Parts) -> Result<Output, ApiError> {
    let Some(accept) = parts.headers.get(http::header::ACCEPT).and_then(|v| v.to_str().ok()) else {
        return Ok(Output::Json);
    };
    if accept.trim().is_empty() {
        return Ok(Output::Json);
    }
    for range in accept.split(',') {
        let mut fields = range.split(';');
        let media = fields.next().unwrap_or("").trim().to_ascii_lowercase();
        if !matches!(media.as_str(), "application/json" | "application/*" | "*/*" | "") {
            continue;
        }
        let params: HashMap<String, String> = fields
            .filter_map(|p| p.split_once('='))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().trim_matches('"').to_string()))
            .collect();
        let group = params.get("g").map(String::as_str);
        match (params.get("as").map(String::as_str), group, params.get("v").map(String::as_str)) {
            (None, _, _) => return Ok(Output::Json),
            (Some("Table"), Some("meta.k8s.io"), Some("v1")) => return Ok(Output::Table("v1")),
            (Some("Table"), Some("meta.k8s.io"), Some("v1beta1")) => return Ok(Output::Table("v1beta1")),
            _ => continue,
        }
    }
    Err(ApiError::not_acceptable(format!(
        "only the following media types are accepted: application/json, application/json;as=Table;v=v1;g=meta.k8s.io (Accept: {accept})"
    )))
}

/// Query parameters (last one wins; unknown ones are ignored by callers).
pub fn query(uri: &http::Uri) -> HashMap<String, String> {
    uri.query().map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect()).unwrap_or_default()
}
