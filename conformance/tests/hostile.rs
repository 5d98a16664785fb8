//! Hostile input: several hundred generated requests across malformed and
//! deep JSON and YAML, wrong types for every metadata field, bad names,
//! paths, selectors, resourceVersions, continue tokens, patches of every
//! content type, methods, headers, and TPR names and versions, sent over raw
//! TLS connections. Asserted, on both backends: the server never crashes,
//! answers no 5xx (but 504 for a future resourceVersion), every error is a
//! Status whose `code` is the HTTP status (except where the HTTP library
//! itself answers a request it cannot parse, see ARCHITECTURE.md), nothing a
//! refused request sent is written (the store's revision after each request,
//! and every stored key and revision at the end), every request is answered
//! within 5 s, and the server's memory stays bounded.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use base64::Engine;
use common::{alive, create_tpr, json, post, raw, revision, start, Backend};
use serde_json::{json, Value};
use testkit::Server;

const DBS: &str = "/apis/prsn.io/v1/namespaces/default/mysqldbs";
const TPRS: &str = "/apis/extensions/v1beta1/thirdpartyresources";

/// How a case may be answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    /// A 4xx Status (or a 2xx read).
    Refused,
    /// The HTTP library answers (400/414/431, maybe no Status) or closes.
    Library,
    /// A read at a future resourceVersion: 504 is allowed.
    FutureRevision,
}

/// One generated request.
struct Case {
    what: String,
    request: Vec<u8>,
    expect: Expect,
}

/// Builds requests: a method, a path, headers and a body.
struct Gen {
    token: String,
    cases: Vec<Case>,
}

impl Gen {
    fn raw(&mut self, what: impl Into<String>, request: Vec<u8>, expect: Expect) {
        self.cases.push(Case { what: what.into(), request, expect });
    }

    fn req(&mut self, what: impl Into<String>, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) {
        self.req_expect(what, method, path, headers, body, Expect::Refused);
    }

    fn req_expect(
        &mut self,
        what: impl Into<String>,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        expect: Expect,
    ) {
        let mut r = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
        if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("authorization")) {
            r.push_str(&format!("Authorization: Bearer {}\r\n", self.token));
        }
        for (k, v) in headers {
            r.push_str(&format!("{k}: {v}\r\n"));
        }
        if !headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("content-length") || k.eq_ignore_ascii_case("transfer-encoding"))
        {
            r.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        r.push_str("\r\n");
        let mut bytes = r.into_bytes();
        bytes.extend_from_slice(body);
        self.raw(what, bytes, expect);
    }

    fn post_json(&mut self, what: impl Into<String>, path: &str, body: &[u8]) {
        self.req(what, "POST", path, &[("Content-Type", "application/json")], body);
    }

    fn patch(&mut self, what: impl Into<String>, path: &str, content_type: &str, body: &[u8]) {
        self.req(what, "PATCH", path, &[("Content-Type", content_type)], body);
    }
}

fn nested_json(levels: usize) -> String {
    format!("{}1{}", "[".repeat(levels), "]".repeat(levels))
}

fn nested_object(levels: usize) -> Value {
    let mut v = json!(1);
    for _ in 0..levels {
        v = json!({ "a": v });
    }
    v
}

