//! The way out to CustomResourceDefinitions (pure): the `apiextensions.k8s.io/v1`
//! CRD equivalent to a ThirdPartyResource, and its objects as they are
//! applied into a cluster where that CRD exists. `tpr-apiserver export`
//! (`crate::config::export`) reads them through the API and writes YAML.

use serde_json::{json, Map, Value};

use super::candidate;
use crate::registry::meta_str;

/// The annotation that keeps a TPR's description on its CRD.
pub const DESCRIPTION_ANNOTATION: &str = "tpr-apiserver.io/description";
/// The annotation that names the TPR a CRD was exported from.
pub const SOURCE_ANNOTATION: &str = "tpr-apiserver.io/thirdpartyresource";

/// The CRD of a stored ThirdPartyResource and its storage version; None
/// for a TPR that is not valid, or with no version that a CRD can serve
/// (CRD versions are DNS labels: `stable/v1` is path-only, left out).
pub fn crd(tpr: &Value) -> Option<(Value, String)> {
    let c = candidate(tpr)?;
    let versions: Vec<&String> = c.versions.iter().filter(|v| discovery::naming::is_dns_label(v)).collect();
    let storage = (*versions.first()?).clone();
    let versions: Vec<Value> = versions
        .iter()
        .map(|v| {
            json!({
                "name": v, "served": true, "storage": **v == storage,
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}},
            })
        })
        .collect();
    let mut annotations = Map::new();
    annotations.insert(SOURCE_ANNOTATION.into(), json!(c.name));
    if !c.description.is_empty() {
        annotations.insert(DESCRIPTION_ANNOTATION.into(), json!(c.description));
    }
    let mut metadata = json!({"name": format!("{}.{}", c.names.plural, c.names.group), "annotations": annotations});
    if let Some(labels) = tpr.pointer("/metadata/labels").filter(|l| l.as_object().is_some_and(|m| !m.is_empty())) {
        metadata["labels"] = labels.clone();
    }
    let crd = json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": metadata,
        "spec": {
            "group": c.names.group,
            "names": {"kind": c.names.kind, "plural": c.names.plural, "singular": c.names.singular, "listKind": format!("{}List", c.names.kind)},
            "scope": "Namespaced",
            "versions": versions,
        },
    });
    Some((crd, storage))
}

/// Metadata the server owns: a new cluster sets its own.
const SERVER_OWNED: &[&str] = &[
    "uid",
    "resourceVersion",
    "creationTimestamp",
    "generation",
    "managedFields",
    "selfLink",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "ownerReferences",
];

/// An object as it is applied into the cluster of its CRD: server-owned
/// metadata stripped (owner references too: their uids name objects of this
/// server), apiVersion rewritten to `group/storage`.
pub fn object(obj: &Value, group: &str, storage: &str) -> Value {
    let mut out = obj.clone();
    if let Some(Value::Object(meta)) = out.get_mut("metadata") {
        for field in SERVER_OWNED {
            meta.remove(*field);
        }
    }
    if let Value::Object(m) = &mut out {
        m.insert("apiVersion".into(), json!(format!("{group}/{storage}")));
    }
    out
}

/// The name of a TPR (for `export NAME...`).
pub fn name(tpr: &Value) -> &str {
    meta_str(tpr, "name").unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tpr_becomes_a_crd() {
        let tpr = json!({"metadata": {"name": "mysql-db.prsn.io", "uid": "u", "labels": {"object": "mysql"}},
                         "description": "A db", "versions": [{"name": "stable/v1"}, {"name": "v1"}, {"name": "v2"}]});
        let (c, storage) = crd(&tpr).unwrap();
        assert_eq!(storage, "v1");
        assert_eq!(c["metadata"]["name"], "mysqldbs.prsn.io");
        assert_eq!(c["metadata"]["annotations"][DESCRIPTION_ANNOTATION], "A db");
        assert_eq!(
            c["spec"]["names"],
            json!({"kind": "MysqlDb", "plural": "mysqldbs", "singular": "mysqldb", "listKind": "MysqlDbList"})
        );
        let versions: Vec<(&str, bool)> = c["spec"]["versions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| (v["name"].as_str().unwrap(), v["storage"].as_bool().unwrap()))
            .collect();
        assert_eq!(versions, [("v1", true), ("v2", false)]);
        assert!(crd(&json!({"metadata": {"name": "x.prsn.io"}, "versions": [{"name": "stable/v1"}]})).is_none());
        let o = object(
            &json!({"apiVersion": "prsn.io/stable/v1", "kind": "MysqlDb", "metadata": {"name": "a", "namespace": "n", "uid": "u", "resourceVersion": "5", "labels": {"x": "y"}}, "size": 1}),
            "prsn.io",
            "v1",
        );
        assert_eq!(
            o,
            json!({"apiVersion": "prsn.io/v1", "kind": "MysqlDb", "metadata": {"name": "a", "namespace": "n", "labels": {"x": "y"}}, "size": 1})
        );
    }
}
