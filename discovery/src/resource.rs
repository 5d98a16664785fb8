//! What discovery knows of a served type: its names, versions and scope.

/// A served resource type, as discovery documents describe it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resource {
    /// API group, e.g. `prsn.io`.
    pub group: String,
    /// Served versions, e.g. `["stable/v1", "v1"]` (path versions such as
    /// `stable/v1` are served by path but never listed).
    pub versions: Vec<String>,
    /// Kind, e.g. `MysqlDb`.
    pub kind: String,
    /// Resource name, e.g. `mysqldbs`.
    pub plural: String,
    /// Singular name, e.g. `mysqldb`.
    pub singular: String,
    /// Whether objects live in namespaces.
    pub namespaced: bool,
    /// The kube-apiserver type it is, if it is one (served standalone).
    pub builtin: Option<crate::Builtin>,
    /// What the type is for (a TPR's `description`; OpenAPI and `kubectl explain` show it).
    pub description: String,
}

impl Resource {
    /// `group/version`, or `version` alone for the core group.
    pub fn api_version(&self, version: &str) -> String {
        if self.group.is_empty() {
            version.to_string()
        } else {
            format!("{}/{version}", self.group)
        }
    }

    /// The path of its group-version: `/api/v1` or `/apis/<group>/<version>`.
    pub fn group_version_path(&self, version: &str) -> String {
        if self.group.is_empty() {
            format!("/api/{version}")
        } else {
            format!("/apis/{}/{version}", self.group)
        }
    }

    /// True for the built-in ThirdPartyResource type (no deletecollection, short name `tpr`).
    pub fn is_tpr(&self) -> bool {
        self.plural == "thirdpartyresources"
    }

    /// Versions that discovery lists (DNS labels; `stable/v1` is path-only).
    pub fn listed_versions(&self) -> impl Iterator<Item = &String> {
        self.versions.iter().filter(|v| crate::naming::is_dns_label(v))
    }

    /// Its verbs (ThirdPartyResources have no deletecollection).
    pub fn verbs(&self) -> serde_json::Value {
        if let Some(b) = self.builtin {
            serde_json::json!(b.verbs())
        } else if self.is_tpr() {
            serde_json::json!(["create", "delete", "get", "list", "patch", "update", "watch"])
        } else {
            serde_json::json!(["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"])
        }
    }

    /// Short names (`tpr`, and kube's for built-in types).
    pub fn short_names(&self) -> Option<serde_json::Value> {
        match self.builtin {
            Some(b) if !b.short_names().is_empty() => Some(serde_json::json!(b.short_names())),
            Some(_) => None,
            None => self.is_tpr().then(|| serde_json::json!(["tpr"])),
        }
    }
}
