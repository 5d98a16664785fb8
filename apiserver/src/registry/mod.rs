//! The generic registry: create, read, update and delete of JSON objects of
//! any served type, on top of the storage contract (k8s.io/apiserver's
//! generic registry store, in small). Objects are stored without
//! `metadata.resourceVersion`; it comes from the key's mod revision.

pub mod convert;
pub mod field_validation;
pub mod managed_fields;
pub mod meta;
pub mod paging;
pub mod selectors;
pub mod strategy;

mod delete;

pub use delete::{delete, delete_corrupt, Preconditions};

use bytes::Bytes;
use serde_json::{Map, Value};
use storage::{KeyValue, StorageError, Store};

use crate::served::ResourceType;
use crate::status::{ApiError, Cause, Target};

/// A request's type, version and namespace.
#[derive(Clone, Copy)]
pub struct Scope<'a> {
    /// The type.
    pub rt: &'a ResourceType,
    /// The version named in the URL.
    pub version: &'a str,
    /// The namespace of the URL (None for cluster-scoped types and all-namespace paths).
    pub namespace: Option<&'a str>,
}

impl Scope<'_> {
    /// The error target for `name`.
    pub fn target(&self, name: &str) -> Target {
        Target { group: self.rt.group.clone(), resource: self.rt.plural.clone(), name: name.to_string() }
    }

    fn key(&self, name: &str) -> String {
        self.rt.key(self.namespace, name)
    }
}

/// Turns a stored value into the object a client sees through `api_version`;
/// a value that is not a JSON object is [`ApiError::corrupt`].
pub fn decode(kv: &KeyValue, api_version: &str) -> Result<Value, ApiError> {
    let mut obj = read_stored(kv)?;
    convert::from_stored(api_version, &mut obj);
    let map = obj.as_object_mut().ok_or_else(|| ApiError::corrupt(&kv.key, "not a JSON object"))?;
    set_served(map, api_version, kv.mod_revision);
    Ok(obj)
}

/// What a stored object gains as served: its apiVersion and resourceVersion.
fn set_served(map: &mut Map<String, Value>, api_version: &str, revision: i64) {
    map.insert("apiVersion".into(), Value::String(api_version.to_string()));
    if let Some(Value::Object(m)) = map.get_mut("metadata") {
        m.insert("resourceVersion".into(), Value::String(revision.to_string()));
    }
}

/// The stored form of an object: without resourceVersion and selfLink, and
/// only if it reads back (see [`crate::limits::check_stored`]).
/// The stored JSON of `kv`, as written.
fn read_stored(kv: &KeyValue) -> Result<Value, ApiError> {
    let v: Value = serde_json::from_slice(&kv.value).map_err(|e| ApiError::corrupt(&kv.key, e))?;
    if !v.is_object() {
        return Err(ApiError::corrupt(&kv.key, "not a JSON object"));
    }
    Ok(v)
}

/// What a watcher is told of a deleted object that cannot be read: its
/// kind, name, namespace and revision, all known from its key.
pub fn tombstone(kv: &KeyValue, key_prefix: &str, kind: &str, api_version: &str) -> Value {
    let rest = kv.key.strip_prefix(key_prefix).unwrap_or(&kv.key);
    let (namespace, name) = match rest.split_once('/') {
        Some((ns, name)) => (Some(ns), name),
        None => (None, rest),
    };
    let mut meta = Map::new();
    meta.insert("name".into(), Value::String(name.into()));
    if let Some(ns) = namespace {
        meta.insert("namespace".into(), Value::String(ns.into()));
    }
    meta.insert("resourceVersion".into(), Value::String(kv.mod_revision.to_string()));
    serde_json::json!({"kind": kind, "apiVersion": api_version, "metadata": meta})
}

fn encode(obj: &Value) -> Result<Bytes, ApiError> {
    encode_marked(obj).map(|e| e.bytes)
}

