//! PATCH: JSON merge patch (RFC 7386) and JSON patch (RFC 6902), applied to
//! the current object and written back conditionally. A patch that does not
//! pin `metadata.resourceVersion` is retried on a conflict with a fresh read,
//! as kube-apiserver does, so that racing writers never make it fail.
//! Strategic merge patch is refused with 415, as kube-apiserver refuses it for
//! custom resources (they have no patch strategy).

use json_patch::PatchOperation;
use serde_json::Value;

use crate::limits::{self, MAX_JSON_PATCH_OPERATIONS};
use crate::status::ApiError;

/// The media types a PATCH may use.
pub const ACCEPTED: &[&str] =
    &["application/json-patch+json", "application/merge-patch+json", "application/apply-patch+yaml"];

/// Server-side apply's media type.
pub const APPLY: &str = "application/apply-patch+yaml";

/// Parses an apply body: YAML (JSON is YAML too) holding one object, within
/// the bounds of [`crate::endpoints::yaml`]; also the paths of keys it gives twice.
pub fn parse_apply(body: &[u8]) -> Result<(Value, Vec<String>), ApiError> {
    // kubectl sends JSON: read it as JSON when it is (exact JSON semantics, faster).
    if body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{') {
        match serde_json::from_slice::<Value>(body) {
            Ok(value) => {
                limits::check_body(&value)?;
                return Ok((value, crate::registry::field_validation::duplicate_fields(body)));
            }
            Err(e) if e.to_string().starts_with("recursion limit exceeded") => return Err(limits::too_deep_body()),
            Err(_) => {} // YAML's flow style, perhaps
        }
    }
    let parsed = crate::endpoints::yaml::parse_body(body, "the apply body")?;
    if !parsed.value.is_object() {
        return Err(ApiError::bad_request("the apply body must be an object"));
    }
    Ok((parsed.value, parsed.duplicates))
}

/// A parsed patch.
pub enum Patch {
    /// RFC 7386.
    Merge(Value),
    /// RFC 6902, and the size of its body (which bounds the work it may cause).
    Json(json_patch::Patch, usize),
}

impl Patch {
    /// Parses `body` (of `body_len` bytes) as the patch its content type names.
    pub fn parse(content_type: &str, body: Value, body_len: usize) -> Result<Patch, ApiError> {
        match content_type {
            "application/merge-patch+json" => Ok(Patch::Merge(body)),
            "application/json-patch+json" => {
                let ops = body.as_array().map_or(0, Vec::len);
                if ops > MAX_JSON_PATCH_OPERATIONS {
                    return Err(ApiError::too_large_message(format!(
                        "The allowed operations in a JSON patch is {MAX_JSON_PATCH_OPERATIONS}, but found {ops}"
                    )));
                }
                serde_json::from_value(body)
                    .map(|p| Patch::Json(p, body_len))
                    .map_err(|e| ApiError::bad_request(format!("the JSON patch is not valid: {e}")))
            }
            other => Err(ApiError::unsupported_media_type(other, ACCEPTED)),
        }
    }

    /// True if the patch sets `metadata.resourceVersion`: then a conflict is the
    /// client's answer, not something to retry.
    pub fn pins_resource_version(&self) -> bool {
        match self {
            Patch::Merge(p) => p.pointer("/metadata/resourceVersion").is_some_and(|v| !v.is_null()),
            Patch::Json(p, _) => p.0.iter().any(|op| {
                let path = match op {
                    PatchOperation::Add(o) => &o.path,
                    PatchOperation::Replace(o) => &o.path,
                    PatchOperation::Copy(o) => &o.path,
                    PatchOperation::Move(o) => &o.path,
                    // A test of the resourceVersion is a precondition too.
                    PatchOperation::Test(o) => &o.path,
                    PatchOperation::Remove(_) => return false,
                };
                path.to_string().starts_with("/metadata/resourceVersion")
            }),
        }
    }

