//! What is no resource: health, `/version`, `/metrics`, `kubectl auth
//! whoami`, the path list, discovery and OpenAPI (the documents themselves
//! are built by the `discovery` crate from the served types).

use http::{Method, StatusCode};
use serde_json::{json, Value};

use super::negotiate;
use super::respond::{self, Body};
use crate::app::App;
use crate::endpoints::routing::Document;
use crate::identity::User;
use crate::served::{described, ResourceType};
use crate::status::ApiError;
use crate::tpr;
use discovery::{documents, openapi};

type Response = http::Response<Body>;

/// How long `/readyz` waits for the store.
const READYZ_STORAGE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// Health and `/version` (kube's `system:public-info-viewer`).
pub async fn public(app: &App, path: &str) -> Response {
    match path {
        "/readyz" => {
            // Bounded like kube's etcd readiness check: a hung store fails the probe.
            let store = match tokio::time::timeout(READYZ_STORAGE_TIMEOUT, app.store.current_revision()).await {
                Ok(r) => r.map_err(|e| e.to_string()),
                Err(_) => Err(format!("no answer within {READYZ_STORAGE_TIMEOUT:?}")),
            };
            let loaded = app.controller.is_synced();
            let draining = *app.draining.borrow();
            match (store, loaded, draining) {
                (Ok(_), true, false) => respond::text(StatusCode::OK, "ok"),
                (store, loaded, draining) => {
                    let mut report = String::new();
                    match store {
                        Ok(_) => report.push_str("[+]storage ok\n"),
                        Err(e) => report.push_str(&format!("[-]storage failed: {e}\n")),
                    }
                    report.push_str(if loaded {
                        "[+]thirdpartyresources loaded\n"
                    } else {
                        "[-]thirdpartyresources not loaded yet\n"
                    });
                    if draining {
                        report.push_str("[-]shutting down\n");
                    }
                    report.push_str("readyz check failed\n");
                    respond::text(StatusCode::INTERNAL_SERVER_ERROR, report)
                }
            }
        }
        "/version" | "/version/" => respond::json(StatusCode::OK, &documents::version()),
        _ => respond::text(StatusCode::OK, "ok"),
    }
}

/// `kubectl auth whoami`: who the server takes the caller for.
pub fn whoami(user: Option<&User>) -> Response {
    let Some(user) = user else { return respond::error(&ApiError::unauthorized()) };
    let mut groups = user.groups.clone();
    if !groups.iter().any(|g| g == "system:authenticated") {
        groups.push("system:authenticated".into());
    }
    let review = json!({
        "kind": "SelfSubjectReview",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"creationTimestamp": null},
        "status": {"userInfo": {"username": user.name, "groups": groups, "extra": user.extra}},
    });
    respond::json(StatusCode::CREATED, &review)
}

/// Documents that are no resource are served to GET (and HEAD) only.
fn only_get(parts: &http::request::Parts) -> Result<(), ApiError> {
    match parts.method {
        Method::GET | Method::HEAD => Ok(()),
        ref m => Err(ApiError::method_not_allowed(m, parts.uri.path())),
    }
}

/// `/metrics`.
pub fn metrics(app: &App, parts: &http::request::Parts) -> Response {
    match only_get(parts) {
        Ok(()) => {
            let (body, content_type) = if negotiate::wants_openmetrics(&parts.headers) {
                (app.metrics.encode(), "application/openmetrics-text; version=1.0.0; charset=utf-8")
            } else {
                (crate::observe::prometheus_text(&app.metrics.encode()), "text/plain; version=0.0.4; charset=utf-8")
            };
            let mut resp = respond::text(StatusCode::OK, body);
            if let Ok(v) = http::HeaderValue::from_str(content_type) {
                resp.headers_mut().insert(http::header::CONTENT_TYPE, v);
            }
            resp
        }
        Err(e) => respond::error(&e),
    }
}

/// `/`, `/api`, `/apis`, `/apis/<g>`, OpenAPI.
pub fn document(app: &App, parts: &http::request::Parts, d: &Document) -> Result<Response, ApiError> {
    only_get(parts)?;
    let all = app.served.all();
    let reviews = app.served.reviews();
    let mut types = described(&all);
    types.extend(reviews.iter());
    let path = parts.uri.path();
    Ok(match d {
        Document::Root => respond::json(StatusCode::OK, &documents::root_paths(&types)),
        Document::Api | Document::Apis => {
            let core = *d == Document::Api;
            match negotiate::discovery_output(&parts.headers)? {
                negotiate::DiscoveryOutput::Legacy if core => {
                    respond::json_with_etag(&parts.headers, &documents::core_versions(), "application/json")
                }
                negotiate::DiscoveryOutput::Legacy => {
                    respond::json_with_etag(&parts.headers, &documents::group_list(&types), "application/json")
                }
                negotiate::DiscoveryOutput::Aggregated(v) => respond::json_with_etag(
                    &parts.headers,
                    &discovery::aggregated::aggregated(&types, core, v),
                    &format!("application/json;g=apidiscovery.k8s.io;v={v};as=APIGroupDiscoveryList"),
                ),
            }
        }
        Document::CoreV1 => respond::json(StatusCode::OK, &documents::core_resources(&types)),
        Document::NoCustomResourceDefinitions => respond::json(
            StatusCode::OK,
            &json!({"kind": "CustomResourceDefinitionList", "apiVersion": "apiextensions.k8s.io/v1",
                    "metadata": {"resourceVersion": "0"}, "items": []}),
        ),
        Document::Reviews => {
            let reviews: Vec<&discovery::Resource> = reviews.iter().collect();
            respond::json(
                StatusCode::OK,
                &documents::resource_list(&reviews, discovery::builtin::AUTHORIZATION_GROUP, "v1"),
            )
        }
        Document::Group(group) => {
            let doc = documents::group(&types, group).ok_or_else(|| ApiError::no_route(path))?;
            respond::json(StatusCode::OK, &doc)
        }
        Document::OpenApiV2 => {
            let doc = openapi::openapi_v2(&types);
            if negotiate::wants_openapi_protobuf(&parts.headers) {
                let media = discovery::openapi_pb::MEDIA_TYPE;
                respond::bytes_with_etag(&parts.headers, discovery::openapi_pb::encode(&doc), media)
            } else {
                respond::json_with_etag(&parts.headers, &doc, "application/json")
            }
        }
        Document::OpenApiV3 => respond::json(StatusCode::OK, &openapi::openapi_index(&types)),
        Document::OpenApiV3GroupVersion(group, version) => {
            let doc: Value = openapi::openapi_group_version(&types, group, version);
            if doc["paths"].as_object().is_none_or(|p| p.is_empty()) {
                return Err(ApiError::no_route(path));
            }
            respond::json(StatusCode::OK, &doc)
        }
        Document::OpenApiOther => return Err(ApiError::no_route(path)),
    })
}

/// `/apis/<group>/<version>`: the resources of a served group-version.
pub fn group_version(
    parts: &http::request::Parts,
    group: &str,
    version: &str,
    types: &[std::sync::Arc<ResourceType>],
) -> Result<Response, ApiError> {
    only_get(parts)?;
    let mut resp = respond::json(StatusCode::OK, &documents::resource_list(&described(types), group, version));
    if let Some(w) = tpr::version_warning(version) {
        respond::warn(&mut resp, &w);
    }
    Ok(resp)
}