/// Stored bytes, and where in them the metadata object closes (for the
/// answer, see [`Encoded::answer`]).
struct Encoded {
    bytes: Bytes,
    /// Offset of the `}` that closes `metadata`.
    metadata_end: Option<usize>,
}

impl Encoded {
    /// The answer to the write that stored these bytes at `revision`, as
    /// [`decode`] then `serde_json` would make it for `api_version`: the
    /// stored bytes with `resourceVersion` added last in `metadata`.
    /// `None` when the served form differs otherwise (another apiVersion).
    fn answer(&self, obj: &Value, api_version: &str, revision: i64) -> Option<Bytes> {
        let end = self.metadata_end?;
        if convert::converts(api_version) || obj.get("apiVersion").and_then(Value::as_str) != Some(api_version) {
            return None;
        }
        let (head, tail) = self.bytes.split_at(end);
        let comma = if head.last() == Some(&b'{') { "" } else { "," };
        let rv = format!("{comma}\"resourceVersion\":\"{revision}\"");
        let mut out = Vec::with_capacity(self.bytes.len() + rv.len());
        out.extend_from_slice(head);
        out.extend_from_slice(rv.as_bytes());
        out.extend_from_slice(tail);
        Some(Bytes::from(out))
    }
}

/// `serde_json::to_vec(v)`, noting where the top-level `metadata` object ends.
fn to_vec_marked(v: &Value) -> serde_json::Result<(Vec<u8>, Option<usize>)> {
    let Value::Object(map) = v else { return serde_json::to_vec(v).map(|b| (b, None)) };
    let mut out = Vec::with_capacity(256);
    let mut metadata_end = None;
    out.push(b'{');
    for (i, (k, v)) in map.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        serde_json::to_writer(&mut out, k)?;
        out.push(b':');
        serde_json::to_writer(&mut out, v)?;
        if k == "metadata" && v.is_object() {
            metadata_end = Some(out.len() - 1);
        }
    }
    out.push(b'}');
    Ok((out, metadata_end))
}

fn encode_marked(obj: &Value) -> Result<Encoded, ApiError> {
    let as_is = !obj.get("apiVersion").and_then(Value::as_str).is_some_and(convert::converts)
        && obj
            .get("metadata")
            .and_then(Value::as_object)
            .is_some_and(|m| !m.contains_key("resourceVersion") && !m.contains_key("selfLink"));
    // Stored as written when nothing is to change: no copy.
    let stored = match as_is {
        true => std::borrow::Cow::Borrowed(obj),
        false => {
            let mut stored = obj.clone();
            if let Some(v) = obj.get("apiVersion").and_then(Value::as_str) {
                convert::to_stored(v, &mut stored);
            }
            if let Some(Value::Object(m)) = stored.get_mut("metadata") {
                m.remove("resourceVersion");
                m.remove("selfLink");
            }
            std::borrow::Cow::Owned(stored)
        }
    };
    let (bytes, metadata_end) =
        to_vec_marked(&stored).map_err(|e| ApiError::internal(format!("cannot encode the object: {e}")))?;
    crate::limits::check_stored(&stored, bytes.len())?;
    Ok(Encoded { bytes: Bytes::from(bytes), metadata_end })
}

fn metadata_mut(obj: &mut Value) -> Result<&mut Map<String, Value>, ApiError> {
    let map = obj.as_object_mut().ok_or_else(|| ApiError::bad_request("the request body must be a JSON object"))?;
    let meta = map.entry("metadata").or_insert_with(|| Value::Object(Map::new()));
    meta.as_object_mut().ok_or_else(|| ApiError::bad_request("metadata must be a JSON object"))
}

/// The string at `metadata.<field>`, if any.
pub fn meta_str<'v>(obj: &'v Value, field: &str) -> Option<&'v str> {
    meta_value(obj, field)?.as_str()
}

/// The value at `metadata.<field>`, if any. Cheaper than `Value::pointer`,
/// which allocates two strings per path segment.
pub fn meta_value<'v>(obj: &'v Value, field: &str) -> Option<&'v Value> {
    obj.get("metadata")?.get(field)
}

