//! YAML request bodies (server-side apply; creates, updates and DeleteOptions
//! sent as `application/yaml`) to JSON values, in one linear pass over the
//! parser's events (`yaml-rust2`, a pure-Rust YAML 1.2 parser): nesting is
//! refused at [`limits::MAX_DEPTH`] while parsing, and aliases may not expand
//! the document beyond a small multiple of its size, so that neither deep
//! nesting nor an alias bomb costs more than the body.
//! Scalars resolve as YAML 1.2's core schema (as `serde_yaml` did before);
//! keys given twice are reported for field validation (the last one wins).

use std::collections::HashMap;

use serde_json::{Map, Number, Value};
use yaml_rust2::parser::{Event, Parser, Tag};
use yaml_rust2::scanner::TScalarStyle;

use crate::limits;

/// Why a YAML body could not be turned into JSON.
#[derive(Debug, thiserror::Error)]
pub enum YamlError {
    /// Not YAML.
    #[error("{0}")]
    Syntax(String),
    /// Nested deeper than allowed.
    #[error(
        "the document is nested too deeply: at most {} levels of objects and arrays are allowed",
        limits::MAX_DEPTH
    )]
    TooDeep,
    /// Aliases expand it beyond the bound.
    #[error("the document's aliases expand it to more than {0} bytes")]
    TooLarge(usize),
    /// Something JSON cannot hold.
    #[error("{0}")]
    Unsupported(String),
}

/// The JSON value of a YAML document, and the paths of keys given twice.
#[derive(Debug)]
pub struct Parsed {
    /// The document.
    pub value: Value,
    /// Dotted paths of mapping keys given more than once (at most [`MAX_REPORTED`]).
    pub duplicates: Vec<String>,
}

/// Most duplicate keys reported.
pub const MAX_REPORTED: usize = 100;

/// Bytes a document may expand to through aliases, per byte of its text.
const EXPANSION_PER_BYTE: usize = 4;

enum Container {
    Seq(Vec<Value>),
    /// A mapping and the key waiting for its value.
    Map(Map<String, Value>, Option<String>),
}

struct Frame {
    container: Container,
    /// The anchor to record when it ends (0: none).
    anchor: usize,
    /// Where it sits in its parent, for messages.
    at: String,
}

/// A YAML request body (the `what` of messages: "the apply body") as JSON:
/// a 400 for text that is not UTF-8 or not YAML, or that breaks the bounds.
pub fn parse_body(body: &[u8], what: &str) -> Result<Parsed, crate::status::ApiError> {
    use crate::status::ApiError;
    let text = std::str::from_utf8(body).map_err(|_| ApiError::bad_request(format!("{what} is not UTF-8 text")))?;
    to_json(text).map_err(|e| ApiError::bad_request(format!("{what} is not valid YAML: {e}")))
}

/// Parses one YAML document into JSON (an empty text is `null`).
pub fn to_json(text: &str) -> Result<Parsed, YamlError> {
    let budget = EXPANSION_PER_BYTE.saturating_mul(text.len()).max(64 * 1024);
    let mut b = Builder { stack: Vec::new(), anchors: HashMap::new(), done: None, duplicates: Vec::new(), budget };
    let mut parser = Parser::new_from_str(text);
    let mut documents = 0;
    loop {
        let (event, mark) = parser.next_token().map_err(|e| YamlError::Syntax(e.to_string()))?;
        let at = |e: YamlError| match e {
            YamlError::Syntax(m) => YamlError::Syntax(format!("{m} at line {} column {}", mark.line(), mark.col() + 1)),
            e => e,
        };
        match event {
            Event::StreamEnd => break,
            Event::StreamStart | Event::DocumentEnd | Event::Nothing => {}
            Event::DocumentStart => {
                documents += 1;
                if documents > 1 {
                    return Err(YamlError::Unsupported("the body must hold one YAML document, not several".into()));
                }
            }
            Event::SequenceStart(anchor, _) => b.open(Container::Seq(Vec::new()), anchor).map_err(at)?,
            Event::MappingStart(anchor, _) => b.open(Container::Map(Map::new(), None), anchor).map_err(at)?,
            Event::SequenceEnd | Event::MappingEnd => b.close().map_err(at)?,
            Event::Scalar(text, style, anchor, tag) => {
                let value = scalar(text, style, tag.as_ref()).map_err(at)?;
                let bytes = limits::measure(&value, 0, usize::MAX).map_or(0, |s| s.bytes);
                b.charge(bytes)?;
                if anchor > 0 {
                    b.anchors.insert(anchor, (value.clone(), 0, bytes));
                }
                b.add(value).map_err(at)?;
            }
            Event::Alias(id) => {
                let (value, depth, bytes) =
                    b.anchors.get(&id).cloned().ok_or_else(|| YamlError::Syntax("unknown alias".into()))?;
                if b.stack.len() + depth > limits::MAX_DEPTH {
                    return Err(YamlError::TooDeep);
                }
                b.charge(bytes)?;
                b.add(value).map_err(at)?;
            }
        }
    }
    Ok(Parsed { value: b.done.unwrap_or(Value::Null), duplicates: b.duplicates })
}

