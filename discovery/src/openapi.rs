//! OpenAPI: `/openapi/v3` (an index of group-versions), one v3 document per
//! group-version (schemaless objects with the group-version-kind extensions
//! kubectl needs), and `/openapi/v2` (Swagger 2.0) derived from them.

use serde_json::{json, Value};

use crate::Resource;

/// A stable short hash of a document, for OpenAPI's `?hash=` cache keys.
fn hash_of(doc: &Value) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    doc.to_string().hash(&mut h);
    format!("{:016X}", h.finish())
}

/// `/openapi/v3`: one entry per listed group-version.
pub fn openapi_index(types: &[&Resource]) -> Value {
    let mut paths = serde_json::Map::new();
    for (group, versions) in group_versions(types) {
        for v in versions {
            let doc = openapi_group_version(types, &group, &v);
            let path = if group.is_empty() { format!("api/{v}") } else { format!("apis/{group}/{v}") };
            let url = format!("/openapi/v3/{path}?hash={}", hash_of(&doc));
            paths.insert(path, json!({ "serverRelativeURL": url }));
        }
    }
    json!({ "paths": paths })
}

/// Every listed group-version, the core group's `v1` (`""`) first when a core type is served.
fn group_versions(types: &[&Resource]) -> Vec<(String, Vec<String>)> {
    let mut all: Vec<(String, Vec<String>)> = Vec::new();
    if types.iter().any(|t| t.group.is_empty()) {
        all.push((String::new(), vec!["v1".into()]));
    }
    all.extend(crate::documents::groups(types));
    all
}

/// `/openapi/v2` (Swagger 2.0, JSON): every listed group-version's paths and
/// definitions, derived from the OpenAPI v3 documents. kubectl asks for it
/// only as protobuf (client-side apply and diff of a type without strategic
/// merge information), gets 406, and falls back to a JSON merge patch, which
/// is what these types need; JSON v2 is for other clients.
pub fn openapi_v2(types: &[&Resource]) -> Value {
    let mut paths = serde_json::Map::new();
    let mut definitions = serde_json::Map::new();
    for (group, versions) in group_versions(types) {
        for v in versions {
            let doc = openapi_group_version(types, &group, &v);
            // References move from components/schemas to definitions.
            let text = doc.to_string().replace("#/components/schemas/", "#/definitions/");
            let Ok(doc) = serde_json::from_str::<Value>(&text) else { continue };
            if let Some(schemas) = doc.pointer("/components/schemas").and_then(Value::as_object) {
                for (name, schema) in schemas {
                    definitions.insert(name.clone(), v2_schema(schema));
                }
            }
            for (path, ops) in doc["paths"].as_object().into_iter().flatten() {
                let ops: serde_json::Map<String, Value> = (ops.as_object().into_iter().flatten())
                    .map(|(method, op)| (method.clone(), swagger_operation(op)))
                    .collect();
                paths.insert(path.clone(), Value::Object(ops));
            }
        }
    }
    json!({
        "swagger": "2.0",
        "info": {"title": "tpr-apiserver", "version": env!("CARGO_PKG_VERSION")},
        "consumes": ["application/json"],
        "produces": ["application/json"],
        "paths": paths,
        "definitions": definitions,
    })
}

/// A schema as Swagger 2.0 publishes it: one that keeps unknown fields lists
/// no properties (as kube-apiserver prunes custom resources' v2 schemas), so
/// that kubectl's client-side validation, which knows no
/// `x-kubernetes-preserve-unknown-fields`, accepts any field.
fn v2_schema(schema: &Value) -> Value {
    let mut out = schema.clone();
    if out.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true)) {
        if let Value::Object(m) = &mut out {
            m.remove("properties");
            m.remove("required");
        }
    }
    out
}

