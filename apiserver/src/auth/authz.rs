//! Authorization (`--authorization-mode`): `AlwaysAllow`; `Policy` — a
//! static rules file for standalone use (`--authorization-policy-file`); or
//! `Webhook` — SubjectAccessReviews against the host cluster
//! ([`crate::aggregation::delegated::AccessReviewer`]).
//! Group `system:masters` is always allowed. Requests for paths that are not
//! resources (`/metrics`, discovery, OpenAPI) are authorized too, as
//! kube-apiserver's `nonResourceURLs`: AlwaysAllow allows them; Policy allows
//! kube's defaults (`system:discovery`: `get` of `/api`, `/api/*`, `/apis`,
//! `/apis/*`, `/openapi`, `/openapi/*`, `/version`, health) to every
//! authenticated user and anything else (`/metrics`, `/`) only by a rule with
//! `nonResourcePaths`; Webhook sends `nonResourceAttributes`. Health and
//! `/version` are answered before authentication, as kube's
//! `system:public-info-viewer` allows them to anyone. A denial is a 403
//! naming the user, the verb and the resource or path, worded as
//! kube-apiserver words it.
//!
//! The policy file (YAML or JSON):
//!
//! ```yaml
//! rules:
//!   - users: [alice]            # or groups: [dev]; either may be "*"
//!     verbs: [get, list, watch] # "*" for every verb
//!     apiGroups: [prsn.io]      # "*" for every group
//!     resources: [mysqldbs]     # "*" for every resource
//!     namespaces: [default]     # absent or "*": every namespace and cluster scope
//!   - groups: [monitoring]
//!     verbs: [get]
//!     nonResourcePaths: [/metrics]   # exact, or a prefix ending in "*"
//! ```

use std::path::Path;

use serde::Deserialize;

pub use crate::identity::Attributes;
use crate::identity::User;
use crate::status::ApiError;

/// One rule of the policy file.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Rule {
    #[serde(default)]
    users: Vec<String>,
    #[serde(default)]
    groups: Vec<String>,
    #[serde(default)]
    verbs: Vec<String>,
    #[serde(default)]
    api_groups: Vec<String>,
    #[serde(default)]
    resources: Vec<String>,
    #[serde(default)]
    namespaces: Vec<String>,
    #[serde(default)]
    non_resource_paths: Vec<String>,
}

/// kube's `system:discovery` paths, open to every authenticated user.
const DISCOVERY_PATHS: &[&str] = &[
    "/api",
    "/api/*",
    "/apis",
    "/apis/*",
    "/healthz",
    "/livez",
    "/openapi",
    "/openapi/*",
    "/readyz",
    "/version",
    "/version/",
];

/// True when `path` matches a pattern: the same path, or a prefix ending in `*`.
fn path_matches(patterns: &[impl AsRef<str>], path: &str) -> bool {
    patterns.iter().any(|p| {
        let p = p.as_ref();
        match p.strip_suffix('*') {
            Some(prefix) => path.starts_with(prefix),
            None => p == path,
        }
    })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    rules: Vec<Rule>,
}

fn any_of(list: &[String], value: &str) -> bool {
    list.iter().any(|v| v == "*" || v == value)
}

impl Rule {
    fn applies_to(&self, user: &User) -> bool {
        any_of(&self.users, &user.name) || user.groups.iter().any(|g| any_of(&self.groups, g))
    }

    fn allows_path(&self, user: &User, verb: &str, path: &str) -> bool {
        self.applies_to(user) && any_of(&self.verbs, verb) && path_matches(&self.non_resource_paths, path)
    }

    fn allows(&self, user: &User, a: &Attributes<'_>) -> bool {
        let who = self.applies_to(user);
        let namespace_ok = self.namespaces.is_empty()
            || self.namespaces.iter().any(|n| n == "*")
            || a.namespace.is_some_and(|ns| any_of(&self.namespaces, ns));
        who && any_of(&self.verbs, a.verb)
            && any_of(&self.api_groups, a.group)
            && any_of(&self.resources, a.resource)
            && namespace_ok
    }
}

/// Why authorization could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum AuthzError {
    /// The policy file could not be read or parsed.
    #[error("{path}: {message}")]
    Policy {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// An unknown mode or a missing file.
    #[error("{0}")]
    Config(String),
}

/// The configured authorizer.
#[derive(Clone)]
pub enum Authorizer {
    /// Everything authenticated is allowed.
    AlwaysAllow,
    /// The rules of a policy file.
    Policy(Vec<Rule>),
    /// The host cluster decides.
    Webhook(std::sync::Arc<crate::aggregation::delegated::AccessReviewer>),
}

