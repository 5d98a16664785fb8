//! Malformed and deep JSON and YAML bodies, wrong types for every metadata field, bad metadata values.

use serde_json::{json, Value};

use super::*;

/// Adds this class's cases.
pub fn cases(g: &mut Gen, obj: &str) {
    // Malformed and deep JSON bodies, to every write.
    let mut bad_json: Vec<(String, Vec<u8>)> = vec![
        ("empty".into(), b"".to_vec()),
        ("truncated".into(), br#"{"metadata": {"name": "x""#.to_vec()),
        ("trailing".into(), br#"{"metadata": {"name": "x"}} junk"#.to_vec()),
        ("not utf-8".into(), b"{\"metadata\": {\"name\": \"\xff\xfe\"}}".to_vec()),
        ("lone surrogate".into(), br#"{"metadata": {"name": "\ud800"}}"#.to_vec()),
        ("NaN".into(), br#"{"metadata": {"name": "x"}, "n": NaN}"#.to_vec()),
        ("1e999".into(), br#"{"metadata": {"name": "x"}, "n": 1e999}"#.to_vec()),
        ("array".into(), b"[]".to_vec()),
        ("string".into(), br#""x""#.to_vec()),
        ("null".into(), b"null".to_vec()),
        ("metadata array".into(), br#"{"metadata": []}"#.to_vec()),
        ("metadata string".into(), br#"{"metadata": "x"}"#.to_vec()),
        ("kind number".into(), br#"{"kind": 1, "metadata": {"name": "x"}}"#.to_vec()),
        ("apiVersion object".into(), br#"{"apiVersion": {}, "metadata": {"name": "x"}}"#.to_vec()),
        ("wrong kind".into(), br#"{"kind": "Pod", "metadata": {"name": "x"}}"#.to_vec()),
        ("wrong apiVersion".into(), br#"{"apiVersion": "v1", "metadata": {"name": "x"}}"#.to_vec()),
        ("bom".into(), b"\xef\xbb\xbf{\"metadata\": {\"name\": \"x\"}}".to_vec()),
        ("nul".into(), b"\0".to_vec()),
        ("duplicate keys, strict".into(), br#"{"metadata": {"name": "x", "name": "y"}}"#.to_vec()),
    ];
    for levels in [101, 128, 129, 5_000, 100_000] {
        bad_json.push((format!("{levels} nested arrays"), nested_json(levels).into_bytes()));
        let deep = json!({"metadata": {"name": "x"}, "deep": nested_object(levels.min(120))});
        bad_json.push((format!("{levels} nested objects"), deep.to_string().into_bytes()));
    }
    for (what, body) in &bad_json {
        g.post_json(format!("create: {what}"), &format!("{DBS}?fieldValidation=Strict"), body);
        g.req(
            format!("update: {what}"),
            "PUT",
            &format!("{obj}?fieldValidation=Strict"),
            &[("Content-Type", "application/json")],
            body,
        );
        g.patch(format!("merge patch: {what}"), obj, "application/merge-patch+json", body);
        g.patch(format!("JSON patch: {what}"), obj, "application/json-patch+json", body);
        g.req(
            format!("delete options: {what}"),
            "DELETE",
            &format!("{DBS}/missing"),
            &[("Content-Type", "application/json")],
            body,
        );
    }

    // Deep and hostile YAML apply bodies.
    let mut laughs = String::from("a0: &a0 [\"xxxxxxxxxxxxxxxxxxxx\"]\n");
    for i in 1..30 {
        laughs.push_str(&format!("a{i}: &a{i} [{}]\n", vec![format!("*a{}", i - 1); 9].join(",")));
    }
    let mut flat = String::from("x: &x {");
    for i in 0..500 {
        flat.push_str(&format!("k{i}: {},", "v".repeat(100)));
    }
    flat.push_str("}\ny: [");
    flat.push_str(&"*x,".repeat(5_000));
    flat.push_str("]\n");
    let mut indented = String::new();
    for i in 0..150 {
        indented.push_str(&format!("{}a:\n", " ".repeat(i)));
    }
    let yaml: Vec<(&str, String)> = vec![
        ("flow [", "[".repeat(60_000)),
        ("flow {a:", "{a: ".repeat(30_000)),
        ("block -", "- ".repeat(60_000)),
        ("? keys", "? ".repeat(10_000)),
        ("indentation", indented),
        ("billion laughs", laughs),
        ("alias fan-out", flat),
        ("two documents", "a: 1\n---\nb: 2\n".into()),
        ("not a mapping", "- a\n- b\n".into()),
        ("complex key", "? [a]\n: 1\n".into()),
        ("unknown alias", "a: *nope\n".into()),
        ("tabs", "a:\n\t- b\n".into()),
        ("unclosed", "a: [1, 2\n".into()),
        ("bad !!int", "a: !!int x\n".into()),
        ("managedFields", "metadata:\n  name: a\n  managedFields: []\n".into()),
        ("other name", "metadata:\n  name: b\n".into()),
        ("finalizers string", "metadata:\n  name: a\n  finalizers: x\n".into()),
        ("labels number", "metadata:\n  name: a\n  labels: {a: 1}\n".into()),
        ("kind", "kind: Pod\nmetadata:\n  name: a\n".into()),
    ];
    for (what, body) in &yaml {
        g.patch(
            format!("apply: {what}"),
            &format!("{obj}?fieldManager=hostile"),
            "application/apply-patch+yaml",
            body.as_bytes(),
        );
    }
    // The same YAML as create bodies (`Content-Type: application/yaml`), but
    // for those that are objects one may create.
    let creatable = ["managedFields", "other name"];
    for (what, body) in yaml.iter().filter(|(what, _)| !creatable.contains(what)) {
        g.req(format!("create YAML: {what}"), "POST", DBS, &[("Content-Type", "application/yaml")], body.as_bytes());
    }
    g.patch("apply without fieldManager", obj, "application/apply-patch+yaml", b"metadata:\n  name: a\n");
    g.patch(
        "apply binary",
        &format!("{obj}?fieldManager=h"),
        "application/apply-patch+yaml",
        &[0xff, 0x00, 0x13, 0x37],
    );

    // Wrong types for every metadata field, on every write path.
    let wrong_types: Vec<(&str, Vec<Value>)> = vec![
        ("name", vec![json!(1), json!(true), json!([]), json!({})]),
        ("generateName", vec![json!(1), json!([]), json!({})]),
        ("namespace", vec![json!(1), json!([]), json!({})]),
        ("selfLink", vec![json!(1), json!({})]),
        ("uid", vec![json!(1), json!([])]),
        ("resourceVersion", vec![json!(1), json!({})]),
        ("generation", vec![json!("1"), json!(1.5), json!([])]),
        ("creationTimestamp", vec![json!(1), json!([])]),
        ("deletionTimestamp", vec![json!(1), json!({})]),
        ("deletionGracePeriodSeconds", vec![json!("x"), json!(1.5)]),
        ("labels", vec![json!("x"), json!([]), json!({"a": 1}), json!({"a": []})]),
        ("annotations", vec![json!("x"), json!(1), json!({"a": {}})]),
        (
            "ownerReferences",
            vec![json!("x"), json!([1]), json!({}), json!([{"name": 1}]), json!([{"controller": "yes"}])],
        ),
        ("finalizers", vec![json!("x"), json!([1]), json!({}), json!([null]), json!([[]])]),
        ("managedFields", vec![json!("x"), json!([1]), json!({})]),
    ];
    for (field, values) in &wrong_types {
        for v in values {
            let mut meta = json!({"name": "x"});
            meta[field] = v.clone();
            let body = json!({"metadata": meta}).to_string();
            g.post_json(format!("create: metadata.{field} = {v}"), DBS, body.as_bytes());
            let mut put = json!({"metadata": {"name": "a"}});
            put["metadata"][field] = v.clone();
            if *field != "resourceVersion" {
                put["metadata"]["resourceVersion"] = json!("1");
            }
            g.req(
                format!("update: metadata.{field} = {v}"),
                "PUT",
                obj,
                &[("Content-Type", "application/json")],
                put.to_string().as_bytes(),
            );
            let patch = json!({"metadata": {*field: v}}).to_string();
            g.patch(
                format!("merge patch: metadata.{field} = {v}"),
                obj,
                "application/merge-patch+json",
                patch.as_bytes(),
            );
            let ops = json!([{"op": "add", "path": format!("/metadata/{field}"), "value": v}]).to_string();
            g.patch(format!("JSON patch: metadata.{field} = {v}"), obj, "application/json-patch+json", ops.as_bytes());
            let mut apply = json!({"apiVersion": "prsn.io/v1", "kind": "MysqlDb", "metadata": {"name": "a"}});
            apply["metadata"][field] = v.clone();
            g.patch(
                format!("apply: metadata.{field} = {v}"),
                &format!("{obj}?fieldManager=h"),
                "application/apply-patch+yaml",
                apply.to_string().as_bytes(),
            );
        }
    }
    // Bad values of well-typed metadata.
    for meta in [
        json!({"name": "x", "finalizers": ["a b"]}),
        json!({"name": "x", "finalizers": ["orphan", "foregroundDeletion"]}),
        json!({"name": "x", "ownerReferences": [{}]}),
        json!({"name": "x", "ownerReferences": [{"apiVersion": "a/b/c", "kind": "K", "name": "n", "uid": "u"}]}),
        json!({"name": "x", "labels": {"bad key": "v"}}),
        json!({"name": "x", "labels": {"k": "bad value"}}),
        json!({"name": "x", "annotations": {"k": "x".repeat(300_000)}}),
        json!({"generateName": "A B"}),
        json!({"namespace": "other", "name": "x"}),
    ] {
        g.post_json(
            format!("create: metadata {}", short(&meta)),
            DBS,
            json!({"metadata": meta}).to_string().as_bytes(),
        );
    }
}
