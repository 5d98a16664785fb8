//! What kubectl and client-go rely on before they write: discovery (the legacy
//! documents, and aggregated discovery, apidiscovery.k8s.io v2 and v2beta1,
//! with ETags, following TPRs as they are created and deleted) and
//! server-side field validation.

mod common;

use common::{create_tpr, json, kubectl, start, Backend};
use serde_json::Value;

const V2: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";
const V2BETA1: &str = "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList";

/// A GET with extra headers: (status, response headers lower-cased, body).
fn get(s: &testkit::Server, headers: &[&str], path: &str) -> (u16, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let dump = dir.path().join("headers");
    let mut args: Vec<&str> = Vec::new();
    for h in headers {
        args.extend(["-H", h]);
    }
    let dump_arg = dump.to_str().unwrap().to_string();
    args.extend(["-D", &dump_arg]);
    let out = s.curl(&args, path);
    let head = std::fs::read_to_string(&dump).unwrap_or_default().to_ascii_lowercase();
    (out.code, head, out.body)
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| l.strip_prefix(&format!("{name}: "))).map(str::trim)
}

fn groups(doc: &Value) -> Vec<String> {
    doc["items"].as_array().unwrap().iter().map(|g| g["metadata"]["name"].as_str().unwrap().to_string()).collect()
}