impl Authorizer {
    /// From `--authorization-mode` and `--authorization-policy-file`; `webhook`
    /// is the host cluster's reviewer (from `--authorization-kubeconfig`).
    pub fn from_flags(
        mode: &str,
        policy_file: Option<&Path>,
        webhook: Option<std::sync::Arc<crate::aggregation::delegated::AccessReviewer>>,
    ) -> Result<Self, AuthzError> {
        match mode {
            "AlwaysAllow" => Ok(Authorizer::AlwaysAllow),
            "Webhook" => webhook.map(Authorizer::Webhook).ok_or_else(|| {
                AuthzError::Config("--authorization-mode=Webhook needs --authorization-kubeconfig".into())
            }),
            "Policy" => {
                let path = policy_file.ok_or_else(|| {
                    AuthzError::Config("--authorization-mode=Policy needs --authorization-policy-file".into())
                })?;
                let err = |message: String| AuthzError::Policy { path: path.display().to_string(), message };
                let text = std::fs::read(path).map_err(|e| err(e.to_string()))?;
                let file: PolicyFile = serde_norway::from_slice(&text).map_err(|e| err(e.to_string()))?;
                Ok(Authorizer::Policy(file.rules))
            }
            other => Err(AuthzError::Config(format!(
                "--authorization-mode must be AlwaysAllow, Policy or Webhook, not {other:?}"
            ))),
        }
    }

    /// Allows a request for a path that is no resource (`verb` is the
    /// lower-cased method), or answers 403 (500 when the host cannot be asked).
    pub async fn authorize_path(&self, user: &User, verb: &str, path: &str) -> Result<(), ApiError> {
        if user.groups.iter().any(|g| g == "system:masters") {
            return Ok(());
        }
        let allowed = match self {
            Authorizer::AlwaysAllow => true,
            Authorizer::Policy(rules) => {
                (verb == "get" && path_matches(DISCOVERY_PATHS, path))
                    || rules.iter().any(|r| r.allows_path(user, verb, path))
            }
            Authorizer::Webhook(reviewer) => reviewer
                .allowed_path(user, verb, path)
                .await
                .map_err(|e| ApiError::internal(format!("authorization: {e}")))?,
        };
        if allowed {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!("forbidden: User \"{}\" cannot {verb} path \"{path}\"", user.name)))
        }
    }

    /// What `user` may do in `namespace` (a SelfSubjectRulesReview's status):
    /// resource rules, path rules, and whether the list is incomplete (the
    /// webhook cannot enumerate, as kube's webhook authorizer cannot).
    pub fn rules_for(&self, user: &User, namespace: &str) -> serde_json::Value {
        use serde_json::json;
        let everything = json!({
            "resourceRules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}],
            "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}],
            "incomplete": false,
        });
        if user.groups.iter().any(|g| g == "system:masters") {
            return everything;
        }
        // kube's system:basic-user and system:discovery, granted to every authenticated user.
        let mut resource_rules = vec![
            json!({"verbs": ["create"], "apiGroups": ["authorization.k8s.io"], "resources": ["selfsubjectaccessreviews", "selfsubjectrulesreviews"]}),
            json!({"verbs": ["create"], "apiGroups": ["authentication.k8s.io"], "resources": ["selfsubjectreviews"]}),
        ];
        let mut path_rules = vec![json!({"verbs": ["get"], "nonResourceURLs": DISCOVERY_PATHS})];
        match self {
            Authorizer::AlwaysAllow => everything,
            Authorizer::Policy(rules) => {
                for r in rules.iter().filter(|r| r.applies_to(user)) {
                    let in_namespace = r.namespaces.is_empty() || any_of(&r.namespaces, namespace);
                    if !r.resources.is_empty() && in_namespace {
                        resource_rules
                            .push(json!({"verbs": r.verbs, "apiGroups": r.api_groups, "resources": r.resources}));
                    }
                    if !r.non_resource_paths.is_empty() {
                        path_rules.push(json!({"verbs": r.verbs, "nonResourceURLs": r.non_resource_paths}));
                    }
                }
                json!({"resourceRules": resource_rules, "nonResourceRules": path_rules, "incomplete": false})
            }
            Authorizer::Webhook(_) => json!({
                "resourceRules": resource_rules, "nonResourceRules": path_rules, "incomplete": true,
                "evaluationError": "webhook authorizer does not support user rule resolution",
            }),
        }
    }

    /// Allows the request, or answers 403 (500 when the host cluster cannot be asked).
    pub async fn authorize(&self, user: &User, a: &Attributes<'_>) -> Result<(), ApiError> {
        let allowed = match (self.allows_locally(user, a), self) {
            (Some(allowed), _) => allowed,
            (None, Authorizer::Webhook(reviewer)) => reviewer
                .allowed(user, a, a.version)
                .await
                .map_err(|e| ApiError::internal(format!("authorization: {e}")))?,
            (None, _) => false,
        };
        verdict(user, a, allowed)
    }

    /// The decision on a resource request when no webhook needs asking (the
    /// webhook's callers then skip [`Self::authorize`]'s future).
    pub fn authorize_locally(&self, user: &User, a: &Attributes<'_>) -> Option<Result<(), ApiError>> {
        self.allows_locally(user, a).map(|allowed| verdict(user, a, allowed))
    }

    fn allows_locally(&self, user: &User, a: &Attributes<'_>) -> Option<bool> {
        if user.groups.iter().any(|g| g == "system:masters") {
            return Some(true);
        }
        match self {
            Authorizer::AlwaysAllow => Some(true),
            Authorizer::Policy(rules) => Some(rules.iter().any(|r| r.allows(user, a))),
            Authorizer::Webhook(_) => None,
        }
    }
}