/// Every case, deterministically.
fn cases(token: &str) -> Vec<Case> {
    let mut g = Gen { token: token.to_string(), cases: Vec::new() };
    let obj = format!("{DBS}/a");

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
        g.patch(format!("merge patch: {what}"), &obj, "application/merge-patch+json", body);
        g.patch(format!("JSON patch: {what}"), &obj, "application/json-patch+json", body);
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
    g.patch("apply without fieldManager", &obj, "application/apply-patch+yaml", b"metadata:\n  name: a\n");
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
                &obj,
                &[("Content-Type", "application/json")],
                put.to_string().as_bytes(),
            );
            let patch = json!({"metadata": {*field: v}}).to_string();
            g.patch(
                format!("merge patch: metadata.{field} = {v}"),
                &obj,
                "application/merge-patch+json",
                patch.as_bytes(),
            );
            let ops = json!([{"op": "add", "path": format!("/metadata/{field}"), "value": v}]).to_string();
            g.patch(format!("JSON patch: metadata.{field} = {v}"), &obj, "application/json-patch+json", ops.as_bytes());
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

    // Bad names and namespaces.
    for name in ["", "A", "a_b", "-a", "a-", "a..b", ".", "..", "a b", "é", "a\u{0}"] {
        g.post_json(format!("create: name {name:?}"), DBS, json!({"metadata": {"name": name}}).to_string().as_bytes());
    }
    g.post_json("create: name of 254", DBS, json!({"metadata": {"name": "a".repeat(254)}}).to_string().as_bytes());
    for path_name in ["%2e%2e", "a%2Fb", "%00", "A", "a%20b", "%ff", &"a".repeat(300)] {
        g.req(format!("get name {path_name}"), "GET", &format!("{DBS}/{path_name}"), &[], b"");
        g.req(format!("delete name {path_name}"), "DELETE", &format!("{DBS}/{path_name}"), &[], b"");
        g.req(
            format!("put name {path_name}"),
            "PUT",
            &format!("{DBS}/{path_name}"),
            &[("Content-Type", "application/json")],
            br#"{"metadata":{"resourceVersion":"1"}}"#,
        );
    }
    for ns in ["A", "a.b", "-a", &"a".repeat(64), "%2F", "a%00"] {
        let path = format!("/apis/prsn.io/v1/namespaces/{ns}/mysqldbs");
        g.post_json(format!("create in namespace {ns}"), &path, br#"{"metadata":{"name":"x"}}"#);
    }

    // Paths.
    for path in [
        "/apis/prsn.io/v1/namespaces".to_string(),
        "/apis/prsn.io/v1/namespaces/default".into(),
        "/apis//prsn.io/v1".into(),
        format!("{DBS}/a/b/c"),
        format!("{DBS}/a/status"),
        "/apis/prsn.io/v1/mysqldbs/a".into(),
        "/apis/prsn.io/v2/namespaces/default/mysqldbs".into(),
        "/apis/prsn.io/v1/../v1/namespaces/default/mysqldbs".into(),
        "/api/v1/pods".into(),
        "/apis/extensions/v1beta1/namespaces/default/thirdpartyresources".into(),
        "/apis/prsn.io/v1/watch".into(),
        "/apis/prsn.io/v1/watch/watch/mysqldbs".into(),
        "/openapi/v3/apis/nope/v1".into(),
        format!("/apis/{}", "a".repeat(10_000)),
        "/%ZZ".into(),
        "/apis/prsn.io/v1/namespaces/default/mysqldbs?%ZZ=%ZZ".into(),
    ] {
        g.req(format!("get {}", short_str(&path)), "GET", &path, &[], b"");
        // An invalid name: a path that does route must still refuse the create.
        g.post_json(format!("post {}", short_str(&path)), &path, br#"{"metadata":{"name":"X"}}"#);
    }
    let many_params: String = (0..5000).map(|i| format!("p{i}=v")).collect::<Vec<_>>().join("&");
    g.req("5000 query parameters", "GET", &format!("{DBS}?{many_params}"), &[], b"");

    // Selectors.
    for sel in
        ["a in (", "!!a", "a=b=c", "a in (b,,c)", "(", "a notin", "=b", "a in ()", "é=1", "a=é", "a in (b", "a) in (b)"]
    {
        let q: String = form(sel);
        g.req(format!("label selector {sel:?}"), "GET", &format!("{DBS}?labelSelector={q}"), &[], b"");
        g.req(
            format!("watch label selector {sel:?}"),
            "GET",
            &format!("{DBS}?watch=true&timeoutSeconds=1&labelSelector={q}"),
            &[],
            b"",
        );
        g.req(
            format!("deletecollection label selector {sel:?}"),
            "DELETE",
            &format!("{DBS}?labelSelector={q}"),
            &[],
            b"",
        );
    }
    g.req("long label selector", "GET", &format!("{DBS}?labelSelector={}", "a".repeat(30_000)), &[], b"");
    g.req_expect(
        "label selector past the header limit",
        "GET",
        &format!("{DBS}?labelSelector={}", "a".repeat(70_000)),
        &[],
        b"",
        Expect::Library,
    );
    g.req("label value too long", "GET", &format!("{DBS}?labelSelector=a%3D{}", "b".repeat(64)), &[], b"");
    for sel in ["spec.x=1", "metadata.name", "=", "metadata.uid=x", "metadata.name~a", "metadata.labels.a=b"] {
        let q = form(sel);
        g.req(format!("field selector {sel:?}"), "GET", &format!("{DBS}?fieldSelector={q}"), &[], b"");
        g.req(
            format!("deletecollection field selector {sel:?}"),
            "DELETE",
            &format!("{DBS}?fieldSelector={q}"),
            &[],
            b"",
        );
    }

    // resourceVersions.
    for rv in ["abc", "-1", "1e3", "99999999999999999999", "1.5", "%20", "0x10"] {
        g.req(format!("list rv {rv}"), "GET", &format!("{DBS}?resourceVersion={rv}"), &[], b"");
        g.req(format!("get rv {rv}"), "GET", &format!("{obj}?resourceVersion={rv}"), &[], b"");
        g.req(
            format!("watch rv {rv}"),
            "GET",
            &format!("{DBS}?watch=true&timeoutSeconds=1&resourceVersion={rv}"),
            &[],
            b"",
        );
        g.req(
            format!("exact rv {rv}"),
            "GET",
            &format!("{DBS}?resourceVersion={rv}&resourceVersionMatch=Exact"),
            &[],
            b"",
        );
    }
    for m in ["Exact", "Foo", "notolderthan"] {
        g.req(format!("match {m} without rv"), "GET", &format!("{DBS}?resourceVersionMatch={m}"), &[], b"");
    }
    g.req_expect(
        "list at a future rv",
        "GET",
        &format!("{DBS}?resourceVersion=999999999"),
        &[],
        b"",
        Expect::FutureRevision,
    );
    g.req_expect(
        "exact future rv",
        "GET",
        &format!("{DBS}?resourceVersion=999999999&resourceVersionMatch=Exact"),
        &[],
        b"",
        Expect::FutureRevision,
    );
    for t in ["-5", "x", "99999999999999"] {
        g.req(
            format!("watch timeoutSeconds {t}"),
            "GET",
            &format!("{DBS}?watch=true&timeoutSeconds={t}&resourceVersion=abc"),
            &[],
            b"",
        );
    }

    // Continue tokens.
    let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    for token in [
        "x".to_string(),
        "!!!".into(),
        b64("junk"),
        b64("{}"),
        b64(r#"{"rv": "x", "start": 1}"#),
        b64(r#"{"rv": 1, "start": "/registry/other/"}"#),
        b64(r#"{"rv": -1, "start": "/registry/prsn.io/mysqldbs/default/a"}"#),
        "a".repeat(30_000),
    ] {
        g.req(format!("continue {}", short_str(&token)), "GET", &format!("{DBS}?limit=1&continue={token}"), &[], b"");
    }
    let future = b64(r#"{"rv": 999999999, "start": "/registry/prsn.io/mysqldbs/default/a"}"#);
    g.req_expect(
        "continue at a future rv",
        "GET",
        &format!("{DBS}?limit=1&continue={future}"),
        &[],
        b"",
        Expect::FutureRevision,
    );
    for limit in ["-1", "x", "99999999999999999999"] {
        g.req(format!("limit {limit}"), "GET", &format!("{DBS}?limit={limit}&resourceVersion=abc"), &[], b"");
    }

    // Patches of every content type.
    let json_patches = [
        json!({}),
        json!("x"),
        json!([1]),
        json!([{}]),
        json!([{"op": "nope", "path": "/a"}]),
        json!([{"op": "add"}]),
        json!([{"op": "add", "path": "a", "value": 1}]),
        json!([{"op": "add", "path": "/a~2", "value": 1}]),
        json!([{"op": "remove", "path": ""}]),
        json!([{"op": "remove", "path": "/nope"}]),
        json!([{"op": "replace", "path": "/nope", "value": 1}]),
        json!([{"op": "copy", "from": "/nope", "path": "/x"}]),
        json!([{"op": "move", "from": "/metadata", "path": "/metadata/x"}]),
        json!([{"op": "add", "path": "/metadata/labels/a", "value": 1}]),
        json!([{"op": "test", "path": "/metadata/name", "value": "nope"}]),
        json!([{"op": "add", "path": "/list/99999999999", "value": 1}]),
        json!([{"op": "add", "path": "/metadata/", "value": 1}, {"op": "test", "path": "/metadata/name", "value": "z"}]),
        json!([{"op": "replace", "path": "", "value": "x"}]),
        json!([{"op": "replace", "path": "", "value": []}]),
        json!([{"op": "replace", "path": "/metadata/name", "value": "b"}]),
        json!([{"op": "replace", "path": "/kind", "value": "Pod"}]),
        json!([{"op": "remove", "path": "/metadata"}, {"op": "test", "path": "/x", "value": 1}]),
    ];
    for p in &json_patches {
        g.patch(format!("JSON patch {}", short(p)), &obj, "application/json-patch+json", p.to_string().as_bytes());
    }
    let many: Vec<Value> = (0..10_001).map(|_| json!({"op": "test", "path": "/metadata/name", "value": "a"})).collect();
    g.patch("10001 operations", &obj, "application/json-patch+json", Value::Array(many).to_string().as_bytes());
    let copies: Vec<Value> =
        (0..30).map(|_| json!({"op": "copy", "from": "/metadata", "path": "/metadata/labels"})).collect();
    g.patch("copies into themselves", &obj, "application/json-patch+json", Value::Array(copies).to_string().as_bytes());
    for merge in [
        json!("x"),
        json!([1]),
        json!(null),
        json!({"metadata": {"name": "b"}}),
        json!({"kind": "Pod"}),
        json!({"metadata": {"resourceVersion": "1"}, "x": 1}),
        json!({"apiVersion": "v9"}),
    ] {
        g.patch(
            format!("merge patch {}", short(&merge)),
            &obj,
            "application/merge-patch+json",
            merge.to_string().as_bytes(),
        );
    }
    for ct in [
        "application/strategic-merge-patch+json",
        "text/plain",
        "",
        "application/json",
        "application/json-patch+json; charset=junk",
        "*/*",
        "application/xml",
    ] {
        g.req(format!("patch content type {ct:?}"), "PATCH", &obj, &[("Content-Type", ct)], br#"{"x": 1}"#);
    }
    for ct in ["text/plain", "application/yaml", "application/xml", "multipart/form-data"] {
        g.req(
            format!("create content type {ct:?}"),
            "POST",
            DBS,
            &[("Content-Type", ct)],
            br#"{"metadata":{"name":"x"}}"#,
        );
    }

    // Methods.
    for method in ["OPTIONS", "TRACE", "FOO", "PROPFIND", "HEAD", "LINK", "M-SEARCH"] {
        for path in [DBS, obj.as_str(), "/apis", "/metrics", "/", "/healthz", TPRS] {
            if method == "HEAD" && !path.starts_with("/apis/prsn.io") {
                continue;
            }
            g.req(format!("{method} {path}"), method, path, &[], b"");
        }
    }

    // Headers.
    g.req("Accept junk", "GET", DBS, &[("Accept", "application/xml")], b"");
    g.req("Accept table junk", "GET", DBS, &[("Accept", "application/json;as=Table;v=v9;g=meta.k8s.io")], b"");
    g.req(
        "Accept discovery junk",
        "GET",
        "/apis",
        &[("Accept", "application/json;as=APIGroupDiscoveryList;v=v9;g=apidiscovery.k8s.io")],
        b"",
    );
    g.req_expect(
        "Authorization with a control character",
        "GET",
        DBS,
        &[("Authorization", "Bearer \u{1}junk")],
        b"",
        Expect::Library,
    );
    g.req("Authorization junk", "GET", DBS, &[("Authorization", "Bearer ;;;junk")], b"");
    g.req("Authorization basic", "GET", DBS, &[("Authorization", "Basic YTpi")], b"");
    g.req("no credentials", "GET", DBS, &[("Authorization", "")], b"");
    g.req(
        "front-proxy headers without the proxy",
        "POST",
        DBS,
        &[
            ("Authorization", ""),
            ("X-Remote-User", "admin"),
            ("X-Remote-Group", "system:masters"),
            ("Content-Type", "application/json"),
        ],
        br#"{"metadata":{"name":"x"}}"#,
    );
    g.req(
        "content-length too big",
        "POST",
        DBS,
        &[("Content-Type", "application/json"), ("Content-Length", "99999999999")],
        b"",
    );
    g.post_json("body over 3 MiB", DBS, &vec![b' '; 3 * 1024 * 1024 + 10]);
    g.post_json("fieldValidation junk", &format!("{DBS}?fieldValidation=Loud"), br#"{"metadata":{"name":"x"}}"#);
    g.post_json(
        "fieldManager too long",
        &format!("{DBS}?fieldManager={}", "m".repeat(200)),
        br#"{"metadata":{"name":"x"}}"#,
    );
    g.post_json("dryRun junk still validates", &format!("{DBS}?dryRun=Junk"), br#"{"metadata":{"name":"A"}}"#);
    g.req(
        "includeObject junk",
        "GET",
        &format!("{DBS}?includeObject=All"),
        &[("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io")],
        b"",
    );
    g.req(
        "Expect 100-continue",
        "POST",
        DBS,
        &[("Content-Type", "application/json"), ("Expect", "100-continue")],
        br#"{"metadata":{"name":"A"}}"#,
    );
    let many_headers: Vec<(String, String)> = (0..500).map(|i| (format!("X-H{i}"), "v".into())).collect();
    let many_headers: Vec<(&str, &str)> = many_headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    g.req_expect("500 headers (hyper allows 100)", "GET", DBS, &many_headers, b"", Expect::Library);
    let huge = "v".repeat(70 * 1024);
    g.req_expect("a 70 KiB header", "GET", DBS, &[("X-Huge", &huge)], b"", Expect::Library);
    g.req_expect(
        "two content lengths",
        "POST",
        DBS,
        &[("Content-Type", "application/json"), ("Content-Length", "2"), ("Content-Length", "3")],
        b"{}",
        Expect::Library,
    );
    g.req_expect(
        "content-length junk",
        "POST",
        DBS,
        &[("Content-Type", "application/json"), ("Content-Length", "abc")],
        b"{}",
        Expect::Library,
    );
    g.req_expect(
        "bad chunk size",
        "POST",
        DBS,
        &[("Content-Type", "application/json"), ("Transfer-Encoding", "chunked")],
        b"zz\r\n{}\r\n0\r\n\r\n",
        Expect::Library,
    );

    // Malformed requests the HTTP library answers.
    for (what, bytes) in [
        ("garbage", b"GARBAGE\r\n\r\n".to_vec()),
        ("no path", b"GET\r\n\r\n".to_vec()),
        ("HTTP/9.9", b"GET / HTTP/9.9\r\n\r\n".to_vec()),
        ("binary", vec![0u8, 1, 2, 3, 255, 254, 13, 10, 13, 10]),
        ("request line of 70 KiB", format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(70 * 1024)).into_bytes()),
        ("header without colon", b"GET / HTTP/1.1\r\nHost x\r\n\r\n".to_vec()),
        ("space in header name", b"GET / HTTP/1.1\r\nHo st: x\r\n\r\n".to_vec()),
    ] {
        g.raw(format!("malformed: {what}"), bytes, Expect::Library);
    }

    // TPR names and versions.
    for name in [
        "mysql.io",
        "3d.prsn.io",
        "my--db.prsn.io",
        "MySQL.prsn.io",
        "db..io",
        "a.b",
        "",
        ".prsn.io",
        "x.extensions",
        "-a.b.c",
    ] {
        g.post_json(
            format!("TPR name {name:?}"),
            TPRS,
            json!({"metadata": {"name": name}, "versions": [{"name": "v1"}]}).to_string().as_bytes(),
        );
    }
    for versions in [
        json!(null),
        json!("v1"),
        json!([]),
        json!([{}]),
        json!([{"name": 1}]),
        json!(["v1"]),
        json!([{"name": "v1"}, {"name": "v1"}]),
        json!([{"name": "V1"}]),
        json!([{"name": "v1/namespaces"}]),
        json!([{"name": "a/b/c"}]),
        json!([{"name": "v1"}, {"name": "v1/x"}]),
        json!([{"name": "v1/x"}]),
        json!([{"name": "stable"}]),
        json!([{"name": "x".repeat(64)}]),
    ] {
        g.post_json(
            format!("TPR versions {}", short(&versions)),
            TPRS,
            json!({"metadata": {"name": "hostile.prsn.io"}, "versions": versions}).to_string().as_bytes(),
        );
    }
    g.post_json(
        "TPR description number",
        TPRS,
        br#"{"metadata":{"name":"hostile.prsn.io"},"description":1,"versions":[{"name":"v9"}]}"#,
    );
    for name in ["mysqldb.prsn.io", "mysql-db.prsn.io", "redis.prsn.io"] {
        g.post_json(
            format!("TPR taking {name}'s place"),
            TPRS,
            json!({"metadata": {"name": name}, "versions": [{"name": "v1"}]}).to_string().as_bytes(),
        );
    }
    g.patch(
        "TPR versions merge patch",
        &format!("{TPRS}/mysql-db.prsn.io"),
        "application/merge-patch+json",
        br#"{"versions": [{"name": "v1/watch"}]}"#,
    );
    g.patch(
        "TPR versions JSON patch",
        &format!("{TPRS}/mysql-db.prsn.io"),
        "application/json-patch+json",
        br#"[{"op": "replace", "path": "/versions", "value": "v1"}]"#,
    );

    // Random bytes, from a fixed seed, as bodies and as requests.
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for i in 0..40 {
        let len = (next() % 2000) as usize;
        let bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        g.post_json(format!("random body {i}"), DBS, &bytes);
        g.patch(format!("random apply {i}"), &format!("{obj}?fieldManager=r"), "application/apply-patch+yaml", &bytes);
        g.raw(format!("random request {i}"), bytes, Expect::Library);
    }
    g.cases
}

fn short(v: &Value) -> String {
    short_str(&v.to_string())
}

fn short_str(s: &str) -> String {
    s.chars().take(60).collect()
}

fn form(s: &str) -> String {
    s.bytes().map(|b| if b.is_ascii_alphanumeric() { (b as char).to_string() } else { format!("%{b:02X}") }).collect()
}

/// Every stored key (as its API path) with its resourceVersion.
fn snapshot(s: &Server) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let tprs = json(&s.curl(&[], TPRS));
    let mut lists = vec![TPRS.to_string()];
    for t in tprs["items"].as_array().unwrap() {
        let names = discovery::naming::from_tpr_name(t["metadata"]["name"].as_str().unwrap()).unwrap();
        let version = t["versions"][0]["name"].as_str().unwrap();
        lists.push(format!("/apis/{}/{version}/{}", names.group, names.plural));
    }
    for list in lists {
        let body = json(&s.curl(&[], &list));
        for item in body["items"].as_array().unwrap() {
            let m = &item["metadata"];
            let key = format!("{list}/{}/{}", m["namespace"].as_str().unwrap_or(""), m["name"].as_str().unwrap());
            out.insert(key, m["resourceVersion"].as_str().unwrap().to_string());
        }
    }
    out
}

fn hostile_input_is_refused_cleanly(backend: Backend) {
    let r = start(backend);
    let s = &r.server;
    create_tpr(s, "mysql-db.prsn.io", &["v1", "stable/v1"]);
    create_tpr(s, "redis.prsn.io", &["v1"]);
    for name in ["a", "b"] {
        let out = post(s, DBS, &json!({"metadata": {"name": name, "labels": {"tier": "db"}}, "list": [1, 2]}));
        assert_eq!(out.code, 201, "{}", out.body);
    }
    let before = snapshot(s);
    let cases = cases(&s.token());
    assert!(cases.len() >= 500, "{} cases", cases.len());
    testkit::process::reset_peak_rss(s.pid());
    let mut revision_now = revision(s);
    let mut failures = Vec::new();
    for case in &cases {
        let started = Instant::now();
        let mut conn = raw::connect(s, b"http/1.1").expect("connect");
        let _ = conn.send(&case.request);
        let answer = if case.request.starts_with(b"HEAD ") {
            // No body follows the headers of a HEAD answer; the connection closes.
            conn.until_closed(Duration::from_secs(5)).and_then(|(bytes, _)| {
                let text = String::from_utf8_lossy(&bytes).into_owned();
                text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).map(|c| (c, String::new()))
            })
        } else {
            conn.response(Duration::from_secs(5))
        };
        let took = started.elapsed();
        let problem = match (&answer, case.expect) {
            (None, Expect::Library) => {
                conn.until_closed(Duration::from_secs(5)).is_none().then(|| "neither answered nor closed".to_string())
            }
            (None, _) => Some(format!("no answer within 5 s ({took:?})")),
            (Some((code, _)), Expect::FutureRevision) if *code == 504 => None,
            (Some((code, body)), expect) if *code >= 500 => Some(format!("{code} {expect:?}: {}", short_str(body))),
            (Some((code, _)), Expect::Library) if *code >= 400 => None,
            // HEAD answers carry no body.
            (Some((code, _)), _) if *code >= 400 && case.request.starts_with(b"HEAD ") => None,
            (Some((code, body)), _) if *code >= 400 => match serde_json::from_str::<Value>(body) {
                Ok(v) if v["kind"] == "Status" && v["code"].as_u64() == Some(*code as u64) => None,
                _ => Some(format!("{code} without a matching Status: {}", short_str(body))),
            },
            // Reads may succeed; a write that succeeded shows in the revision below.
            (Some(_), _) => None,
        };
        if let Some(p) = problem {
            failures.push(format!("{}: {p}", case.what));
        }
        assert!(alive(s), "the server died at: {}", case.what);
        let now = revision(s);
        if now != revision_now {
            failures.push(format!("{}: the store's revision moved from {revision_now} to {now}", case.what));
            revision_now = now;
        }
    }
    let peak_mb = testkit::process::status_kb(s.pid(), "VmHWM") / 1024;
    assert!(failures.is_empty(), "{} of {} cases failed:\n{}", failures.len(), cases.len(), failures.join("\n"));
    assert_eq!(snapshot(s), before, "every key and revision as before");
    assert!(peak_mb < 400, "peak RSS {peak_mb} MB");
    eprintln!("{} hostile requests, peak RSS {peak_mb} MB", cases.len());
}

on_both_backends!(hostile_input_is_refused_cleanly);
