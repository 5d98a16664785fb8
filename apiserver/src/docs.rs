//! The discovery documents kubectl and client-go read first: `/api`, `/apis`,
//! `/apis/<g>`, `/apis/<g>/<v>` in the legacy form, `/api` and `/apis` also as
//! aggregated discovery (apidiscovery.k8s.io v2 and v2beta1), the root path
//! list, `/version`, and OpenAPI v3.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{json, Value};

use crate::meta::is_dns_label;
use crate::resources::ResourceType;

/// Versions that discovery may list (DNS labels; `stable/v1` is path-only).
fn listed_versions(t: &ResourceType) -> impl Iterator<Item = &String> {
    t.versions.iter().filter(|v| is_dns_label(v))
}

/// `/version`.
pub fn version() -> Value {
    json!({
        "major": "1", "minor": "32",
        "gitVersion": concat!("v1.32.0-tpr-apiserver.", env!("CARGO_PKG_VERSION")),
        "gitCommit": "", "gitTreeState": "clean", "buildDate": "",
        "goVersion": "rust", "compiler": "rustc", "platform": "linux/amd64",
    })
}

/// `/`: every path served, as in the seed document (versions by path, `stable/v1` included).
pub fn root_paths(types: &[Arc<ResourceType>]) -> Value {
    let mut paths: Vec<String> =
        ["/api", "/apis", "/healthz", "/livez", "/readyz", "/version"].iter().map(|s| s.to_string()).collect();
    for t in types {
        paths.push(format!("/apis/{}", t.group));
        for v in &t.versions {
            paths.push(format!("/apis/{}/{v}", t.group));
        }
    }
    paths.sort();
    paths.dedup();
    json!({ "paths": paths })
}

/// `/api`: the core group's `v1`, with no resources here. Listing it keeps
/// clients that require a core version (kube-rs's `Discovery`) working when the
/// server runs alone; behind kube-aggregator, kube-apiserver answers `/api`.
pub fn core_versions() -> Value {
    json!({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []})
}

/// `/api/v1`: no core resources here.
pub fn core_resources() -> Value {
    json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "v1", "resources": []})
}

fn group_doc(group: &str, versions: &[String]) -> Value {
    let vs: Vec<Value> =
        versions.iter().map(|v| json!({"groupVersion": format!("{group}/{v}"), "version": v})).collect();
    let mut doc = json!({"name": group, "versions": vs});
    if let Some(preferred) = vs.first() {
        doc["preferredVersion"] = preferred.clone();
    }
    doc
}

fn groups(types: &[Arc<ResourceType>]) -> BTreeMap<String, Vec<String>> {
    let mut groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for t in types {
        let entry = groups.entry(t.group.clone()).or_default();
        for v in listed_versions(t) {
            if !entry.contains(v) {
                entry.push(v.clone());
            }
        }
    }
    groups.retain(|_, v| !v.is_empty());
    groups
}

/// `/apis`.
pub fn group_list(types: &[Arc<ResourceType>]) -> Value {
    let list: Vec<Value> = groups(types).iter().map(|(g, vs)| group_doc(g, vs)).collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": list})
}

/// `/apis/<group>`: also for a group whose versions are all path-only
/// (`stable/v1`), which then lists no version.
pub fn group(types: &[Arc<ResourceType>], group: &str) -> Option<Value> {
    if !types.iter().any(|t| t.group == group) {
        return None;
    }
    let vs = groups(types).remove(group).unwrap_or_default();
    let mut doc = group_doc(group, &vs);
    doc["kind"] = json!("APIGroup");
    doc["apiVersion"] = json!("v1");
    Some(doc)
}

/// The verbs of a type (ThirdPartyResources have no deletecollection).
fn verbs(t: &ResourceType) -> Value {
    if t.plural == "thirdpartyresources" {
        json!(["create", "delete", "get", "list", "patch", "update", "watch"])
    } else {
        json!(["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"])
    }
}

/// Short names (`tpr`).
fn short_names(t: &ResourceType) -> Option<Value> {
    (t.plural == "thirdpartyresources").then(|| json!(["tpr"]))
}

/// `/apis/<group>/<version>`.
pub fn resource_list(types: &[Arc<ResourceType>], group: &str, version: &str) -> Value {
    let resources: Vec<Value> = types
        .iter()
        .map(|t| {
            let mut r = json!({
                "name": t.plural, "singularName": t.singular, "namespaced": t.namespaced, "kind": t.kind,
                "verbs": verbs(t),
            });
            if let Some(short) = short_names(t) {
                r["shortNames"] = short;
            }
            r
        })
        .collect();
    json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": format!("{group}/{version}"), "resources": resources})
}

