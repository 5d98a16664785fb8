//! Object metadata rules, as Kubernetes validates them: names, namespaces,
//! labels, annotations. Each check returns the field causes of a 422.

use serde_json::{Map, Value};

use crate::status::Cause;

/// Largest total size of annotations (keys and values), as Kubernetes.
const MAX_ANNOTATIONS_BYTES: usize = 256 * 1024;

fn invalid(field: &str, message: impl Into<String>) -> Cause {
    Cause { reason: "FieldValueInvalid", message: message.into(), field: field.into() }
}

pub use discovery::naming::is_dns_label;

/// True for an RFC 1123 DNS subdomain: dot-separated DNS labels, at most 253.
pub fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(is_dns_label)
}

/// A label value or the name part of a qualified key: at most 63 characters,
/// alphanumerics, '-', '_', '.', beginning and ending with an alphanumeric.
fn is_qualified_part(s: &str, allow_empty: bool) -> bool {
    if s.is_empty() {
        return allow_empty;
    }
    s.len() <= 63
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
        && s.as_bytes()[0].is_ascii_alphanumeric()
        && s.as_bytes()[s.len() - 1].is_ascii_alphanumeric()
}

/// A label or annotation key: `[prefix/]name`, prefix a DNS subdomain.
pub fn is_qualified_name(s: &str) -> bool {
    match s.split_once('/') {
        Some((prefix, name)) => is_dns_subdomain(prefix) && is_qualified_part(name, false),
        None => is_qualified_part(s, false),
    }
}

/// A label value (may be empty).
pub fn is_label_value(s: &str) -> bool {
    is_qualified_part(s, true)
}

/// Checks `metadata.name` (or the name that `generateName` will produce).
pub fn check_name(name: &str, field: &str, causes: &mut Vec<Cause>) {
    if !is_dns_subdomain(name) {
        causes.push(invalid(field, format!("Invalid value: {name:?}: a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character")));
    }
}

/// Checks labels and annotations of `metadata`.
pub fn check_labels_and_annotations(meta: &Map<String, Value>, causes: &mut Vec<Cause>) {
    match meta.get("labels") {
        None | Some(Value::Null) => {}
        Some(Value::Object(labels)) => {
            for (k, v) in labels {
                if !is_qualified_name(k) {
                    causes.push(invalid("metadata.labels", format!("Invalid value: {k:?}: name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (an optional DNS subdomain prefix and '/' may precede it)")));
                }
                match v.as_str() {
                    Some(v) if is_label_value(v) => {}
                    _ => causes.push(invalid("metadata.labels", format!("Invalid value: {v}: a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character, at most 63 characters"))),
                }
            }
        }
        Some(_) => causes.push(invalid("metadata.labels", "must be a map of strings")),
    }
    match meta.get("annotations") {
        None | Some(Value::Null) => {}
        Some(Value::Object(ann)) => {
            let mut total = 0;
            for (k, v) in ann {
                if !is_qualified_name(k) {
                    causes.push(invalid(
                        "metadata.annotations",
                        format!("Invalid value: {k:?}: must be a qualified name"),
                    ));
                }
                match v.as_str() {
                    Some(s) => total += k.len() + s.len(),
                    None => causes
                        .push(invalid("metadata.annotations", format!("Invalid value for {k:?}: must be a string"))),
                }
            }
            if total > MAX_ANNOTATIONS_BYTES {
                causes.push(Cause {
                    reason: "FieldValueTooLong",
                    message: format!("Too long: must have at most {MAX_ANNOTATIONS_BYTES} bytes"),
                    field: "metadata.annotations".into(),
                });
            }
        }
        Some(_) => causes.push(invalid("metadata.annotations", "must be a map of strings")),
    }
}

