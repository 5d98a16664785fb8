//! Bounds on what one request can make the server build or do. Every object
//! the server builds from client input (a parsed body, the result of a merge
//! patch, of each JSON patch operation, of an apply) is measured here before
//! anything recurses over it, and every stored value passes [`check_stored`]
//! first, so that the store never holds what the server cannot read back.
//!
//! The measurements walk values with an explicit stack: they are safe on
//! values of any depth, and stop as soon as a bound is passed.

use serde_json::Value;

use crate::status::ApiError;

/// Largest request body (as kube-apiserver's 3 MiB).
pub const MAX_BODY: usize = 3 * 1024 * 1024;

/// Deepest nesting of objects and arrays in an object a client makes the
/// server build (a body, a patched or applied object).
pub const MAX_DEPTH: usize = 100;

/// Deepest nesting of a stored object, metadata the server adds
/// (managedFields) included. The reader (serde_json) refuses more than 128.
pub const MAX_STORED_DEPTH: usize = 120;

/// Largest stored object, serialized.
pub const MAX_OBJECT_BYTES: usize = 3 * 1024 * 1024;

/// Most operations in one JSON patch, as kube-apiserver.
pub const MAX_JSON_PATCH_OPERATIONS: usize = 10_000;

/// The size and nesting of a value.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Shape {
    /// Nesting of objects and arrays (a scalar is 0, `{}` is 1).
    pub depth: usize,
    /// About the bytes of its JSON text (exact but for floats, counted as 24).
    pub bytes: usize,
    /// Values in it, itself included.
    pub nodes: usize,
}

/// Why a measurement stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exceeded {
    /// Nested deeper than allowed.
    Depth,
    /// Larger than allowed.
    Bytes,
}

/// Measures `v`, stopping at the first bound it passes.
pub fn measure(v: &Value, max_depth: usize, max_bytes: usize) -> Result<Shape, Exceeded> {
    let mut shape = Shape::default();
    // (value, depth of its container + 1) pairs still to visit.
    let mut stack: Vec<(&Value, usize)> = vec![(v, 0)];
    while let Some((v, depth)) = stack.pop() {
        shape.nodes += 1;
        shape.bytes += match v {
            Value::Null => 4,
            Value::Bool(b) => 4 + usize::from(!*b),
            Value::Number(n) => number_len(n),
            Value::String(s) => string_len(s),
            Value::Array(a) => {
                let depth = depth + 1;
                shape.depth = shape.depth.max(depth);
                if depth > max_depth {
                    return Err(Exceeded::Depth);
                }
                stack.extend(a.iter().map(|c| (c, depth)));
                2 + a.len().saturating_sub(1)
            }
            Value::Object(m) => {
                let depth = depth + 1;
                shape.depth = shape.depth.max(depth);
                if depth > max_depth {
                    return Err(Exceeded::Depth);
                }
                let mut keys = 0;
                for (k, c) in m {
                    keys += string_len(k) + 1;
                    stack.push((c, depth));
                }
                2 + keys + m.len().saturating_sub(1)
            }
        };
        if shape.bytes > max_bytes {
            return Err(Exceeded::Bytes);
        }
    }
    Ok(shape)
}

/// True when `v` nests objects and arrays deeper than `max_depth`: what
/// [`measure`] says of depth, without its counting of bytes (the checks that
/// bound depth alone run on every write).
pub fn too_deep_for(v: &Value, max_depth: usize) -> bool {
    let mut stack: Vec<(&Value, usize)> = vec![(v, 0)];
    while let Some((v, depth)) = stack.pop() {
        let children: &mut dyn Iterator<Item = &Value> = match v {
            Value::Array(a) => &mut a.iter(),
            Value::Object(m) => &mut m.values(),
            _ => continue,
        };
        let depth = depth + 1;
        if depth > max_depth {
            return true;
        }
        stack.extend(children.filter(|c| c.is_array() || c.is_object()).map(|c| (c, depth)));
    }
    false
}

fn number_len(n: &serde_json::Number) -> usize {
    let digits = |mut x: u64| {
        let mut d = 1;
        while x >= 10 {
            x /= 10;
            d += 1;
        }
        d
    };
    match (n.as_u64(), n.as_i64()) {
        (Some(u), _) => digits(u),
        (None, Some(i)) => 1 + digits(i.unsigned_abs()),
        _ => 24,
    }
}

