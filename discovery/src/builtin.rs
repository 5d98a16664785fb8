//! The kube-apiserver types the server also serves when it runs alone (no
//! host cluster): what operators and sensors need besides their own types.
//! Each is described here once: names, scope, verbs, field labels, the
//! top-level fields it has, and its OpenAPI schema name.

use crate::Resource;

/// A built-in type served standalone.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Builtin {
    /// `v1` `namespaces` (cluster-scoped).
    Namespace,
    /// `v1` `events`.
    Event,
    /// `events.k8s.io/v1` `events`: the same objects as `v1` `events`, converted.
    EventV1,
    /// `coordination.k8s.io/v1` `leases`.
    Lease,
    /// `v1` `configmaps`.
    ConfigMap,
    /// `v1` `secrets`.
    Secret,
    /// `authorization.k8s.io/v1` `selfsubjectaccessreviews`: may I do this?
    /// Only created (answered by the authorizer), never stored.
    AccessReview,
    /// `authorization.k8s.io/v1` `selfsubjectrulesreviews`: what may I do in a namespace?
    RulesReview,
}

/// The authorization group of the reviews.
pub const AUTHORIZATION_GROUP: &str = "authorization.k8s.io";

impl Builtin {
    /// The built-in types whose objects are stored.
    pub const STORED: [Builtin; 6] =
        [Builtin::Namespace, Builtin::Event, Builtin::EventV1, Builtin::Lease, Builtin::ConfigMap, Builtin::Secret];

    /// The reviews (created, answered, never stored).
    pub const REVIEWS: [Builtin; 2] = [Builtin::AccessReview, Builtin::RulesReview];

    /// True for the reviews.
    pub fn is_review(self) -> bool {
        Builtin::REVIEWS.contains(&self)
    }

    /// Its API description.
    pub fn resource(self) -> Resource {
        let (group, kind, plural, namespaced) = match self {
            Builtin::Namespace => ("", "Namespace", "namespaces", false),
            Builtin::Event => ("", "Event", "events", true),
            Builtin::EventV1 => ("events.k8s.io", "Event", "events", true),
            Builtin::Lease => ("coordination.k8s.io", "Lease", "leases", true),
            Builtin::ConfigMap => ("", "ConfigMap", "configmaps", true),
            Builtin::Secret => ("", "Secret", "secrets", true),
            Builtin::AccessReview => {
                (AUTHORIZATION_GROUP, "SelfSubjectAccessReview", "selfsubjectaccessreviews", false)
            }
            Builtin::RulesReview => (AUTHORIZATION_GROUP, "SelfSubjectRulesReview", "selfsubjectrulesreviews", false),
        };
        Resource {
            group: group.into(),
            versions: vec!["v1".into()],
            kind: kind.into(),
            plural: plural.into(),
            singular: kind.to_ascii_lowercase(),
            namespaced,
            builtin: Some(self),
            description: self.description().to_string(),
        }
    }