/// How Go's JSON decoder names the type of a JSON value.
fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Checks the types of `metadata`'s fields as kube-apiserver's decoder does:
/// the decoder's message for the first field of a wrong type (the caller
/// answers it as a 400), e.g. `json: cannot unmarshal string into Go struct
/// field ObjectMeta.finalizers of type []string`.
pub fn check_types(meta: &Map<String, Value>) -> Result<(), String> {
    let wrong = |v: &Value, field: &str, go: &str| {
        Err(format!("json: cannot unmarshal {} into Go struct field ObjectMeta.{field} of type {go}", json_type(v)))
    };
    let is_int = |v: &Value| v.is_i64();
    for (field, v) in meta {
        if v.is_null() {
            continue;
        }
        match field.as_str() {
            "name" | "generateName" | "namespace" | "selfLink" | "uid" | "resourceVersion" | "creationTimestamp"
            | "deletionTimestamp"
                if !v.is_string() =>
            {
                return wrong(v, field, "string")
            }
            "generation" | "deletionGracePeriodSeconds" if !is_int(v) => return wrong(v, field, "int64"),
            "labels" | "annotations" => match v {
                Value::Object(m) => {
                    if let Some(bad) = m.values().find(|x| !x.is_string()) {
                        return wrong(bad, field, "string");
                    }
                }
                _ => return wrong(v, field, "map[string]string"),
            },
            "finalizers" => match v {
                Value::Array(list) => {
                    if let Some(bad) = list.iter().find(|x| !x.is_string()) {
                        return wrong(bad, field, "string");
                    }
                }
                _ => return wrong(v, field, "[]string"),
            },
            "ownerReferences" => {
                let Value::Array(list) = v else { return wrong(v, field, "[]v1.OwnerReference") };
                for r in list {
                    let Value::Object(r) = r else { return wrong(r, field, "v1.OwnerReference") };
                    for (k, x) in r {
                        let go = match k.as_str() {
                            "apiVersion" | "kind" | "name" | "uid" if !(x.is_string() || x.is_null()) => "string",
                            "controller" | "blockOwnerDeletion" if !(x.is_boolean() || x.is_null()) => "bool",
                            _ => continue,
                        };
                        return wrong(x, &format!("ownerReferences.{k}"), go);
                    }
                }
            }
            "managedFields" => {
                let Value::Array(list) = v else { return wrong(v, field, "[]v1.ManagedFieldsEntry") };
                if let Some(bad) = list.iter().find(|x| !x.is_object()) {
                    return wrong(bad, field, "v1.ManagedFieldsEntry");
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// The finalizers kube knows without a domain.
const STANDARD_FINALIZERS: &[&str] = &["orphan", "foregroundDeletion", "kubernetes"];

/// Checks `metadata.finalizers` (qualified names, not both orphan and
/// foregroundDeletion) and `metadata.ownerReferences` (apiVersion, kind,
/// name and uid given; at most one controller), as kube-apiserver does.
pub fn check_finalizers_and_owners(meta: &Map<String, Value>, causes: &mut Vec<Cause>) {
    let finalizers: Vec<&str> =
        meta.get("finalizers").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str).collect();
    for f in &finalizers {
        if !is_qualified_name(f) {
            causes.push(invalid("metadata.finalizers", format!("Invalid value: {f:?}: name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')")));
        }
    }
    if finalizers.contains(&"orphan") && finalizers.contains(&"foregroundDeletion") {
        causes.push(invalid(
            "metadata.finalizers",
            "Invalid value: finalizer orphan and foregroundDeletion cannot be both set",
        ));
    }
    let owners = meta.get("ownerReferences").and_then(Value::as_array).into_iter().flatten();
    let mut controller: Option<String> = None;
    for r in owners {
        let text = |k: &str| r.get(k).and_then(Value::as_str).unwrap_or_default();
        let field = |k: &str| format!("metadata.ownerReferences.{k}");
        let api_version = text("apiVersion");
        let version_ok = match api_version.split('/').collect::<Vec<_>>()[..] {
            [v] => !v.is_empty(),
            [g, v] => !g.is_empty() && !v.is_empty(),
            _ => false,
        };
        if !version_ok {
            causes.push(invalid(
                &field("apiVersion"),
                format!("Invalid value: {api_version:?}: version must not be empty"),
            ));
        }
        for k in ["kind", "name", "uid"] {
            if text(k).is_empty() {
                causes.push(invalid(&field(k), format!("Invalid value: {:?}: must not be empty", text(k))));
            }
        }
        if r.get("controller").and_then(Value::as_bool) == Some(true) {
            let this = format!("{}/{}", text("kind"), text("name"));
            match &controller {
                Some(first) => causes.push(invalid("metadata.ownerReferences", format!("Invalid value: Only one reference can have Controller set to true. Found \"true\" in references for {first} and {this}"))),
                None => controller = Some(this),
            }
        }
    }
}

/// Warnings for finalizers `new` adds that are not domain-qualified, as
/// kube-apiserver warns for custom resources.
pub fn finalizer_warnings(old: Option<&Value>, new: &Value) -> Vec<String> {
    let list = |o: &Value| -> Vec<String> {
        super::meta_value(o, "finalizers")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(String::from)
            .collect()
    };
    let before = old.map(list).unwrap_or_default();
    let mut added: Vec<String> = list(new).into_iter().filter(|f| !before.contains(f)).collect();
    added.sort();
    added.dedup();
    added
        .into_iter()
        .filter(|f| !f.contains('/') && !STANDARD_FINALIZERS.contains(&f.as_str()) && is_qualified_name(f))
        .map(|f| format!("metadata.finalizers: {f:?}: prefer a domain-qualified finalizer name including a path (/) to avoid accidental conflicts with other finalizer writers"))
        .collect()
}

/// The current time as Kubernetes writes timestamps (`2026-11-29T14:00:00Z`).
pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

/// Five random lower-case alphanumerics, as generateName appends.
pub fn random_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    uuid::Uuid::new_v4().as_bytes().iter().take(5).map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validates_like_kubernetes() {
        assert!(is_dns_subdomain("my-new-mysql-db"));
        assert!(is_dns_subdomain("a.b-c"));
        assert!(!is_dns_subdomain("My"));
        assert!(!is_dns_subdomain("-a"));
        assert!(is_dns_label("default"));
        assert!(!is_dns_label("a.b"));
        assert!(is_qualified_name("app.kubernetes.io/name"));
        assert!(is_qualified_name("resource"));
        assert!(!is_qualified_name("bad key"));
        assert!(is_label_value(""));
        assert!(!is_label_value("-x"));
        let mut causes = Vec::new();
        let meta = serde_json::json!({"labels": {"ok": "yes", "bad key": "v", "k": 3}});
        check_labels_and_annotations(meta.as_object().unwrap(), &mut causes);
        assert_eq!(causes.len(), 2);
        assert_eq!(random_suffix().len(), 5);
        assert!(now_rfc3339().ends_with('Z'));
    }

    #[test]
    fn metadata_types_as_kubes_decoder() {
        let check = |v: serde_json::Value| check_types(v.as_object().unwrap());
        for bad in [
            serde_json::json!({"finalizers": "x"}),
            serde_json::json!({"finalizers": [1]}),
            serde_json::json!({"finalizers": {}}),
            serde_json::json!({"finalizers": [null]}),
            serde_json::json!({"ownerReferences": "x"}),
            serde_json::json!({"ownerReferences": [1]}),
            serde_json::json!({"ownerReferences": [{"controller": "yes"}]}),
            serde_json::json!({"generateName": 1}),
            serde_json::json!({"labels": {"a": 1}}),
            serde_json::json!({"annotations": []}),
            serde_json::json!({"generation": "1"}),
            serde_json::json!({"managedFields": [1]}),
        ] {
            assert!(check(bad.clone()).is_err(), "{bad}");
        }
        assert_eq!(
            check(serde_json::json!({"finalizers": "x"})).unwrap_err(),
            "json: cannot unmarshal string into Go struct field ObjectMeta.finalizers of type []string"
        );
        assert!(
            check(serde_json::json!({"name": "a", "finalizers": null, "labels": {"a": "b"}, "generation": 2})).is_ok()
        );
    }

    #[test]
    fn finalizers_and_owner_references() {
        let causes = |v: serde_json::Value| {
            let mut c = Vec::new();
            check_finalizers_and_owners(v.as_object().unwrap(), &mut c);
            c
        };
        assert_eq!(causes(serde_json::json!({"finalizers": ["a b"]})).len(), 1);
        assert_eq!(causes(serde_json::json!({"finalizers": ["orphan", "foregroundDeletion"]})).len(), 1);
        assert!(causes(serde_json::json!({"finalizers": ["example.com/x", "kubernetes"]})).is_empty());
        let empty = causes(serde_json::json!({"ownerReferences": [{}]}));
        let fields: Vec<&str> = empty.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "metadata.ownerReferences.apiVersion",
                "metadata.ownerReferences.kind",
                "metadata.ownerReferences.name",
                "metadata.ownerReferences.uid"
            ]
        );
        let two = serde_json::json!({"ownerReferences": [
            {"apiVersion": "v1", "kind": "A", "name": "a", "uid": "1", "controller": true},
            {"apiVersion": "g/v1", "kind": "B", "name": "b", "uid": "2", "controller": true}]});
        assert!(causes(two)[0].message.contains("Only one reference can have Controller set to true"));
        let warned = finalizer_warnings(
            None,
            &serde_json::json!({"metadata": {"finalizers": ["x", "example.com/y", "kubernetes"]}}),
        );
        assert_eq!(warned.len(), 1);
        assert!(warned[0].contains("\"x\""));
    }
}
