//! No request may crash the server, poison a type, or touch another type's
//! data (issue 9): one test per defect found by hand, asserting what a client
//! sees, the crash and poison cases on both backends.

mod common;

use std::time::{Duration, Instant};

use common::{alive, create_tpr, json, merge_patch, post, revision, start, Backend, CurlWatch};
use serde_json::{json, Value};
use testkit::Server;

const DBS: &str = "/apis/prsn.io/v1/namespaces/default/mysqldbs";
const TPRS: &str = "/apis/extensions/v1beta1/thirdpartyresources";

/// `{"a": {"a": ... "leaf"}}`, `levels` objects deep.
fn nested(levels: usize) -> Value {
    let mut v = json!("leaf");
    for _ in 0..levels {
        v = json!({ "a": v });
    }
    v
}

fn json_patch(s: &Server, path: &str, patch: &Value) -> testkit::CurlOutput {
    s.curl(&["-X", "PATCH", "-H", "Content-Type: application/json-patch+json", "-d", &patch.to_string()], path)
}

/// Asserts an error is a Status whose code is the HTTP status.
fn status(out: &testkit::CurlOutput, code: u16) -> Value {
    assert_eq!(out.code, code, "{}", out.body);
    let v = json(out);
    assert_eq!((v["kind"].as_str(), v["code"].as_u64()), (Some("Status"), Some(code as u64)), "{v}");
    v
}

/// Six `copy` operations that copy an object into itself double its depth
/// each time: refused before they run (422), with or without dryRun, and the
/// server lives on.
fn json_patch_copies_cannot_crash_the_server(backend: Backend) {
    let r = start(backend);
    let s = &r.server;
    create_tpr(s, "mysql-db.prsn.io", &["v1"]);
    assert_eq!(post(s, DBS, &json!({"metadata": {"name": "d"}, "deep": nested(50)})).code, 201);
    let before = revision(s);
    let into_itself = format!("/deep{}", "/a".repeat(49));
    let ops: Vec<Value> = (0..6).map(|_| json!({"op": "copy", "from": "/deep", "path": into_itself})).collect();
    for query in ["?dryRun=All", ""] {
        let out = json_patch(s, &format!("{DBS}/d{query}"), &Value::Array(ops.clone()));
        let st = status(&out, 422);
        assert!(st["message"].as_str().unwrap().contains("nested deeper than 100"), "{st}");
    }
    // Size doubling too: refused by the size ceiling or the work budget.
    assert_eq!(post(s, DBS, &json!({"metadata": {"name": "big"}, "a": ["x".repeat(100_000)]})).code, 201);
    let ops: Vec<Value> = (0..40).map(|_| json!({"op": "copy", "from": "/a", "path": "/a/0"})).collect();
    let out = json_patch(s, &format!("{DBS}/big"), &Value::Array(ops));
    assert!(out.code == 413 || out.code == 422, "{}", out.body);
    assert!(alive(s), "the server must survive");
    assert_eq!(s.curl_as(true, &[], "/healthz").body, "ok");
    let after = revision(s);
    assert_eq!(before.parse::<i64>().unwrap() + 1, after.parse::<i64>().unwrap(), "only the create of big was stored");
}

/// An object nested under serde_json's parse limit used to be stored and then
/// be unreadable (managedFields pushed it past the limit), taking down its
/// type's list. Now: deeper than the bound is a 400/422 that stores nothing,
/// and whatever is stored reads back, also after a restart.
fn a_deep_object_cannot_poison_its_type(backend: Backend) {
    let r = start(backend);
    let s = &r.server;
    create_tpr(s, "mysql-db.prsn.io", &["v1"]);
    let before = revision(s);
    for levels in [101, 124, 127] {
        let out = post(s, DBS, &json!({"metadata": {"name": "deep"}, "deep": nested(levels)}));
        let st = status(&out, 400);
        assert!(st["message"].as_str().unwrap().contains("nested too deeply"), "{st}");
    }
    assert_eq!(revision(s), before, "nothing stored");
    // The deepest allowed object is stored and reads back with its managedFields.
    let out = post(s, DBS, &json!({"metadata": {"name": "deepest"}, "deep": nested(98)}));
    assert_eq!(out.code, 201, "{}", out.body);
    assert!(json(&out)["metadata"]["managedFields"].is_array());
    // A merge patch or an apply cannot push it past the bound either.
    let out = merge_patch(s, &format!("{DBS}/deepest"), &json!({"more": {"b": nested(99)}}).to_string());
    assert!(out.code == 422 || out.code == 400, "{}", out.body);
    let apply =
        json!({"apiVersion": "prsn.io/v1", "kind": "MysqlDb", "metadata": {"name": "deepest"}, "x": {"y": nested(99)}});
    let out = s.curl(
        &["-X", "PATCH", "-H", "Content-Type: application/apply-patch+yaml", "-d", &apply.to_string()],
        &format!("{DBS}/deepest?fieldManager=t"),
    );
    assert!(out.code == 422 || out.code == 400, "{}", out.body);
    for path in [DBS.to_string(), "/apis/prsn.io/v1/mysqldbs".into(), format!("{DBS}/deepest")] {
        assert_eq!(s.curl(&[], &path).code, 200, "{path}");
    }
    let r = r.restart();
    let s = &r.server;
    assert_eq!(s.curl(&[], "/apis/prsn.io/v1/mysqldbs").code, 200, "after a restart too");
    assert_eq!(s.curl(&["-X", "DELETE"], &format!("{DBS}/deepest")).code, 200);
}

