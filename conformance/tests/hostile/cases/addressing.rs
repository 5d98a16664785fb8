//! Bad names, namespaces, paths, selectors, resourceVersions and continue tokens.

use base64::Engine;
use serde_json::json;

use super::*;

/// Adds this class's cases.
pub fn cases(g: &mut Gen, obj: &str) {
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
}