    /// Where its objects are stored, under the store's root (both event
    /// APIs share `events/`, stored as `v1` Events, as kube-apiserver does;
    /// the reviews are not stored).
    pub fn storage(self) -> &'static str {
        match self {
            Builtin::AccessReview | Builtin::RulesReview => "",
            Builtin::Namespace => "namespaces",
            Builtin::Event | Builtin::EventV1 => "events",
            Builtin::Lease => "leases",
            Builtin::ConfigMap => "configmaps",
            Builtin::Secret => "secrets",
        }
    }

    /// Its short names, as kube-apiserver lists them.
    pub fn short_names(self) -> &'static [&'static str] {
        match self {
            Builtin::Namespace => &["ns"],
            Builtin::Event | Builtin::EventV1 => &["ev"],
            Builtin::ConfigMap => &["cm"],
            _ => &[],
        }
    }

    /// Its verbs (namespaces have no deletecollection, as in kube-apiserver).
    pub fn verbs(self) -> &'static [&'static str] {
        match self {
            Builtin::Namespace => &["create", "delete", "get", "list", "patch", "update", "watch"],
            Builtin::AccessReview | Builtin::RulesReview => &["create"],
            _ => &["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"],
        }
    }

    /// The field selector labels besides `metadata.name` and `metadata.namespace`
    /// (kube-apiserver's field label conversions).
    pub fn field_labels(self) -> &'static [&'static str] {
        match self {
            Builtin::Namespace => &["status.phase"],
            Builtin::Event => &[
                "involvedObject.kind",
                "involvedObject.namespace",
                "involvedObject.name",
                "involvedObject.uid",
                "involvedObject.apiVersion",
                "involvedObject.resourceVersion",
                "involvedObject.fieldPath",
                "reason",
                "reportingComponent",
                "source",
                "type",
            ],
            Builtin::EventV1 => &[
                "regarding.kind",
                "regarding.namespace",
                "regarding.name",
                "regarding.uid",
                "regarding.apiVersion",
                "regarding.resourceVersion",
                "regarding.fieldPath",
                "reason",
                "reportingController",
                "type",
            ],
            Builtin::Secret => &["type"],
            _ => &[],
        }
    }

    /// The top-level fields of its objects besides `apiVersion`, `kind` and
    /// `metadata` (anything else is an unknown field).
    pub fn fields(self) -> &'static [&'static str] {
        match self {
            Builtin::Namespace => &["spec", "status"],
            Builtin::Event => &[
                "involvedObject",
                "reason",
                "message",
                "source",
                "firstTimestamp",
                "lastTimestamp",
                "count",
                "type",
                "eventTime",
                "series",
                "action",
                "related",
                "reportingComponent",
                "reportingInstance",
            ],
            Builtin::EventV1 => &[
                "eventTime",
                "series",
                "reportingController",
                "reportingInstance",
                "action",
                "reason",
                "regarding",
                "related",
                "note",
                "type",
                "deprecatedSource",
                "deprecatedFirstTimestamp",
                "deprecatedLastTimestamp",
                "deprecatedCount",
            ],
            Builtin::Lease => &["spec"],
            Builtin::ConfigMap => &["data", "binaryData", "immutable"],
            Builtin::Secret => &["data", "stringData", "type", "immutable"],
            Builtin::AccessReview | Builtin::RulesReview => &["spec", "status"],
        }
    }

    /// Its OpenAPI schema name, as kube-apiserver names it.
    pub fn schema_name(self) -> &'static str {
        match self {
            Builtin::Namespace => "io.k8s.api.core.v1.Namespace",
            Builtin::Event => "io.k8s.api.core.v1.Event",
            Builtin::EventV1 => "io.k8s.api.events.v1.Event",
            Builtin::Lease => "io.k8s.api.coordination.v1.Lease",
            Builtin::ConfigMap => "io.k8s.api.core.v1.ConfigMap",
            Builtin::Secret => "io.k8s.api.core.v1.Secret",
            Builtin::AccessReview => "io.k8s.api.authorization.v1.SelfSubjectAccessReview",
            Builtin::RulesReview => "io.k8s.api.authorization.v1.SelfSubjectRulesReview",
        }
    }

    /// What its objects are for, for OpenAPI.
    pub fn description(self) -> &'static str {
        match self {
            Builtin::Namespace => "Namespace provides a scope for Names.",
            Builtin::Event | Builtin::EventV1 => "Event is a report of an event somewhere in the cluster.",
            Builtin::Lease => "Lease defines a lease concept.",
            Builtin::ConfigMap => "ConfigMap holds configuration data for pods to consume.",
            Builtin::Secret => "Secret holds secret data of a certain type.",
            Builtin::AccessReview => "SelfSubjectAccessReview checks whether the current user can perform an action.",
            Builtin::RulesReview => {
                "SelfSubjectRulesReview enumerates the actions the current user can perform in a namespace."
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_are_named_as_kube_apiserver_names_them() {
        let ns = Builtin::Namespace.resource();
        assert_eq!((ns.group.as_str(), ns.plural.as_str(), ns.namespaced), ("", "namespaces", false));
        assert_eq!(ns.api_version("v1"), "v1");
        assert_eq!(Builtin::Lease.resource().api_version("v1"), "coordination.k8s.io/v1");
        assert_eq!(Builtin::EventV1.storage(), Builtin::Event.storage());
        assert_eq!(Builtin::RulesReview.resource().verbs().to_string(), r#"["create"]"#);
        assert!(!Builtin::Namespace.verbs().contains(&"deletecollection"));
    }
}