struct Builder {
    stack: Vec<Frame>,
    /// Anchored values with their depth and size.
    anchors: HashMap<usize, (Value, usize, usize)>,
    done: Option<Value>,
    duplicates: Vec<String>,
    /// Bytes the document may still expand to.
    budget: usize,
}

impl Builder {
    fn charge(&mut self, bytes: usize) -> Result<(), YamlError> {
        self.budget = self.budget.checked_sub(bytes).ok_or(YamlError::TooLarge(self.budget))?;
        Ok(())
    }

    fn open(&mut self, container: Container, anchor: usize) -> Result<(), YamlError> {
        if self.stack.len() >= limits::MAX_DEPTH {
            return Err(YamlError::TooDeep);
        }
        let at = match self.stack.last() {
            Some(Frame { container: Container::Map(_, None), .. }) => {
                return Err(YamlError::Unsupported("a mapping key must be a string, not a mapping or a list".into()))
            }
            Some(Frame { container: Container::Map(_, Some(k)), .. }) => k.clone(),
            Some(Frame { container: Container::Seq(items), .. }) => format!("[{}]", items.len()),
            None => String::new(),
        };
        self.stack.push(Frame { container, anchor, at });
        Ok(())
    }

    fn close(&mut self) -> Result<(), YamlError> {
        let frame = self.stack.pop().ok_or_else(|| YamlError::Syntax("unbalanced document".into()))?;
        let value = match frame.container {
            Container::Seq(items) => Value::Array(items),
            Container::Map(map, None) => Value::Object(map),
            Container::Map(_, Some(k)) => return Err(YamlError::Syntax(format!("the key {k:?} has no value"))),
        };
        if frame.anchor > 0 {
            let shape = limits::measure(&value, limits::MAX_DEPTH, usize::MAX).map_err(|_| YamlError::TooDeep)?;
            self.anchors.insert(frame.anchor, (value.clone(), shape.depth, shape.bytes));
        }
        self.add(value)
    }

    /// Adds a finished value to the open container (or as the document).
    fn add(&mut self, value: Value) -> Result<(), YamlError> {
        let path = |stack: &[Frame], key: &str| {
            let mut parts: Vec<&str> = stack.iter().skip(1).map(|f| f.at.as_str()).collect();
            parts.push(key);
            let mut out = String::new();
            for p in parts {
                if !out.is_empty() && !p.starts_with('[') {
                    out.push('.');
                }
                out.push_str(p);
            }
            out
        };
        let Some(top) = self.stack.last_mut() else {
            self.done = Some(value);
            return Ok(());
        };
        match &mut top.container {
            Container::Seq(items) => items.push(value),
            Container::Map(_, pending @ None) => {
                *pending = Some(match value {
                    Value::String(s) => s,
                    Value::Null => "null".into(),
                    Value::Bool(b) => b.to_string(),
                    Value::Number(n) => n.to_string(),
                    _ => {
                        return Err(YamlError::Unsupported(
                            "a mapping key must be a string, not a mapping or a list".into(),
                        ))
                    }
                })
            }
            Container::Map(map, pending @ Some(_)) => {
                let key = pending.take().unwrap_or_default();
                if map.insert(key.clone(), value).is_some() && self.duplicates.len() < MAX_REPORTED {
                    let p = path(&self.stack, &key);
                    self.duplicates.push(p);
                }
            }
        }
        Ok(())
    }
}

