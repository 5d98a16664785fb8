//! `selfsubjectaccessreviews` (`kubectl auth can-i`) and
//! `selfsubjectrulesreviews` (`kubectl auth can-i --list`): created, answered
//! by the configured authorizer about the caller, never stored (201).

use discovery::Builtin;
use http::StatusCode;
use hyper::body::Incoming;
use serde_json::{json, Value};

use crate::app::App;
use crate::endpoints::request;
use crate::endpoints::respond::{self, Body};
use crate::identity::{Attributes, User};
use crate::status::{ApiError, Cause, Target};

/// Answers a review posted by `user`.
pub async fn serve(
    app: &App,
    parts: &http::request::Parts,
    body: &mut Option<Incoming>,
    review: Builtin,
    user: Option<&User>,
) -> Result<http::Response<Body>, ApiError> {
    let user = user.ok_or_else(ApiError::unauthorized)?;
    let mut obj = match request::content_type(parts).as_str() {
        super::protobuf::PROTOBUF => super::protobuf::decode(&request::read_bytes(parts, request::take(body)?).await?)?,
        _ => request::read_json(parts, request::take(body)?).await?,
    };
    let kind = review.resource().kind;
    let api_version = "authorization.k8s.io/v1";
    match (obj.get("apiVersion").and_then(Value::as_str), obj.get("kind").and_then(Value::as_str)) {
        (None | Some("authorization.k8s.io/v1"), None) => {}
        (None | Some("authorization.k8s.io/v1"), Some(k)) if k == kind => {}
        _ => return Err(ApiError::bad_request(format!("the body must be an {api_version} {kind}"))),
    }
    let spec = obj.get("spec").cloned().unwrap_or(Value::Null);
    let status = match review {
        Builtin::AccessReview => access(app, user, &spec).await?,
        _ => {
            let namespace = spec.get("namespace").and_then(Value::as_str).unwrap_or("");
            app.authz.rules_for(user, namespace)
        }
    };
    if let Some(map) = obj.as_object_mut() {
        map.insert("apiVersion".into(), json!(api_version));
        map.insert("kind".into(), json!(kind));
        map.entry("metadata").or_insert_with(|| json!({"creationTimestamp": null}));
        map.insert("status".into(), status);
    }
    Ok(respond::json(StatusCode::CREATED, &obj))
}

/// The status of a SelfSubjectAccessReview: `allowed`, and why not.
async fn access(app: &App, user: &User, spec: &Value) -> Result<Value, ApiError> {
    let text = |v: &Value, f: &str| v.get(f).and_then(Value::as_str).unwrap_or("").to_string();
    let decision = match (spec.get("resourceAttributes"), spec.get("nonResourceAttributes")) {
        (Some(r), None) if r.is_object() => {
            let (verb, group, version, resource) =
                (text(r, "verb"), text(r, "group"), text(r, "version"), text(r, "resource"));
            let (namespace, name) = (text(r, "namespace"), text(r, "name"));
            let a = Attributes {
                verb: &verb,
                group: &group,
                version: &version,
                resource: &resource,
                namespace: (!namespace.is_empty()).then_some(namespace.as_str()),
                name: (!name.is_empty()).then_some(name.as_str()),
            };
            app.authz.authorize(user, &a).await
        }
        (None, Some(p)) if p.is_object() => app.authz.authorize_path(user, &text(p, "verb"), &text(p, "path")).await,
        _ => {
            let t = Target {
                group: "authorization.k8s.io".into(),
                resource: "selfsubjectaccessreviews".into(),
                name: String::new(),
            };
            return Err(ApiError::invalid(
                &t,
                "SelfSubjectAccessReview",
                vec![Cause {
                    reason: "FieldValueInvalid",
                    message:
                        "Invalid value: exactly one of nonResourceAttributes or resourceAttributes must be specified"
                            .into(),
                    field: "spec.resourceAttributes".into(),
                }],
            ));
        }
    };
    Ok(match decision {
        Ok(()) => json!({"allowed": true}),
        Err(e) if e.code == 403 => json!({"allowed": false, "reason": e.message}),
        Err(e) => json!({"allowed": false, "evaluationError": e.message}),
    })
}
