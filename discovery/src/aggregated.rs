//! Aggregated discovery (apidiscovery.k8s.io `v2` and `v2beta1`), the one
//! document kubectl 1.32 asks for on `/api` and `/apis`.

use serde_json::{json, Value};

use crate::Resource;

/// Aggregated discovery (`APIGroupDiscoveryList`, apidiscovery.k8s.io `v2` or
/// `v2beta1`): for `/apis` every group with its versions and their resources;
/// for `/api` (`core`) the empty core group list.
pub fn aggregated(types: &[&Resource], core: bool, version: &str) -> Value {
    let items: Vec<Value> = if core {
        vec![json!({"metadata": {"name": "", "creationTimestamp": null},
                    "versions": [{"version": "v1", "resources": [], "freshness": "Current"}]})]
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
                            .map(|t| {
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
