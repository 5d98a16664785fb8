//! What a built-in type does to an object before it is stored, as
//! kube-apiserver's strategies do (PrepareForCreate/Update, Validate):
//! defaults, fields the server owns, and validation. Objects of
//! ThirdPartyResource types pass untouched.
//!
//! - Namespace: `spec.finalizers` is `[kubernetes]` and `status.phase`
//!   `Active` on create; both kept from the stored object on update (only
//!   the namespace controller changes them); the label
//!   `kubernetes.io/metadata.name`; the name a DNS label.
//! - ConfigMap, Secret: keys of `data`/`binaryData` valid, values of the
//!   right type (Secret data base64), `stringData` merged into `data`,
//!   Secret `type` defaulted to `Opaque` and immutable, `immutable: true`
//!   freezing the data.
//! - Lease: the types of `spec`.
//! - Events (`events.k8s.io/v1` on create): kube's required fields.

use base64::Engine;
use discovery::Builtin;
use serde_json::{Map, Value};

use super::Scope;
use crate::status::{ApiError, Cause};

/// The namespace finalizer that the namespace controller removes.
pub const NAMESPACE_FINALIZER: &str = "kubernetes";

/// Causes of one object, with helpers to add them.
#[derive(Default)]
struct Causes(Vec<Cause>);

impl Causes {
    fn add(&mut self, reason: &'static str, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(Cause { reason, message: message.into(), field: field.into() });
    }

    fn required(&mut self, field: &str) {
        self.add("FieldValueRequired", field, "Required value");
    }

    fn into_result(self, scope: &Scope<'_>, name: &str) -> Result<(), ApiError> {
        match self.0.is_empty() {
            true => Ok(()),
            false => Err(ApiError::invalid(&scope.target(name), &scope.rt.kind, self.0)),
        }
    }
}

/// The namespaces there from the first start, which may not be deleted.
pub const SYSTEM_NAMESPACES: [&str; 3] = ["default", "kube-system", "kube-public"];

/// 403 for a delete a type never allows (`default`, `kube-system`, `kube-public`).
pub fn check_delete(scope: &Scope<'_>, name: &str) -> Result<(), ApiError> {
    if scope.rt.builtin == Some(Builtin::Namespace) && SYSTEM_NAMESPACES.contains(&name) {
        return Err(ApiError::forbidden_on(
            format!("namespaces \"{name}\" is forbidden: this namespace may not be deleted"),
            "",
            "namespaces",
            name,
        ));
    }
    Ok(())
}

/// What a type changes when an object is marked for deletion (a namespace
/// becomes `Terminating`; the namespace controller then empties it).
pub fn mark_deleting(scope: &Scope<'_>, obj: &mut Value) {
    if scope.rt.builtin == Some(Builtin::Namespace) {
        obj["status"]["phase"] = Value::String("Terminating".into());
    }
}

/// Whether something still holds `obj`'s deletion: `metadata.finalizers`,
/// and for a namespace also `spec.finalizers` (the namespace controller's).
pub fn finalizers_pending(scope: &Scope<'_>, obj: &Value) -> bool {
    let pending = |v: Option<&Value>| v.and_then(Value::as_array).is_some_and(|f| !f.is_empty());
    pending(super::meta_value(obj, "finalizers"))
        || (scope.rt.builtin == Some(Builtin::Namespace) && pending(obj.get("spec").and_then(|s| s.get("finalizers"))))
}

/// Prepares and validates `obj` (named `name`) before it is stored;
/// `old` is the stored object of an update.
pub fn prepare(scope: &Scope<'_>, name: &str, old: Option<&Value>, obj: &mut Value) -> Result<(), ApiError> {
    let Some(builtin) = scope.rt.builtin else { return Ok(()) };
    let mut causes = Causes::default();
    let Some(map) = obj.as_object_mut() else { return Ok(()) };
    match builtin {
        Builtin::Namespace => namespace(name, old, map, &mut causes),
        Builtin::ConfigMap => {
            keyed_data(map, "data", false, &mut causes)?;
            keyed_data(map, "binaryData", true, &mut causes)?;
            immutable_data(old, map, &["data", "binaryData"], &mut causes);
        }
        Builtin::Secret => secret(old, map, &mut causes)?,
        Builtin::Lease => lease(map, &mut causes),
        Builtin::EventV1 if old.is_none() => event_v1(map, &mut causes),
        _ => {}
    }
    causes.into_result(scope, name)
}

