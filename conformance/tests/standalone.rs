//! The standalone control plane: kube-apiserver's types served alone
//! (namespaces and their lifecycle, both Event APIs, leases, configmaps,
//! secrets, self-subject reviews), as curl and kubectl see them; none of it
//! behind kube-aggregator; namespaces of existing data made on upgrade.

mod common;

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use common::{
    create_namespace, create_tpr, json, kubectl, kubectl_status, merge_patch, post, start, start_with, Backend,
    CurlWatch,
};

const DBS: &str = "/apis/prsn.io/v1/namespaces";

/// Polls `f` every 50 ms for up to 20 s; panics with `what` after.
fn eventually(what: &str, mut f: impl FnMut() -> bool) -> Duration {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(20) {
        if f() {
            return started.elapsed();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{what}: not within 20 s");
}

fn names(v: &Value) -> Vec<String> {
    v["items"].as_array().unwrap().iter().map(|i| i["metadata"]["name"].as_str().unwrap().to_string()).collect()
}

fn namespace_lifecycle(backend: Backend) {
    let r = start(backend);
    let s = &r.server;
    let list = json(&s.curl(&[], "/api/v1/namespaces"));
    assert_eq!(names(&list), ["default", "kube-public", "kube-system"], "there from the first start");
    assert!(list["items"].as_array().unwrap().iter().all(|n| n["status"]["phase"] == "Active"));
    create_tpr(s, "mysql-db.prsn.io", &["v1"]);
    // No namespace: 404 naming it, nothing stored.
    let out = post(s, &format!("{DBS}/missing/mysqldbs"), &json!({"metadata": {"name": "db"}}));
    assert_eq!(out.code, 404, "{}", out.body);
    let e = json(&out);
    assert_eq!(
        (e["reason"].as_str(), e["message"].as_str()),
        (Some("NotFound"), Some("namespaces \"missing\" not found"))
    );
    assert_eq!(e["details"]["kind"], "namespaces");
    assert_eq!(s.curl(&[], &format!("{DBS}/missing/mysqldbs/db")).code, 404);
    // A namespace: kube's defaults.
    let out =
        post(s, "/api/v1/namespaces", &json!({"metadata": {"name": "team-a"}, "status": {"phase": "Terminating"}}));
    assert_eq!(out.code, 201, "{}", out.body);
    let ns = json(&out);
    assert_eq!((ns["apiVersion"].as_str(), ns["kind"].as_str()), (Some("v1"), Some("Namespace")));
    assert_eq!(ns["spec"]["finalizers"], json!(["kubernetes"]));
    assert_eq!(ns["status"]["phase"], "Active", "status is the server's");
    assert_eq!(ns["metadata"]["labels"]["kubernetes.io/metadata.name"], "team-a");
    assert_eq!(post(s, "/api/v1/namespaces", &json!({"metadata": {"name": "Team_A"}})).code, 422);
    assert_eq!(post(s, "/api/v1/namespaces", &json!({"metadata": {"name": "team-a"}})).code, 409);
    // Objects of several types in it; one held by a finalizer.
    for (name, finalizers) in [("db1", json!([])), ("db2", json!([])), ("held", json!(["example.com/hold"]))] {
        let body = json!({"metadata": {"name": name, "finalizers": finalizers}});
        assert_eq!(post(s, &format!("{DBS}/team-a/mysqldbs"), &body).code, 201);
    }
    assert_eq!(
        post(s, "/api/v1/namespaces/team-a/configmaps", &json!({"metadata": {"name": "cm"}, "data": {"a": "1"}})).code,
        201
    );
    assert_eq!(post(s, "/api/v1/namespaces/default/configmaps", &json!({"metadata": {"name": "stays"}})).code, 201);
    let rv = json(&s.curl(&[], &format!("{DBS}/team-a/mysqldbs")))["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    let watch = CurlWatch::open(s, &format!("{DBS}/team-a/mysqldbs?watch=1&resourceVersion={rv}"));
    // Deleting it: Terminating, no new content (403), its objects deleted.
    let out = s.curl(&["-X", "DELETE"], "/api/v1/namespaces/team-a");
    assert_eq!(out.code, 200, "{}", out.body);
    let ns = json(&out);
    assert_eq!(ns["status"]["phase"], "Terminating");
    assert!(ns["metadata"]["deletionTimestamp"].is_string());
    let out = post(s, &format!("{DBS}/team-a/mysqldbs"), &json!({"metadata": {"name": "late"}}));
    assert_eq!(out.code, 403, "{}", out.body);
    let e = json(&out);
    assert_eq!(e["reason"], "Forbidden");
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("unable to create new content in namespace team-a because it is being terminated"),
        "{e}"
    );
    eventually("objects without finalizers deleted", || {
        names(&json(&s.curl(&[], &format!("{DBS}/team-a/mysqldbs")))) == ["held"]
    });
    eventually("the configmap deleted", || s.curl(&[], "/api/v1/namespaces/team-a/configmaps/cm").code == 404);
    let held = json(&s.curl(&[], &format!("{DBS}/team-a/mysqldbs/held")));
    assert!(held["metadata"]["deletionTimestamp"].is_string(), "the finalizer is honoured: {held}");
    assert_eq!(json(&s.curl(&[], "/api/v1/namespaces/team-a"))["status"]["phase"], "Terminating");
    // An update of the terminating namespace does not end it early.
    assert_eq!(merge_patch(s, "/api/v1/namespaces/team-a", r#"{"metadata":{"labels":{"x":"y"}}}"#).code, 200);
    assert_eq!(s.curl(&[], "/api/v1/namespaces/team-a").code, 200);
    // The finalizer goes: the object, then the namespace.
    assert_eq!(merge_patch(s, &format!("{DBS}/team-a/mysqldbs/held"), r#"{"metadata":{"finalizers":null}}"#).code, 200);
    let took = eventually("the namespace removed", || s.curl(&[], "/api/v1/namespaces/team-a").code == 404);
    println!("namespace gone {took:?} after its last finalizer");
    let mut deleted: Vec<String> = Vec::new();
    while deleted.len() < 3 {
        let (kind, obj) = watch.next();
        if kind == "DELETED" {
            deleted.push(obj["metadata"]["name"].as_str().unwrap().to_string());
        }
    }
    deleted.sort();
    assert_eq!(deleted, ["db1", "db2", "held"], "a DELETED event for each object");
    assert_eq!(s.curl(&[], "/api/v1/namespaces/default/configmaps/stays").code, 200, "other namespaces untouched");
    for system in ["default", "kube-system", "kube-public"] {
        let out = s.curl(&["-X", "DELETE"], &format!("/api/v1/namespaces/{system}"));
        assert_eq!(out.code, 403, "{}", out.body);
        assert!(out.body.contains("this namespace may not be deleted"), "{}", out.body);
    }
    // The name is free again.
    create_namespace(s, "team-a");
    assert_eq!(post(s, &format!("{DBS}/team-a/mysqldbs"), &json!({"metadata": {"name": "db1"}})).code, 201);
}

fn core_types(backend: Backend) {
    let r = start(backend);
    let s = &r.server;
    // Events: one storage, two APIs, converted.
    let event = json!({"metadata": {"name": "e1"}, "involvedObject": {"kind": "MysqlDb", "name": "orders", "namespace": "default"},
                       "reason": "Provisioned", "message": "ready", "type": "Normal", "source": {"component": "op"},
                       "firstTimestamp": "2026-12-01T00:00:00Z", "lastTimestamp": "2026-12-01T00:00:00Z", "count": 1});
    assert_eq!(post(s, "/api/v1/namespaces/default/events", &event).code, 201);
    let v1 = json(&s.curl(&[], "/apis/events.k8s.io/v1/namespaces/default/events/e1"));
    assert_eq!(v1["apiVersion"], "events.k8s.io/v1");
    assert_eq!((v1["regarding"]["name"].as_str(), v1["note"].as_str()), (Some("orders"), Some("ready")));
    assert_eq!(v1["deprecatedSource"]["component"], "op");
    assert!(v1.get("involvedObject").is_none() && v1.get("message").is_none(), "{v1}");
    let incomplete =
        json!({"metadata": {"name": "e2"}, "regarding": {"kind": "MysqlDb", "name": "orders"}, "note": "x"});
    let out = post(s, "/apis/events.k8s.io/v1/namespaces/default/events", &incomplete);
    assert_eq!(out.code, 422, "{}", out.body);
    for field in ["eventTime", "reportingController", "reportingInstance", "action", "reason"] {
        assert!(out.body.contains(field), "{field}: {}", out.body);
    }
    let complete = json!({"metadata": {"name": "e2"}, "regarding": {"kind": "MysqlDb", "name": "users", "namespace": "default"},
                          "note": "resized", "reason": "Resized", "action": "Resize", "type": "Normal",
                          "eventTime": "2026-12-01T00:00:00.000000Z", "reportingController": "prsn.io/op", "reportingInstance": "op-1"});
    assert_eq!(post(s, "/apis/events.k8s.io/v1/namespaces/default/events", &complete).code, 201);
    let core = json(&s.curl(&[], "/api/v1/namespaces/default/events/e2"));
    assert_eq!((core["involvedObject"]["name"].as_str(), core["message"].as_str()), (Some("users"), Some("resized")));
    assert_eq!(core["reportingComponent"], "prsn.io/op");
    let selected = json(&s.curl(&[], "/api/v1/namespaces/default/events?fieldSelector=involvedObject.name%3Dorders"));
    assert_eq!(names(&selected), ["e1"]);
    let selected =
        json(&s.curl(&[], "/apis/events.k8s.io/v1/events?fieldSelector=regarding.name%3Dusers,type%3DNormal"));
    assert_eq!(names(&selected), ["e2"]);
    assert_eq!(s.curl(&[], "/api/v1/events?fieldSelector=spec.x%3D1").code, 400);
    // ConfigMaps and Secrets: kube's rules.
    let out = post(
        s,
        "/api/v1/namespaces/default/secrets",
        &json!({"metadata": {"name": "s"}, "stringData": {"password": "hunter2"}}),
    );
    assert_eq!(out.code, 201, "{}", out.body);
    let secret = json(&out);
    assert_eq!((secret["data"]["password"].as_str(), secret["type"].as_str()), (Some("aHVudGVyMg=="), Some("Opaque")));
    assert!(secret.get("stringData").is_none());
    assert_eq!(
        post(
            s,
            "/api/v1/namespaces/default/secrets",
            &json!({"metadata": {"name": "b"}, "data": {"k": "not base64!"}})
        )
        .code,
        400
    );
    assert_eq!(merge_patch(s, "/api/v1/namespaces/default/secrets/s", r#"{"type":"kubernetes.io/tls"}"#).code, 422);
    assert_eq!(
        post(s, "/api/v1/namespaces/default/configmaps", &json!({"metadata": {"name": "bad"}, "data": {"a/b": "1"}}))
            .code,
        422
    );
    assert_eq!(
        post(
            s,
            "/api/v1/namespaces/default/configmaps",
            &json!({"metadata": {"name": "frozen"}, "data": {"a": "1"}, "immutable": true})
        )
        .code,
        201
    );
    let out = merge_patch(s, "/api/v1/namespaces/default/configmaps/frozen", r#"{"data":{"a":"2"}}"#);
    assert_eq!(out.code, 422, "{}", out.body);
    assert!(out.body.contains("field is immutable when `immutable` is set"), "{}", out.body);
    let strict = s.curl(
        &["-H", "Content-Type: application/json", "-d", r#"{"metadata":{"name":"x"},"colour":"red"}"#],
        "/api/v1/namespaces/default/configmaps?fieldValidation=Strict",
    );
    assert_eq!(strict.code, 400, "{}", strict.body);
    assert!(strict.body.contains("unknown field \\\"colour\\\""), "{}", strict.body);
    // Leases: compare-and-swap on resourceVersion, as leader election needs.
    let lease = json!({"metadata": {"name": "leader"}, "spec": {"holderIdentity": "a", "leaseDurationSeconds": 15}});
    let created = json(&post(s, "/apis/coordination.k8s.io/v1/namespaces/default/leases", &lease));
    let mut take = created.clone();
    take["spec"]["holderIdentity"] = json!("b");
    let put = |body: &Value| {
        s.curl(
            &["-X", "PUT", "-H", "Content-Type: application/json", "-d", &body.to_string()],
            "/apis/coordination.k8s.io/v1/namespaces/default/leases/leader",
        )
    };
    assert_eq!(put(&take).code, 200);
    assert_eq!(put(&take).code, 409, "the second writer at the same resourceVersion loses");
    let bad = json!({"metadata": {"name": "bad"}, "spec": {"leaseDurationSeconds": -1}});
    assert_eq!(post(s, "/apis/coordination.k8s.io/v1/namespaces/default/leases", &bad).code, 422);
    // Tables: kube-apiserver's columns.
    let table = |path: &str| json(&s.curl(&["-H", "Accept: application/json;as=Table;v=v1;g=meta.k8s.io"], path));
    let columns = |t: &Value| -> Vec<String> {
        t["columnDefinitions"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap().to_string()).collect()
    };
    let t = table("/api/v1/namespaces");
    assert_eq!(columns(&t), ["Name", "Status", "Age"]);
    assert_eq!(t["rows"][0]["cells"][1], "Active");
    assert_eq!(columns(&table("/api/v1/namespaces/default/secrets")), ["Name", "Type", "Data", "Age"]);
    assert_eq!(columns(&table("/apis/coordination.k8s.io/v1/namespaces/default/leases")), ["Name", "Holder", "Age"]);
    let t = table("/api/v1/namespaces/default/events?fieldSelector=involvedObject.name%3Dorders");
    assert_eq!(columns(&t)[..4], ["Last Seen", "Type", "Reason", "Object"]);
    assert_eq!(t["rows"][0]["cells"][3], "mysqldb/orders");
    // Discovery (legacy and aggregated) and OpenAPI.
    let core = json(&s.curl(&[], "/api/v1"));
    let listed: Vec<&str> = core["resources"].as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(listed, ["configmaps", "events", "namespaces", "secrets"]);
    let ns = &core["resources"][2];
    assert_eq!(
        (ns["shortNames"].clone(), ns["singularName"].clone(), ns["namespaced"].clone()),
        (json!(["ns"]), json!("namespace"), json!(false))
    );
    let agg =
        json(&s.curl(&["-H", "Accept: application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"], "/api"));
    assert_eq!(agg["items"][0]["versions"][0]["resources"].as_array().unwrap().len(), 4);
    let groups = json(&s.curl(&[], "/apis"));
    let groups: Vec<&str> = groups["groups"].as_array().unwrap().iter().map(|g| g["name"].as_str().unwrap()).collect();
    for g in ["authorization.k8s.io", "coordination.k8s.io", "events.k8s.io", "extensions"] {
        assert!(groups.contains(&g), "{g} in {groups:?}");
    }
    let index = json(&s.curl(&[], "/openapi/v3"));
    let url = index["paths"]["api/v1"]["serverRelativeURL"].as_str().expect("api/v1 in the OpenAPI index").to_string();
    let doc = json(&s.curl(&[], &url));
    assert!(doc["components"]["schemas"]["io.k8s.api.core.v1.Namespace"].is_object());
    assert!(doc["paths"]["/api/v1/namespaces/{namespace}/configmaps/{name}"].is_object());
    // Protobuf bodies: the built-in kinds are read; anything else is refused, nothing stored.
    let proto = |body: &[u8], path: &str| {
        let file = s.data_dir().join("body.pb");
        std::fs::write(&file, body).unwrap();
        let data = format!("@{}", file.display());
        s.curl(&["-H", "Content-Type: application/vnd.kubernetes.protobuf", "--data-binary", &data], path).code
    };
    let envelope = |api_version: &str, kind: &str, raw: &[u8]| {
        let mut type_meta = vec![0x0a, api_version.len() as u8];
        type_meta.extend(api_version.as_bytes());
        type_meta.extend([0x12, kind.len() as u8]);
        type_meta.extend(kind.as_bytes());
        let mut body = b"k8s\0".to_vec();
        body.extend([0x0a, type_meta.len() as u8]);
        body.extend(type_meta);
        body.extend([0x12, raw.len() as u8]);
        body.extend(raw);
        body
    };
    // ConfigMap{metadata{name: "pb"}, data{"k": "v"}}
    let configmap = [0x0a, 0x04, 0x0a, 0x02, b'p', b'b', 0x12, 0x06, 0x0a, 0x01, b'k', 0x12, 0x01, b'v'];
    assert_eq!(proto(&envelope("v1", "ConfigMap", &configmap), "/api/v1/namespaces/default/configmaps"), 201);
    assert_eq!(json(&s.curl(&[], "/api/v1/namespaces/default/configmaps/pb"))["data"], json!({"k": "v"}));
    assert_eq!(proto(b"k8s\0\xff\xff\xff", "/api/v1/namespaces/default/configmaps"), 400);
    assert_eq!(proto(&envelope("apps/v1", "Deployment", &[]), "/api/v1/namespaces/default/configmaps"), 415);
    // A delete's DeleteOptions in each media type clients send: protobuf (client-go's typed
    // clients), YAML, JSON; a precondition that does not hold is a 409, and others a 415.
    let delete = |ct: &str, body: &[u8]| {
        let file = s.data_dir().join("options.body");
        std::fs::write(&file, body).unwrap();
        let data = format!("@{}", file.display());
        let out = s.curl(
            &["-X", "DELETE", "-H", &format!("Content-Type: {ct}"), "--data-binary", &data],
            "/api/v1/namespaces/default/configmaps/pb",
        );
        (out.code, json(&out))
    };
    // DeleteOptions{preconditions{uid: "nope"}, propagationPolicy: "Background"}
    const PB: &str = "application/vnd.kubernetes.protobuf";
    let wrong_uid = [
        0x12, 0x06, 0x0a, 0x04, b'n', b'o', b'p', b'e', 0x22, 0x0a, b'B', b'a', b'c', b'k', b'g', b'r', b'o', b'u',
        b'n', b'd',
    ];
    let (code, status) = delete(PB, &envelope("v1", "DeleteOptions", &wrong_uid));
    assert_eq!((code, status["reason"].as_str()), (409, Some("Conflict")), "{status}");
    let (code, status) = delete("text/plain", b"{}");
    assert_eq!((code, status["reason"].as_str()), (415, Some("UnsupportedMediaType")), "{status}");
    let (code, status) = delete(PB, &envelope("v1", "ConfigMap", &configmap));
    assert_eq!(code, 400, "{status}");
    let (code, status) = delete("application/yaml", b"preconditions:\n  uid: nope\n");
    assert_eq!((code, status["reason"].as_str()), (409, Some("Conflict")), "{status}");
    // DeleteOptions{gracePeriodSeconds: 0}
    let (code, deleted) = delete(PB, &envelope("v1", "DeleteOptions", &[0x08, 0x00]));
    assert_eq!(code, 200, "{deleted}");
    assert_eq!(s.curl(&[], "/api/v1/namespaces/default/configmaps/pb").code, 404);
    // A TPR may not take a built-in group.
    let tpr = json!({"apiVersion": "extensions/v1beta1", "kind": "ThirdPartyResource", "metadata": {"name": "lease.coordination.k8s.io"}, "versions": [{"name": "v1"}]});
    assert_eq!(post(s, "/apis/extensions/v1beta1/thirdpartyresources", &tpr).code, 409);
}

fn self_subject_reviews_follow_the_authorizer() {
    let tokens = "alice-token,alice,1001\n";
    let rules = "rules:\n- users: [alice]\n  verbs: [get, list, create]\n  apiGroups: [prsn.io]\n  resources: [mysqldbs]\n  namespaces: [default]\n";
    let (s, _dir) = common::start_with_policy(tokens, rules);
    let s = s.with_token("alice-token").unwrap();
    let review = |attrs: Value| {
        let out = post(
            &s,
            "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
            &json!({"spec": {"resourceAttributes": attrs}}),
        );
        assert_eq!(out.code, 201, "{}", out.body);
        json(&out)
    };
    let yes = review(json!({"namespace": "default", "verb": "create", "group": "prsn.io", "resource": "mysqldbs"}));
    assert_eq!(
        (yes["kind"].as_str(), yes["status"]["allowed"].as_bool()),
        (Some("SelfSubjectAccessReview"), Some(true))
    );
    let no = review(json!({"namespace": "other", "verb": "create", "group": "prsn.io", "resource": "mysqldbs"}));
    assert_eq!(no["status"]["allowed"], false);
    assert!(no["status"]["reason"].as_str().unwrap().contains("cannot create"), "{no}");
    let out =
        post(&s, "/apis/authorization.k8s.io/v1/selfsubjectrulesreviews", &json!({"spec": {"namespace": "default"}}));
    assert_eq!(out.code, 201, "{}", out.body);
    let rules = json(&out);
    assert!(rules["status"]["resourceRules"].to_string().contains("mysqldbs"), "{rules}");
    assert_eq!(rules["status"]["incomplete"], false);
    assert_eq!(post(&s, "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", &json!({"spec": {}})).code, 422);
    assert_eq!(s.curl(&[], "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews").code, 405);
}

#[test]
fn self_subject_reviews() {
    self_subject_reviews_follow_the_authorizer();
}

/// With `--authorization-mode=Webhook` (and the built-in types asked for),
/// an access review is the host cluster's answer; the rules review says it is
/// incomplete, as kube's webhook authorizer does.
#[test]
fn self_subject_reviews_with_the_webhook() {
    let policy: testkit::Policy =
        std::sync::Arc::new(|user: &str, verb: &str, _resource: &str| user == "carol" && verb == "list");
    let host = testkit::FakeKube::start(policy).unwrap();
    let kubeconfig = host.kubeconfig().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let args = [
        "--data-dir",
        data.to_str().unwrap(),
        "--authentication-kubeconfig",
        kubeconfig.to_str().unwrap(),
        "--authorization-mode",
        "Webhook",
        "--authorization-kubeconfig",
        kubeconfig.to_str().unwrap(),
        "--builtin-types=true",
    ];
    let s = testkit::Server::start(&testkit::apiserver_binary(), &args).unwrap();
    let review = |body: Value| {
        let out = s.curl_as(
            true,
            &[
                "-H",
                "Authorization: Bearer carol-token",
                "-H",
                "Content-Type: application/json",
                "-d",
                &body.to_string(),
            ],
            "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
        );
        assert_eq!(out.code, 201, "{}", out.body);
        json(&out)["status"].clone()
    };
    let attrs = |verb: &str| json!({"spec": {"resourceAttributes": {"namespace": "default", "verb": verb, "group": "prsn.io", "resource": "mysqldbs"}}});
    assert_eq!(review(attrs("list"))["allowed"], true);
    assert_eq!(review(attrs("delete"))["allowed"], false);
    let out = s.curl_as(
        true,
        &[
            "-H",
            "Authorization: Bearer carol-token",
            "-H",
            "Content-Type: application/json",
            "-d",
            r#"{"spec":{"namespace":"default"}}"#,
        ],
        "/apis/authorization.k8s.io/v1/selfsubjectrulesreviews",
    );
    let status = json(&out)["status"].clone();
    assert_eq!(
        (status["incomplete"].as_bool(), status["evaluationError"].as_str()),
        (Some(true), Some("webhook authorizer does not support user rule resolution"))
    );
}

/// kubectl 1.32: the commands operators' users type, protobuf bodies included.
fn kubectl_against_the_control_plane(backend: Backend) {
    let r = start(backend);
    let s = &r.server;
    assert!(kubectl(s, &["create", "namespace", "shop"], None).contains("namespace/shop created"));
    let out = kubectl(s, &["get", "ns"], None);
    assert!(out.contains("shop") && out.contains("Active"), "{out}");
    create_tpr(s, "mysql-db.prsn.io", &["v1"]);
    let db =
        "apiVersion: prsn.io/v1\nkind: MysqlDb\nmetadata:\n  name: orders\n  namespace: shop\nspec:\n  size: small\n";
    assert!(kubectl(s, &["apply", "-f", "-"], Some(db)).contains("created"));
    assert!(kubectl(s, &["create", "configmap", "cfg", "-n", "shop", "--from-literal=a=b"], None).contains("created"));
    assert!(kubectl(s, &["create", "secret", "generic", "pw", "-n", "shop", "--from-literal=p=q"], None)
        .contains("created"));
    let event = json!({"metadata": {"name": "orders.1"}, "involvedObject": {"kind": "MysqlDb", "name": "orders", "namespace": "shop"},
                       "reason": "Provisioned", "message": "MysqlDb orders is ready", "type": "Normal",
                       "lastTimestamp": "2026-12-01T00:00:00Z", "firstTimestamp": "2026-12-01T00:00:00Z", "count": 1});
    assert_eq!(post(s, "/api/v1/namespaces/shop/events", &event).code, 201);
    let out = kubectl(s, &["get", "events", "-n", "shop"], None);
    assert!(
        out.contains("Provisioned") && out.contains("mysqldb/orders") && out.contains("MysqlDb orders is ready"),
        "{out}"
    );
    assert_eq!(kubectl(s, &["auth", "can-i", "create", "mysqldbs", "-n", "shop"], None).trim(), "yes");
    assert!(kubectl(s, &["auth", "can-i", "--list"], None).contains("*.*"));
    let (code, out) = kubectl_status(s, &["create", "namespace", "Bad_Name"], None);
    assert_ne!(code, Some(0), "{out}");
    // kubectl delete waits until the namespace and everything in it are gone.
    assert!(kubectl(s, &["delete", "namespace", "shop", "--timeout=30s"], None).contains("namespace \"shop\" deleted"));
    let (code, out) = kubectl_status(s, &["get", "namespace", "shop"], None);
    assert_ne!(code, Some(0), "{out}");
    assert!(out.contains("NotFound") || out.contains("not found"), "{out}");
    assert!(
        kubectl(s, &["get", "mysqldbs,configmaps,secrets,events", "-A"], None).trim().is_empty()
            || !kubectl(s, &["get", "mysqldbs,configmaps,secrets", "-A"], None).contains("shop")
    );
    let (code, out) = kubectl_status(s, &["delete", "namespace", "default"], None);
    assert_ne!(code, Some(0));
    assert!(out.contains("may not be deleted"), "{out}");
}

/// Behind kube-aggregator (here `--builtin-types=false`; by default whenever a
/// host cluster is configured) none of it is served, and namespaces are not checked.
fn none_of_it_behind_the_aggregator(backend: Backend) {
    let r = start_with(backend, &["--builtin-types=false"]);
    let s = &r.server;
    assert_eq!(json(&s.curl(&[], "/api/v1"))["resources"], json!([]));
    assert_eq!(s.curl(&[], "/api/v1/namespaces").code, 404);
    assert_eq!(post(s, "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", &json!({"spec": {}})).code, 404);
    let groups = s.curl(&[], "/apis").body;
    assert!(!groups.contains("coordination.k8s.io") && !groups.contains("events.k8s.io"), "{groups}");
    create_tpr(s, "mysql-db.prsn.io", &["v1"]);
    assert_eq!(post(s, &format!("{DBS}/never-created/mysqldbs"), &json!({"metadata": {"name": "db"}})).code, 201);
    // Upgrade: the same data with the built-in types served makes its namespaces.
    let mut args = r.args.clone();
    args.retain(|a| a != "--builtin-types=false");
    let Running { server, etcd, dir, .. } = r;
    assert!(server.terminate().unwrap().success());
    let flags: Vec<&str> = args.iter().map(String::as_str).collect();
    let s = testkit::Server::start(&testkit::apiserver_binary(), &flags).expect("restart");
    eventually("the namespace of existing objects is created", || {
        s.curl(&[], "/api/v1/namespaces/never-created").code == 200
    });
    assert_eq!(s.curl(&[], &format!("{DBS}/never-created/mysqldbs/db")).code, 200);
    drop((etcd, dir));
}

/// Events are kept for `--event-ttl` after their last write, then deleted
/// (a watcher sees them go); other types are not touched.
#[test]
fn events_expire_after_the_event_ttl() {
    let r = start_with(Backend::Embedded, &["--event-ttl=2s"]);
    let s = &r.server;
    let event = |name: &str| json!({"metadata": {"name": name}, "involvedObject": {"kind": "MysqlDb", "name": "orders"}, "reason": "R", "message": "m", "type": "Normal"});
    assert_eq!(post(s, "/api/v1/namespaces/default/events", &event("old")).code, 201);
    assert_eq!(post(s, "/api/v1/namespaces/default/configmaps", &json!({"metadata": {"name": "kept"}})).code, 201);
    let rv = json(&s.curl(&[], "/api/v1/namespaces/default/events"))["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    let watch = CurlWatch::open(s, &format!("/api/v1/namespaces/default/events?watch=1&resourceVersion={rv}"));
    let took = eventually("the event expired", || s.curl(&[], "/api/v1/namespaces/default/events/old").code == 404);
    println!("event gone {took:?} after it was written (ttl 2 s)");
    // Timestamps have whole seconds: an event can go up to 1 s before its ttl, never at once.
    assert!(took >= Duration::from_millis(500), "not before its ttl: {took:?}");
    let (kind, obj) = watch.next();
    assert_eq!((kind.as_str(), obj["metadata"]["name"].as_str()), ("DELETED", Some("old")));
    assert_eq!(post(s, "/api/v1/namespaces/default/events", &event("fresh")).code, 201);
    assert_eq!(s.curl(&[], "/api/v1/namespaces/default/events/fresh").code, 200);
    assert_eq!(s.curl(&[], "/api/v1/namespaces/default/configmaps/kept").code, 200);
}

use common::Running;

on_both_backends!(namespace_lifecycle, core_types, kubectl_against_the_control_plane, none_of_it_behind_the_aggregator);