/// A stored value that cannot be read (a bug, a hand edit of etcd) does not
/// take the type down: a list names it (StorageReadError, as kube-apiserver
/// with KEP-3926), other objects are served, a watch ends with an ERROR
/// rather than missing it, and an admin deletes it with
/// `ignoreStoreReadErrorWithClusterBreakingPotential`.
fn unreadable_objects_are_named_and_can_be_deleted(backend: Backend) {
    let r = start(backend);
    create_tpr(&r.server, "mysql-db.prsn.io", &["v1"]);
    for name in ["good", "other"] {
        assert_eq!(post(&r.server, DBS, &json!({"metadata": {"name": name}})).code, 201);
    }
    let key = "/registry/prsn.io/mysqldbs/default/broken";
    let r = r.with_store(|store, rt| {
        rt.block_on(store.create(key, bytes::Bytes::from_static(b"{\"metadata\": {\"name\": \"broken\""))).unwrap();
    });
    let s = &r.server;
    let out = s.curl(&[], DBS);
    let st = status(&out, 500);
    assert_eq!(st["reason"], "StorageReadError", "{st}");
    assert_eq!(st["message"], "failed to read one or more mysqldbs.prsn.io from the storage");
    assert_eq!(st["details"]["causes"][0]["field"], key, "{st}");
    assert_eq!(s.curl(&[], &format!("{DBS}/good")).code, 200, "other objects are served");
    let st = status(&s.curl(&[], &format!("{DBS}/broken")), 500);
    assert!(st["message"].as_str().unwrap().contains(key), "{st}");
    // A watch from the current state meets it: an ERROR, not a silent gap.
    let w = CurlWatch::open(s, &format!("{DBS}?watch=true&resourceVersion=0"));
    let mut saw_error = false;
    while let Some(line) = w.next_line(Duration::from_secs(5)) {
        if line.contains("\"ERROR\"") {
            assert!(line.contains(key), "{line}");
            saw_error = true;
            break;
        }
    }
    assert!(saw_error, "the watch must end with an ERROR naming the object");
    // Plain deletes cannot read it; the unsafe option is only for corrupt objects.
    assert_eq!(s.curl(&["-X", "DELETE"], &format!("{DBS}/broken")).code, 500);
    let unsafe_delete =
        r#"{"kind":"DeleteOptions","apiVersion":"v1","ignoreStoreReadErrorWithClusterBreakingPotential":true}"#;
    let with = |name: &str| {
        s.curl(&["-X", "DELETE", "-H", "Content-Type: application/json", "-d", unsafe_delete], &format!("{DBS}/{name}"))
    };
    let st = status(&with("good"), 422);
    assert!(st["message"].as_str().unwrap().contains("exclusively used to delete corrupt object"), "{st}");
    let st = status(&s.curl(&["-X", "DELETE", "-H", "Content-Type: application/json", "-d", unsafe_delete], DBS), 422);
    assert!(st["message"].as_str().unwrap().contains("DELETECOLLECTION"), "{st}");
    let rv = revision(s);
    let w = CurlWatch::open(s, &format!("{DBS}?watch=true&resourceVersion={rv}"));
    assert_eq!(with("broken").code, 200);
    let (kind, obj) = w.next();
    assert_eq!(kind, "DELETED");
    assert_eq!(
        (obj["metadata"]["name"].as_str(), obj["metadata"]["namespace"].as_str()),
        (Some("broken"), Some("default"))
    );
    let list = json(&s.curl(&[], DBS));
    assert_eq!(list["items"].as_array().unwrap().len(), 2, "{list}");
}

