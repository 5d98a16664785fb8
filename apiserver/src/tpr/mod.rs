//! ThirdPartyResources: validation of the TPR objects ([`validate`]), which
//! stored TPRs are served when two would serve the same thing
//! ([`conflicts`]), and the [`Controller`] that keeps the served types equal
//! to the stored TPRs.

pub mod conflicts;
pub mod controller;
pub mod export;

pub use conflicts::{ambiguous, resolve, Candidate};
pub use controller::Controller;

use discovery::naming;
use serde_json::Value;

use crate::registry::meta;
use crate::registry::meta_str;
use crate::status::{ApiError, Cause, Target};

/// Group, version and names of the ThirdPartyResource type itself.
pub const TPR_GROUP: &str = "extensions";
/// The version of the ThirdPartyResource type.
pub const TPR_VERSION: &str = "v1beta1";
/// The finalizer that keeps a deleted TPR until its objects are gone.
pub const OBJECTS_FINALIZER: &str = "tpr-apiserver/objects";

/// Why a version name is served by path only.
pub fn version_warning(version: &str) -> Option<String> {
    (!meta::is_dns_label(version)).then(|| {
        format!("version {version:?} is not a DNS label: it is served at its path for compatibility but left out of discovery, because clients cannot parse a group/version with two slashes")
    })
}

/// Words of API paths after a version (`/apis/<g>/<v>/namespaces/...`,
/// `/apis/<g>/<v>/watch/...`) that a path version may not end with.
const RESERVED_PATH_WORDS: &[&str] = &["namespaces", "watch"];

/// A TPR's served versions, checked.
fn versions_of(obj: &Value, target: &Target) -> Result<Vec<String>, ApiError> {
    let invalid = |message: String| {
        ApiError::invalid(
            target,
            "ThirdPartyResource",
            vec![Cause { reason: "FieldValueInvalid", message, field: "versions".into() }],
        )
    };
    let list = obj
        .get("versions")
        .and_then(Value::as_array)
        .ok_or_else(|| invalid("Required value: at least one version, e.g. versions: [{name: v1}]".into()))?;
    let mut out: Vec<String> = Vec::new();
    for v in list {
        let name = match v.get("name") {
            Some(Value::String(n)) => n.as_str(),
            _ => {
                return Err(invalid(format!(
                    "Invalid value: {v}: each version must be an object with a name, e.g. {{name: v1}}"
                )))
            }
        };
        let parts: Vec<&str> = name.split('/').collect();
        if name.is_empty() || parts.len() > 2 || !parts.iter().all(|p| meta::is_dns_label(p)) {
            return Err(invalid(format!("Invalid value: {name:?}: a version must be a DNS label (e.g. v1), or two joined by '/' (e.g. stable/v1)")));
        }
        if let [_, second] = parts[..] {
            if RESERVED_PATH_WORDS.contains(&second) {
                return Err(invalid(format!(
                    "Invalid value: {name:?}: \"{second}\" is a word of API paths and cannot end a version"
                )));
            }
        }
        if out.iter().any(|o| o == name) {
            return Err(invalid(format!("Duplicate value: {name:?}")));
        }
        if let Some(other) = out.iter().find(|o| conflicts::ambiguous(o, name)) {
            return Err(invalid(format!(
                "Invalid value: {name:?}: versions {other:?} and {name:?} would make paths ambiguous"
            )));
        }
        out.push(name.to_string());
    }
    if out.is_empty() {
        return Err(invalid("Required value: at least one version, e.g. versions: [{name: v1}]".into()));
    }
    Ok(out)
}

/// Checks a TPR object: its name gives kind, group and plural; its versions are well-formed.
pub fn validate(obj: &Value) -> Result<(naming::ResourceNames, Vec<String>), ApiError> {
    let name = meta_str(obj, "name").unwrap_or_default();
    let target = Target { group: TPR_GROUP.into(), resource: "thirdpartyresources".into(), name: name.into() };
    let names = naming::from_tpr_name(name).map_err(|e| {
        ApiError::invalid(
            &target,
            "ThirdPartyResource",
            vec![Cause {
                reason: "FieldValueInvalid",
                message: format!("Invalid value: {name:?}: {e}"),
                field: "metadata.name".into(),
            }],
        )
    })?;
    if names.group == TPR_GROUP {
        return Err(ApiError::invalid(
            &target,
            "ThirdPartyResource",
            vec![Cause {
                reason: "FieldValueForbidden",
                message: "the group extensions is reserved".into(),
                field: "metadata.name".into(),
            }],
        ));
    }
    if obj.get("description").is_some_and(|d| !d.is_null() && !d.is_string()) {
        return Err(ApiError::invalid(
            &target,
            "ThirdPartyResource",
            vec![Cause {
                reason: "FieldValueInvalid",
                message: "Invalid value: must be a string".into(),
                field: "description".into(),
            }],
        ));
    }
    Ok((names, versions_of(obj, &target)?))
}

/// A stored or written TPR as [`conflicts`] sees it; `None` when it is not valid.
pub fn candidate(obj: &Value) -> Option<Candidate> {
    let (names, versions) = validate(obj).ok()?;
    let text = |k: &str| meta_str(obj, k).unwrap_or_default().to_string();
    let description = obj.get("description").and_then(Value::as_str).unwrap_or_default().to_string();
    Some(Candidate {
        name: text("name"),
        uid: text("uid"),
        created: text("creationTimestamp"),
        names,
        versions,
        description,
    })
}