/// A scalar's JSON value: quoted and block scalars are strings; plain ones
/// resolve as YAML 1.2's core schema; `!!str` and friends are honoured.
fn scalar(text: String, style: TScalarStyle, tag: Option<&Tag>) -> Result<Value, YamlError> {
    let core = tag.filter(|t| t.handle == "tag:yaml.org,2002:").map(|t| t.suffix.as_str());
    match core {
        Some("str" | "binary" | "timestamp") => return Ok(Value::String(text)),
        Some(kind @ ("int" | "float" | "bool" | "null")) => {
            let v = resolve(&text);
            let fits = matches!(
                (kind, &v),
                ("int", Value::Number(_))
                    | ("float", Value::Number(_))
                    | ("bool", Value::Bool(_))
                    | ("null", Value::Null)
            );
            return if fits { Ok(v) } else { Err(YamlError::Syntax(format!("{text:?} is not a valid !!{kind}"))) };
        }
        _ => {}
    }
    Ok(match style {
        TScalarStyle::Plain => resolve(&text),
        _ => Value::String(text),
    })
}

/// YAML 1.2 core schema resolution of a plain scalar.
fn resolve(text: &str) -> Value {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" | "-.inf" | "-.Inf" | "-.INF" | ".nan" | ".NaN"
        | ".NAN" => return Value::Null, // JSON has no infinities or NaN
        _ => {}
    }
    let (sign, digits) = match text.strip_prefix('-') {
        Some(rest) => (-1i128, rest),
        None => (1, text.strip_prefix('+').unwrap_or(text)),
    };
    let radix = |prefix: &str, radix: u32| {
        digits.strip_prefix(prefix).filter(|d| !d.is_empty()).and_then(|d| i128::from_str_radix(d, radix).ok())
    };
    let integer = if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        digits.parse::<i128>().ok()
    } else {
        radix("0x", 16).or_else(|| radix("0o", 8))
    };
    if let Some(n) = integer.map(|n| n * sign) {
        if let Ok(i) = i64::try_from(n) {
            return Value::Number(i.into());
        }
        if let Ok(u) = u64::try_from(n) {
            return Value::Number(u.into());
        }
    }
    if is_core_float(text) {
        if let Some(n) = text.parse::<f64>().ok().and_then(Number::from_f64) {
            return Value::Number(n);
        }
    }
    Value::String(text.to_string())
}