/// Checks and fills `kind` and `apiVersion`: missing ones come from the URL.
fn check_type_fields(obj: &mut Value, scope: &Scope<'_>) -> Result<(), ApiError> {
    let expected_version = scope.rt.api_version(scope.version);
    let map = obj.as_object_mut().ok_or_else(|| ApiError::bad_request("the request body must be a JSON object"))?;
    match map.get("apiVersion") {
        None | Some(Value::Null) => {
            map.insert("apiVersion".into(), Value::String(expected_version.clone()));
        }
        Some(Value::String(v)) if *v == expected_version => {}
        Some(v) => {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({}) does not match the expected API version ({expected_version})",
                v.as_str().unwrap_or("not a string")
            )))
        }
    }
    match map.get("kind") {
        None | Some(Value::Null) => {
            map.insert("kind".into(), Value::String(scope.rt.kind.clone()));
        }
        Some(Value::String(k)) if *k == scope.rt.kind => {}
        Some(k) => {
            return Err(ApiError::bad_request(format!(
                "the kind in the data ({}) does not match the expected kind ({})",
                k.as_str().unwrap_or("not a string"),
                scope.rt.kind
            )))
        }
    }
    Ok(())
}

/// Checks and fills the namespace from the URL.
fn check_namespace(meta: &mut Map<String, Value>, scope: &Scope<'_>) -> Result<(), ApiError> {
    match (scope.namespace, meta.get("namespace").and_then(Value::as_str)) {
        (Some(url), Some(body)) if url != body => Err(ApiError::bad_request(format!(
            "the namespace of the provided object ({body}) does not match the namespace sent on the request ({url})"
        ))),
        (Some(url), _) => {
            meta.insert("namespace".into(), Value::String(url.to_string()));
            Ok(())
        }
        (None, _) if scope.rt.namespaced => Err(ApiError::bad_request("the request must name a namespace")),
        (None, _) => {
            meta.remove("namespace");
            Ok(())
        }
    }
}

/// 400 for metadata fields of the wrong type, worded as kube-apiserver's decoder.
pub fn check_meta_types(obj: &Value, scope: &Scope<'_>) -> Result<(), ApiError> {
    let Some(Value::Object(m)) = obj.get("metadata") else { return Ok(()) };
    meta::check_types(m).map_err(|e| {
        ApiError::bad_request(format!(
            "{kind} in version \"{version}\" cannot be handled as a {kind}: {e}",
            kind = scope.rt.kind,
            version = scope.version
        ))
    })
}

fn validate(obj: &Value, scope: &Scope<'_>, name: &str) -> Result<(), ApiError> {
    let mut causes: Vec<Cause> = Vec::new();
    meta::check_name(name, "metadata.name", &mut causes);
    if let Some(ns) = scope.namespace {
        if !meta::is_dns_label(ns) {
            causes.push(Cause {
                reason: "FieldValueInvalid",
                message: format!("Invalid value: {ns:?}: a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-'"),
                field: "metadata.namespace".into(),
            });
        }
    }
    if let Some(Value::Object(m)) = obj.get("metadata") {
        // As kube: a generateName must make a valid name with any suffix.
        if let Some(prefix) = m.get("generateName").and_then(Value::as_str).filter(|p| !p.is_empty()) {
            if !meta::is_dns_subdomain(&format!("{prefix}a")) {
                meta::check_name(prefix, "metadata.generateName", &mut causes);
            }
        }
        meta::check_labels_and_annotations(m, &mut causes);
        meta::check_finalizers_and_owners(m, &mut causes);
    }
    if causes.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid(&scope.target(name), &scope.rt.kind, causes))
    }
}