/// One OpenAPI v3 operation as Swagger 2.0: schemas move out of `content`,
/// the request body becomes a `body` parameter, query parameters lose `schema`.
fn swagger_operation(op: &Value) -> Value {
    let mut out = op.clone();
    let Value::Object(m) = &mut out else { return out };
    let mut parameters: Vec<Value> = (m.remove("parameters").and_then(|p| p.as_array().cloned()).into_iter().flatten())
        .map(|p| json!({"name": p["name"], "in": p["in"], "type": "string", "uniqueItems": true}))
        .collect();
    if let Some(body) = m.remove("requestBody") {
        let schema = (body["content"].as_object().into_iter().flatten()).next().map(|(_, c)| c["schema"].clone());
        parameters.push(json!({"name": "body", "in": "body", "required": true, "schema": schema.unwrap_or(json!({}))}));
    }
    if !parameters.is_empty() {
        m.insert("parameters".into(), Value::Array(parameters));
    }
    if let Some(Value::Object(responses)) = m.get_mut("responses") {
        for r in responses.values_mut() {
            if let Some(schema) = r.pointer("/content/application~1json/schema").cloned() {
                *r = json!({"description": r["description"], "schema": schema});
            }
        }
    }
    out
}

/// The schema name of ObjectMeta, as kube-apiserver names it.
pub const OBJECT_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";

/// ObjectMeta's fields, for `kubectl explain <type>.metadata` (and client-side validation).
fn object_meta() -> Value {
    let s = |d: &str| json!({"type": "string", "description": d});
    let strings = |d: &str| json!({"type": "object", "additionalProperties": {"type": "string"}, "description": d});
    json!({
        "type": "object",
        "description": "Standard object metadata: what every persisted object has.",
        "properties": {
            "name": s("The object's name, unique within its namespace (or the cluster for cluster-scoped types)."),
            "generateName": s("A prefix the server completes to a unique name when name is empty."),
            "namespace": s("The namespace the object lives in (empty for cluster-scoped types)."),
            "uid": s("Unique across time and space; set by the server."),
            "resourceVersion": s("The version of the object, for optimistic concurrency and watches; set by the server."),
            "generation": {"type": "integer", "format": "int64", "description": "A sequence number of changes to the object outside metadata and status; set by the server."},
            "creationTimestamp": {"type": "string", "format": "date-time", "description": "When the object was created; set by the server."},
            "deletionTimestamp": {"type": "string", "format": "date-time", "description": "When deletion was asked for while finalizers remain; set by the server."},
            "deletionGracePeriodSeconds": {"type": "integer", "format": "int64", "description": "Seconds allowed for graceful deletion; set by the server."},
            "labels": strings("Keys and values that select objects (label selectors)."),
            "annotations": strings("Keys and values for tools and people; not for selection."),
            "ownerReferences": {"type": "array", "description": "Objects this object depends on.", "items": {"type": "object", "properties": {
                "apiVersion": s("The owner's API version."), "kind": s("The owner's kind."), "name": s("The owner's name."), "uid": s("The owner's uid."),
                "controller": {"type": "boolean", "description": "The owner is this object's managing controller."},
                "blockOwnerDeletion": {"type": "boolean", "description": "The owner's deletion waits for this object (foreground deletion)."}},
                "required": ["apiVersion", "kind", "name", "uid"]}},
            "finalizers": {"type": "array", "items": {"type": "string"}, "description": "What must happen before the object is deleted; it stays (with a deletionTimestamp) until the list is empty."},
            "managedFields": {"type": "array", "items": {"type": "object"}, "description": "Which manager set which fields (server-side apply); maintained by the server."},
        },
    })
}

/// The schema name of a kind, as kube-apiserver names custom resources
/// (reversed group, version, kind): `io.prsn.v1.MysqlDb`.
fn schema_name(group: &str, version: &str, kind: &str) -> String {
    let reversed: Vec<&str> = group.split('.').rev().collect();
    format!("{}.{version}.{kind}", reversed.join("."))
}

