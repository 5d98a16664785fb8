//! Which stored ThirdPartyResources are served, when two of them would serve
//! the same thing. Two TPRs conflict when, in one group, they would serve the
//! same plural, kind or singular (the same objects: deleting one would delete
//! the other's data), or when their versions would make a path ambiguous: a
//! version `v1` and a path version `v1/x` of the same group (then
//! `/apis/<g>/v1/x/...` could mean either).
//!
//! A write that would create a conflict is refused (409, naming the other
//! TPR). TPRs that conflict anyway (two replicas raced, or data stored by an
//! older server) are resolved the same way on every replica: the older TPR
//! (creationTimestamp, then name) is served, the other is not until the
//! conflict is gone. Pure functions; the controller applies the result.

use std::collections::BTreeMap;

use discovery::naming::ResourceNames;

/// A stored ThirdPartyResource, as far as conflicts go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate {
    /// `metadata.name`.
    pub name: String,
    /// `metadata.uid`.
    pub uid: String,
    /// `metadata.creationTimestamp` (RFC 3339: sorts by time).
    pub created: String,
    /// The names its type would have.
    pub names: ResourceNames,
    /// Its versions.
    pub versions: Vec<String>,
    /// Its `description`.
    pub description: String,
}

/// Why two TPRs cannot both be served: a sentence naming the other one.
pub fn conflict(new: &Candidate, existing: &Candidate) -> Option<String> {
    if new.name == existing.name {
        return None;
    }
    let (a, b) = (&new.names, &existing.names);
    if a.group != b.group {
        return None;
    }
    let other = &existing.name;
    if a.plural == b.plural || a.kind == b.kind || a.singular == b.singular {
        return Some(format!(
            "it would serve {}.{} (kind {}), as ThirdPartyResource \"{other}\" does ({}.{}, kind {})",
            a.plural, a.group, a.kind, b.plural, b.group, b.kind
        ));
    }
    for v in &new.versions {
        for w in &existing.versions {
            if ambiguous(v, w) {
                return Some(format!(
                    "its version \"{v}\" and version \"{w}\" of ThirdPartyResource \"{other}\" would make the paths of group {} ambiguous",
                    a.group
                ));
            }
        }
    }
    None
}

/// True when versions `v` and `w` of one group make a path ambiguous: one is
/// a DNS label and the other a path version that begins with it.
pub fn ambiguous(v: &str, w: &str) -> bool {
    let first = |x: &str| x.split_once('/').map(|(f, _)| f.to_string());
    match (first(v), first(w)) {
        (None, Some(f)) => f == v,
        (Some(f), None) => f == w,
        _ => false,
    }
}

/// The candidates to serve: each, oldest first, unless it conflicts with one
/// already chosen. Also the refused ones with the reason.
pub fn resolve(candidates: &BTreeMap<String, Candidate>) -> (Vec<&Candidate>, Vec<(&Candidate, String)>) {
    let mut order: Vec<&Candidate> = candidates.values().collect();
    order.sort_by(|a, b| (&a.created, &a.name).cmp(&(&b.created, &b.name)));
    let mut served: Vec<&Candidate> = Vec::new();
    let mut refused = Vec::new();
    for c in order {
        match served.iter().find_map(|s| conflict(c, s)) {
            Some(why) => refused.push((c, why)),
            None => served.push(c),
        }
    }
    (served, refused)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidate(name: &str, created: &str, versions: &[&str]) -> Candidate {
        Candidate {
            name: name.into(),
            uid: format!("uid-{name}"),
            created: created.into(),
            names: discovery::naming::from_tpr_name(name).unwrap(),
            versions: versions.iter().map(|v| v.to_string()).collect(),
            description: String::new(),
        }
    }

    #[test]
    fn same_plural_kind_or_singular_in_a_group_conflict() {
        let a = candidate("mysql-db.prsn.io", "2026-01-01T00:00:00Z", &["v1"]);
        let plural = candidate("mysqldb.prsn.io", "2026-01-02T00:00:00Z", &["v1"]);
        let why = conflict(&plural, &a).unwrap();
        assert!(why.contains("mysqldbs.prsn.io") && why.contains("\"mysql-db.prsn.io\""), "{why}");
        // policy → policies, policie → policies.
        let p = candidate("policy.prsn.io", "2026-01-01T00:00:00Z", &["v1"]);
        assert!(conflict(&candidate("policie.prsn.io", "2026-01-01T00:00:00Z", &["v1"]), &p).is_some());
        // Another group, or another plural: no conflict.
        assert!(conflict(&candidate("mysqldb.other.io", "x", &["v1"]), &a).is_none());
        assert!(conflict(&candidate("redis.prsn.io", "x", &["v1"]), &a).is_none());
    }

    #[test]
    fn versions_may_not_make_paths_ambiguous() {
        let a = candidate("mysql-db.prsn.io", "1", &["stable/v1", "v1"]);
        let shadow = candidate("shadow.prsn.io", "2", &["v1/namespaces"]);
        assert!(conflict(&shadow, &a).unwrap().contains("\"v1/namespaces\""));
        assert!(conflict(&a, &shadow).is_some(), "either order");
        assert!(conflict(&candidate("other.prsn.io", "3", &["stable/v2", "v2"]), &a).is_none());
        assert!(conflict(&candidate("other.prsn.io", "3", &["stable"]), &a).is_some());
        assert!(ambiguous("v1", "v1/x") && ambiguous("v1/x", "v1"));
        assert!(!ambiguous("stable/v1", "v1") && !ambiguous("v1", "v2") && !ambiguous("a/b", "a/c"));
    }

    #[test]
    fn the_older_one_is_served() {
        let mut all = BTreeMap::new();
        for c in [
            candidate("mysqldb.prsn.io", "2026-01-02T00:00:00Z", &["v1"]),
            candidate("mysql-db.prsn.io", "2026-01-01T00:00:00Z", &["v1"]),
            candidate("redis.prsn.io", "2026-01-03T00:00:00Z", &["v1"]),
        ] {
            all.insert(c.name.clone(), c);
        }
        let (served, refused) = resolve(&all);
        let names: Vec<&str> = served.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["mysql-db.prsn.io", "redis.prsn.io"]);
        assert_eq!(refused.len(), 1);
        assert_eq!(refused[0].0.name, "mysqldb.prsn.io");
    }
}
