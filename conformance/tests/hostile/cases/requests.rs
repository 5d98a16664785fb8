//! Patches of every content type, methods, headers, malformed requests, TPR names and versions, random bytes.

use serde_json::{json, Value};

use super::*;

/// Adds this class's cases.
pub fn cases(g: &mut Gen, obj: &str) {
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
        g.patch(format!("JSON patch {}", short(p)), obj, "application/json-patch+json", p.to_string().as_bytes());
    }
    let many: Vec<Value> = (0..10_001).map(|_| json!({"op": "test", "path": "/metadata/name", "value": "a"})).collect();
    g.patch("10001 operations", obj, "application/json-patch+json", Value::Array(many).to_string().as_bytes());
    let copies: Vec<Value> =
        (0..30).map(|_| json!({"op": "copy", "from": "/metadata", "path": "/metadata/labels"})).collect();
    g.patch("copies into themselves", obj, "application/json-patch+json", Value::Array(copies).to_string().as_bytes());
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
            obj,
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
        g.req(format!("patch content type {ct:?}"), "PATCH", obj, &[("Content-Type", ct)], br#"{"x": 1}"#);
    }
    for ct in ["text/plain", "application/xml", "multipart/form-data", "application/cbor"] {
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
        for path in [DBS, obj, "/apis", "/metrics", "/", "/healthz", TPRS] {
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
}
