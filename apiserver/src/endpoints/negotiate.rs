//! Content negotiation: what the `Accept` header lets the server answer.

use std::collections::HashMap;

use crate::status::ApiError;

/// True when the `Accept` header allows JSON (or is absent).
pub fn accepts_json(headers: &http::HeaderMap) -> bool {
    let Some(accept) = headers.get(http::header::ACCEPT).and_then(|v| v.to_str().ok()) else { return true };
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
fn accepted(headers: &http::HeaderMap) -> Vec<Option<HashMap<String, String>>> {
    let accept = headers.get(http::header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or("");
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

fn accept_header(headers: &http::HeaderMap) -> &str {
    headers.get(http::header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or("")
}

/// The first media type of the Accept header that can be served: plain JSON,
/// or JSON `as=Table` (meta.k8s.io v1 or v1beta1). 406 when none can.
pub fn output(headers: &http::HeaderMap) -> Result<Output, ApiError> {
    for params in accepted(headers).into_iter().flatten() {
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
        accept_header(headers)
    )))
}

/// True when `/openapi/v2` should be answered as protobuf: the Accept header
/// names gnostic's media type (kubectl's only ask) before any JSON form.
pub fn wants_openapi_protobuf(headers: &http::HeaderMap) -> bool {
    let Some(accept) = headers.get(http::header::ACCEPT).and_then(|v| v.to_str().ok()) else { return false };
    for range in accept.split(',') {
        let media = range.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
        match media.as_str() {
            "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"
            | "application/com.github.proto-openapi.spec.v2.v1.0+protobuf" => return true,
            "application/json" | "application/*" | "*/*" => return false,
            _ => {}
        }
    }
    false
}

/// True when the Accept header asks for OpenMetrics text (Prometheus asks for
/// it first); otherwise `/metrics` is the Prometheus text format 0.0.4.
pub fn wants_openmetrics(headers: &http::HeaderMap) -> bool {
    let Some(accept) = headers.get(http::header::ACCEPT).and_then(|v| v.to_str().ok()) else { return false };
    accept
        .split(',')
        .any(|r| r.split(';').next().unwrap_or("").trim().eq_ignore_ascii_case("application/openmetrics-text"))
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
pub fn discovery_output(headers: &http::HeaderMap) -> Result<DiscoveryOutput, ApiError> {
    for params in accepted(headers).into_iter().flatten() {
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
        accept_header(headers)
    )))
}
