//! `tpr-apiserver export`: the way out to CustomResourceDefinitions. The
//! CRDs parse as k8s-openapi's `CustomResourceDefinition` and pass `kubectl
//! apply --dry-run=client` against a stand-in cluster's discovery; exported
//! objects, deleted and applied again on a fresh server, lose nothing.

mod common;

use std::process::Command;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use serde_json::{json, Value};

use common::{create_namespace, json, kubectl, post, start, Backend};

const SEED_TPR: &str = "apiVersion: extensions/v1beta1\nkind: ThirdPartyResource\nmetadata:\n  name: mysql-db.prsn.io\n  labels:\n    resource: database\ndescription: \"A specification of database for mysql\"\nversions:\n  - name: stable/v1\n  - name: v1\n";
const REDIS_TPR: &str = "apiVersion: extensions/v1beta1\nkind: ThirdPartyResource\nmetadata:\n  name: redis-cache.prsn.io\nversions:\n  - name: v2\n  - name: v1\n";

fn export(server: &testkit::Server, args: &[&str]) -> String {
    let out = Command::new(testkit::apiserver_binary())
        .arg("export")
        .arg("--kubeconfig")
        .arg(server.kubeconfig())
        .args(args)
        .output()
        .expect("tpr-apiserver export");
    assert!(out.status.success(), "export: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

fn docs(yaml: &str) -> Vec<Value> {
    yaml.split("---\n").filter(|d| !d.trim().is_empty()).map(|d| serde_norway::from_str(d).unwrap()).collect()
}

/// An object as the user made it: without what the server or kubectl set.
fn comparable(mut v: Value) -> Value {
    if let Some(Value::Object(m)) = v.get_mut("metadata") {
        for f in ["uid", "resourceVersion", "creationTimestamp", "generation", "managedFields"] {
            m.remove(f);
        }
        if let Some(Value::Object(a)) = m.get_mut("annotations") {
            a.remove("kubectl.kubernetes.io/last-applied-configuration");
            if a.is_empty() {
                m.remove("annotations");
            }
        }
    }
    v
}

fn crds_and_a_round_trip(backend: Backend) {
    let r = start(backend);
    let s = &r.server;
    kubectl(s, &["create", "-f", "-"], Some(SEED_TPR));
    kubectl(s, &["create", "-f", "-"], Some(REDIS_TPR));
    create_namespace(s, "team-a");
    let objects = [
        (
            "mysqldbs",
            "default",
            json!({"metadata": {"name": "orders", "labels": {"team": "shop"}, "annotations": {"note": "x"}}, "engine_version": "5.6.23", "instance_size": "huge"}),
        ),
        (
            "mysqldbs",
            "team-a",
            json!({"metadata": {"name": "users"}, "instance_size": "small", "nested": {"deep": [1, 2, {"k": null}]}}),
        ),
        ("rediscaches", "default", json!({"metadata": {"name": "sessions"}, "spec": {"shards": 3}})),
    ];
    for (plural, ns, body) in &objects {
        assert_eq!(post(s, &format!("/apis/prsn.io/v1/namespaces/{ns}/{plural}"), body).code, 201);
    }
    // The CRDs.
    let yaml = export(s, &[]);
    let crds = docs(&yaml);
    assert_eq!(crds.len(), 2, "{yaml}");
    for doc in &crds {
        let crd: CustomResourceDefinition = serde_json::from_value(doc.clone()).expect("a CustomResourceDefinition");
        assert_eq!(crd.spec.scope, "Namespaced");
        assert_eq!(crd.spec.versions.iter().filter(|v| v.storage).count(), 1, "one storage version");
        let schema =
            crd.spec.versions[0].schema.as_ref().and_then(|s| s.open_api_v3_schema.as_ref()).expect("a schema");
        assert_eq!(schema.x_kubernetes_preserve_unknown_fields, Some(true));
    }
    let db: CustomResourceDefinition =
        serde_json::from_value(crds.iter().find(|d| d["metadata"]["name"] == "mysqldbs.prsn.io").unwrap().clone())
            .unwrap();
    assert_eq!((db.spec.names.kind.as_str(), db.spec.names.list_kind.as_deref()), ("MysqlDb", Some("MysqlDbList")));
    assert_eq!(db.spec.versions.iter().map(|v| v.name.as_str()).collect::<Vec<_>>(), ["v1"], "stable/v1 is path-only");
    let annotations = db.metadata.annotations.clone().unwrap_or_default();
    assert_eq!(
        annotations.get("tpr-apiserver.io/description").map(String::as_str),
        Some("A specification of database for mysql")
    );
    let redis: CustomResourceDefinition =
        serde_json::from_value(crds.iter().find(|d| d["metadata"]["name"] == "rediscaches.prsn.io").unwrap().clone())
            .unwrap();
    assert_eq!(redis.spec.versions.iter().find(|v| v.storage).unwrap().name, "v2", "the first listed version stores");
    assert_eq!(docs(&export(s, &["redis-cache.prsn.io"])).len(), 1, "only the ones named");
    // kubectl maps them through a cluster's discovery.
    let host = testkit::FakeKube::start(std::sync::Arc::new(|_: &str, _: &str, _: &str| true)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let crd_file = dir.path().join("crds.yaml");
    std::fs::write(&crd_file, &yaml).unwrap();
    let out = Command::new(testkit::kubectl())
        .arg("--kubeconfig")
        .arg(host.kubeconfig().unwrap())
        .args(["apply", "--dry-run=client", "--validate=false", "-f"])
        .arg(&crd_file)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text} {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(text.lines().filter(|l| l.ends_with("(dry run)")).count(), 2, "{text}");
    // The objects: exported, deleted, applied again on a fresh server.
    let originals: Vec<Value> = objects
        .iter()
        .map(|(plural, ns, body)| {
            let name = body["metadata"]["name"].as_str().unwrap();
            comparable(json(&s.curl(&[], &format!("/apis/prsn.io/v1/namespaces/{ns}/{plural}/{name}"))))
        })
        .collect();
    let exported = export(s, &["--objects"]);
    assert_eq!(docs(&exported).len(), 3, "{exported}");
    assert!(docs(&exported)
        .iter()
        .all(|d| d["metadata"].get("uid").is_none() && d["metadata"].get("resourceVersion").is_none()));
    let objects_file = dir.path().join("objects.yaml");
    std::fs::write(&objects_file, &exported).unwrap();
    let file = objects_file.to_str().unwrap();
    assert!(kubectl(s, &["delete", "-f", file], None).contains("deleted"));
    assert!(!s.curl(&[], "/apis/prsn.io/v1/mysqldbs").body.contains("orders"));
    let fresh = start(backend);
    let f = &fresh.server;
    kubectl(f, &["create", "-f", "-"], Some(SEED_TPR));
    kubectl(f, &["create", "-f", "-"], Some(REDIS_TPR));
    create_namespace(f, "team-a");
    // `kubectl create` keeps every value; `kubectl apply` would drop nulls
    // (kubectl reads them as "remove this field", on any cluster).
    assert_eq!(kubectl(f, &["create", "-f", file], None).matches("created").count(), 3);
    for (original, (plural, ns, body)) in originals.iter().zip(objects.iter()) {
        let name = body["metadata"]["name"].as_str().unwrap();
        let again = comparable(json(&f.curl(&[], &format!("/apis/prsn.io/v1/namespaces/{ns}/{plural}/{name}"))));
        assert_eq!(&again, original, "{ns}/{name} lost nothing");
    }
}

on_both_backends!(crds_and_a_round_trip);
