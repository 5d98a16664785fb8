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
}