/// The length of a string as JSON text, quotes and escapes included.
fn string_len(s: &str) -> usize {
    2 + s
        .bytes()
        .map(|b| match b {
            b'"' | b'\\' | b'\n' | b'\r' | b'\t' | 0x08 | 0x0c => 2,
            0..=0x1f => 6,
            _ => 1,
        })
        .sum::<usize>()
}

/// Parses a JSON request body: 400 when it is not JSON or is nested deeper
/// than [`MAX_DEPTH`] (serde_json itself stops at 128 while parsing).
pub fn parse_body(bytes: &[u8]) -> Result<Value, ApiError> {
    let value: Value = serde_json::from_slice(bytes).map_err(|e| match e.to_string() {
        m if m.starts_with("recursion limit exceeded") => too_deep_body(),
        m => ApiError::bad_request(format!("the request body is not valid JSON: {m}")),
    })?;
    check_body(&value)?;
    Ok(value)
}

/// Checks a request body's value: 400 when nested deeper than [`MAX_DEPTH`].
pub fn check_body(v: &Value) -> Result<(), ApiError> {
    match too_deep_for(v, MAX_DEPTH) {
        true => Err(too_deep_body()),
        false => Ok(()),
    }
}

/// The 400 of a body nested deeper than [`MAX_DEPTH`].
pub fn too_deep_body() -> ApiError {
    ApiError::bad_request(too_deep("the request body"))
}

/// Checks an object the server built from client input (a patch result):
/// 422 when nested deeper than [`MAX_DEPTH`] or 413 when larger than
/// [`MAX_OBJECT_BYTES`]. `metadata.managedFields`, which the server writes
/// (a little deeper than the fields it records), counts for size only.
pub fn check_built(v: &Value) -> Result<(), ApiError> {
    let exceeded = |e: Exceeded| match e {
        Exceeded::Depth => ApiError::unprocessable(too_deep("the resulting object")),
        Exceeded::Bytes => ApiError::too_large_object(MAX_OBJECT_BYTES),
    };
    let managed = crate::registry::meta_value(v, "managedFields");
    let Some(managed) = managed else { return measure(v, MAX_DEPTH, MAX_OBJECT_BYTES).map(|_| ()).map_err(exceeded) };
    let size = measure(managed, usize::MAX, MAX_OBJECT_BYTES).map_err(exceeded)?.bytes;
    // The object without its managedFields, measured part by part.
    let Value::Object(top) = v else { return Ok(()) };
    let mut total = size;
    for (k, child) in top {
        let parts: Vec<&Value> = match (k.as_str(), child) {
            ("metadata", Value::Object(meta)) => {
                meta.iter().filter(|(mk, _)| mk.as_str() != "managedFields").map(|(_, mv)| mv).collect()
            }
            _ => vec![child],
        };
        let room = if k == "metadata" { MAX_DEPTH - 2 } else { MAX_DEPTH - 1 };
        for p in parts {
            total += measure(p, room, MAX_OBJECT_BYTES).map_err(exceeded)?.bytes;
            if total > MAX_OBJECT_BYTES {
                return Err(exceeded(Exceeded::Bytes));
            }
        }
    }
    Ok(())
}

/// Checks an object about to be stored, as JSON text: it must read back
/// (nesting at most [`MAX_STORED_DEPTH`]) and be at most [`MAX_OBJECT_BYTES`].
pub fn check_stored(v: &Value, encoded_len: usize) -> Result<(), ApiError> {
    if encoded_len > MAX_OBJECT_BYTES {
        return Err(ApiError::too_large_object(MAX_OBJECT_BYTES));
    }
    match too_deep_for(v, MAX_STORED_DEPTH) {
        true => Err(ApiError::unprocessable(too_deep("the object to store"))),
        false => Ok(()),
    }
}