fn namespace(name: &str, old: Option<&Value>, map: &mut Map<String, Value>, causes: &mut Causes) {
    if !discovery::naming::is_dns_label(name) {
        causes.add(
            "FieldValueInvalid",
            "metadata.name",
            format!("Invalid value: {name:?}: a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character"),
        );
    }
    match old {
        None => {
            let spec = map.entry("spec").or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(spec) = spec {
                spec.insert("finalizers".into(), serde_json::json!([NAMESPACE_FINALIZER]));
            }
            map.insert("status".into(), serde_json::json!({"phase": "Active"}));
        }
        Some(old) => {
            // Only the namespace controller changes these (kube's `/finalize` and `/status`).
            let spec = map.entry("spec").or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(spec) = spec {
                match old.pointer("/spec/finalizers") {
                    Some(f) => spec.insert("finalizers".into(), f.clone()),
                    None => spec.remove("finalizers"),
                };
            }
            match old.get("status") {
                Some(s) => map.insert("status".into(), s.clone()),
                None => map.remove("status"),
            };
        }
    }
    if let Some(Value::Object(meta)) = map.get_mut("metadata") {
        let labels = meta.entry("labels").or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(labels) = labels {
            labels.insert("kubernetes.io/metadata.name".into(), Value::String(name.to_string()));
        }
    }
}

/// kube's `IsConfigMapKey`: at most 253 of `-._a-zA-Z0-9`, not `.` or `..`.
fn is_data_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 253
        && key != "."
        && key != ".."
        && key.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// The map at `field`: string values (base64 when `binary`), valid keys.
fn keyed_data(map: &Map<String, Value>, field: &str, binary: bool, causes: &mut Causes) -> Result<(), ApiError> {
    let data = match map.get(field) {
        None | Some(Value::Null) => return Ok(()),
        Some(Value::Object(d)) => d,
        Some(_) => return Err(ApiError::bad_request(format!("{field} must be a map of strings"))),
    };
    for (key, value) in data {
        if !is_data_key(key) {
            causes.add(
                "FieldValueInvalid",
                format!("{field}[{key}]"),
                format!("Invalid value: {key:?}: a valid config key must consist of alphanumeric characters, '-', '_' or '.'"),
            );
        }
        let Some(text) = value.as_str() else {
            return Err(ApiError::bad_request(format!("{field}[{key}] must be a string")));
        };
        if binary && base64::engine::general_purpose::STANDARD.decode(text).is_err() {
            return Err(ApiError::bad_request(format!("{field}[{key}]: illegal base64 data")));
        }
    }
    Ok(())
}

/// `immutable: true` freezes `fields` and itself.
fn immutable_data(old: Option<&Value>, map: &Map<String, Value>, fields: &[&str], causes: &mut Causes) {
    let Some(old) = old else { return };
    if old.get("immutable") != Some(&Value::Bool(true)) {
        return;
    }
    if map.get("immutable") != Some(&Value::Bool(true)) {
        causes.add("FieldValueForbidden", "immutable", "Forbidden: field is immutable when `immutable` is set");
    }
    for f in fields {
        let none = Value::Null;
        let empty = |v: Option<&Value>| v.is_none_or(|v| v.is_null() || v.as_object().is_some_and(Map::is_empty));
        let (a, b) = (old.get(*f), map.get(*f));
        if !(empty(a) && empty(b)) && a.unwrap_or(&none) != b.unwrap_or(&none) {
            causes.add("FieldValueForbidden", *f, "Forbidden: field is immutable when `immutable` is set");
        }
    }
}

