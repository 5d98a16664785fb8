//! PATCH: JSON merge patch (RFC 7386) and JSON patch (RFC 6902), applied to
//! the current object and written back conditionally. A patch that does not
//! pin `metadata.resourceVersion` is retried on a conflict with a fresh read,
//! as kube-apiserver does, so that racing writers never make it fail.
//! Strategic merge patch is refused with 415, as kube-apiserver refuses it for
//! custom resources (they have no patch strategy).

use serde_json::Value;

use crate::status::ApiError;

/// The media types a PATCH may use.
pub const ACCEPTED: &[&str] =
    &["application/json-patch+json", "application/merge-patch+json", "application/apply-patch+yaml"];

/// Server-side apply's media type.
pub const APPLY: &str = "application/apply-patch+yaml";

/// Parses an apply body: YAML (JSON is YAML too) holding one object.
pub fn parse_apply(body: &[u8]) -> Result<serde_json::Value, ApiError> {
    let value: Value = serde_norway::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("the apply body is not valid YAML: {e}")))?;
    if !value.is_object() {
        return Err(ApiError::bad_request("the apply body must be an object"));
    }
    Ok(value)
}

/// A parsed patch.
pub enum Patch {
    /// RFC 7386.
    Merge(Value),
    /// RFC 6902.
    Json(json_patch::Patch),
}

impl Patch {
    /// Parses `body` as the patch its content type names.
    pub fn parse(content_type: &str, body: Value) -> Result<Patch, ApiError> {
        match content_type {
            "application/merge-patch+json" => Ok(Patch::Merge(body)),
            "application/json-patch+json" => serde_json::from_value(body)
                .map(Patch::Json)
                .map_err(|e| ApiError::bad_request(format!("the JSON patch is not valid: {e}"))),
            other => Err(ApiError::unsupported_media_type(other, ACCEPTED)),
        }
    }

    /// True if the patch sets `metadata.resourceVersion`: then a conflict is the
    /// client's answer, not something to retry.
    pub fn pins_resource_version(&self) -> bool {
        match self {
            Patch::Merge(p) => p.pointer("/metadata/resourceVersion").is_some_and(|v| !v.is_null()),
            Patch::Json(p) => p.0.iter().any(|op| {
                let path = match op {
                    json_patch::PatchOperation::Add(o) => &o.path,
                    json_patch::PatchOperation::Replace(o) => &o.path,
                    json_patch::PatchOperation::Copy(o) => &o.path,
                    json_patch::PatchOperation::Move(o) => &o.path,
                    // A test of the resourceVersion is a precondition too.
                    json_patch::PatchOperation::Test(o) => &o.path,
                    json_patch::PatchOperation::Remove(_) => return false,
                };
                path.to_string().starts_with("/metadata/resourceVersion")
            }),
        }
    }

    /// Applies the patch to `target`. A JSON patch that fails (a failed test,
    /// a missing path) is 422 and changes nothing.
    pub fn apply(&self, target: &mut Value) -> Result<(), ApiError> {
        match self {
            Patch::Merge(p) => {
                merge_patch(target, p);
                Ok(())
            }
            Patch::Json(p) => json_patch::patch(target, p)
                .map_err(|e| ApiError::unprocessable(format!("the JSON patch could not be applied: {e}"))),
        }
    }
}

/// RFC 7386 JSON merge patch.
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
        )
        .unwrap();
        ok.apply(&mut obj).unwrap();
        assert_eq!(obj, json!({"spec": {"size": "large", "tags": ["a", "b"]}}));
        let failing =
            Patch::parse("application/json-patch+json", json!([{"op": "test", "path": "/spec/size", "value": "x"}]))
                .unwrap();
        let before = obj.clone();
        assert_eq!(failing.apply(&mut obj).unwrap_err().code, 422);
        assert_eq!(obj, before, "a failed patch changes nothing");
    }

    #[test]
    fn strategic_merge_patch_is_refused() {
        let e = Patch::parse("application/strategic-merge-patch+json", json!({})).err().unwrap();
        assert_eq!(e.code, 415);
        assert!(e.message.contains("application/json-patch+json"), "{}", e.message);
    }

    #[test]
    fn malformed_json_patch_is_a_bad_request() {
        let e = Patch::parse("application/json-patch+json", json!({"op": "add"})).err().unwrap();
        assert_eq!(e.code, 400);
    }

    #[test]
    fn pinned_resource_versions() {
        let merge = Patch::parse("application/merge-patch+json", json!({"metadata": {"resourceVersion": "5"}}));
        assert!(merge.unwrap().pins_resource_version());
        let json = Patch::parse(
            "application/json-patch+json",
            json!([{"op": "test", "path": "/metadata/resourceVersion", "value": "5"}]),
        );
        assert!(json.unwrap().pins_resource_version());
        let plain = Patch::parse("application/merge-patch+json", json!({"spec": {}}));
        assert!(!plain.unwrap().pins_resource_version());
    }
}
