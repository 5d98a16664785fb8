//! Server-side field validation (`fieldValidation=Strict|Warn|Ignore`).
//!
//! Objects of a ThirdPartyResource type are schemaless, so only what the
//! server types is checked: fields of `metadata` that ObjectMeta does not
//! have (they are dropped, as kube-apiserver drops them), and fields given
//! twice anywhere in the body. Strict refuses the request with 400, Warn
//! answers with a `Warning` header per problem, Ignore says nothing. Without
//! the parameter the server warns, as kube-apiserver does.

use std::collections::HashSet;
use std::fmt;

use serde::de::{DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

use crate::status::ApiError;

/// What to do about unknown and duplicate fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldValidation {
    /// Refuse the request (400).
    Strict,
    /// Accept it with a warning per problem.
    Warn,
    /// Accept it silently.
    Ignore,
}

impl FieldValidation {
    /// From the `fieldValidation` query parameter (absent: `Warn`).
    pub fn parse(value: Option<&str>) -> Result<Self, ApiError> {
        match value.unwrap_or("") {
            "" | "Warn" => Ok(FieldValidation::Warn),
            "Strict" => Ok(FieldValidation::Strict),
            "Ignore" => Ok(FieldValidation::Ignore),
            other => Err(ApiError::bad_request(format!(
                "fieldValidation must be one of Ignore, Warn or Strict, not {other:?}"
            ))),
        }
    }

    /// Checks `body` (the raw request) and `obj` (parsed from it): drops unknown
    /// metadata fields, then refuses (Strict) or returns the warnings (Warn).
    /// `known`: a built-in type's top-level fields (others are unknown too).
    /// `obj` must be `body` as parsed, unchanged.
    pub fn check(self, body: &[u8], obj: &mut Value, known: Option<&[&str]>) -> Result<Vec<String>, ApiError> {
        let repeats = self != FieldValidation::Ignore && key_count(body) != value_key_count(obj);
        let mut problems = unknown_metadata_problems(obj);
        problems.extend(unknown_top_level(obj, known));
        if repeats {
            problems.extend(duplicate_problems(body));
        }
        self.report(problems)
    }

    /// Only the body's duplicate fields (a patch: unknown fields are checked on its result).
    pub fn check_body(self, body: &[u8]) -> Result<Vec<String>, ApiError> {
        match self {
            FieldValidation::Ignore => Ok(Vec::new()),
            _ => self.report(duplicate_problems(body)),
        }
    }

    /// Duplicate fields found by another parser (YAML bodies).
    pub fn check_duplicates(self, paths: Vec<String>) -> Result<Vec<String>, ApiError> {
        self.report(paths.into_iter().map(|f| format!("duplicate field \"{f}\"")).collect())
    }

    /// Only `obj`'s unknown metadata fields (dropped whatever the mode), and
    /// its unknown top-level fields when `known` lists a built-in type's.
    pub fn check_object(self, obj: &mut Value, known: Option<&[&str]>) -> Result<Vec<String>, ApiError> {
        let mut problems = unknown_metadata_problems(obj);
        problems.extend(unknown_top_level(obj, known));
        self.report(problems)
    }

    /// Refuses (Strict) or returns the warnings (Warn) for `problems`.
    fn report(self, problems: Vec<String>) -> Result<Vec<String>, ApiError> {
        match self {
            FieldValidation::Ignore => Ok(Vec::new()),
            FieldValidation::Warn => Ok(problems),
            FieldValidation::Strict if problems.is_empty() => Ok(Vec::new()),
            FieldValidation::Strict => {
                Err(ApiError::bad_request(format!("strict decoding error: {}", problems.join(", "))))
            }
        }
    }
}

/// Drops the top-level fields a built-in type does not have (as kube's
/// decoder drops them) and names them.
fn unknown_top_level(obj: &mut Value, known: Option<&[&str]>) -> Vec<String> {
    let (Some(known), Some(map)) = (known, obj.as_object_mut()) else { return Vec::new() };
    let unknown: Vec<String> = map
        .keys()
        .filter(|k| !matches!(k.as_str(), "apiVersion" | "kind" | "metadata") && !known.contains(&k.as_str()))
        .cloned()
        .collect();
    for k in &unknown {
        map.shift_remove(k);
    }
    unknown.into_iter().map(|f| format!("unknown field \"{f}\"")).collect()
}

fn unknown_metadata_problems(obj: &mut Value) -> Vec<String> {
    strip_unknown_metadata(obj).into_iter().map(|f| format!("unknown field \"{f}\"")).collect()
}

/// The keys of every object in the JSON text `body`: each string followed by
/// `:`. One pass over the bytes; a parsed value with fewer keys lost a
/// duplicate (the last value of a key replaces the first).
fn key_count(body: &[u8]) -> usize {
    let (mut keys, mut i) = (0, 0);
    while i < body.len() {
        if body[i] != b'"' {
            i += 1;
            continue;
        }
        i += 1;
        while i < body.len() && body[i] != b'"' {
            i += if body[i] == b'\\' { 2 } else { 1 };
        }
        i += 1;
        let next = body.get(i..).and_then(|rest| rest.iter().find(|b| !b.is_ascii_whitespace()));
        keys += usize::from(next == Some(&b':'));
    }
    keys
}