/// True when anything outside `metadata`, `apiVersion` and `status` differs
/// (then `generation` moves). Compares in place: objects may be large.
fn spec_changed(a: &Value, b: &Value) -> bool {
    let skip = |k: &str| matches!(k, "metadata" | "apiVersion" | "status");
    let (Some(a), Some(b)) = (a.as_object(), b.as_object()) else { return a != b };
    let count = |m: &Map<String, Value>| m.keys().filter(|k| !skip(k)).count();
    count(a) != count(b) || a.iter().filter(|(k, _)| !skip(k)).any(|(k, v)| b.get(k) != Some(v))
}

/// Creates an object; `dry_run` validates without storing.
pub async fn create(store: &dyn Store, scope: Scope<'_>, obj: Value, dry_run: bool) -> Result<Value, ApiError> {
    create_answered(store, scope, obj, dry_run).await?.object()
}

/// A created object, with the answer to its create when the registry made
/// it from the stored bytes.
pub struct Created {
    obj: Value,
    /// What the store answered, and the apiVersion the object is served as.
    stored: Option<(KeyValue, String)>,
    answer: Option<Bytes>,
}

impl Created {
    /// The answer's bytes, as GETs serve the object (none for a dry run, or
    /// where the served form is made otherwise).
    pub fn answer(&self) -> Option<Bytes> {
        self.answer.clone()
    }

    /// The object as the answer shows it.
    pub fn object(self) -> Result<Value, ApiError> {
        match self.stored {
            Some((kv, api_version)) => written(self.obj, &kv, &api_version),
            None => Ok(self.obj),
        }
    }
}

/// [`create`], keeping the answer's bytes for the caller (see [`Created`]).
pub async fn create_answered(
    store: &dyn Store,
    scope: Scope<'_>,
    mut obj: Value,
    dry_run: bool,
) -> Result<Created, ApiError> {
    check_type_fields(&mut obj, &scope)?;
    check_meta_types(&obj, &scope)?;
    let meta = metadata_mut(&mut obj)?;
    check_namespace(meta, &scope)?;
    let generate = match meta.get("name").and_then(Value::as_str) {
        Some(n) if !n.is_empty() => None,
        _ => match meta.get("generateName").and_then(Value::as_str) {
            Some(prefix) if !prefix.is_empty() => Some(prefix.to_string()),
            _ => {
                let t = scope.target("");
                return Err(ApiError::invalid(
                    &t,
                    &scope.rt.kind,
                    vec![Cause {
                        reason: "FieldValueRequired",
                        message: "Required value: name or generateName is required".into(),
                        field: "metadata.name".into(),
                    }],
                ));
            }
        },
    };
    for key in ["uid", "resourceVersion", "selfLink", "deletionTimestamp", "deletionGracePeriodSeconds"] {
        meta.remove(key);
    }
    meta.insert("uid".into(), Value::String(uuid::Uuid::new_v4().to_string()));
    meta.insert("creationTimestamp".into(), Value::String(meta::now_rfc3339()));
    meta.insert("generation".into(), Value::from(1));
    // generateName: a few attempts with fresh suffixes on a collision.
    for _ in 0..8 {
        let name = match &generate {
            Some(prefix) => format!("{prefix}{}", meta::random_suffix()),
            None => meta_str(&obj, "name").unwrap_or_default().to_string(),
        };
        if let Ok(m) = metadata_mut(&mut obj) {
            m.insert("name".into(), Value::String(name.clone()));
        }
        strategy::prepare(&scope, &name, None, &mut obj)?;
        validate(&obj, &scope, &name)?;
        let encoded = encode_marked(&obj)?;
        if dry_run {
            return Ok(Created { obj, stored: None, answer: None });
        }
        match store.create(&scope.key(&name), encoded.bytes.clone()).await {
            Ok(kv) => {
                let api_version = scope.rt.api_version(scope.version);
                let answer = remember_answer(&encoded, &obj, &kv, &scope, &api_version);
                return Ok(Created { obj, stored: Some((kv, api_version)), answer });
            }
            Err(StorageError::AlreadyExists { .. }) if generate.is_some() => continue,
            Err(e) => return Err(ApiError::from_storage(e, &scope.target(&name))),
        }
    }
    Err(ApiError::already_exists(&scope.target(generate.as_deref().unwrap_or_default())))
}