/// Aggregated discovery (`APIGroupDiscoveryList`, apidiscovery.k8s.io `v2` or
/// `v2beta1`): for `/apis` every group with its versions and their resources;
/// for `/api` (`core`) the empty core group list.
pub fn aggregated(types: &[Arc<ResourceType>], core: bool, version: &str) -> Value {
    let items: Vec<Value> = if core {
        vec![json!({"metadata": {"name": "", "creationTimestamp": null},
                    "versions": [{"version": "v1", "resources": [], "freshness": "Current"}]})]
    } else {
        groups(types)
            .iter()
            .map(|(group, versions)| {
                let versions: Vec<Value> = versions
                    .iter()
                    .map(|v| {
                        let resources: Vec<Value> = types
                            .iter()
                            .filter(|t| &t.group == group && t.versions.contains(v))
                            .map(|t| {
                                let mut r = json!({
                                    "resource": t.plural,
                                    "responseKind": {"group": group, "version": v, "kind": t.kind},
                                    "scope": if t.namespaced { "Namespaced" } else { "Cluster" },
                                    "singularResource": t.singular,
                                    "verbs": verbs(t),
                                });
                                if let Some(short) = short_names(t) {
                                    r["shortNames"] = short;
                                }
                                r
                            })
                            .collect();
                        json!({"version": v, "resources": resources, "freshness": "Current"})
                    })
                    .collect();
                json!({"metadata": {"name": group, "creationTimestamp": null}, "versions": versions})
            })
            .collect()
    };
    json!({
        "kind": "APIGroupDiscoveryList",
        "apiVersion": format!("apidiscovery.k8s.io/{version}"),
        "metadata": {},
        "items": items,
    })
}

/// A stable short hash of a document, for OpenAPI's `?hash=` cache keys.
fn hash_of(doc: &Value) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    doc.to_string().hash(&mut h);
    format!("{:016X}", h.finish())
}

/// `/openapi/v3`: one entry per listed group-version.
pub fn openapi_index(types: &[Arc<ResourceType>]) -> Value {
    let mut paths = serde_json::Map::new();
    for (group, versions) in groups(types) {
        for v in versions {
            let doc = openapi_group_version(types, &group, &v);
            let url = format!("/openapi/v3/apis/{group}/{v}?hash={}", hash_of(&doc));
            paths.insert(format!("apis/{group}/{v}"), json!({ "serverRelativeURL": url }));
        }
    }
    json!({ "paths": paths })
}

/// `/openapi/v2` (Swagger 2.0, JSON): every listed group-version's paths and
/// definitions, derived from the OpenAPI v3 documents. kubectl asks for it
/// only as protobuf (client-side apply and diff of a type without strategic
/// merge information), gets 406, and falls back to a JSON merge patch, which
/// is what these types need; JSON v2 is for other clients.
pub fn openapi_v2(types: &[Arc<ResourceType>]) -> Value {
    let mut paths = serde_json::Map::new();
    let mut definitions = serde_json::Map::new();
    for (group, versions) in groups(types) {
        for v in versions {
            let doc = openapi_group_version(types, &group, &v);
            // References move from components/schemas to definitions.
            let text = doc.to_string().replace("#/components/schemas/", "#/definitions/");
            let Ok(doc) = serde_json::from_str::<Value>(&text) else { continue };
            if let Some(schemas) = doc.pointer("/components/schemas").and_then(Value::as_object) {
                definitions.extend(schemas.clone());
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

/// The schema name of a kind, as kube-apiserver names custom resources
/// (reversed group, version, kind): `io.prsn.v1.MysqlDb`.
fn schema_name(group: &str, version: &str, kind: &str) -> String {
    let reversed: Vec<&str> = group.split('.').rev().collect();
    format!("{}.{version}.{kind}", reversed.join("."))
}

/// `/openapi/v3/apis/<group>/<version>`: schemaless objects (any fields kept),
/// with the group-version-kind extensions and the `fieldValidation` parameter
/// that make kubectl validate on the server.
pub fn openapi_group_version(types: &[Arc<ResourceType>], group: &str, version: &str) -> Value {
    let mut paths = serde_json::Map::new();
    let mut schemas = serde_json::Map::new();
    for t in types.iter().filter(|t| t.group == group && t.versions.iter().any(|v| v == version)) {
        let gvk = json!({"group": group, "version": version, "kind": t.kind});
        let name = schema_name(group, version, &t.kind);
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
        let base = if t.namespaced {
            format!("/apis/{group}/{version}/namespaces/{{namespace}}/{}", t.plural)
        } else {
            format!("/apis/{group}/{version}/{}", t.plural)
        };
        paths.insert(base.clone(), json!({"get": op("list", &list_name), "post": post}));
        paths.insert(
            format!("{base}/{{name}}"),
            json!({"get": op("get", &name), "put": put, "patch": patch, "delete": op("delete", &name)}),
        );
        let description = if t.plural == "thirdpartyresources" {
            "A ThirdPartyResource names a new resource type: metadata.name <kind>.<group>, description, versions."
        } else {
            "A schemaless object of a ThirdPartyResource type: any fields besides apiVersion, kind and metadata are kept as posted."
        };
        schemas.insert(
            name.clone(),
            json!({
                "type": "object",
                "description": description,
                "properties": {
                    "apiVersion": {"type": "string", "description": "APIVersion of this object."},
                    "kind": {"type": "string", "description": "Kind of this object."},
                    "metadata": {"type": "object", "description": "Standard object metadata."},
                },
                "x-kubernetes-preserve-unknown-fields": true,
                "x-kubernetes-group-version-kind": [gvk],
            }),
        );
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
