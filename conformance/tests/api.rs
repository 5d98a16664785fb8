//! The API with curl: writes, errors, lists, watches and TPR life cycle, on both backends.

mod common;

use std::time::{Duration, Instant};

use common::{create_tpr, json, merge_patch, post, start, Backend, CurlWatch};
use serde_json::{json, Value};

const DBS: &str = "/apis/prsn.io/v1/namespaces/default/mysqldbs";

fn db(name: &str) -> Value {
    json!({"apiVersion": "prsn.io/v1", "kind": "MysqlDb", "metadata": {"name": name, "labels": {"tier": "db"}}, "size": "small"})
}

fn rv(obj: &Value) -> String {
    obj["metadata"]["resourceVersion"].as_str().unwrap_or_default().to_string()
}

fn watch_sees_changes_in_order_and_resumes(backend: Backend) {
    let r = start(backend);
    let s = &r.server;
    create_tpr(s, "mysql-db.prsn.io", &["v1"]);
    let w = CurlWatch::open(s, &format!("{DBS}?watch=true&timeoutSeconds=20"));
    let created = json(&post(s, DBS, &db("a")));
    let mut changed = created.clone();
    changed["size"] = json!("large");
    let out =
        s.curl(&["-X", "PUT", "-H", "Content-Type: application/json", "-d", &changed.to_string()], &format!("{DBS}/a"));
    assert_eq!(out.code, 200, "{}", out.body);
    let updated = json(&out);
    assert_eq!(updated["metadata"]["generation"], 2);
    let out = s.curl(&["-X", "DELETE"], &format!("{DBS}/a"));
    assert_eq!(out.code, 200, "{}", out.body);
    let events: Vec<(String, Value)> = (0..3).map(|_| w.next()).collect();
    let kinds: Vec<&str> = events.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(kinds, ["ADDED", "MODIFIED", "DELETED"]);
    assert_eq!(rv(&events[0].1), rv(&created));
    assert_eq!(rv(&events[1].1), rv(&updated));
    assert_eq!(events[1].1["size"], "large");
    // Resume from the first event: the rest again, nothing missed.
    let resumed = CurlWatch::open(
        s,
        &format!(
            "/apis/prsn.io/v1/watch/namespaces/default/mysqldbs?resourceVersion={}&timeoutSeconds=20",
            rv(&created)
        ),
    );
    assert_eq!(resumed.next().0, "MODIFIED");
    assert_eq!(resumed.next().0, "DELETED");
    // A resourceVersion older than a type's cache (its cache starts when its
    // TPR is created) is served from the store's history, which still holds it.
    create_tpr(s, "redis-cache.prsn.io", &["v1"]);
    let old = CurlWatch::open(s, "/apis/prsn.io/v1/namespaces/default/rediscaches?watch=true&resourceVersion=1");
    let out = post(s, "/apis/prsn.io/v1/namespaces/default/rediscaches", &json!({"metadata": {"name": "c"}}));
    assert_eq!(out.code, 201, "{}", out.body);
    let (kind, obj) = old.next();
    assert_eq!((kind.as_str(), &obj["metadata"]["name"]), ("ADDED", &json!("c")));
}