/// `[-+]? ( \. [0-9]+ | [0-9]+ ( \. [0-9]* )? ) ( [eE] [-+]? [0-9]+ )?`
fn is_core_float(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = usize::from(matches!(b.first(), Some(b'-' | b'+')));
    let digits = |i: &mut usize| {
        let start = *i;
        while b.get(*i).is_some_and(u8::is_ascii_digit) {
            *i += 1;
        }
        *i - start
    };
    let whole = digits(&mut i);
    if b.get(i) == Some(&b'.') {
        i += 1;
        if digits(&mut i) == 0 && whole == 0 {
            return false;
        }
    } else if whole == 0 {
        return false;
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'-' | b'+')) {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return false;
        }
    }
    i == b.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(s: &str) -> Value {
        to_json(s).unwrap().value
    }

    #[test]
    fn reads_what_kubectl_and_people_write() {
        let doc = "apiVersion: prsn.io/v1\nkind: MysqlDb\nmetadata:\n  name: a\n  labels: {tier: db}\nsize: 3\nratio: 0.5\non: yes\nempty:\nlist: [1, \"2\", true, null, ~]\nquoted: '007'\nblock: |\n  line\n";
        assert_eq!(
            parse(doc),
            json!({"apiVersion": "prsn.io/v1", "kind": "MysqlDb", "metadata": {"name": "a", "labels": {"tier": "db"}},
                   "size": 3, "ratio": 0.5, "on": "yes", "empty": null, "list": [1, "2", true, null, null],
                   "quoted": "007", "block": "line\n"})
        );
        // JSON is YAML.
        assert_eq!(parse(r#"{"a": [1, {"b": "c"}], "d": -2}"#), json!({"a": [1, {"b": "c"}], "d": -2}));
        assert_eq!(
            parse("x: 0x1F\ny: 0o17\nz: 1e3\nw: !!str 12\nv: 12345678901234567890\nn: .inf"),
            json!({"x": 31, "y": 15, "z": 1000.0, "w": "12", "v": 12345678901234567890u64, "n": null})
        );
        assert_eq!(parse(""), Value::Null);
        assert_eq!(parse("a: &x {b: 1}\nc: *x"), json!({"a": {"b": 1}, "c": {"b": 1}}));
        assert_eq!(parse("1: a\ntrue: b"), json!({"1": "a", "true": "b"}));
    }

    #[test]
    fn reports_duplicate_keys_with_their_paths() {
        let p = to_json("a: 1\nspec:\n  size: s\n  size: m\n  list:\n  - x: 1\n    x: 2\na: 2\n").unwrap();
        assert_eq!(p.duplicates, ["spec.size", "spec.list[0].x", "a"]);
        assert_eq!(p.value["a"], 2, "the last one wins");
    }

    #[test]
    fn refuses_depth_while_parsing_in_linear_time() {
        for text in ["[".repeat(60_000), "{a: ".repeat(60_000), "- ".repeat(60_000), "? ".repeat(60_000)] {
            assert!(matches!(
                to_json(&text),
                Err(YamlError::TooDeep | YamlError::Syntax(_) | YamlError::Unsupported(_))
            ));
        }
        let mut ok = String::new();
        for i in 0..limits::MAX_DEPTH - 1 {
            ok.push_str(&format!("{}a:\n", "  ".repeat(i)));
        }
        ok.push_str(&format!("{}a: 1\n", "  ".repeat(limits::MAX_DEPTH - 1)));
        assert!(to_json(&ok).is_ok());
        let deeper = format!("{ok}{}b: 1\n", "  ".repeat(limits::MAX_DEPTH));
        assert!(to_json(&deeper).is_err());
    }

    #[test]
    fn aliases_cannot_expand_a_document_without_bound() {
        let mut flat = String::from("x: &x {");
        for i in 0..1000 {
            flat.push_str(&format!("k{i}: {},", "v".repeat(100)));
        }
        flat.push_str("}\ny: [");
        flat.push_str(&"*x,".repeat(20_000));
        flat.push_str("]\n");
        assert!(matches!(to_json(&flat), Err(YamlError::TooLarge(_))));
        let mut laughs = String::from("a0: &a0 [\"xxxxxxxxxxxxxxxxxxxx\"]\n");
        for i in 1..30 {
            laughs.push_str(&format!("a{i}: &a{i} [{}]\n", vec![format!("*a{}", i - 1); 9].join(",")));
        }
        assert!(matches!(to_json(&laughs), Err(YamlError::TooLarge(_) | YamlError::TooDeep)));
    }

    #[test]
    fn refuses_what_json_cannot_hold() {
        assert!(matches!(to_json("? [a]\n: 1\n"), Err(YamlError::Unsupported(_))));
        assert!(matches!(to_json("a: 1\n---\nb: 2\n"), Err(YamlError::Unsupported(_))));
        assert!(to_json("a: [1\n").is_err());
        assert!(to_json("a: *nope\n").is_err());
    }

    mod properties {
        use super::super::*;
        use proptest::prelude::*;

        fn value() -> impl Strategy<Value = Value> {
            let leaf = prop_oneof![
                Just(Value::Null),
                any::<bool>().prop_map(Value::from),
                any::<i64>().prop_map(Value::from),
                any::<u64>().prop_map(Value::from),
                (-1e9f64..1e9).prop_map(Value::from),
                "\\PC{0,12}".prop_map(Value::from),
                proptest::sample::select(vec![
                    "true", "null", "~", "0x1F", "1e3", "yes", "-", "? x", "a: b", "&a", "*a", "#c", "'q'", "\"q\"",
                    ".inf", "0o7", "+1", "", " x "
                ])
                .prop_map(Value::from),
            ];
            leaf.prop_recursive(8, 64, 6, |inner| {
                prop_oneof![
                    proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                    proptest::collection::btree_map("\\PC{0,8}", inner, 0..6)
                        .prop_map(|m| Value::Object(m.into_iter().collect())),
                ]
            })
        }

        proptest! {
            #[test]
            fn any_text_parses_or_is_refused(text in "\\PC{0,400}") {
                let _ = to_json(&text);
            }

            #[test]
            fn yaml_syntax_soup_never_panics(text in "[-:?&*!|>\\[\\]{},'\" \\na-z0-9#%@]{0,300}") {
                if let Ok(p) = to_json(&text) {
                    prop_assert!(limits::measure(&p.value, limits::MAX_DEPTH, usize::MAX).is_ok());
                }
            }

            #[test]
            fn json_is_yaml(v in value()) {
                let parsed = to_json(&v.to_string()).unwrap();
                prop_assert_eq!(parsed.value, v);
            }

            /// (YAML 1.1 writers such as libyaml, under serde_norway, count
            /// U+0085, U+2028 and U+2029 as line breaks in quoted strings; the
            /// 1.2 parser does not: those are left out.)
            #[test]
            fn yaml_that_serde_norway_writes_reads_back(v in value()) {
                let text = serde_norway::to_string(&v).unwrap();
                prop_assume!(!text.contains(['\u{85}', '\u{2028}', '\u{2029}']));
                prop_assert_eq!(to_json(&text).unwrap().value, v, "{}", text);
            }
        }
    }
}