    /// Applies the patch to `target`. A JSON patch that fails (a failed test,
    /// a missing path) is 422; so is a result nested deeper than
    /// [`limits::MAX_DEPTH`]; a result larger than [`limits::MAX_OBJECT_BYTES`]
    /// is 413. On an error `target` is left half-patched: the caller drops it.
    pub fn apply(&self, target: &mut Value) -> Result<(), ApiError> {
        match self {
            Patch::Merge(p) => merge_patch(target, p),
            Patch::Json(p, body_len) => apply_json_patch(target, &p.0, *body_len)?,
        }
        limits::check_built(target)
    }
}

/// Applies JSON patch operations one at a time, checking before each one
/// what it would build: an operation may not nest the object deeper than
/// [`limits::MAX_DEPTH`] (`copy` can double the depth and size of an object
/// per operation), grow it past twice [`limits::MAX_OBJECT_BYTES`], or push
/// the work of copying, moving and shifting array elements past a budget
/// proportional to the object and the patch.
fn apply_json_patch(doc: &mut Value, ops: &[PatchOperation], body_len: usize) -> Result<(), ApiError> {
    let ceiling = 2 * limits::MAX_OBJECT_BYTES;
    let mut size = limits::measure(doc, usize::MAX, usize::MAX).map(|s| s.bytes).unwrap_or(usize::MAX);
    let budget = WORK_PER_BYTE * (size.saturating_add(body_len)) + WORK_FLOOR;
    let mut work = 0usize;
    let failed = |i: usize, why: String| {
        ApiError::unprocessable(format!("the JSON patch could not be applied: operation {i}: {why}"))
    };
    for (i, op) in ops.iter().enumerate() {
        // What the operation inserts: a value of the patch, or a part of the object.
        let (inserted, charged) = match op {
            PatchOperation::Add(o) => (Some(&o.value), false),
            PatchOperation::Replace(o) => (Some(&o.value), false),
            PatchOperation::Copy(o) => (doc.pointer(o.from.as_str()), true),
            PatchOperation::Move(o) => (doc.pointer(o.from.as_str()), true),
            PatchOperation::Remove(_) | PatchOperation::Test(_) => (None, false),
        };
        if let Some(value) = inserted {
            let room = limits::MAX_DEPTH.saturating_sub(op.path().count());
            let shape = limits::measure(value, room, ceiling).map_err(|e| match e {
                limits::Exceeded::Depth => {
                    failed(i, format!("the result would be nested deeper than {} levels", limits::MAX_DEPTH))
                }
                limits::Exceeded::Bytes => ApiError::too_large_object(limits::MAX_OBJECT_BYTES),
            })?;
            if charged {
                work = work.saturating_add(shape.bytes);
            }
            if !matches!(op, PatchOperation::Move(_)) {
                size = size.saturating_add(shape.bytes);
            }
            if size > ceiling {
                return Err(ApiError::too_large_object(limits::MAX_OBJECT_BYTES));
            }
        }
        // Inserting into or removing from the middle of an array shifts its elements.
        work = work.saturating_add(shifted_elements(doc, op));
        if work > budget {
            return Err(failed(
                i,
                "the patch does too much work: it copies, moves or shifts more than the object and the patch are large"
                    .into(),
            ));
        }
        json_patch::patch_unsafe(doc, std::slice::from_ref(op)).map_err(|e| failed(i, e.kind.to_string()))?;
    }
    Ok(())
}

/// Work allowed per byte of the object and the patch (copied bytes and shifted array elements).
const WORK_PER_BYTE: usize = 4;
/// Work allowed to any patch.
const WORK_FLOOR: usize = 1 << 20;

/// Elements an operation shifts: the length of the array it inserts into or removes from.
fn shifted_elements(doc: &Value, op: &PatchOperation) -> usize {
    let array_len = |path: &json_patch::jsonptr::Pointer| {
        path.parent().and_then(|p| doc.pointer(p.as_str())).and_then(Value::as_array).map_or(0, Vec::len)
    };
    match op {
        PatchOperation::Add(o) => array_len(&o.path),
        PatchOperation::Remove(o) => array_len(&o.path),
        PatchOperation::Copy(o) => array_len(&o.path),
        PatchOperation::Move(o) => array_len(&o.path) + array_len(&o.from),
        PatchOperation::Replace(_) | PatchOperation::Test(_) => 0,
    }
}

