//! Pure functions and types for tpr-apiserver, no I/O.
//!
//! Layout of this crate:
//! - [`naming`]: a ThirdPartyResource name → group, kind, plural, singular.
//! - [`builtin`]: the kube-apiserver types served standalone (namespaces, events, leases…).
//! - [`resource`]: [`Resource`], a served type as discovery describes it.
//! - [`documents`]: legacy discovery (`/api`, `/apis`, `/apis/<g>`, `/apis/<g>/<v>`), `/`, `/version`.
//! - [`aggregated`]: aggregated discovery (apidiscovery.k8s.io v2, v2beta1).
//! - [`openapi`]: OpenAPI v3 (index and per group-version) and v2; [`openapi_pb`]: v2 as protobuf.
//! - [`table`]: Tables for `kubectl get` (columns, cells, rows).
//!
//! The server builds these documents from its served types and serves them;
//! nothing here reads a clock but Table ages, which take `now` as an argument.
#![forbid(unsafe_code)]

pub mod aggregated;
pub mod builtin;
pub mod documents;
pub mod naming;
pub mod openapi;
pub mod openapi_pb;
pub mod resource;
pub mod table;

pub use builtin::Builtin;
pub use naming::{NameError, ResourceNames};
pub use resource::Resource;

#[cfg(test)]
mod tests {
    use super::*;

    fn mysqldbs() -> Resource {
        Resource {
            group: "prsn.io".into(),
            versions: vec!["stable/v1".into(), "v1".into()],
            kind: "MysqlDb".into(),
            plural: "mysqldbs".into(),
            singular: "mysqldb".into(),
            namespaced: true,
            builtin: None,
            description: String::new(),
        }
    }

    fn tprs() -> Resource {
        Resource {
            group: "extensions".into(),
            versions: vec!["v1beta1".into()],
            kind: "ThirdPartyResource".into(),
            plural: "thirdpartyresources".into(),
            singular: "thirdpartyresource".into(),
            namespaced: false,
            builtin: None,
            description: String::new(),
        }
    }

    #[test]
    fn path_versions_are_served_by_path_but_never_listed() {
        let (a, b) = (mysqldbs(), tprs());
        let types = [&a, &b];
        let list = documents::group_list(&types);
        assert_eq!(list["groups"][1]["name"], "prsn.io");
        assert_eq!(list["groups"][1]["versions"], serde_json::json!([{"groupVersion": "prsn.io/v1", "version": "v1"}]));
        let paths = documents::root_paths(&types)["paths"].to_string();
        assert!(paths.contains("/apis/prsn.io/stable/v1") && paths.contains("/apis/prsn.io/v1"), "{paths}");
        let resources = documents::resource_list(&types[..1], "prsn.io", "v1");
        assert_eq!(resources["resources"][0]["verbs"].as_array().unwrap().len(), 8);
        let tpr = documents::resource_list(&types[1..], "extensions", "v1beta1");
        assert_eq!(tpr["resources"][0]["shortNames"], serde_json::json!(["tpr"]));
    }

    #[test]
    fn the_core_group_is_api_v1() {
        let (ns, lease, tpr) = (Builtin::Namespace.resource(), Builtin::Lease.resource(), tprs());
        let types = [&ns, &lease, &tpr];
        let core = documents::core_resources(&types);
        assert_eq!(core["groupVersion"], "v1");
        assert_eq!(core["resources"].as_array().unwrap().len(), 1);
        assert_eq!(core["resources"][0]["shortNames"], serde_json::json!(["ns"]));
        let groups = documents::group_list(&types).to_string();
        assert!(groups.contains("coordination.k8s.io") && !groups.contains("\"name\":\"\""), "{groups}");
        let paths = documents::root_paths(&types)["paths"].to_string();
        assert!(paths.contains("\"/api/v1\"") && !paths.contains("/apis/v1"), "{paths}");
        let agg = aggregated::aggregated(&types, true, "v2");
        assert_eq!(agg["items"][0]["versions"][0]["resources"][0]["resource"], "namespaces");
        let index = openapi::openapi_index(&types);
        assert!(index["paths"]["api/v1"]["serverRelativeURL"]
            .as_str()
            .unwrap()
            .starts_with("/openapi/v3/api/v1?hash="));
        let doc = openapi::openapi_group_version(&types, "", "v1");
        assert!(doc["paths"]["/api/v1/namespaces/{name}"].is_object(), "{doc}");
    }

    #[test]
    fn aggregated_discovery_and_openapi_carry_the_kinds() {
        let a = mysqldbs();
        let agg = aggregated::aggregated(&[&a], false, "v2");
        assert_eq!(agg["apiVersion"], "apidiscovery.k8s.io/v2");
        assert_eq!(agg["items"][0]["versions"][0]["resources"][0]["responseKind"]["kind"], "MysqlDb");
        let doc = openapi::openapi_group_version(&[&a], "prsn.io", "v1");
        let patch = &doc["paths"]["/apis/prsn.io/v1/namespaces/{namespace}/mysqldbs/{name}"]["patch"];
        assert_eq!(patch["x-kubernetes-group-version-kind"]["kind"], "MysqlDb");
        assert!(patch["parameters"].to_string().contains("fieldValidation"));
        let index = openapi::openapi_index(&[&a]);
        assert!(index["paths"]["apis/prsn.io/v1"]["serverRelativeURL"].as_str().unwrap().contains("?hash="));
        let v2 = openapi::openapi_v2(&[&a]);
        assert!(v2["definitions"]["io.prsn.v1.MysqlDb"].is_object(), "{v2}");
    }
}