fn writes_follow_kubernetes_rules(backend: Backend) {
    let r = start(backend);
    let s = &r.server;
    // Invalid TPR names are a 422 that states the rule.
    for bad in ["mysql.io", "3d.prsn.io", "my--db.prsn.io"] {
        let body = json!({"kind": "ThirdPartyResource", "apiVersion": "extensions/v1beta1", "metadata": {"name": bad}, "versions": [{"name": "v1"}]});
        let out = post(s, "/apis/extensions/v1beta1/thirdpartyresources", &body);
        assert_eq!(out.code, 422, "{bad}: {}", out.body);
        assert!(json(&out)["message"].as_str().unwrap().contains("must"), "{}", out.body);
    }
    create_tpr(s, "mysql-db.prsn.io", &["v1"]);
    create_tpr(s, "redis-cache.prsn.io", &["v1"]);
    // Two TPRs in one group are both served.
    let out = post(s, "/apis/prsn.io/v1/namespaces/default/rediscaches", &json!({"metadata": {"name": "c"}}));
    assert_eq!(out.code, 201, "{}", out.body);
    assert_eq!(json(&out)["kind"], "RedisCache", "kind and apiVersion are filled in");
    let a = json(&post(s, DBS, &db("a")));
    assert_eq!(a["metadata"]["generation"], 1);
    assert!(a["metadata"]["uid"].is_string() && a["metadata"]["creationTimestamp"].is_string());
    // Duplicate, stale update, wrong kind, wrong namespace, bad label, bad JSON.
    assert_eq!(post(s, DBS, &db("a")).code, 409);
    let mut stale = a.clone();
    stale["metadata"]["resourceVersion"] = json!("1");
    let out = s.curl(&["-X", "PUT", "-d", &stale.to_string()], &format!("{DBS}/a"));
    assert_eq!((out.code, json(&out)["reason"].as_str()), (409, Some("Conflict")));
    assert_eq!(post(s, DBS, &json!({"kind": "Other", "metadata": {"name": "x"}})).code, 400);
    assert_eq!(post(s, DBS, &json!({"metadata": {"name": "x", "namespace": "other"}})).code, 400);
    assert_eq!(post(s, DBS, &json!({"metadata": {"name": "x", "labels": {"bad key": "v"}}})).code, 422);
    assert_eq!(post(s, DBS, &json!({"metadata": {"name": "Bad_Name"}})).code, 422);
    assert_eq!(s.curl(&["-d", "{not json"], DBS).code, 400);
    let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
    assert_eq!(s.curl(&["-d", &format!("{{\"metadata\":{{\"name\":\"deep\"}},\"x\":{deep}}}")], DBS).code, 400);
    let big = format!("{{\"metadata\":{{\"name\":\"big\"}},\"blob\":\"{}\"}}", "x".repeat(4 << 20));
    let big_file = r.dir.path().join("big.json");
    std::fs::write(&big_file, big).unwrap();
    let out = s.curl(&["-d", &format!("@{}", big_file.display())], DBS);
    assert_eq!((out.code, json(&out)["reason"].as_str()), (413, Some("RequestEntityTooLarge")));
    let out = s.curl(
        &["-X", "PATCH", "-H", "Content-Type: application/strategic-merge-patch+json", "-d", "{}"],
        &format!("{DBS}/a"),
    );
    assert_eq!(out.code, 415, "{}", out.body);
    assert!(out.body.contains("application/json-patch+json"), "415 lists the accepted types: {}", out.body);
    assert!(out.body.contains("application/apply-patch+yaml"), "415 lists the accepted types: {}", out.body);
    // Server-side apply with curl: YAML, create on apply, fieldManager required, conflicts.
    let apply = |manager: &str, force: bool, yaml: &str| {
        let query = format!("{DBS}/applied?fieldManager={manager}&force={force}");
        s.curl(&["-X", "PATCH", "-H", "Content-Type: application/apply-patch+yaml", "--data-binary", yaml], &query)
    };
    let yaml = "apiVersion: prsn.io/v1\nkind: MysqlDb\nmetadata:\n  name: applied\nspec:\n  size: small\n";
    let out = apply("alice", false, yaml);
    assert_eq!(out.code, 201, "create on apply: {}", out.body);
    assert_eq!(json(&out)["metadata"]["managedFields"][0]["manager"], "alice");
    assert_eq!(apply("alice", false, yaml).code, 200);
    let out = apply("bob", false, &yaml.replace("small", "large"));
    assert_eq!((out.code, json(&out)["reason"].as_str()), (409, Some("Conflict")), "{}", out.body);
    assert_eq!(json(&out)["details"]["causes"][0]["field"], ".spec.size", "{}", out.body);
    assert_eq!(apply("bob", true, &yaml.replace("small", "large")).code, 200);
    let out = s.curl(
        &["-X", "PATCH", "-H", "Content-Type: application/apply-patch+yaml", "--data-binary", yaml],
        &format!("{DBS}/applied"),
    );
    assert_eq!(out.code, 400, "fieldManager is required: {}", out.body);
    assert_eq!(s.curl(&["-X", "POST", "-d", "{}"], &format!("{DBS}/a")).code, 405);
    assert_eq!(s.curl(&[], &format!("{DBS}/missing?unknownParam=1")).code, 404);
    // generateName and dryRun.
    let g = json(&post(s, DBS, &json!({"metadata": {"generateName": "db-"}})));
    assert!(g["metadata"]["name"].as_str().unwrap().starts_with("db-"));
    let dry = post(s, &format!("{DBS}?dryRun=All"), &db("dry"));
    assert_eq!(dry.code, 201);
    assert_eq!(s.curl(&[], &format!("{DBS}/dry")).code, 404, "dryRun stores nothing");
    // Merge patch; metadata-only changes keep the generation.
    let out = merge_patch(s, &format!("{DBS}/a"), r#"{"metadata":{"labels":{"x":"y"}}}"#);
    assert_eq!((out.code, json(&out)["metadata"]["generation"].as_i64()), (200, Some(1)), "{}", out.body);
    // Racing merge patches that do not pin a resourceVersion all apply.
    std::thread::scope(|scope| {
        for i in 0..6 {
            scope.spawn(move || {
                let out = merge_patch(
                    s,
                    &format!("{DBS}/a"),
                    &format!("{{\"metadata\":{{\"labels\":{{\"racer{i}\":\"yes\"}}}}}}"),
                );
                assert_eq!(out.code, 200, "racing patch {i}: {}", out.body);
            });
        }
    });
    let labels = json(&s.curl(&[], &format!("{DBS}/a")))["metadata"]["labels"].clone();
    assert!((0..6).all(|i| labels[format!("racer{i}")] == "yes"), "{labels}");
    // JSON patch (RFC 6902): a passing test applies, a failing one is 422 and changes nothing,
    // a malformed patch is 400.
    let json_patch = |patch: &str| {
        s.curl(&["-X", "PATCH", "-H", "Content-Type: application/json-patch+json", "-d", patch], &format!("{DBS}/a"))
    };
    let out = json_patch(
        r#"[{"op":"test","path":"/metadata/labels/x","value":"y"},{"op":"add","path":"/spec","value":{"size":"large"}}]"#,
    );
    assert_eq!(out.code, 200, "{}", out.body);
    assert_eq!(
        (json(&out)["spec"]["size"].as_str(), json(&out)["metadata"]["generation"].as_i64()),
        (Some("large"), Some(2))
    );
    let out = json_patch(r#"[{"op":"test","path":"/spec/size","value":"small"},{"op":"remove","path":"/spec"}]"#);
    assert_eq!((out.code, json(&out)["reason"].as_str()), (422, Some("Invalid")), "{}", out.body);
    assert_eq!(json(&s.curl(&[], &format!("{DBS}/a")))["spec"]["size"], "large", "a failed test changes nothing");
    assert_eq!(json_patch(r#"{"op":"add"}"#).code, 400);
    // Finalizers keep a deleted object until they are removed.
    let out = merge_patch(s, &format!("{DBS}/a"), r#"{"metadata":{"finalizers":["example.com/keep"]}}"#);
    assert_eq!(out.code, 200, "{}", out.body);
    let out = s.curl(&["-X", "DELETE"], &format!("{DBS}/a"));
    assert!(json(&out)["metadata"]["deletionTimestamp"].is_string(), "{}", out.body);
    assert_eq!(s.curl(&[], &format!("{DBS}/a")).code, 200);
    let out = merge_patch(s, &format!("{DBS}/a"), r#"{"metadata":{"finalizers":null}}"#);
    assert_eq!(out.code, 200, "{}", out.body);
    assert_eq!(s.curl(&[], &format!("{DBS}/a")).code, 404);
    // Delete preconditions.
    let b = json(&post(s, DBS, &db("b")));
    let out = s.curl(
        &["-X", "DELETE", "-H", "Content-Type: application/json", "-d", r#"{"preconditions":{"uid":"wrong"}}"#],
        &format!("{DBS}/b"),
    );
    assert_eq!(out.code, 409, "{}", out.body);
    let pre = json!({"preconditions": {"uid": b["metadata"]["uid"]}}).to_string();
    assert_eq!(
        s.curl(&["-X", "DELETE", "-H", "Content-Type: application/json", "-d", &pre], &format!("{DBS}/b")).code,
        200
    );
}

fn lists_select_and_page(backend: Backend) {
    let r = start(backend);
    let s = &r.server;
    create_tpr(s, "mysql-db.prsn.io", &["v1"]);
    common::create_namespace(s, "other");
    for i in 0..7 {
        let ns = if i % 2 == 0 { "default" } else { "other" };
        let body = json!({"metadata": {"name": format!("db{i}"), "labels": {"parity": if i % 2 == 0 { "even" } else { "odd" }}}});
        assert_eq!(post(s, &format!("/apis/prsn.io/v1/namespaces/{ns}/mysqldbs"), &body).code, 201);
    }
    let names = |out: &testkit::CurlOutput| -> Vec<String> {
        json(out)["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["metadata"]["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(names(&s.curl(&[], "/apis/prsn.io/v1/mysqldbs")).len(), 7);
    assert_eq!(names(&s.curl(&[], DBS)), ["db0", "db2", "db4", "db6"]);
    assert_eq!(names(&s.curl(&[], "/apis/prsn.io/v1/mysqldbs?labelSelector=parity%3Dodd")).len(), 3);
    assert_eq!(
        names(&s.curl(&[], "/apis/prsn.io/v1/mysqldbs?labelSelector=parity%20in%20(odd,even),parity!%3Deven")).len(),
        3
    );
    assert_eq!(names(&s.curl(&[], "/apis/prsn.io/v1/mysqldbs?fieldSelector=metadata.name%3Ddb3")), ["db3"]);
    assert_eq!(names(&s.curl(&[], "/apis/prsn.io/v1/mysqldbs?fieldSelector=metadata.namespace%3Dother")).len(), 3);
    assert_eq!(s.curl(&[], "/apis/prsn.io/v1/mysqldbs?labelSelector=in%20(").code, 400);
    // Pages: every page carries the first page's resourceVersion, while writes go on.
    let first = json(&s.curl(&[], "/apis/prsn.io/v1/mysqldbs?limit=3"));
    let list_rv = first["metadata"]["resourceVersion"].as_str().unwrap().to_string();
    // As kube-apiserver: how many objects follow the page, when no selector makes it a guess.
    assert_eq!(first["metadata"]["remainingItemCount"], 4, "{first}");
    assert_eq!(first["kind"], "MysqlDbList");
    let mut seen: Vec<String> = first["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(post(s, DBS, &json!({"metadata": {"name": "late"}})).code, 201);
    let mut token = first["metadata"]["continue"].as_str().map(String::from);
    while let Some(t) = token {
        let page = json(&s.curl(&[], &format!("/apis/prsn.io/v1/mysqldbs?limit=3&continue={t}")));
        assert_eq!(page["metadata"]["resourceVersion"], list_rv.as_str());
        seen.extend(
            page["items"].as_array().unwrap().iter().map(|o| o["metadata"]["name"].as_str().unwrap().to_string()),
        );
        token = page["metadata"]["continue"].as_str().map(String::from);
        let follow = 7 - seen.len();
        match token {
            Some(_) => assert_eq!(page["metadata"]["remainingItemCount"], follow, "{page}"),
            None => assert!(page["metadata"].get("remainingItemCount").is_none(), "{page}"),
        }
    }
    assert_eq!(seen.len(), 7, "the page set is the list at the first page's revision: {seen:?}");
    let selected = json(&s.curl(&[], "/apis/prsn.io/v1/mysqldbs?limit=1&labelSelector=parity%3Dodd"));
    assert!(selected["metadata"]["continue"].is_string(), "{selected}");
    assert!(selected["metadata"].get("remainingItemCount").is_none(), "a selector makes the count a guess: {selected}");
    assert_eq!(s.curl(&[], "/apis/prsn.io/v1/mysqldbs?limit=3&continue=garbage").code, 400);
    // deletecollection with a selector.
    let out = s.curl(&["-X", "DELETE"], "/apis/prsn.io/v1/namespaces/other/mysqldbs?labelSelector=parity%3Dodd");
    assert_eq!(out.code, 200, "{}", out.body);
    assert_eq!(names(&s.curl(&[], "/apis/prsn.io/v1/namespaces/other/mysqldbs")).len(), 0);
}

fn deleting_a_tpr_deletes_its_objects(backend: Backend) {
    let r = start(backend);
    let s = &r.server;
    create_tpr(s, "mysql-db.prsn.io", &["v1"]);
    common::create_namespace(s, "team-a");
    common::create_namespace(s, "team-b");
    for ns in ["default", "team-a", "team-b"] {
        assert_eq!(
            post(s, &format!("/apis/prsn.io/v1/namespaces/{ns}/mysqldbs"), &json!({"metadata": {"name": "db"}})).code,
            201
        );
    }
    let w = CurlWatch::open(s, "/apis/prsn.io/v1/mysqldbs?watch=true&resourceVersion=0&timeoutSeconds=20");
    for _ in 0..3 {
        assert_eq!(w.next().0, "ADDED");
    }
    let out = s.curl(&["-X", "DELETE"], "/apis/extensions/v1beta1/thirdpartyresources/mysql-db.prsn.io");
    assert_eq!(out.code, 200, "{}", out.body);
    assert!(json(&out)["metadata"]["deletionTimestamp"].is_string(), "the TPR shows its deletion: {}", out.body);
    let mut deleted: Vec<String> = (0..3)
        .map(|_| w.next())
        .map(|(k, o)| format!("{k} {}", o["metadata"]["namespace"].as_str().unwrap()))
        .collect();
    deleted.sort();
    assert_eq!(deleted, ["DELETED default", "DELETED team-a", "DELETED team-b"]);
    let began = Instant::now();
    while s.curl(&[], "/apis/extensions/v1beta1/thirdpartyresources/mysql-db.prsn.io").code != 404 {
        assert!(began.elapsed() < Duration::from_secs(10), "the TPR was never deleted");
        std::thread::sleep(Duration::from_millis(20));
    }
    while s.curl(&[], "/apis/prsn.io/v1/mysqldbs").code != 404 {
        assert!(began.elapsed() < Duration::from_secs(10), "the type is still served");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Re-created, the type starts empty.
    create_tpr(s, "mysql-db.prsn.io", &["v1"]);
    assert_eq!(json(&s.curl(&[], "/apis/prsn.io/v1/mysqldbs"))["items"].as_array().unwrap().len(), 0);
}

fn sigterm_ends_watches_cleanly(backend: Backend) {
    let r = start(backend);
    create_tpr(&r.server, "mysql-db.prsn.io", &["v1"]);
    let w = CurlWatch::open(&r.server, &format!("{DBS}?watch=true"));
    std::thread::sleep(Duration::from_millis(200));
    let common::Running { server, etcd: _etcd, dir: _dir, .. } = r;
    assert!(server.terminate().unwrap().success(), "the server exits 0");
    assert!(w.wait().success(), "the watch stream ended cleanly");
}

fn bounds_and_negotiation(backend: Backend) {
    let r = common::start_with(backend, &["--max-watches", "1"]);
    let s = &r.server;
    create_tpr(s, "mysql-db.prsn.io", &["v1"]);
    let out = s.curl(&["-H", "Accept: application/vnd.kubernetes.protobuf"], DBS);
    assert_eq!((out.code, json(&out)["reason"].as_str()), (406, Some("NotAcceptable")), "{}", out.body);
    assert_eq!(s.curl(&["-H", "Accept: application/vnd.kubernetes.protobuf, */*"], DBS).code, 200);
    let first = CurlWatch::open(s, &format!("{DBS}?watch=true"));
    std::thread::sleep(Duration::from_millis(300));
    let out = s.curl(&[], &format!("{DBS}?watch=true"));
    assert_eq!((out.code, json(&out)["reason"].as_str()), (429, Some("TooManyRequests")), "{}", out.body);
    drop(first);
    let began = Instant::now();
    loop {
        let out = s.curl(&[], &format!("{DBS}?watch=true&timeoutSeconds=1"));
        if out.code == 200 {
            break;
        }
        assert!(began.elapsed() < Duration::from_secs(5), "the closed watch's slot was never released");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn reads_at_revisions_and_initial_events(backend: Backend) {
    let r = start(backend);
    let s = &r.server;
    create_tpr(s, "mysql-db.prsn.io", &["v1"]);
    let a = json(&post(s, DBS, &db("a")));
    let b = json(&post(s, DBS, &db("b")));
    // An exact older revision lists the state then.
    let out = s.curl(&[], &format!("{DBS}?resourceVersion={}&resourceVersionMatch=Exact", rv(&a)));
    let then = json(&out);
    assert_eq!(then["metadata"]["resourceVersion"], rv(&a).as_str(), "{}", out.body);
    assert_eq!(then["items"].as_array().unwrap().len(), 1);
    let now = json(&s.curl(&[], &format!("{DBS}?resourceVersion={}&resourceVersionMatch=NotOlderThan", rv(&a))));
    assert_eq!(now["items"].as_array().unwrap().len(), 2);
    assert_eq!(json(&s.curl(&[], &format!("{DBS}?resourceVersion=0")))["items"].as_array().unwrap().len(), 2);
    assert_eq!(s.curl(&[], &format!("{DBS}?resourceVersionMatch=Exact")).code, 400);
    // sendInitialEvents: ADDED for the current state, then a bookmark marking its end.
    let w = CurlWatch::open(
        s,
        &format!("{DBS}?watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true&timeoutSeconds=20"),
    );
    let mut names: Vec<String> =
        (0..2).map(|_| w.next()).map(|(k, o)| format!("{k} {}", o["metadata"]["name"].as_str().unwrap())).collect();
    names.sort();
    assert_eq!(names, ["ADDED a", "ADDED b"]);
    let line = w.next_line(Duration::from_secs(10)).expect("a bookmark after the initial events");
    let bookmark: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(bookmark["type"], "BOOKMARK", "{line}");
    assert_eq!(bookmark["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"], "true", "{line}");
    assert!(
        bookmark["object"]["metadata"]["resourceVersion"].as_str().unwrap().parse::<i64>().unwrap()
            >= rv(&b).parse::<i64>().unwrap()
    );
    // An absurd timeout is clamped, not a crash.
    let huge =
        CurlWatch::open(s, &format!("{DBS}?watch=true&resourceVersion={}&timeoutSeconds=18446744073709551615", rv(&b)));
    std::thread::sleep(Duration::from_millis(200));
    drop(huge);
    assert_eq!(s.curl_as(true, &[], "/healthz").body, "ok");
    // A watch with a timeout ends by itself.
    let short = CurlWatch::open(s, &format!("{DBS}?watch=true&resourceVersion={}&timeoutSeconds=1", rv(&b)));
    assert!(short.wait().success());
}

fn watch_selectors_follow_label_changes(backend: Backend) {
    let r = start(backend);
    let s = &r.server;
    create_tpr(s, "mysql-db.prsn.io", &["v1"]);
    let w = CurlWatch::open(s, &format!("{DBS}?watch=true&labelSelector=tier%3Ddb&timeoutSeconds=20"));
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(post(s, DBS, &json!({"metadata": {"name": "other", "labels": {"tier": "web"}}})).code, 201);
    let a = json(&post(s, DBS, &db("a")));
    let (kind, obj) = w.next();
    assert_eq!(
        (kind.as_str(), obj["metadata"]["name"].as_str()),
        ("ADDED", Some("a")),
        "non-matching objects are not sent"
    );
    let patch =
        |labels: &str| merge_patch(s, &format!("{DBS}/a"), &format!("{{\"metadata\":{{\"labels\":{labels}}}}}"));
    assert_eq!(patch(r#"{"tier":"web"}"#).code, 200);
    assert_eq!(w.next().0, "DELETED", "an object that stops matching leaves the watch as DELETED");
    assert_eq!(patch(r#"{"tier":"db"}"#).code, 200);
    assert_eq!(w.next().0, "ADDED", "and comes back as ADDED");
    let _ = a;
}

/// A list far longer than one chunk of the streamed answer reads back
/// whole, in key order, over HTTP/1.1 (curl) and HTTP/2, as does each page
/// of it; an object changed since it was first served is served changed.
fn a_long_list_streams_whole(backend: Backend) {
    let r = start(backend);
    let s = &r.server;
    create_tpr(s, "mysql-db.prsn.io", &["v1"]);
    let client = testkit::client::ApiClient::of(s).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let n = 1500;
    rt.block_on(async {
        let mut writes = tokio::task::JoinSet::new();
        let client = std::sync::Arc::new(client);
        for i in 0..n {
            let client = client.clone();
            writes.spawn(async move {
                let body =
                    json!({"metadata": {"name": format!("db{i:05}")}, "spec": {"note": "x".repeat(400), "i": i}});
                let a = client.call("POST", DBS, Some(&body)).await.unwrap();
                assert_eq!(a.code, 201, "{:?}", a.body);
            });
            if writes.len() >= 32 {
                writes.join_next().await.unwrap().unwrap();
            }
        }
        while let Some(w) = writes.join_next().await {
            w.unwrap();
        }
    });
    let check = |list: &Value, first: usize, count: usize| {
        assert_eq!(list["kind"], "MysqlDbList");
        let items = list["items"].as_array().unwrap();
        assert_eq!(items.len(), count);
        for (k, item) in items.iter().enumerate() {
            assert_eq!(item["metadata"]["name"], format!("db{:05}", first + k).as_str());
            assert_eq!(item["spec"]["i"], first + k);
            assert_eq!(item["apiVersion"], "prsn.io/v1");
        }
    };
    check(&json(&s.curl(&["--http1.1"], DBS)), 0, n);
    // Changed after it was served: the list serves the new version.
    assert_eq!(merge_patch(s, &format!("{DBS}/db00007"), r#"{"spec": {"i": 7, "changed": true}}"#).code, 200);
    let list = json(&s.curl(&[], DBS));
    check(&list, 0, n);
    assert_eq!(list["items"][7]["spec"]["changed"], true);
    let page = json(&s.curl(&[], &format!("{DBS}?limit=500")));
    check(&page, 0, 500);
    assert_eq!(page["metadata"]["remainingItemCount"], n - 500);
    let t = page["metadata"]["continue"].as_str().unwrap();
    let page = json(&s.curl(&[], &format!("{DBS}?limit=500&continue={t}")));
    check(&page, 500, 500);
    assert_eq!(page["metadata"]["remainingItemCount"], n - 1000);
}

on_both_backends!(
    a_long_list_streams_whole,
    watch_selectors_follow_label_changes,
    reads_at_revisions_and_initial_events,
    bounds_and_negotiation,
    watch_sees_changes_in_order_and_resumes,
    writes_follow_kubernetes_rules,
    lists_select_and_page,
    deleting_a_tpr_deletes_its_objects,
    sigterm_ends_watches_cleanly,
);

#[test]
fn two_servers_on_one_etcd_see_each_other() {
    let etcd = testkit::Etcd::start().unwrap();
    let (da, db_) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let bin = testkit::apiserver_binary();
    let a =
        testkit::Server::start(&bin, &["--data-dir", da.path().to_str().unwrap(), "--etcd-servers", &etcd.endpoint()])
            .unwrap();
    let b =
        testkit::Server::start(&bin, &["--data-dir", db_.path().to_str().unwrap(), "--etcd-servers", &etcd.endpoint()])
            .unwrap();
    create_tpr(&a, "mysql-db.prsn.io", &["v1"]);
    let began = Instant::now();
    while post(&b, DBS, &json!({"metadata": {"name": "from-b"}})).code != 201 {
        assert!(began.elapsed() < Duration::from_secs(5), "server B never served the TPR created on A");
        std::thread::sleep(Duration::from_millis(5));
    }
    eprintln!("new TPR on A served by B after {:?}", began.elapsed());
    let w = CurlWatch::open(&a, &format!("{DBS}?watch=true&timeoutSeconds=20"));
    assert_eq!(w.next().1["metadata"]["name"], "from-b", "A lists what B created");
    assert_eq!(post(&b, DBS, &json!({"metadata": {"name": "second"}})).code, 201);
    assert_eq!(w.next().1["metadata"]["name"], "second", "A's watchers see B's writes");
}

#[test]
fn an_expired_continue_token_or_watch_is_a_410() {
    let r = common::start_with(Backend::Embedded, &["--etcd-compaction-interval", "1s"]);
    let s = &r.server;
    create_tpr(s, "mysql-db.prsn.io", &["v1"]);
    for i in 0..3 {
        assert_eq!(post(s, DBS, &db(&format!("db{i}"))).code, 201);
    }
    let first = json(&s.curl(&[], &format!("{DBS}?limit=1")));
    let token = first["metadata"]["continue"].as_str().unwrap().to_string();
    // History moves on and is compacted (the compactor runs every second).
    let began = Instant::now();
    loop {
        assert_eq!(post(s, DBS, &json!({"metadata": {"generateName": "later-"}})).code, 201);
        let out = s.curl(&[], &format!("{DBS}?limit=1&continue={token}"));
        if out.code == 410 {
            assert_eq!(json(&out)["reason"], "Expired", "{}", out.body);
            break;
        }
        assert_eq!(out.code, 200, "{}", out.body);
        assert!(began.elapsed() < Duration::from_secs(10), "the token never expired");
        std::thread::sleep(Duration::from_millis(250));
    }
    // Watching from a revision that is neither in a type's cache (which
    // starts when its TPR is created) nor in the compacted store's history is
    // a 410 inside the stream.
    create_tpr(s, "redis-cache.prsn.io", &["v1"]);
    let old = CurlWatch::open(s, "/apis/prsn.io/v1/namespaces/default/rediscaches?watch=true&resourceVersion=1");
    let (kind, status) = old.next();
    assert_eq!(kind, "ERROR", "{status}");
    assert_eq!((status["code"].as_i64(), status["reason"].as_str()), (Some(410), Some("Expired")));
}

#[test]
fn a_restarted_server_serves_what_it_stored() {
    let dir = tempfile::tempdir().unwrap();
    let bin = testkit::apiserver_binary();
    let args = ["--data-dir", dir.path().to_str().unwrap()];
    let first = testkit::Server::start(&bin, &args).unwrap();
    create_tpr(&first, "mysql-db.prsn.io", &["v1"]);
    let created = json(&post(&first, DBS, &db("kept")));
    assert!(first.terminate().unwrap().success());
    let second = testkit::Server::start(&bin, &args).unwrap();
    // Ready means every stored TPR is served again: no waiting.
    let out = second.curl(&[], &format!("{DBS}/kept"));
    assert_eq!(out.code, 200, "{}", out.body);
    assert_eq!(json(&out)["metadata"]["uid"], created["metadata"]["uid"]);
    assert_eq!(rv(&json(&out)), rv(&created));
}
