//! Label selectors (full syntax: `=`, `==`, `!=`, `in`, `notin`, exists,
//! `!key`) and field selectors (`metadata.name`, `metadata.namespace`).

use serde_json::Value;

use crate::registry::meta;
use crate::status::ApiError;

#[derive(Clone, Debug, PartialEq, Eq)]
enum Op {
    Eq(String),
    NotEq(String),
    In(Vec<String>),
    NotIn(Vec<String>),
    Exists,
    NotExists,
}

/// A parsed label selector; empty matches everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LabelSelector(Vec<(String, Op)>);

/// Splits on commas outside parentheses.
fn split_top(s: &str) -> Vec<&str> {
    let (mut depth, mut start, mut out) = (0, 0, Vec::new());
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

fn bad(s: &str, why: &str) -> ApiError {
    ApiError::bad_request(format!("unable to parse requirement: {s:?}: {why}"))
}

fn key(s: &str, whole: &str) -> Result<String, ApiError> {
    let k = s.trim();
    if meta::is_qualified_name(k) {
        Ok(k.to_string())
    } else {
        Err(bad(whole, "invalid label key"))
    }
}

fn value(s: &str, whole: &str) -> Result<String, ApiError> {
    let v = s.trim();
    if meta::is_label_value(v) {
        Ok(v.to_string())
    } else {
        Err(bad(whole, "invalid label value"))
    }
}

fn set(s: &str, whole: &str) -> Result<Vec<String>, ApiError> {
    let inner = s
        .trim()
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .ok_or_else(|| bad(whole, "expected a set in parentheses"))?;
    inner.split(',').map(|v| value(v, whole)).collect()
}

impl LabelSelector {
    /// Parses `labelSelector`.
    pub fn parse(s: &str) -> Result<Self, ApiError> {
        let mut reqs = Vec::new();
        for part in split_top(s).into_iter().map(str::trim).filter(|p| !p.is_empty()) {
            let req = if let Some(k) = part.strip_prefix('!') {
                (key(k, part)?, Op::NotExists)
            } else if let Some((k, v)) = part.split_once("!=") {
                (key(k, part)?, Op::NotEq(value(v, part)?))
            } else if let Some((k, v)) = part.split_once("==") {
                (key(k, part)?, Op::Eq(value(v, part)?))
            } else if let Some((k, v)) = part.split_once('=') {
                (key(k, part)?, Op::Eq(value(v, part)?))
            } else if let Some((k, v)) = part.split_once(" notin ") {
                (key(k, part)?, Op::NotIn(set(v, part)?))
            } else if let Some((k, v)) = part.split_once(" in ") {
                (key(k, part)?, Op::In(set(v, part)?))
            } else {
                (key(part, part)?, Op::Exists)
            };
            reqs.push(req);
        }
        Ok(LabelSelector(reqs))
    }

    /// True when it selects everything.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether an object's labels match.
    pub fn matches(&self, obj: &Value) -> bool {
        let labels = obj.get("metadata").and_then(|m| m.get("labels"));
        let get = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
        self.0.iter().all(|(k, op)| match op {
            Op::Eq(v) => get(k) == Some(v.as_str()),
            Op::NotEq(v) => get(k) != Some(v.as_str()),
            Op::In(vs) => get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
            Op::NotIn(vs) => get(k).is_none_or(|x| vs.iter().all(|v| v != x)),
            Op::Exists => get(k).is_some(),
            Op::NotExists => get(k).is_none(),
        })
    }
}

/// A parsed field selector: `metadata.name`, `metadata.namespace`, and the
/// field labels of a built-in type (e.g. an Event's `involvedObject.name`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldSelector(Vec<(String, bool, String)>);

impl FieldSelector {
    /// Parses `fieldSelector` on the metadata fields; other fields are a 400, as for custom resources.
    pub fn parse(s: &str) -> Result<Self, ApiError> {
        Self::parse_for(s, &[])
    }

    /// Parses `fieldSelector` for a type that also has the field labels `labels`.
    pub fn parse_for(s: &str, labels: &[&str]) -> Result<Self, ApiError> {
        let mut reqs = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (field, equal, v) = if let Some((f, v)) = part.split_once("!=") {
                (f, false, v)
            } else if let Some((f, v)) = part.split_once("==") {
                (f, true, v)
            } else if let Some((f, v)) = part.split_once('=') {
                (f, true, v)
            } else {
                return Err(ApiError::bad_request(format!(
                    "invalid field selector {part:?}: expected field=value or field!=value"
                )));
            };
            let field = field.trim();
            if field != "metadata.name" && field != "metadata.namespace" && !labels.contains(&field) {
                return Err(ApiError::bad_request(format!("field label not supported: {field}")));
            }
            reqs.push((field.to_string(), equal, v.trim().to_string()));
        }
        Ok(FieldSelector(reqs))
    }

    /// True when it selects everything.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The name an `metadata.name=` requirement pins, if any.
    pub fn name(&self) -> Option<&str> {
        self.0.iter().find(|(f, eq, _)| f == "metadata.name" && *eq).map(|(_, _, v)| v.as_str())
    }

    /// Whether an object matches (a missing field is the empty string; `source` is `source.component`).
    pub fn matches(&self, obj: &Value) -> bool {
        self.0.iter().all(|(f, eq, v)| {
            let mut at = obj;
            for segment in f.split('.') {
                at = at.get(segment).unwrap_or(&Value::Null);
            }
            if f == "source" {
                at = at.get("component").unwrap_or(&Value::Null);
            }
            let same = match at {
                Value::String(s) => s == v,
                Value::Null => v.is_empty(),
                other => v.as_str() == other.to_string().as_str(),
            };
            same == *eq
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn label_selectors_have_the_full_syntax() {
        let o = json!({"metadata": {"name": "a", "namespace": "ns", "labels": {"app": "db", "tier": "back"}}});
        for (sel, want) in [
            ("", true),
            ("app=db", true),
            ("app==db", true),
            ("app!=db", false),
            ("app in (db, web)", true),
            ("app notin (db)", false),
            ("tier", true),
            ("!tier", false),
            ("!missing,app=db", true),
            ("app=db,tier=front", false),
            ("missing notin (x)", true),
        ] {
            assert_eq!(LabelSelector::parse(sel).unwrap().matches(&o), want, "{sel}");
        }
        assert!(LabelSelector::parse("app in db").is_err());
        assert!(LabelSelector::parse("bad key=1").is_err());
    }

    #[test]
    fn field_selectors_cover_name_and_namespace() {
        let o = json!({"metadata": {"name": "a", "namespace": "ns"}});
        assert!(FieldSelector::parse("metadata.name=a").unwrap().matches(&o));
        assert!(!FieldSelector::parse("metadata.namespace!=ns").unwrap().matches(&o));
        assert_eq!(FieldSelector::parse("metadata.name=a").unwrap().name(), Some("a"));
        assert!(FieldSelector::parse("spec.x=1").is_err());
    }

    mod properties {
        use super::super::*;
        use proptest::prelude::*;
        use serde_json::json;

        proptest! {
            #[test]
            fn any_selector_parses_or_is_a_400(s in "\\PC{0,120}") {
                if let Err(e) = LabelSelector::parse(&s) {
                    prop_assert_eq!(e.code, 400);
                }
                if let Err(e) = FieldSelector::parse(&s) {
                    prop_assert_eq!(e.code, 400);
                }
            }

            #[test]
            fn selector_syntax_soup_never_panics(s in "[a-z=!(), ]{0,60}|[a-z]+ (in|notin) \\([a-z, ]*\\)?") {
                let _ = LabelSelector::parse(&s).map(|sel| sel.matches(&json!({"metadata": {"labels": {"a": "b"}}})));
            }

            #[test]
            fn equality_selectors_select_what_they_say(
                labels in proptest::collection::btree_map("[a-z][a-z0-9]{0,8}", "[a-z0-9]{0,8}", 0..5),
                extra in "[a-z][a-z0-9]{0,8}",
            ) {
                let obj = json!({"metadata": {"name": "n", "namespace": "ns", "labels": labels}});
                let all: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
                prop_assert!(LabelSelector::parse(&all.join(",")).unwrap().matches(&obj));
                let exists = LabelSelector::parse(&extra).unwrap().matches(&obj);
                prop_assert_eq!(exists, labels.contains_key(&extra));
                let absent = LabelSelector::parse(&format!("!{extra}")).unwrap().matches(&obj);
                prop_assert_eq!(absent, !labels.contains_key(&extra));
                prop_assert!(FieldSelector::parse("metadata.name=n,metadata.namespace!=x").unwrap().matches(&obj));
            }
        }
    }
}