/// `/openapi/v3/apis/<group>/<version>`: schemaless objects (any fields kept),
/// with the group-version-kind extensions and the `fieldValidation` parameter
/// that make kubectl validate on the server.
pub fn openapi_group_version(types: &[&Resource], group: &str, version: &str) -> Value {
    let mut paths = serde_json::Map::new();
    let mut schemas = serde_json::Map::new();
    let meta_ref =
        json!({"$ref": format!("#/components/schemas/{OBJECT_META}"), "description": "Standard object metadata."});
    for t in types.iter().filter(|t| t.group == group && t.versions.iter().any(|v| v == version)) {
        schemas.insert(OBJECT_META.to_string(), object_meta());
        let gvk = json!({"group": group, "version": version, "kind": t.kind});
        let name = match t.builtin {
            Some(b) => b.schema_name().to_string(),
            None => schema_name(group, version, &t.kind),
        };
        let list_name = format!("{name}List");
        let reference = |n: &str| json!({"$ref": format!("#/components/schemas/{n}")});
        let body = |n: &str| json!({"content": {"application/json": {"schema": reference(n)}}});
        let query = |n: &str| json!({"name": n, "in": "query", "schema": {"type": "string"}, "uniqueItems": true});
        let op = |action: &str, schema: &str| {
            json!({
                "operationId": format!("{action}{}", t.kind),
                "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": reference(schema)}}}},
                "x-kubernetes-action": action,
                "x-kubernetes-group-version-kind": gvk,
            })
        };
        let mut patch = op("patch", &name);
        patch["parameters"] = json!([query("dryRun"), query("fieldManager"), query("fieldValidation"), query("force")]);
        patch["requestBody"] = json!({"content": {
            "application/json-patch+json": {"schema": {"type": "object"}},
            "application/merge-patch+json": {"schema": {"type": "object"}},
            "application/apply-patch+yaml": {"schema": {"type": "object"}},
        }});
        let mut put = op("put", &name);
        put["parameters"] = json!([query("dryRun"), query("fieldManager"), query("fieldValidation")]);
        put["requestBody"] = body(&name);
        let mut post = op("post", &name);
        post["parameters"] = json!([query("dryRun"), query("fieldManager"), query("fieldValidation")]);
        post["requestBody"] = body(&name);
        let prefix = t.group_version_path(version);
        let base = if t.namespaced {
            format!("{prefix}/namespaces/{{namespace}}/{}", t.plural)
        } else {
            format!("{prefix}/{}", t.plural)
        };
        if t.builtin.is_some_and(|b| b.is_review()) {
            paths.insert(base, json!({ "post": post }));
        } else {
            paths.insert(base.clone(), json!({"get": op("list", &list_name), "post": post}));
            paths.insert(
                format!("{base}/{{name}}"),
                json!({"get": op("get", &name), "put": put, "patch": patch, "delete": op("delete", &name)}),
            );
        }
        let mut properties = json!({
            "apiVersion": {"type": "string", "description": "APIVersion of this object."},
            "kind": {"type": "string", "description": "Kind of this object."},
            "metadata": meta_ref.clone(),
        });
        // Built-in types list their fields; TPR types keep any field.
        let (description, keeps_any_field) = match t.builtin {
            Some(b) => {
                for field in b.fields() {
                    properties[*field] = json!({"x-kubernetes-preserve-unknown-fields": true});
                }
                (b.description().to_string(), false)
            }
            None if t.is_tpr() => {
                properties["description"] = json!({"type": "string", "description": "What the new resource type is for (shown by kubectl explain of the type)."});
                properties["versions"] = json!({"type": "array", "description": "The versions the type is served at: /apis/<group>/<version>/...",
                    "items": {"type": "object", "properties": {"name": {"type": "string", "description": "A version: a DNS label such as v1, or a path such as stable/v1."}}, "required": ["name"]}});
                ("A ThirdPartyResource names a new resource type: metadata.name <kind>.<group>, description, versions.".to_string(), false)
            }
            None if t.description.is_empty() => (
                "A schemaless object of a ThirdPartyResource type: any fields besides apiVersion, kind and metadata are kept as posted.".to_string(),
                true,
            ),
            None => (format!("{} (fields besides apiVersion, kind and metadata are kept as posted)", t.description), true),
        };
        let mut schema = json!({
            "type": "object",
            "description": description,
            "properties": properties,
            "x-kubernetes-group-version-kind": [gvk],
        });
        if keeps_any_field {
            schema["x-kubernetes-preserve-unknown-fields"] = json!(true);
        }
        schemas.insert(name.clone(), schema);
        schemas.insert(
            list_name,
            json!({
                "type": "object",
                "properties": {"items": {"type": "array", "items": reference(&name)}, "metadata": {"type": "object"}},
                "x-kubernetes-group-version-kind": [{"group": group, "version": version, "kind": format!("{}List", t.kind)}],
            }),
        );
    }
    json!({
        "openapi": "3.0.0",
        "info": {"title": "tpr-apiserver", "version": version},
        "paths": paths,
        "components": {"schemas": schemas},
    })
}