/// Allowed, or kube's 403 naming who cannot do what.
fn verdict(user: &User, a: &Attributes<'_>, allowed: bool) -> Result<(), ApiError> {
    if allowed {
        return Ok(());
    }
    let qualified = if a.group.is_empty() { a.resource.to_string() } else { format!("{}.{}", a.resource, a.group) };
    let subject = match a.name {
        Some(n) => format!("{qualified} \"{n}\""),
        None => qualified,
    };
    let scope = match a.namespace {
        Some(ns) => format!("in the namespace \"{ns}\""),
        None => "at the cluster scope".into(),
    };
    Err(ApiError::forbidden_on(
        format!(
            "{subject} is forbidden: User \"{}\" cannot {} resource \"{}\" in API group \"{}\" {scope}",
            user.name, a.verb, a.resource, a.group
        ),
        a.group,
        a.resource,
        a.name.unwrap_or(""),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str, groups: &[&str]) -> User {
        User { name: name.into(), groups: groups.iter().map(|g| g.to_string()).collect(), ..Default::default() }
    }

    fn attrs<'a>(verb: &'a str, namespace: Option<&'a str>) -> Attributes<'a> {
        Attributes { verb, group: "prsn.io", version: "v1", resource: "mysqldbs", namespace, name: None }
    }

    #[tokio::test]
    async fn policy_rules() {
        let yaml = "rules:\n- users: [alice]\n  verbs: [get, list, watch]\n  apiGroups: [prsn.io]\n  resources: [mysqldbs]\n  namespaces: [default]\n- groups: [admins]\n  verbs: ['*']\n  apiGroups: ['*']\n  resources: ['*']\n";
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("policy.yaml");
        std::fs::write(&file, yaml).unwrap();
        let a = Authorizer::from_flags("Policy", Some(&file), None).unwrap();
        let alice = user("alice", &[]);
        assert!(a.authorize(&alice, &attrs("list", Some("default"))).await.is_ok());
        assert!(a.authorize(&alice, &attrs("list", Some("other"))).await.is_err());
        assert!(a.authorize(&alice, &attrs("list", None)).await.is_err(), "namespaces given: not cluster-wide");
        let e = a.authorize(&alice, &attrs("create", Some("default"))).await.unwrap_err();
        assert_eq!(e.code, 403);
        assert_eq!(
            e.message,
            "mysqldbs.prsn.io is forbidden: User \"alice\" cannot create resource \"mysqldbs\" in API group \"prsn.io\" in the namespace \"default\""
        );
        assert!(a.authorize(&user("bob", &["admins"]), &attrs("delete", None)).await.is_ok());
        assert!(a.authorize(&user("root", &["system:masters"]), &attrs("delete", None)).await.is_ok());
        // Paths: discovery is open to everyone authenticated; /metrics needs a rule.
        assert!(a.authorize_path(&alice, "get", "/apis/prsn.io/v1").await.is_ok());
        assert!(a.authorize_path(&alice, "get", "/openapi/v3").await.is_ok());
        let e = a.authorize_path(&alice, "get", "/metrics").await.unwrap_err();
        assert_eq!((e.code, e.message.as_str()), (403, "forbidden: User \"alice\" cannot get path \"/metrics\""));
        assert!(a.authorize_path(&alice, "post", "/apis").await.is_err());
        assert!(a.authorize_path(&user("root", &["system:masters"]), "get", "/metrics").await.is_ok());
        std::fs::write(
            &file,
            format!("{yaml}- groups: [monitoring]\n  verbs: [get]\n  nonResourcePaths: [/metrics, /debug/*]\n"),
        )
        .unwrap();
        let a = Authorizer::from_flags("Policy", Some(&file), None).unwrap();
        let prom = user("prom", &["monitoring"]);
        assert!(a.authorize_path(&prom, "get", "/metrics").await.is_ok());
        assert!(a.authorize_path(&prom, "get", "/debug/x").await.is_ok());
        assert!(a.authorize(&prom, &attrs("list", None)).await.is_err(), "a path rule grants no resource");
        assert!(a.authorize_path(&alice, "get", "/metrics").await.is_err());
        std::fs::write(&file, "rules:\n- users: [x]\n  colour: red\n").unwrap();
        assert!(Authorizer::from_flags("Policy", Some(&file), None).is_err());
        assert!(Authorizer::from_flags("Webhooks", None, None).is_err());
        assert!(Authorizer::from_flags("Webhook", None, None).is_err(), "Webhook needs a kubeconfig");
    }
}
