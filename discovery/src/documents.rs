//! The legacy discovery documents kubectl and client-go read first (`/api`,
//! `/apis`, `/apis/<g>`, `/apis/<g>/<v>`), the root path list and `/version`.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::Resource;

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
pub fn root_paths(types: &[&Resource]) -> Value {
    let mut paths: Vec<String> =
        ["/api", "/apis", "/healthz", "/livez", "/readyz", "/version"].iter().map(|s| s.to_string()).collect();
    for t in types {
        if !t.group.is_empty() {
            paths.push(format!("/apis/{}", t.group));
        }
        for v in &t.versions {
            paths.push(t.group_version_path(v));
        }
    }
    paths.sort();
    paths.dedup();
    json!({ "paths": paths })
}

/// `/api`: the core group's `v1` (listed even with no core type served, which
/// keeps clients that require a core version, such as kube-rs's `Discovery`,
/// working; behind kube-aggregator, kube-apiserver answers `/api`).
pub fn core_versions() -> Value {
    json!({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []})
}

/// `/api/v1`: the core types served (none behind kube-aggregator).
pub fn core_resources(types: &[&Resource]) -> Value {
    let core: Vec<&Resource> = types.iter().copied().filter(|t| t.group.is_empty()).collect();
    resource_list(&core, "", "v1")
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

pub(crate) fn groups(types: &[&Resource]) -> BTreeMap<String, Vec<String>> {
    let mut groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
    // The core group is `/api`, never listed in `/apis`.
    for t in types.iter().filter(|t| !t.group.is_empty()) {
        let entry = groups.entry(t.group.clone()).or_default();
        for v in t.listed_versions() {
            if !entry.contains(v) {
                entry.push(v.clone());
            }
        }
    }
    groups.retain(|_, v| !v.is_empty());
    groups
}

/// `/apis`.
pub fn group_list(types: &[&Resource]) -> Value {
    let list: Vec<Value> = groups(types).iter().map(|(g, vs)| group_doc(g, vs)).collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": list})
}

/// `/apis/<group>`: also for a group whose versions are all path-only
/// (`stable/v1`), which then lists no version.
pub fn group(types: &[&Resource], group: &str) -> Option<Value> {
    if !types.iter().any(|t| t.group == group) {
        return None;
    }
    let vs = groups(types).remove(group).unwrap_or_default();
    let mut doc = group_doc(group, &vs);
    doc["kind"] = json!("APIGroup");
    doc["apiVersion"] = json!("v1");
    Some(doc)
}

/// `/apis/<group>/<version>` (and `/api/v1` for the core group, `""`).
pub fn resource_list(types: &[&Resource], group: &str, version: &str) -> Value {
    let group_version = if group.is_empty() { version.to_string() } else { format!("{group}/{version}") };
    let resources: Vec<Value> = types
        .iter()
        .map(|t| {
            let mut r = json!({
                "name": t.plural, "singularName": t.singular, "namespaced": t.namespaced, "kind": t.kind,
                "verbs": t.verbs(),
            });
            if let Some(short) = t.short_names() {
                r["shortNames"] = short;
            }
            r
        })
        .collect();
    json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": resources})
}