/// The stored value at `key` (a consistent read), or 404 about `target`.
async fn stored(store: &dyn Store, key: &str, target: &Target) -> Result<KeyValue, ApiError> {
    store.get(key).await.map_err(|e| ApiError::from_storage(e, target))?.ok_or_else(|| ApiError::not_found(target))
}

/// Reads one object (a consistent read from the store).
pub async fn get(store: &dyn Store, scope: Scope<'_>, name: &str) -> Result<Value, ApiError> {
    let kv = stored(store, &scope.key(name), &scope.target(name)).await?;
    decode(&kv, &scope.rt.api_version(scope.version))
}

/// Reads one object through the type's watch cache at `revision` (a
/// consistent read waits until the cache has seen the store's revision).
pub async fn get_cached(scope: Scope<'_>, name: &str, revision: storage::ReadRevision) -> Result<Value, ApiError> {
    let kv = cached(scope, name, revision).await?;
    decode(&kv, &scope.rt.api_version(scope.version))
}

/// The cached value of one object at `revision` (404 when there is none).
pub async fn cached(
    scope: Scope<'_>,
    name: &str,
    revision: storage::ReadRevision,
) -> Result<std::sync::Arc<KeyValue>, ApiError> {
    let kv = scope.rt.cache.get(&scope.key(name), revision).await;
    let kv = kv.map_err(|e| ApiError::from_storage(e, &scope.target(name)))?;
    kv.ok_or_else(|| ApiError::not_found(&scope.target(name)))
}

/// One object's JSON as GET answers it, encoded once per object version
/// (see [`crate::served::EncodedObjects`]).
pub async fn get_cached_bytes(
    scope: Scope<'_>,
    name: &str,
    revision: storage::ReadRevision,
) -> Result<Bytes, ApiError> {
    let kv = cached(scope, name, revision).await?;
    if let Some(bytes) = scope.rt.encoded.get_in(&kv.key, kv.mod_revision, &scope.rt.group, scope.version) {
        return Ok(bytes);
    }
    encode_served(scope.rt, &kv, &scope.rt.api_version(scope.version))
}

/// Decodes `kv`, encodes it as served in `api_version` and keeps the bytes
/// in the type's memo.
pub fn encode_served(rt: &ResourceType, kv: &KeyValue, api_version: &str) -> Result<Bytes, ApiError> {
    let obj = decode(kv, api_version)?;
    let bytes = Bytes::from(serde_json::to_vec(&obj).map_err(|e| ApiError::internal(e.to_string()))?);
    rt.encoded.put(&kv.key, kv.mod_revision, api_version, bytes.clone());
    Ok(bytes)
}