/// RFC 7386 JSON merge patch. Recursion follows the patch, whose depth the
/// body parser bounds.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        (t, p) => *t = p.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_patch_with_a_passing_and_a_failing_test() {
        let mut obj = json!({"spec": {"size": "small", "tags": ["a"]}});
        let ok = Patch::parse(
            "application/json-patch+json",
            json!([
                {"op": "test", "path": "/spec/size", "value": "small"},
                {"op": "replace", "path": "/spec/size", "value": "large"},
                {"op": "add", "path": "/spec/tags/-", "value": "b"}
            ]),
            0,
        )
        .unwrap();
        ok.apply(&mut obj).unwrap();
        assert_eq!(obj, json!({"spec": {"size": "large", "tags": ["a", "b"]}}));
        let failing =
            Patch::parse("application/json-patch+json", json!([{"op": "test", "path": "/spec/size", "value": "x"}]), 0)
                .unwrap();
        let before = obj.clone();
        assert_eq!(failing.apply(&mut obj).unwrap_err().code, 422);
        assert_eq!(obj, before, "a failed patch changes nothing");
    }

    #[test]
    fn strategic_merge_patch_is_refused() {
        let e = Patch::parse("application/strategic-merge-patch+json", json!({}), 0).err().unwrap();
        assert_eq!(e.code, 415);
        assert!(e.message.contains("application/json-patch+json"), "{}", e.message);
    }

    #[test]
    fn malformed_json_patch_is_a_bad_request() {
        let e = Patch::parse("application/json-patch+json", json!({"op": "add"}), 0).err().unwrap();
        assert_eq!(e.code, 400);
    }

    #[test]
    fn pinned_resource_versions() {
        let merge = Patch::parse("application/merge-patch+json", json!({"metadata": {"resourceVersion": "5"}}), 0);
        assert!(merge.unwrap().pins_resource_version());
        let json = Patch::parse(
            "application/json-patch+json",
            json!([{"op": "test", "path": "/metadata/resourceVersion", "value": "5"}]),
            0,
        );
        assert!(json.unwrap().pins_resource_version());
        let plain = Patch::parse("application/merge-patch+json", json!({"spec": {}}), 0);
        assert!(!plain.unwrap().pins_resource_version());
    }

    fn nested(levels: usize) -> Value {
        let mut v = json!("leaf");
        for _ in 0..levels {
            v = json!({ "a": v });
        }
        v
    }

    fn json_patch(ops: Value) -> Patch {
        let len = ops.to_string().len();
        Patch::parse("application/json-patch+json", ops, len).unwrap()
    }

    #[test]
    fn copies_that_double_the_depth_are_refused_before_they_run() {
        let mut obj = json!({"deep": nested(50)});
        let into_itself = format!("/deep{}", "/a".repeat(49));
        let ops: Vec<Value> = (0..6).map(|_| json!({"op": "copy", "from": "/deep", "path": into_itself})).collect();
        let e = json_patch(Value::Array(ops)).apply(&mut obj).unwrap_err();
        assert_eq!(e.code, 422, "{}", e.message);
        // The first copy reaches the bound exactly; the second would pass it.
        assert!(e.message.contains("operation 1") && e.message.contains("nested deeper"), "{}", e.message);
    }

    #[test]
    fn copies_that_double_the_size_stop_at_the_ceiling() {
        let mut obj = json!({"a": ["x".repeat(100_000)]});
        let ops: Vec<Value> = (0..100).map(|_| json!({"op": "copy", "from": "/a", "path": "/a/0"})).collect();
        let e = json_patch(Value::Array(ops)).apply(&mut obj).unwrap_err();
        // Refused within a few doublings: by the size ceiling or the work budget.
        assert!(e.code == 413 || e.message.contains("too much work"), "{}", e.message);
        assert!(obj.to_string().len() < 4 * limits::MAX_OBJECT_BYTES);
    }

    #[test]
    fn copy_and_remove_loops_run_out_of_work() {
        let mut obj = json!({"a": "x".repeat(100_000), "b": {}});
        let mut ops = Vec::new();
        for _ in 0..1000 {
            ops.push(json!({"op": "copy", "from": "/a", "path": "/b/c"}));
            ops.push(json!({"op": "remove", "path": "/b/c"}));
        }
        let e = json_patch(Value::Array(ops)).apply(&mut obj).unwrap_err();
        assert!(e.code == 422 || e.code == 413, "{}", e.message);
        // Inserting at the front of a long array, many times.
        let mut obj = json!({"a": vec![0; 200_000]});
        let ops: Vec<Value> = (0..5000).map(|_| json!({"op": "add", "path": "/a/0", "value": 1})).collect();
        let e = json_patch(Value::Array(ops)).apply(&mut obj).unwrap_err();
        assert!(e.message.contains("too much work"), "{}", e.message);
    }

    #[test]
    fn operation_count_and_merge_results_are_bounded() {
        let ops: Vec<Value> =
            (0..=MAX_JSON_PATCH_OPERATIONS).map(|_| json!({"op": "test", "path": "", "value": 1})).collect();
        let e = Patch::parse("application/json-patch+json", Value::Array(ops), 0).err().unwrap();
        assert_eq!(e.code, 413);
        let mut obj = json!({"a": 1});
        let fine = Patch::parse("application/merge-patch+json", json!({"b": nested(99)}), 0).unwrap();
        fine.apply(&mut obj).unwrap();
        let merge = Patch::parse("application/merge-patch+json", json!({"b": {"c": nested(99)}}), 0).unwrap();
        assert_eq!(merge.apply(&mut obj).unwrap_err().code, 422);
    }

    mod properties {
        use super::super::*;
        use proptest::prelude::*;
        use serde_json::json;

        /// JSON values up to a few levels deep.
        fn value() -> impl Strategy<Value = Value> {
            let leaf = prop_oneof![
                Just(Value::Null),
                any::<bool>().prop_map(Value::from),
                any::<i32>().prop_map(Value::from),
                "[a-z~/]{0,6}".prop_map(Value::from)
            ];
            leaf.prop_recursive(6, 48, 6, |inner| {
                prop_oneof![
                    proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                    proptest::collection::btree_map("[a-z~/0-9-]{0,4}", inner, 0..6)
                        .prop_map(|m| Value::Object(m.into_iter().collect())),
                ]
            })
        }

        fn pointer() -> impl Strategy<Value = String> {
            proptest::collection::vec(
                prop_oneof![
                    "[a-z0-9]{0,3}",
                    Just("-".to_string()),
                    Just("~0".into()),
                    Just("~1".into()),
                    Just("~2".into())
                ],
                0..6,
            )
            .prop_map(|tokens| tokens.iter().map(|t| format!("/{t}")).collect())
        }

        fn operation() -> impl Strategy<Value = Value> {
            (prop_oneof!["add", "remove", "replace", "move", "copy", "test", "nope"], pointer(), pointer(), value())
                .prop_map(|(op, path, from, value)| json!({"op": op, "path": path, "from": from, "value": value}))
        }

        proptest! {
            #[test]
            fn any_json_patch_applies_or_is_refused_and_stays_bounded(
                doc in value(),
                ops in proptest::collection::vec(operation(), 0..20),
                raw_path in "\\PC{0,20}",
            ) {
                let mut ops = ops;
                ops.push(json!({"op": "add", "path": raw_path, "value": 1}));
                let body = Value::Array(ops);
                let len = body.to_string().len();
                match Patch::parse("application/json-patch+json", body, len) {
                    Err(e) => prop_assert!(e.code == 400 || e.code == 413),
                    Ok(patch) => {
                        let mut target = json!({"metadata": {"name": "a"}, "spec": doc});
                        match patch.apply(&mut target) {
                            Ok(()) => prop_assert!(limits::measure(&target, limits::MAX_DEPTH, usize::MAX).is_ok()),
                            Err(e) => prop_assert!(e.code == 422 || e.code == 413, "{}", e.message),
                        }
                    }
                }
            }

            #[test]
            fn merge_patches_stay_bounded(doc in value(), patch in value()) {
                let mut target = json!({"spec": doc});
                let p = Patch::parse("application/merge-patch+json", json!({"spec": patch}), 0).unwrap();
                if p.apply(&mut target).is_ok() {
                    prop_assert!(limits::measure(&target, limits::MAX_DEPTH, usize::MAX).is_ok());
                }
            }
        }
    }
}
