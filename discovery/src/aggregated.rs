//! Aggregated discovery (apidiscovery.k8s.io `v2` and `v2beta1`), the one
//! document kubectl 1.32 asks for on `/api` and `/apis`.

use serde_json::{json, Value};

use crate::Resource;

/// Aggregated discovery (`APIGroupDiscoveryList`, apidiscovery.k8s.io `v2` or
/// `v2beta1`): for `/apis` every group with its versions and their resources;
/// for `/api` (`core`) the core group with the core types served.
pub fn aggregated(types: &[&Resource], core: bool, version: &str) -> Value {
    let entry = |t: &Resource, group: &str, v: &str| {
        let mut r = json!({
            "resource": t.plural,
            "responseKind": {"group": group, "version": v, "kind": t.kind},
            "scope": if t.namespaced { "Namespaced" } else { "Cluster" },
            "singularResource": t.singular,
            "verbs": t.verbs(),
        });
        if let Some(short) = t.short_names() {
            r["shortNames"] = short;
        }
        r
    };
    let items: Vec<Value> = if core {
        // The core group: listed even with no core type served (see `documents::core_versions`).
        let resources: Vec<Value> = types.iter().filter(|t| t.group.is_empty()).map(|t| entry(t, "", "v1")).collect();
        vec![json!({"metadata": {"name": "", "creationTimestamp": null},
                    "versions": [{"version": "v1", "resources": resources, "freshness": "Current"}]})]
    } else {
        crate::documents::groups(types)
            .iter()
            .map(|(group, versions)| {
                let versions: Vec<Value> = versions
                    .iter()
                    .map(|v| {
                        let resources: Vec<Value> = types
                            .iter()
                            .filter(|t| &t.group == group && t.versions.contains(v))
                            .map(|t| entry(t, group, v))
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
