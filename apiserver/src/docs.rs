//! The discovery documents kubectl and client-go read first, in their
//! legacy JSON form: `/api`, `/apis`, `/apis/<g>`, `/apis/<g>/<v>`, the root
//! path list and `/version`. (Aggregated discovery and OpenAPI: issue 4.)

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

/// `/api`: no core group here.
pub fn core_versions() -> Value {
    json!({"kind": "APIVersions", "versions": [], "serverAddressByClientCIDRs": []})
}

fn group_doc(group: &str, versions: &[String]) -> Value {
    let vs: Vec<Value> =
        versions.iter().map(|v| json!({"groupVersion": format!("{group}/{v}"), "version": v})).collect();
    json!({"name": group, "versions": vs, "preferredVersion": vs.first().cloned().unwrap_or(Value::Null)})
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

/// `/apis/<group>`.
pub fn group(types: &[Arc<ResourceType>], group: &str) -> Option<Value> {
    let groups = groups(types);
    let vs = groups.get(group)?;
    let mut doc = group_doc(group, vs);
    doc["kind"] = json!("APIGroup");
    doc["apiVersion"] = json!("v1");
    Some(doc)
}

/// `/apis/<group>/<version>`.
pub fn resource_list(types: &[Arc<ResourceType>], group: &str, version: &str) -> Value {
    let resources: Vec<Value> = types
        .iter()
        .map(|t| {
            let mut r = json!({
                "name": t.plural, "singularName": t.singular, "namespaced": t.namespaced, "kind": t.kind,
                "verbs": ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"],
            });
            if t.plural == "thirdpartyresources" {
                r["shortNames"] = json!(["tpr"]);
                r["verbs"] = json!(["create", "delete", "get", "list", "patch", "update", "watch"]);
            }
            r
        })
        .collect();
    json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": format!("{group}/{version}"), "resources": resources})
}