fn secret(old: Option<&Value>, map: &mut Map<String, Value>, causes: &mut Causes) -> Result<(), ApiError> {
    // stringData is written into data (base64) and never stored.
    if let Some(string_data) = map.remove("stringData") {
        let Value::Object(string_data) = string_data else {
            return Err(ApiError::bad_request("stringData must be a map of strings"));
        };
        let data = map.entry("data").or_insert_with(|| Value::Object(Map::new()));
        if data.is_null() {
            *data = Value::Object(Map::new());
        }
        let Value::Object(data) = data else { return Err(ApiError::bad_request("data must be a map of strings")) };
        for (k, v) in string_data {
            let Some(text) = v.as_str() else {
                return Err(ApiError::bad_request(format!("stringData[{k}] must be a string")));
            };
            data.insert(k, Value::String(base64::engine::general_purpose::STANDARD.encode(text)));
        }
    }
    keyed_data(map, "data", true, causes)?;
    match map.get("type") {
        None | Some(Value::Null) => {
            map.insert("type".into(), Value::String("Opaque".into()));
        }
        Some(Value::String(_)) => {}
        Some(_) => return Err(ApiError::bad_request("type must be a string")),
    }
    if let Some(old) = old {
        let old_type = old.get("type").and_then(Value::as_str).unwrap_or("Opaque");
        if map.get("type").and_then(Value::as_str) != Some(old_type) {
            causes.add("FieldValueInvalid", "type", "Invalid value: field is immutable");
        }
    }
    if map.get("type").and_then(Value::as_str) == Some("kubernetes.io/tls") {
        for key in ["tls.crt", "tls.key"] {
            if map.get("data").and_then(|d| d.get(key)).is_none() {
                causes.required(&format!("data[{key}]"));
            }
        }
    }
    immutable_data(old, map, &["data"], causes);
    Ok(())
}

fn lease(map: &Map<String, Value>, causes: &mut Causes) {
    let Some(spec) = map.get("spec") else { return };
    let Some(spec) = spec.as_object() else {
        causes.add("FieldValueInvalid", "spec", "Invalid value: must be an object");
        return;
    };
    for (field, ok) in [
        ("holderIdentity", spec.get("holderIdentity").is_none_or(|v| v.is_null() || v.is_string())),
        (
            "leaseDurationSeconds",
            spec.get("leaseDurationSeconds")
                .is_none_or(|v| v.is_null() || v.as_i64().is_some_and(|d| d > 0 && d <= i64::from(i32::MAX))),
        ),
        (
            "leaseTransitions",
            spec.get("leaseTransitions")
                .is_none_or(|v| v.is_null() || v.as_i64().is_some_and(|d| (0..=i64::from(i32::MAX)).contains(&d))),
        ),
        ("acquireTime", spec.get("acquireTime").is_none_or(|v| v.is_null() || v.as_str().is_some_and(is_time))),
        ("renewTime", spec.get("renewTime").is_none_or(|v| v.is_null() || v.as_str().is_some_and(is_time))),
    ] {
        if !ok {
            let want = match field {
                "holderIdentity" => "must be a string",
                "leaseDurationSeconds" => "must be greater than 0",
                "leaseTransitions" => "must be greater than or equal to 0",
                _ => "must be an RFC 3339 time",
            };
            causes.add("FieldValueInvalid", format!("spec.{field}"), format!("Invalid value: {want}"));
        }
    }
}

fn is_time(s: &str) -> bool {
    humantime::parse_rfc3339_weak(s).is_ok()
}

/// kube's checks of a new `events.k8s.io/v1` Event.
fn event_v1(map: &Map<String, Value>, causes: &mut Causes) {
    let text = |f: &str| map.get(f).and_then(Value::as_str).unwrap_or("");
    if text("eventTime").is_empty() {
        causes.required("eventTime");
    }
    for field in ["reportingController", "reportingInstance", "action", "reason"] {
        if text(field).is_empty() {
            causes.required(field);
        }
    }
    if !matches!(text("type"), "Normal" | "Warning") {
        causes.add(
            "FieldValueInvalid",
            "type",
            format!("Unsupported value: {:?}: supported values: \"Normal\", \"Warning\"", text("type")),
        );
    }
    if text("note").len() > 1024 {
        causes.add("FieldValueTooLong", "note", "Too long: may not be more than 1024 bytes");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn data_keys_as_kube_checks_them() {
        assert!(is_data_key("app.properties") && is_data_key("a-b_c"));
        assert!(!is_data_key("..") && !is_data_key("a/b") && !is_data_key(""));
    }

    #[test]
    fn immutable_freezes_data() {
        let old = json!({"immutable": true, "data": {"a": "1"}});
        let mut c = Causes::default();
        immutable_data(
            Some(&old),
            json!({"immutable": true, "data": {"a": "2"}}).as_object().unwrap(),
            &["data"],
            &mut c,
        );
        assert_eq!(c.0.len(), 1);
        let mut c = Causes::default();
        immutable_data(
            Some(&old),
            json!({"immutable": true, "data": {"a": "1"}}).as_object().unwrap(),
            &["data"],
            &mut c,
        );
        assert!(c.0.is_empty());
    }
}