/// `mysqldb.prsn.io` would serve the same group and plural as
/// `mysql-db.prsn.io`: refused with 409 naming it. If such a pair is stored
/// anyway (two replicas raced, or an older server), the older one serves and
/// deleting the other deletes none of its objects.
fn tprs_cannot_take_over_another_tprs_data(backend: Backend) {
    let r = start(backend);
    let s = &r.server;
    create_tpr(s, "mysql-db.prsn.io", &["v1"]);
    for i in 0..61 {
        assert_eq!(post(s, DBS, &json!({"metadata": {"name": format!("db{i}")}})).code, 201);
    }
    for (name, versions) in [("mysqldb.prsn.io", json!([{"name": "v1"}])), ("mysqldb.prsn.io", json!([{"name": "v2"}]))]
    {
        let body = json!({"metadata": {"name": name}, "versions": versions});
        let st = status(&post(s, TPRS, &body), 409);
        let message = st["message"].as_str().unwrap();
        assert!(message.contains("mysqldbs.prsn.io") && message.contains("\"mysql-db.prsn.io\""), "{message}");
    }
    // policy → policies and policie → policies.
    create_tpr(s, "policy.prsn.io", &["v1"]);
    status(&post(s, TPRS, &json!({"metadata": {"name": "policie.prsn.io"}, "versions": [{"name": "v1"}]})), 409);
    // Stored anyway, as a race would leave it: a newer TPR for the same plural.
    let later = json!({"apiVersion": "extensions/v1beta1", "kind": "ThirdPartyResource",
        "metadata": {"name": "mysqldb.prsn.io", "uid": "raced", "creationTimestamp": "2099-01-01T00:00:00Z"},
        "versions": [{"name": "v1"}, {"name": "v9"}]});
    let r = r.with_store(|store, rt| {
        let key = "/registry/thirdpartyresources/mysqldb.prsn.io";
        rt.block_on(store.create(key, bytes::Bytes::from(later.to_string()))).unwrap();
    });
    let s = &r.server;
    let list = json(&s.curl(&[], DBS));
    assert_eq!(list["items"].as_array().unwrap().len(), 61);
    assert_eq!(list["kind"], "MysqlDbList", "the older TPR serves the plural: {}", list["kind"]);
    assert_eq!(s.curl(&[], "/apis/prsn.io/v9").code, 404, "the newer one is not served");
    let out = s.curl(&["-X", "DELETE"], &format!("{TPRS}/mysqldb.prsn.io"));
    assert_eq!(out.code, 200, "{}", out.body);
    let began = Instant::now();
    while s.curl(&[], &format!("{TPRS}/mysqldb.prsn.io")).code != 404 {
        assert!(began.elapsed() < Duration::from_secs(10), "the TPR must go");
        std::thread::sleep(Duration::from_millis(50));
    }
    let list = json(&s.curl(&[], DBS));
    assert_eq!(list["items"].as_array().unwrap().len(), 61, "deleting a TPR touches only its own data");
    // Deleting the TPR that serves them deletes them.
    assert_eq!(s.curl(&["-X", "DELETE"], &format!("{TPRS}/mysql-db.prsn.io")).code, 200);
    let began = Instant::now();
    while s.curl(&[], DBS).code != 404 {
        assert!(began.elapsed() < Duration::from_secs(10), "the type must go");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Versions: a DNS label, or two (`stable/v1`); nothing that makes another
/// path ambiguous (`v1/namespaces` would shadow every namespaced path).
fn tpr_versions_cannot_shadow_paths(backend: Backend) {
    let r = start(backend);
    let s = &r.server;
    create_tpr(s, "mysql-db.prsn.io", &["stable/v1", "v1"]);
    assert_eq!(post(s, DBS, &json!({"metadata": {"name": "a"}})).code, 201);
    let tpr = |name: &str, version: &str| {
        post(s, TPRS, &json!({"metadata": {"name": name}, "versions": [{"name": version}]}))
    };
    for bad in ["v1/namespaces", "v2/watch", "a/b/c", "V1", "v1/", "/v1", "", "v 1", "-v1"] {
        status(&tpr("shadow.prsn.io", bad), 422);
    }
    for ambiguous in ["v1/x", "stable"] {
        let st = status(&tpr("shadow.prsn.io", ambiguous), 409);
        assert!(st["message"].as_str().unwrap().contains("ambiguous"), "{st}");
    }
    status(
        &post(s, TPRS, &json!({"metadata": {"name": "two.prsn.io"}, "versions": [{"name": "v2"}, {"name": "v2/x"}]})),
        422,
    );
    assert_eq!(tpr("other.prsn.io", "beta/v1").code, 201);
    assert_eq!(s.curl(&[], &format!("{DBS}/a")).code, 200, "the paths of v1 still work");
    assert_eq!(s.curl(&[], "/apis/prsn.io/stable/v1/namespaces/default/mysqldbs/a").code, 200);
}

/// ObjectMeta of the wrong type is refused on every write path as
/// kube-apiserver's decoder refuses it (400); bad values are 422.
fn metadata_of_the_wrong_type_is_refused(backend: Backend) {
    let r = start(backend);
    let s = &r.server;
    create_tpr(s, "mysql-db.prsn.io", &["v1"]);
    assert_eq!(post(s, DBS, &json!({"metadata": {"name": "ok"}})).code, 201);
    let before = revision(s);
    let wrong = [
        json!({"finalizers": "x"}),
        json!({"finalizers": [1]}),
        json!({"finalizers": {}}),
        json!({"finalizers": [null]}),
        json!({"ownerReferences": "x"}),
        json!({"ownerReferences": [1]}),
        json!({"generateName": 1}),
        json!({"labels": {"a": 1}}),
        json!({"annotations": "x"}),
    ];
    for meta in &wrong {
        let mut m = meta.clone();
        m["name"] = json!("x");
        let st = status(&post(s, DBS, &json!({"metadata": m})), 400);
        assert!(st["message"].as_str().unwrap().contains("cannot be handled as a MysqlDb"), "{st}");
        let out = merge_patch(s, &format!("{DBS}/ok"), &json!({"metadata": meta}).to_string());
        assert_eq!(out.code, 400, "merge patch with {meta}: {}", out.body);
    }
    for meta in [json!({"finalizers": ["a b"]}), json!({"ownerReferences": [{}]}), json!({"generateName": "A B"})] {
        let mut m = meta.clone();
        m["name"] = json!("x");
        status(&post(s, DBS, &json!({"metadata": m})), 422);
        status(&merge_patch(s, &format!("{DBS}/ok"), &json!({"metadata": meta}).to_string()), 422);
    }
    assert_eq!(revision(s), before, "nothing was written");
}

on_both_backends!(
    json_patch_copies_cannot_crash_the_server,
    a_deep_object_cannot_poison_its_type,
    unreadable_objects_are_named_and_can_be_deleted,
    tprs_cannot_take_over_another_tprs_data,
    tpr_versions_cannot_shadow_paths,
    metadata_of_the_wrong_type_is_refused,
);

/// 100 nested keys of 1,000 bytes over 2,000 leaves (119 KB): managedFields
/// used to copy each leaf's whole key path (+392 MB peak RSS). The work of a
/// request is now a small multiple of its size.
#[test]
fn a_small_body_cannot_take_much_memory() {
    let r = start(Backend::Embedded);
    let s = &r.server;
    create_tpr(s, "mysql-db.prsn.io", &["v1"]);
    let mut leaves = serde_json::Map::new();
    for i in 0..2000 {
        leaves.insert(format!("leaf{i}"), json!(i));
    }
    let mut v = Value::Object(leaves);
    for i in 0..97 {
        v = json!({ format!("{i:01000}"): v });
    }
    let body = json!({"metadata": {"name": "wide"}, "spec": v}).to_string();
    assert!(body.len() > 100_000 && body.len() < 130_000, "{}", body.len());
    let file = r.dir.path().join("wide.json");
    std::fs::write(&file, &body).unwrap();
    let at = format!("@{}", file.display());
    testkit::process::reset_peak_rss(s.pid());
    let base = testkit::process::status_kb(s.pid(), "VmRSS");
    for query in ["?dryRun=All", ""] {
        let out = s.curl(&["-H", "Content-Type: application/json", "-d", &at], &format!("{DBS}{query}"));
        assert_eq!(out.code, 201, "{}", &out.body[..out.body.len().min(300)]);
    }
    let apply = s.curl(
        &["-X", "PATCH", "-H", "Content-Type: application/apply-patch+yaml", "-d", &at],
        &format!("{DBS}/wide?fieldManager=other&force=true"),
    );
    assert_eq!(apply.code, 200, "{}", &apply.body[..apply.body.len().min(300)]);
    let peak = testkit::process::status_kb(s.pid(), "VmHWM");
    assert!(peak < base + 64 * 1024, "peak RSS grew by {} MB", (peak.saturating_sub(base)) / 1024);
}

/// An apply body of 60,000 nested `[` (120 KB) is refused while parsing, in
/// linear time (it took 12-16 s of CPU); so are deep flow and block YAML and
/// alias bombs.
#[test]
fn deep_and_explosive_yaml_is_refused_while_parsing() {
    let r = start(Backend::Embedded);
    let s = &r.server;
    create_tpr(s, "mysql-db.prsn.io", &["v1"]);
    let cpu = testkit::process::cpu_time(s.pid());
    let mut laughs = String::from("a0: &a0 [\"xxxxxxxxxxxxxxxxxxxx\"]\n");
    for i in 1..30 {
        laughs.push_str(&format!("a{i}: &a{i} [{}]\n", vec![format!("*a{}", i - 1); 9].join(",")));
    }
    for (what, body) in
        [("[", "[".repeat(60_000)), ("{a: ", "{a: ".repeat(30_000)), ("- ", "- ".repeat(60_000)), ("laughs", laughs)]
    {
        let file = r.dir.path().join("body.yaml");
        std::fs::write(&file, &body).unwrap();
        let at = format!("@{}", file.display());
        let args = [
            "--max-time",
            "5",
            "-X",
            "PATCH",
            "-H",
            "Content-Type: application/apply-patch+yaml",
            "--data-binary",
            &at,
        ];
        let out = s.curl(&args, &format!("{DBS}/y?fieldManager=t"));
        status(&out, 400);
        assert!(out.body.contains("not valid YAML"), "{what}: {}", out.body);
    }
    let used = testkit::process::cpu_time(s.pid()).saturating_sub(cpu);
    assert!(used < Duration::from_secs(3), "refusing four bodies took {used:?} of CPU");
}

/// Label values of /metrics come from a closed set: 300 requests with junk
/// methods (answered 401) add no series.
#[test]
fn junk_requests_add_no_metric_series() {
    let r = start(Backend::Embedded);
    let s = &r.server;
    let size = |s: &Server| s.curl(&[], "/metrics").body.len();
    // The series of a junk request and of /metrics itself exist after the first of each.
    s.curl_as(true, &["-X", "JUNK"], "/apis/x");
    size(s);
    let before = size(s);
    for i in 0..300 {
        let out = s.curl_as(true, &["-X", &format!("M{i}")], "/apis/x");
        assert_eq!(out.code, 401);
    }
    let after = size(s);
    assert!(after < before + 2048, "/metrics grew from {before} to {after} bytes");
}

/// `/metrics` and other paths that are no resource are authorized: a user the
/// policy file limits to reading one namespace gets 403 there, a monitoring
/// rule opens it; discovery stays open to every authenticated user.
#[test]
fn metrics_need_authorization() {
    let (s, _dir) = common::start_with_policy(
        "alice-token,alice,1\nprom-token,prom,2,\"monitoring\"\n",
        "rules:\n- users: [alice]\n  verbs: [get, list]\n  apiGroups: [prsn.io]\n  resources: [mysqldbs]\n  namespaces: [default]\n- groups: [monitoring]\n  verbs: [get]\n  nonResourcePaths: [/metrics]\n",
    );
    let get = |token: &str, path: &str| s.curl_as(true, &["-H", &format!("Authorization: Bearer {token}")], path).code;
    assert_eq!(get("alice-token", "/metrics"), 403);
    assert_eq!(get("alice-token", "/"), 403);
    assert_eq!(get("prom-token", "/metrics"), 200);
    for path in ["/apis", "/api", "/openapi/v3", "/openapi/v2", "/version"] {
        assert_eq!(get("alice-token", path), 200, "{path}");
    }
    assert_eq!(s.curl_as(true, &[], "/metrics").code, 401);
    assert_eq!(s.curl_as(true, &[], "/").code, 401, "the path list needs credentials");
    assert_eq!(s.curl(&[], "/metrics").code, 200, "system:masters");
}

/// Only GET serves a watch path.
#[test]
fn post_to_a_watch_path_is_405() {
    let r = start(Backend::Embedded);
    let s = &r.server;
    create_tpr(s, "mysql-db.prsn.io", &["v1"]);
    let before = revision(s);
    let out = post(s, "/apis/prsn.io/v1/watch/namespaces/default/mysqldbs", &json!({"metadata": {"name": "w"}}));
    status(&out, 405);
    for method in ["PUT", "PATCH", "DELETE"] {
        let out = s.curl(
            &["-X", method, "-H", "Content-Type: application/merge-patch+json", "-d", "{}"],
            "/apis/prsn.io/v1/watch/namespaces/default/mysqldbs/w",
        );
        status(&out, 405);
    }
    assert_eq!(s.curl(&["-X", "POST", "-d", "{}"], "/apis").code, 405, "discovery is GET only");
    assert_eq!(revision(s), before);
}