/// Replaces an object; `metadata.resourceVersion` must match the stored one.
pub async fn update(
    store: &dyn Store,
    scope: Scope<'_>,
    name: &str,
    mut obj: Value,
    dry_run: bool,
) -> Result<Value, ApiError> {
    let target = scope.target(name);
    check_type_fields(&mut obj, &scope)?;
    check_meta_types(&obj, &scope)?;
    let meta = metadata_mut(&mut obj)?;
    check_namespace(meta, &scope)?;
    match meta.get("name").and_then(Value::as_str) {
        Some(n) if n == name => {}
        None => {
            meta.insert("name".into(), Value::String(name.to_string()));
        }
        Some(n) => {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({n}) does not match the name on the URL ({name})"
            )))
        }
    }
    let expected: i64 = match meta.get("resourceVersion").and_then(Value::as_str) {
        Some(rv) => rv.parse().map_err(|_| ApiError::bad_request(format!("invalid resourceVersion {rv:?}")))?,
        None => {
            return Err(ApiError::invalid(
                &target,
                &scope.rt.kind,
                vec![Cause {
                    reason: "FieldValueInvalid",
                    message: "Invalid value: 0x0: must be specified for an update".into(),
                    field: "metadata.resourceVersion".into(),
                }],
            ));
        }
    };
    validate(&obj, &scope, name)?;
    let key = scope.key(name);
    let current = stored(store, &key, &target).await?;
    if current.mod_revision != expected {
        return Err(ApiError::conflict(
            &target,
            "the object has been modified; please apply your changes to the latest version and try again",
        ));
    }
    let mut old = read_stored(&current)?;
    convert::from_stored(&scope.rt.api_version(scope.version), &mut old);
    strategy::prepare(&scope, name, Some(&old), &mut obj)?;
    if meta_str(&old, "deletionTimestamp").is_some() {
        let finalizers = |o: &Value| -> Vec<Value> {
            meta_value(o, "finalizers").and_then(Value::as_array).cloned().unwrap_or_default()
        };
        let before = finalizers(&old);
        let added: Vec<Value> = finalizers(&obj).into_iter().filter(|f| !before.contains(f)).collect();
        if !added.is_empty() {
            return Err(ApiError::invalid(
                &target,
                &scope.rt.kind,
                vec![Cause {
                    reason: "FieldValueForbidden",
                    message: format!("Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers {}", Value::Array(added)),
                    field: "metadata.finalizers".into(),
                }],
            ));
        }
    }
    merge_server_fields(&mut obj, &old)?;
    let deleting = meta_str(&obj, "deletionTimestamp").is_some();
    let no_finalizers = !strategy::finalizers_pending(&scope, &obj);
    let marked = encode_marked(&obj)?;
    let encoded = marked.bytes.clone();
    if dry_run {
        return Ok(obj);
    }
    if deleting && no_finalizers {
        // The last finalizer is gone: the pending delete completes.
        let gone = store.delete(&key, Some(expected)).await.map_err(|e| ApiError::from_storage(e, &target))?;
        let mut last = gone.prev.clone();
        last.mod_revision = gone.revision;
        last.value = encoded;
        return decode(&last, &scope.rt.api_version(scope.version));
    }
    if encoded == current.value {
        // Nothing changed: no write, no event, the same resourceVersion (as kube-apiserver).
        return decode(&current, &scope.rt.api_version(scope.version));
    }
    let kv = store.update(&key, encoded, Some(expected)).await.map_err(|e| ApiError::from_storage(e, &target))?;
    let api_version = scope.rt.api_version(scope.version);
    remember_answer(&marked, &obj, &kv, &scope, &api_version);
    written(obj, &kv, &api_version)
}

/// Keeps the answer to a write, made from its stored bytes, where GETs,
/// lists and the write's own answer find it (see [`crate::served::EncodedObjects`]):
/// the object is not serialized a second time. The answer (as
/// `api_version`, the scope's), if made.
fn remember_answer(
    encoded: &Encoded,
    obj: &Value,
    kv: &KeyValue,
    scope: &Scope<'_>,
    api_version: &str,
) -> Option<Bytes> {
    let answer = encoded.answer(obj, api_version, kv.mod_revision)?;
    scope.rt.encoded.put(&kv.key, kv.mod_revision, api_version, answer.clone());
    Some(answer)
}

/// What a write answers: `obj`, just stored as `kv`, as [`decode`] would
/// read it back as `api_version`, without parsing the stored bytes again
/// (unless that version converts).
fn written(mut obj: Value, kv: &KeyValue, api_version: &str) -> Result<Value, ApiError> {
    if convert::converts(api_version) {
        return decode(kv, api_version);
    }
    let map = obj.as_object_mut().ok_or_else(|| ApiError::internal("a written object is not a JSON object"))?;
    if let Some(Value::Object(m)) = map.get_mut("metadata") {
        // As [`encode`] stored it (same removals, so the same key order).
        m.remove("resourceVersion");
        m.remove("selfLink");
    }
    set_served(map, api_version, kv.mod_revision);
    Ok(obj)
}

