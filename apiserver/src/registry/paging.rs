//! The opaque `continue` token of paged lists: the revision of the first
//! page and the key the next page starts at, as base64 of a small JSON
//! object. A token a client made up is a 400, never more.

use base64::Engine;
use serde_json::{json, Value};

use crate::status::ApiError;

/// The token for the page after `next_key` of a list read at `revision`.
pub fn encode_continue(revision: i64, next_key: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json!({"rv": revision, "start": next_key}).to_string())
}

/// The revision and start key of a token (400 for anything else).
pub fn decode_continue(token: &str) -> Result<(i64, String), ApiError> {
    let bad = || ApiError::bad_request("invalid continue token");
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(token).map_err(|_| bad())?;
    let v: Value = serde_json::from_slice(&raw).map_err(|_| bad())?;
    Ok((
        v.get("rv").and_then(Value::as_i64).filter(|rv| *rv > 0).ok_or_else(bad)?,
        v.get("start").and_then(Value::as_str).ok_or_else(bad)?.to_string(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn tokens_round_trip(rv in 1i64..i64::MAX, key in "\\PC{0,200}") {
            prop_assert_eq!(decode_continue(&encode_continue(rv, &key)).unwrap(), (rv, key));
        }

        #[test]
        fn made_up_tokens_are_a_400(token in "\\PC{0,300}") {
            if let Err(e) = decode_continue(&token) {
                prop_assert_eq!(e.code, 400);
            }
        }

        #[test]
        fn made_up_json_in_tokens_is_a_400(v in any::<(Option<i64>, Option<String>, bool)>()) {
            let (rv, start, extra) = v;
            let mut obj = serde_json::Map::new();
            if let Some(rv) = rv { obj.insert("rv".into(), json!(rv)); }
            if let Some(s) = &start { obj.insert("start".into(), json!(s)); }
            if extra { obj.insert("x".into(), json!([1, {"a": null}])); }
            let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Value::Object(obj).to_string());
            match decode_continue(&token) {
                Ok((r, s)) => prop_assert!(r > 0 && Some(r) == rv && Some(s) == start),
                Err(e) => prop_assert_eq!(e.code, 400),
            }
        }
    }
}