fn aggregated_discovery_follows_tprs(backend: Backend) {
    // The TPR groups alone, as behind kube-aggregator (standalone.rs covers the built-in ones).
    let r = common::start_with(backend, &["--builtin-types=false"]);
    let s = &r.server;
    let accept = format!("Accept: {V2},{V2BETA1},application/json");
    let (code, head, body) = get(s, &[&accept], "/apis");
    assert_eq!(code, 200, "{body}");
    assert_eq!(header(&head, "content-type"), Some(V2.to_ascii_lowercase().as_str()), "{head}");
    let doc: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(doc["kind"], "APIGroupDiscoveryList");
    assert_eq!(groups(&doc), ["extensions"]);
    let tpr = &doc["items"][0]["versions"][0]["resources"][0];
    assert_eq!((tpr["resource"].as_str(), tpr["scope"].as_str()), (Some("thirdpartyresources"), Some("Cluster")));
    assert_eq!(tpr["shortNames"], serde_json::json!(["tpr"]));
    let etag = header(&head, "etag").expect("an ETag").to_string();
    // Unchanged: 304 for the same ETag.
    let (code, _, body) = get(s, &[&accept, &format!("If-None-Match: {etag}")], "/apis");
    assert_eq!((code, body.as_str()), (304, ""));
    // A new TPR changes discovery at once (new ETag, new group; stable/v1 is not listed).
    create_tpr(s, "mysql-db.prsn.io", &["stable/v1", "v1"]);
    let (code, head, body) = get(s, &[&accept, &format!("If-None-Match: {etag}")], "/apis");
    assert_eq!(code, 200, "{body}");
    assert_ne!(header(&head, "etag"), Some(etag.as_str()));
    let doc: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(groups(&doc), ["extensions", "prsn.io"]);
    let prsn = &doc["items"][1];
    assert_eq!(prsn["versions"].as_array().unwrap().len(), 1, "{prsn}");
    let dbs = &prsn["versions"][0]["resources"][0];
    assert_eq!(prsn["versions"][0]["version"], "v1");
    assert_eq!((dbs["resource"].as_str(), dbs["singularResource"].as_str()), (Some("mysqldbs"), Some("mysqldb")));
    assert_eq!(dbs["responseKind"], serde_json::json!({"group": "prsn.io", "version": "v1", "kind": "MysqlDb"}));
    assert_eq!(dbs["scope"], "Namespaced");
    // v2beta1, the core group, the legacy form, and 406 for a form that cannot be served.
    let (_, head, body) = get(s, &[&format!("Accept: {V2BETA1}")], "/apis");
    assert_eq!(header(&head, "content-type"), Some(V2BETA1.to_ascii_lowercase().as_str()));
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["apiVersion"], "apidiscovery.k8s.io/v2beta1");
    let (_, _, body) = get(s, &[&accept], "/api");
    let core = serde_json::from_str::<Value>(&body).unwrap();
    assert_eq!(core["items"][0]["versions"][0]["resources"], serde_json::json!([]), "{core}");
    let legacy = json(&s.curl(&[], "/apis"));
    assert_eq!(legacy["kind"], "APIGroupList");
    let (code, _, _) =
        get(s, &["Accept: application/json;g=apidiscovery.k8s.io;v=v3;as=APIGroupDiscoveryList"], "/apis");
    assert_eq!(code, 406);
    // kubectl reads it.
    let out = kubectl(s, &["api-resources"], None);
    assert!(out.lines().any(|l| l.starts_with("thirdpartyresources") && l.contains(" tpr ")), "{out}");
    assert!(out.lines().any(|l| l.starts_with("mysqldbs") && l.contains("prsn.io/v1")), "{out}");
    let out = kubectl(s, &["api-versions"], None);
    assert_eq!(out.lines().collect::<Vec<_>>(), ["extensions/v1beta1", "prsn.io/v1", "v1"], "{out}");
    // Deleting the TPR removes its group.
    kubectl(s, &["delete", "tpr", "mysql-db.prsn.io"], None);
    let began = std::time::Instant::now();
    loop {
        let (_, _, body) = get(s, &[&accept], "/apis");
        let now = groups(&serde_json::from_str(&body).unwrap());
        if now == ["extensions"] {
            break;
        }
        assert!(began.elapsed() < std::time::Duration::from_secs(10), "the group stayed listed: {now:?}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// `fieldValidation`: unknown metadata fields and duplicate fields, with curl
/// and with kubectl (which asks for Strict by default).
fn field_validation(backend: Backend) {
    let r = start(backend);
    let s = &r.server;
    create_tpr(s, "mysql-db.prsn.io", &["v1"]);
    let dbs = "/apis/prsn.io/v1/namespaces/default/mysqldbs";
    let unknown = r#"{"metadata":{"name":"a","colour":"red"},"size":"s"}"#;
    let (code, _, body) = post_with_headers(s, &format!("{dbs}?fieldValidation=Strict"), unknown);
    assert_eq!(code, 400, "{body}");
    assert!(
        body.contains("MysqlDb in version \\\"v1\\\" cannot be handled as a MysqlDb: strict decoding error: unknown field \\\"metadata.colour\\\""),
        "{body}"
    );
    let (code, head, body) = post_with_headers(s, dbs, unknown);
    assert_eq!(code, 201, "{body}");
    assert!(head.contains("warning: 299 - \"unknown field \\\"metadata.colour\\\"\""), "{head}");
    assert!(!json(&s.curl(&[], &format!("{dbs}/a"))).to_string().contains("colour"), "unknown metadata is dropped");
    let duplicate = r#"{"metadata":{"name":"b"},"size":"s","size":"m"}"#;
    let (code, _, body) = post_with_headers(s, &format!("{dbs}?fieldValidation=Strict"), duplicate);
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("duplicate field \\\"size\\\""), "{body}");
    let (code, head, _) = post_with_headers(s, &format!("{dbs}?fieldValidation=Ignore"), duplicate);
    assert_eq!(code, 201);
    assert!(!head.contains("warning:"), "{head}");
    let (code, _, _) = post_with_headers(s, &format!("{dbs}?fieldValidation=Loud"), r#"{"metadata":{"name":"c"}}"#);
    assert_eq!(code, 400);
    // kubectl: strict by default, a warning with --validate=warn.
    let yaml = "apiVersion: prsn.io/v1\nkind: MysqlDb\nmetadata:\n  name: k\n  colour: red\n";
    let (status, out) = common::kubectl_status(s, &["create", "-f", "-"], Some(yaml));
    assert_ne!(status, Some(0), "{out}");
    assert!(out.contains("unknown field \"metadata.colour\""), "{out}");
    let (status, out) = common::kubectl_status(s, &["create", "--validate=warn", "-f", "-"], Some(yaml));
    assert_eq!(status, Some(0), "{out}");
    assert!(out.contains("Warning: unknown field \"metadata.colour\""), "{out}");
}

/// A POST of `body` to `path`: (status, response headers lower-cased, body).
fn post_with_headers(s: &testkit::Server, path: &str, body: &str) -> (u16, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let dump = dir.path().join("headers");
    let dump_arg = dump.to_str().unwrap().to_string();
    let out = s.curl(&["-H", "Content-Type: application/json", "-d", body, "-D", &dump_arg], path);
    let head = std::fs::read_to_string(&dump).unwrap_or_default().to_ascii_lowercase();
    (out.code, head, out.body)
}

/// OpenAPI: v3 (what kubectl explain and validation read) and v2 as JSON with
/// the group-version-kind extensions; v2 as protobuf, which kubectl asks for
/// during a client-side apply, is 406 and kubectl falls back to a merge patch.
fn openapi_documents(backend: Backend) {
    let r = start(backend);
    let s = &r.server;
    create_tpr(s, "mysql-db.prsn.io", &["v1"]);
    let index = json(&s.curl(&[], "/openapi/v3"));
    let url = index["paths"]["apis/prsn.io/v1"]["serverRelativeURL"].as_str().expect("prsn.io/v1 in the index");
    let v3 = json(&s.curl(&[], url));
    let gvk = &v3["components"]["schemas"]["io.prsn.v1.MysqlDb"]["x-kubernetes-group-version-kind"][0];
    assert_eq!(gvk["kind"], "MysqlDb", "{v3}");
    let v2 = json(&s.curl(&[], "/openapi/v2"));
    assert_eq!(v2["swagger"], "2.0");
    let def = &v2["definitions"]["io.prsn.v1.MysqlDb"];
    assert_eq!(def["x-kubernetes-group-version-kind"][0]["group"], "prsn.io", "{v2}");
    // The protobuf form kubectl asks for, with an ETag and 304 for it.
    let pb = "Accept: application/com.github.proto-openapi.spec.v2@v1.0+protobuf";
    let (code, head, body) = get(s, &[pb], "/openapi/v2");
    assert_eq!(code, 200);
    assert_eq!(
        header(&head, "content-type"),
        Some("application/com.github.proto-openapi.spec.v2.v1.0+protobuf"),
        "{head}"
    );
    assert!(body.as_bytes().starts_with(b"\n\x032.0"), "swagger \"2.0\" is field 1");
    assert!(body.contains("io.prsn.v1.MysqlDb") && body.contains("x-kubernetes-group-version-kind"));
    let etag = header(&head, "etag").expect("an ETag").to_string();
    let (code, _, _) = get(s, &[pb, &format!("If-None-Match: {etag}")], "/openapi/v2");
    assert_eq!(code, 304);
    let (code, head, _) = get(s, &[], "/openapi/v2");
    assert_eq!((code, header(&head, "content-type")), (200, Some("application/json")));
    assert_ne!(header(&head, "etag"), Some(etag.as_str()), "JSON and protobuf have their own ETags");
    let read = &v2["paths"]["/apis/prsn.io/v1/namespaces/{namespace}/mysqldbs/{name}"]["get"];
    assert_eq!(read["responses"]["200"]["schema"]["$ref"], "#/definitions/io.prsn.v1.MysqlDb", "{read}");
    // Client-side apply, create then change, works with kubectl's default validation.
    let yaml = "apiVersion: prsn.io/v1\nkind: MysqlDb\nmetadata:\n  name: a\nsize: small\n";
    kubectl(s, &["apply", "-f", "-"], Some(yaml));
    let out = kubectl(s, &["apply", "-f", "-"], Some(&yaml.replace("small", "large")));
    assert!(out.contains("mysqldb.prsn.io/a configured"), "{out}");
    let out = kubectl(s, &["explain", "mysqldbs"], None);
    assert!(out.contains("KIND:       MysqlDb"), "{out}");
}

on_both_backends!(aggregated_discovery_follows_tprs, field_validation, openapi_documents);
