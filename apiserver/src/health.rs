//! Health endpoints: `/healthz` and `/livez` (the process answers) and
//! `/readyz` (the store answers too).

use std::sync::Arc;

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::Full;
use storage::Store;

/// A plain-text response, as kube-apiserver's health checks answer.
fn text(code: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = code;
    resp.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("text/plain; charset=utf-8"));
    resp
}

/// Answers a health path, or `None` when `path` is not one.
pub async fn answer(path: &str, store: &Arc<dyn Store>) -> Option<Response<Full<Bytes>>> {
    match path {
        "/healthz" | "/livez" | "/healthz/ping" | "/livez/ping" => Some(text(StatusCode::OK, "ok".into())),
        "/readyz" => Some(match store.current_revision().await {
            Ok(_) => text(StatusCode::OK, "ok".into()),
            Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, format!("[-]storage failed: {e}\nreadyz check failed\n")),
        }),
        _ => None,
    }
}