/// The keys of every object in `v`.
fn value_key_count(v: &Value) -> usize {
    // Iterative: a value nested deeper than the stack allows stays countable.
    let (mut keys, mut stack) = (0, vec![v]);
    while let Some(v) = stack.pop() {
        match v {
            Value::Object(m) => {
                keys += m.len();
                stack.extend(m.values());
            }
            Value::Array(a) => stack.extend(a),
            _ => {}
        }
    }
    keys
}

fn duplicate_problems(body: &[u8]) -> Vec<String> {
    duplicate_fields(body).into_iter().map(|f| format!("duplicate field \"{f}\"")).collect()
}

/// The fields of ObjectMeta.
const OBJECT_META: &[&str] = &[
    "name",
    "generateName",
    "namespace",
    "selfLink",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "labels",
    "annotations",
    "ownerReferences",
    "finalizers",
    "managedFields",
];

/// Removes the fields of `metadata` that ObjectMeta does not have; returns their paths.
pub fn strip_unknown_metadata(obj: &mut Value) -> Vec<String> {
    let Some(Value::Object(meta)) = obj.get_mut("metadata") else { return Vec::new() };
    let unknown: Vec<String> = meta.keys().filter(|k| !OBJECT_META.contains(&k.as_str())).cloned().collect();
    for k in &unknown {
        meta.shift_remove(k);
    }
    unknown.into_iter().map(|k| format!("metadata.{k}")).collect()
}

/// Most duplicate fields reported for one body.
pub const MAX_REPORTED: usize = 100;

/// The paths of fields given more than once in one JSON object, anywhere in
/// `body` (at most [`MAX_REPORTED`]). Linear in the body: the path is a stack
/// of segments, joined only for a duplicate.
pub fn duplicate_fields(body: &[u8]) -> Vec<String> {
    let mut found = Vec::new();
    let mut path = Vec::new();
    let mut de = serde_json::Deserializer::from_slice(body);
    // The body was already parsed successfully; a failure here finds nothing.
    let _ = Duplicates { path: &mut path, found: &mut found }.deserialize(&mut de);
    found
}

/// Walks a JSON value, recording duplicate keys with their dotted path.
struct Duplicates<'a> {
    /// Keys and `[i]` indexes from the root to the value being read.
    path: &'a mut Vec<String>,
    found: &'a mut Vec<String>,
}

impl Duplicates<'_> {
    fn joined(&self) -> String {
        let mut out = String::new();
        for p in self.path.iter() {
            if !out.is_empty() && !p.starts_with('[') {
                out.push('.');
            }
            out.push_str(p);
        }
        out
    }
}

impl<'de> DeserializeSeed<'de> for Duplicates<'_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Duplicates<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut i = 0;
        loop {
            self.path.push(format!("[{i}]"));
            let more = seq.next_element_seed(Duplicates { path: &mut *self.path, found: &mut *self.found })?;
            self.path.pop();
            if more.is_none() {
                return Ok(());
            }
            i += 1;
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            self.path.push(key.clone());
            if !seen.insert(key) && self.found.len() < MAX_REPORTED {
                let joined = self.joined();
                self.found.push(joined);
            }
            map.next_value_seed(Duplicates { path: &mut *self.path, found: &mut *self.found })?;
            self.path.pop();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn key_counts_agree_unless_a_field_repeats() {
        for body in [
            &br#"{"a":1,"b":{"c":[{"d":"x:\"y\"","e":{}}]},"f":"\\"}"#[..],
            br#" { "a" : "b" , "c" :[ "d" , "e:" ] } "#,
            br#"{"k\":":1,"":2}"#,
            br#"[1,"a",{"b":null}]"#,
        ] {
            let v: Value = serde_json::from_slice(body).unwrap();
            assert_eq!(key_count(body), value_key_count(&v), "{}", String::from_utf8_lossy(body));
        }
        let body = br#"{"a":{"x":1,"x" :2}}"#;
        let v: Value = serde_json::from_slice(body).unwrap();
        assert_eq!((key_count(body), value_key_count(&v)), (3, 2));
    }

    #[test]
    fn duplicates_anywhere_with_their_paths() {
        let body = br#"{"a":1,"spec":{"size":"s","size":"m","list":[{"x":1,"x":2}]},"a":2}"#;
        assert_eq!(duplicate_fields(body), vec!["spec.size", "spec.list[0].x", "a"]);
        assert!(duplicate_fields(br#"{"a":{"b":1},"c":{"b":2}}"#).is_empty());
    }

    #[test]
    fn unknown_metadata_is_dropped_and_reported() {
        let body = br#"{"metadata":{"name":"a","colour":"red"},"free":1}"#;
        for mode in [FieldValidation::Warn, FieldValidation::Ignore] {
            let mut obj: Value = serde_json::from_slice(body).unwrap();
            let warnings = mode.check(body, &mut obj, None).unwrap();
            assert_eq!(obj, json!({"metadata": {"name": "a"}, "free": 1}), "{mode:?}");
            let expected: Vec<String> =
                if mode == FieldValidation::Warn { vec!["unknown field \"metadata.colour\"".into()] } else { vec![] };
            assert_eq!(warnings, expected);
        }
        let mut obj: Value = serde_json::from_slice(body).unwrap();
        let e = FieldValidation::Strict.check(body, &mut obj, None).unwrap_err();
        assert_eq!(e.code, 400);
        assert!(e.message.contains("unknown field \"metadata.colour\""), "{}", e.message);
        assert!(FieldValidation::parse(Some("Loud")).is_err());
    }
}
