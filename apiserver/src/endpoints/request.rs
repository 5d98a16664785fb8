//! Requests: bodies read within their bounds (size and deadline), unread
//! bodies drained, the content type and the query.

use std::collections::HashMap;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde_json::Value;

use crate::status::ApiError;

pub use crate::limits::MAX_BODY;

/// The request body, once (the router drains one left unread).
pub fn take(body: &mut Option<Incoming>) -> Result<Incoming, ApiError> {
    body.take().ok_or_else(|| ApiError::internal("the request body was already read"))
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
    let read = match parts.extensions.get::<Deadline>() {
        Some(Deadline(at)) => match tokio::time::timeout_at(*at, read_bounded(parts, body)).await {
            Ok(result) => result,
            Err(_) => Err(ApiError::request_timeout("the request body was not received in time (--request-timeout)")),
        },
        None => read_bounded(parts, body).await,
    }?;
    match read {
        Read::Whole(bytes) => Ok(bytes),
        Read::TooLarge(rest) => {
            drain(rest).await;
            Err(ApiError::too_large(MAX_BODY))
        }
    }
}

/// A body read within [`MAX_BODY`], or the unread rest of one beyond it.
enum Read {
    Whole(Bytes),
    TooLarge(Incoming),
}

async fn read_bounded(parts: &http::request::Parts, body: Incoming) -> Result<Read, ApiError> {
    let declared = parts
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > MAX_BODY) {
        return Ok(Read::TooLarge(body));
    }
    let mut body = body;
    // A body of one frame (most are) is kept as it came, without a copy.
    let mut first: Option<Bytes> = None;
    let mut buf = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| ApiError::bad_request(format!("cannot read the request body: {e}")))?;
        let Ok(data) = frame.into_data() else { continue };
        if first.as_ref().map_or(buf.len(), Bytes::len) + data.len() > MAX_BODY {
            return Ok(Read::TooLarge(body));
        }
        match first.take() {
            None if buf.is_empty() => first = Some(data),
            Some(head) => {
                buf.extend_from_slice(&head);
                buf.extend_from_slice(&data);
            }
            None => buf.extend_from_slice(&data),
        }
    }
    Ok(Read::Whole(first.unwrap_or_else(|| Bytes::from(buf))))
}

/// Most of a refused body that is read and thrown away, so that an HTTP/2
/// client receives the 413 before its stream is reset.
const DISCARD_LIMIT: usize = 64 * 1024 * 1024;

/// Longest an answer waits for the client to finish sending a body the
/// server will not use (see [`drain`]).
const DRAIN_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Reads and drops the rest of a body the server will not use before the
/// answer goes out: a client that receives an error while still sending (curl
/// does) stops its upload and may drop the answer's body with the stream.
/// Waits at most [`DRAIN_WAIT`] and [`DISCARD_LIMIT`] bytes; the rest of a
/// slower upload is drained in the background ([`discard`]). A body declared
/// larger than that is not waited for (the answer goes out at once, and the
/// stream is reset after [`DISCARD_LIMIT`] bytes); nor is one that turns out
/// larger.
pub async fn drain(mut body: Incoming) {
    if hyper::body::Body::is_end_stream(&body) {
        return;
    }
    if hyper::body::Body::size_hint(&body).lower() > DISCARD_LIMIT as u64 {
        return discard(body);
    }
    let until = tokio::time::Instant::now() + DRAIN_WAIT;
    let mut seen = 0usize;
    loop {
        match tokio::time::timeout_at(until, body.frame()).await {
            Ok(Some(Ok(frame))) => {
                seen += frame.data_ref().map_or(0, |d| d.len());
                if seen > DISCARD_LIMIT {
                    return;
                }
            }
            Ok(_) => return,
            Err(_) => return discard(body),
        }
    }
}

/// Reads and drops the rest of a refused body in the background (bounded in
/// bytes and time), without keeping it.
pub fn discard(mut body: Incoming) {
    // Most requests (every GET) have no body: nothing to read.
    if hyper::body::Body::is_end_stream(&body) {
        return;
    }
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

/// The media types an object body (create, update, DeleteOptions) may come
/// in, as a 415 lists them.
pub const OBJECT_BODY_TYPES: &[&str] = &["application/json", "application/yaml", super::protobuf::PROTOBUF];

/// The media type of the request body (without parameters).
pub fn content_type(parts: &http::request::Parts) -> String {
    parts
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or("").trim().to_ascii_lowercase())
        .unwrap_or_default()
}

/// Query parameters (last one wins; unknown ones are ignored by callers).
pub fn query(uri: &http::Uri) -> HashMap<String, String> {
    uri.query().map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect()).unwrap_or_default()
}