/// Keeps what the server owns (uid, creationTimestamp, deletionTimestamp)
/// and moves `generation` when anything outside metadata changed.
fn merge_server_fields(obj: &mut Value, old: &Value) -> Result<(), ApiError> {
    let old_meta = old.get("metadata").and_then(Value::as_object).cloned().unwrap_or_default();
    let generation = old_meta.get("generation").and_then(Value::as_i64).unwrap_or(1);
    let changed = spec_changed(obj, old);
    let meta = metadata_mut(obj)?;
    for key in ["uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds"] {
        match old_meta.get(key) {
            Some(v) => meta.insert(key.into(), v.clone()),
            None => meta.remove(key),
        };
    }
    meta.insert("generation".into(), Value::from(if changed { generation + 1 } else { generation }));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn meta_value_reads_what_pointer_reads() {
        let objects = [
            json!({"metadata": {"finalizers": ["a/b"], "name": "x"}}),
            json!({"metadata": {"name": "x"}}),
            json!({"metadata": "not an object"}),
            json!({"metadata": null}),
            json!({"spec": {"metadata": {"finalizers": ["a/b"]}}}),
            json!(["metadata"]),
            json!("metadata"),
        ];
        for obj in &objects {
            for field in ["finalizers", "name", "managedFields"] {
                assert_eq!(meta_value(obj, field), obj.pointer(&format!("/metadata/{field}")), "{obj} {field}");
            }
        }
    }

    /// What the answer was before ([`written`]): the object without the
    /// resourceVersion and selfLink it came with, then served at `revision`.
    fn serialized_with_revision(obj: &Value, revision: i64) -> Vec<u8> {
        let mut served = obj.clone();
        if let Some(Value::Object(m)) = served.get_mut("metadata") {
            m.remove("resourceVersion");
            m.remove("selfLink");
        }
        if let Some(map) = served.as_object_mut() {
            set_served(map, "prsn.io/v1", revision);
        }
        serde_json::to_vec(&served).expect("serializes")
    }

    #[test]
    fn a_write_answer_made_from_its_stored_bytes_is_the_serialized_object() {
        let objects = [
            json!({"apiVersion": "prsn.io/v1", "kind": "MysqlDb", "metadata": {"name": "a", "uid": "u"}, "size": "small"}),
            json!({"apiVersion": "prsn.io/v1", "metadata": {}, "kind": "MysqlDb"}),
            json!({"metadata": {"name": "b}\"{", "labels": {"x": "}"}, "managedFields": [{"f": {"g": {}}}]}, "apiVersion": "prsn.io/v1", "spec": {"metadata": {"k": 1.5}}}),
            json!({"apiVersion": "prsn.io/v1", "spec": "\"metadata\":{}", "metadata": {"name": "c\u{1F600}\n"}}),
            // An update carries the resourceVersion it read (and maybe a selfLink).
            json!({"apiVersion": "prsn.io/v1", "metadata": {"name": "d", "resourceVersion": "9", "selfLink": "/x", "uid": "u"}}),
        ];
        for obj in &objects {
            let encoded = encode_marked(obj).expect("encodes");
            let mut stored = obj.clone();
            if let Some(Value::Object(m)) = stored.get_mut("metadata") {
                m.remove("resourceVersion");
                m.remove("selfLink");
            }
            assert_eq!(&encoded.bytes[..], &serde_json::to_vec(&stored).expect("serializes")[..], "stored as before");
            let answer = encoded.answer(obj, "prsn.io/v1", 42).expect("an answer");
            assert_eq!(&answer[..], &serialized_with_revision(obj, 42)[..], "{obj}");
        }
    }

    #[test]
    fn no_answer_is_spliced_for_another_api_version_or_without_metadata() {
        let obj = json!({"apiVersion": "prsn.io/v2", "metadata": {"name": "a"}});
        assert!(encode_marked(&obj).expect("encodes").answer(&obj, "prsn.io/v1", 7).is_none());
        let bare = json!({"apiVersion": "prsn.io/v1", "metadata": "not an object"});
        assert!(encode_marked(&bare).expect("encodes").answer(&bare, "prsn.io/v1", 7).is_none());
    }
}