fn too_deep(what: &str) -> String {
    format!("{what} is nested too deeply: at most {MAX_DEPTH} levels of objects and arrays are allowed")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn nested(levels: usize) -> Value {
        let mut v = json!("leaf");
        for _ in 0..levels {
            v = json!({ "a": v });
        }
        v
    }

    #[test]
    fn measures_depth_and_exact_size() {
        for v in [json!({"a": [1, -22, true, null, "x\"\n\u{1}"], "b": {}}), json!([]), json!("é"), json!(12345)] {
            let s = measure(&v, 10, usize::MAX).unwrap();
            assert_eq!(s.bytes, v.to_string().len(), "{v}");
        }
        assert_eq!(measure(&json!({"a": [[1]]}), 10, usize::MAX).unwrap().depth, 3);
        assert_eq!(measure(&json!(1), 10, usize::MAX).unwrap().depth, 0);
    }

    #[test]
    fn the_depth_check_agrees_with_the_measure() {
        let values = [
            json!(1),
            json!({}),
            json!([[], {"a": [1, {"b": {}}]}, "x"]),
            json!({"a": {"b": [{"c": [[]]}]}, "z": [1, 2]}),
            nested(7),
        ];
        for v in values {
            let depth = measure(&v, usize::MAX, usize::MAX).unwrap().depth;
            for max in 0..=depth + 1 {
                assert_eq!(too_deep_for(&v, max), depth > max, "{v} within {max}");
            }
        }
    }

    #[test]
    fn stops_at_the_first_bound_without_recursing() {
        // Deep enough to overflow a recursive walk; built and dropped by hand.
        let mut v = Value::Null;
        for _ in 0..200_000 {
            v = Value::Array(vec![v]);
        }
        assert_eq!(measure(&v, MAX_DEPTH, usize::MAX), Err(Exceeded::Depth));
        assert!(too_deep_for(&v, MAX_DEPTH));
        assert_eq!(measure(&json!({"a": "x".repeat(100)}), 10, 50), Err(Exceeded::Bytes));
        // Drop without recursing.
        while let Value::Array(mut a) = v {
            v = a.pop().unwrap_or(Value::Null);
        }
    }

    #[test]
    fn bodies_built_objects_and_stored_objects() {
        assert!(check_body(&nested(MAX_DEPTH)).is_ok());
        assert_eq!(check_body(&nested(MAX_DEPTH + 1)).unwrap_err().code, 400);
        assert_eq!(check_built(&nested(MAX_DEPTH + 1)).unwrap_err().code, 422);
        let big = json!({"a": "x".repeat(MAX_OBJECT_BYTES)});
        assert_eq!(check_built(&big).unwrap_err().code, 413);
        // managedFields may be deeper than the fields they record.
        let managed =
            json!({"metadata": {"managedFields": [{"fieldsV1": nested(MAX_DEPTH)}]}, "spec": nested(MAX_DEPTH - 1)});
        assert!(check_built(&managed).is_ok());
        let deeper = json!({"metadata": {"managedFields": []}, "spec": nested(MAX_DEPTH)});
        assert_eq!(check_built(&deeper).unwrap_err().code, 422);
        assert!(check_stored(&nested(MAX_STORED_DEPTH), 10).is_ok());
        assert_eq!(check_stored(&nested(MAX_STORED_DEPTH + 1), 10).unwrap_err().code, 422);
        assert_eq!(check_stored(&json!({}), MAX_OBJECT_BYTES + 1).unwrap_err().code, 413);
    }

    mod properties {
        use super::super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn any_body_parses_or_is_a_400(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
                if let Err(e) = parse_body(&bytes) {
                    prop_assert_eq!(e.code, 400);
                }
            }

            #[test]
            fn nesting_is_refused_exactly_past_the_bound(levels in 90usize..140, arrays in any::<bool>()) {
                let text = if arrays {
                    format!("{}1{}", "[".repeat(levels), "]".repeat(levels))
                } else {
                    format!("{}1{}", "{\"a\":".repeat(levels), "}".repeat(levels))
                };
                prop_assert_eq!(parse_body(text.as_bytes()).is_ok(), levels <= MAX_DEPTH);
            }

            #[test]
            fn measured_size_is_the_json_length(s in "\\PC{0,50}", n in any::<i64>(), u in any::<u64>(), b in any::<bool>()) {
                let v = serde_json::json!({"s": s, "n": n, "u": u, "b": b, "a": [null, {}, []]});
                prop_assert_eq!(measure(&v, 10, usize::MAX).unwrap().bytes, v.to_string().len());
            }
        }
    }
}
