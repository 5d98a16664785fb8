//! kubectl 1.32 against the real binary: the seed's ThirdPartyResource, and
//! objects of a `v1` version (apply, get, delete).

mod common;

use std::time::Duration;

use common::{kubectl, start, Backend};

const SEED_TPR_YAML: &str = r#"metadata:
  name: mysql-db.prsn.io
  labels:
    resource: database
    object: mysql
apiVersion: extensions/v1beta1
kind: ThirdPartyResource
description: "A specification of database for mysql"
versions:
  - name: stable/v1
  - name: v1
"#;

const DB_YAML: &str = r#"apiVersion: prsn.io/v1
kind: MysqlDb
metadata:
  name: orders
  labels:
    team: shop
engine_version: "5.6.23"
instance_size: huge
"#;

fn tpr_and_objects_through_kubectl(backend: Backend) {
    let r = start(backend);
    let s = &r.server;
    let out = kubectl(s, &["create", "-f", "-"], Some(SEED_TPR_YAML));
    assert!(out.contains("thirdpartyresource.extensions/mysql-db.prsn.io created"), "{out}");
    let out = kubectl(s, &["get", "thirdpartyresources"], None);
    assert!(out.contains("mysql-db.prsn.io"), "{out}");
    let out = kubectl(s, &["get", "tpr", "mysql-db.prsn.io", "-o", "jsonpath={.description}"], None);
    assert_eq!(out, "A specification of database for mysql");

    let out = kubectl(s, &["apply", "-f", "-"], Some(DB_YAML));
    assert!(out.contains("mysqldb.prsn.io/orders created"), "{out}");
    let out = kubectl(s, &["apply", "-f", "-"], Some(&DB_YAML.replace("huge", "small")));
    assert!(out.contains("mysqldb.prsn.io/orders configured"), "{out}");
    let out = kubectl(s, &["get", "mysqldbs"], None);
    assert!(out.contains("orders"), "{out}");
    let out = kubectl(s, &["get", "mysqldb", "orders", "-o", "jsonpath={.instance_size} {.metadata.generation}"], None);
    assert_eq!(out, "small 2");
    // The same object through the other version of the same TPR.
    let out = s.curl(&[], "/apis/prsn.io/stable/v1/namespaces/default/mysqldbs/orders");
    assert_eq!(out.code, 200, "{}", out.body);
    assert_eq!(serde_json::from_str::<serde_json::Value>(&out.body).unwrap()["apiVersion"], "prsn.io/stable/v1");
    let out = kubectl(s, &["explain", "mysqldbs"], None);
    assert!(out.contains("KIND:       MysqlDb"), "{out}");
    // kubectl patch with a merge and a JSON patch.
    let out =
        kubectl(s, &["patch", "mysqldb", "orders", "--type", "merge", "-p", r#"{"instance_size":"medium"}"#], None);
    assert!(out.contains("mysqldb.prsn.io/orders patched"), "{out}");
    let json_patch = r#"[{"op":"test","path":"/instance_size","value":"medium"},{"op":"replace","path":"/engine_version","value":"8.0"}]"#;
    let out = kubectl(s, &["patch", "mysqldb", "orders", "--type", "json", "-p", json_patch], None);
    assert!(out.contains("mysqldb.prsn.io/orders patched"), "{out}");
    let out = kubectl(s, &["get", "mysqldb", "orders", "-o", "jsonpath={.instance_size} {.engine_version}"], None);
    assert_eq!(out, "medium 8.0");
    let out = kubectl(s, &["delete", "-f", "-"], Some(DB_YAML));
    assert!(out.contains("deleted"), "{out}");
    let out = kubectl(s, &["get", "mysqldbs", "-o", "name"], None);
    assert_eq!(out.trim(), "");
    let out = kubectl(s, &["delete", "tpr", "mysql-db.prsn.io"], None);
    assert!(out.contains("deleted"), "{out}");
}

/// `kubectl get` prints the server's Tables: Name and Age, plus Description
/// and Versions for ThirdPartyResources; `-w` prints changes as they happen.
fn tables_through_kubectl(backend: Backend) {
    let r = start(backend);
    let s = &r.server;
    kubectl(s, &["create", "-f", "-"], Some(SEED_TPR_YAML));
    let out = kubectl(s, &["get", "thirdpartyresources"], None);
    let header: Vec<&str> = out.lines().next().unwrap_or("").split_whitespace().collect();
    assert_eq!(header, ["NAME", "DESCRIPTION", "VERSIONS", "AGE"], "{out}");
    assert!(out.contains("A specification of database for mysql   stable/v1,v1"), "{out}");
    for (name, team) in [("b", "blue"), ("a", "red"), ("c", "red")] {
        let yaml =
            format!("apiVersion: prsn.io/v1\nkind: MysqlDb\nmetadata:\n  name: {name}\n  labels: {{team: {team}}}\n");
        kubectl(s, &["apply", "-f", "-"], Some(&yaml));
    }
    let out = kubectl(s, &["get", "mysqldbs", "--sort-by=.metadata.name", "--show-labels"], None);
    let rows: Vec<Vec<&str>> = out.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(rows[0], ["NAME", "AGE", "LABELS"], "{out}");
    assert_eq!(
        rows[1..].iter().map(|r| (r[0], r[2])).collect::<Vec<_>>(),
        [("a", "team=red"), ("b", "team=blue"), ("c", "team=red")]
    );
    assert!(rows[1][1].ends_with('s'), "the age is shown as an age: {out}");
    let out = kubectl(s, &["get", "mysqldbs", "-l", "team=red", "-o", "wide"], None);
    let names: Vec<&str> = out.lines().skip(1).filter_map(|l| l.split_whitespace().next()).collect();
    assert_eq!(names, ["a", "c"], "{out}");
    let out = kubectl(s, &["get", "mysqldbs", "-A"], None);
    assert!(out.starts_with("NAMESPACE"), "{out}");
    assert!(out.contains("default     a"), "{out}");
    // get -w: the initial rows, then a change made meanwhile.
    let watch = common::LineStream::start(s, &["get", "mysqldbs", "-w"]);
    watch.until(Duration::from_secs(20), |l| l.starts_with("c ")).expect("initial rows");
    kubectl(s, &["delete", "mysqldb", "b"], None);
    let yaml = "apiVersion: prsn.io/v1\nkind: MysqlDb\nmetadata:\n  name: late\n";
    kubectl(s, &["apply", "-f", "-"], Some(yaml));
    let seen = watch.until(Duration::from_secs(20), |l| l.starts_with("late "));
    assert!(seen.is_ok(), "kubectl get -w did not show the new object: {seen:?}");
}

/// Tables on the wire, as `kubectl get` asks for them.
fn tables_over_http(backend: Backend) {
    let r = start(backend);
    let s = &r.server;
    kubectl(s, &["create", "-f", "-"], Some(SEED_TPR_YAML));
    kubectl(s, &["apply", "-f", "-"], Some(DB_YAML));
    let table = "Accept: application/json;as=Table;v=v1;g=meta.k8s.io,application/json";
    let out = s.curl(&["-H", table], "/apis/prsn.io/v1/namespaces/default/mysqldbs");
    let t: serde_json::Value = serde_json::from_str(&out.body).unwrap();
    assert_eq!((t["kind"].as_str(), t["apiVersion"].as_str()), (Some("Table"), Some("meta.k8s.io/v1")), "{}", out.body);
    assert_eq!(t["columnDefinitions"][0]["name"], "Name");
    assert_eq!(t["rows"][0]["cells"][0], "orders");
    assert_eq!(t["rows"][0]["object"]["kind"], "PartialObjectMetadata");
    assert!(t["metadata"]["resourceVersion"].is_string());
    let out = s.curl(&["-H", table], "/apis/prsn.io/v1/namespaces/default/mysqldbs/orders?includeObject=Object");
    let t: serde_json::Value = serde_json::from_str(&out.body).unwrap();
    assert_eq!(t["rows"][0]["object"]["instance_size"], "huge", "{}", out.body);
    let out = s.curl(&["-H", table], "/apis/prsn.io/v1/namespaces/default/mysqldbs?includeObject=None");
    assert!(!out.body.contains("\"object\""), "{}", out.body);
    let beta = "Accept: application/json;as=Table;v=v1beta1;g=meta.k8s.io";
    let out = s.curl(&["-H", beta], "/apis/prsn.io/v1/namespaces/default/mysqldbs");
    let t: serde_json::Value = serde_json::from_str(&out.body).unwrap();
    assert_eq!(t["apiVersion"], "meta.k8s.io/v1beta1", "{}", out.body);
    let only_metadata = "Accept: application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io";
    let out = s.curl(&["-H", only_metadata], "/apis/prsn.io/v1/namespaces/default/mysqldbs");
    assert_eq!(out.code, 406, "{}", out.body);
}

/// The rest of kubectl's everyday verbs on a TPR type: create, replace, edit,
/// label, annotate, the output formats, diff, delete --all and wait.
fn everyday_verbs_through_kubectl(backend: Backend) {
    let r = start(backend);
    let s = &r.server;
    kubectl(s, &["create", "-f", "-"], Some(SEED_TPR_YAML));
    let out = kubectl(s, &["create", "-f", "-"], Some(DB_YAML));
    assert!(out.contains("mysqldb.prsn.io/orders created"), "{out}");
    let out = kubectl(s, &["replace", "-f", "-"], Some(&DB_YAML.replace("huge", "tiny")));
    assert!(out.contains("mysqldb.prsn.io/orders replaced"), "{out}");
    let current = kubectl(s, &["get", "mysqldb", "orders", "-o", "yaml"], None);
    assert!(current.contains("instance_size: tiny") && current.contains("resourceVersion:"), "{current}");
    let out =
        kubectl(s, &["replace", "-f", "-"], Some(&current.replace("instance_size: tiny", "instance_size: small")));
    assert!(out.contains("replaced"), "{out}");
    // A replace of a stale copy is refused.
    let stale = kubectl_fails(s, &["replace", "-f", "-"], Some(&current));
    assert!(stale.contains("the object has been modified"), "{stale}");
    kubectl(s, &["label", "mysqldb", "orders", "tier=db"], None);
    kubectl(s, &["annotate", "mysqldb", "orders", "note=hello"], None);
    // kubectl edit with an editor that changes one field.
    let dir = tempfile::tempdir().unwrap();
    let editor = dir.path().join("editor.sh");
    std::fs::write(&editor, "#!/bin/sh\nsed -i 's/instance_size: small/instance_size: edited/' \"$1\"\n").unwrap();
    std::fs::set_permissions(&editor, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let out = common::kubectl_env(s, &["edit", "mysqldb", "orders"], &[("EDITOR", editor.to_str().unwrap())]);
    assert!(out.contains("mysqldb.prsn.io/orders edited"), "{out}");
    let out = kubectl(
        s,
        &[
            "get",
            "mysqldb",
            "orders",
            "-o",
            "jsonpath={.instance_size} {.metadata.labels.tier} {.metadata.annotations.note}",
        ],
        None,
    );
    assert_eq!(out, "edited db hello");
    let json_out: serde_json::Value =
        serde_json::from_str(&kubectl(s, &["get", "mysqldb", "orders", "-o", "json"], None)).unwrap();
    assert_eq!(json_out["engine_version"], "5.6.23");
    // diff shows the change and changes nothing (exit status 1 means "differences found").
    let out = common::kubectl_status(s, &["diff", "-f", "-"], Some(&DB_YAML.replace("huge", "diffed")));
    assert_eq!(out.0, Some(1), "{}", out.1);
    assert!(out.1.contains("+instance_size: diffed"), "{}", out.1);
    assert_eq!(kubectl(s, &["get", "mysqldb", "orders", "-o", "jsonpath={.instance_size}"], None), "edited");
    // delete --all, then wait --for=delete.
    kubectl(s, &["create", "-f", "-"], Some(&DB_YAML.replace("name: orders", "name: second")));
    let out = kubectl(s, &["delete", "mysqldbs", "--all"], None);
    assert!(out.contains("\"orders\" deleted") && out.contains("\"second\" deleted"), "{out}");
    kubectl(s, &["create", "-f", "-"], Some(DB_YAML));
    kubectl(s, &["delete", "mysqldb", "orders", "--wait=false"], None);
    kubectl(s, &["wait", "--for=delete", "mysqldb/orders", "--timeout=20s"], None);
}

/// Runs kubectl expecting a failure; returns stderr.
fn kubectl_fails(s: &testkit::Server, args: &[&str], stdin: Option<&str>) -> String {
    let (status, stdout, stderr) = common::kubectl_output(s, args, stdin, &[]);
    assert_ne!(status, Some(0), "kubectl {} should fail\nstdout: {stdout}", args.join(" "));
    stderr
}

/// Server-side apply with kubectl: create, apply again, a conflict with another
/// field manager (409 with the field), then --force-conflicts; managedFields.
fn server_side_apply_through_kubectl(backend: Backend) {
    let r = start(backend);
    let s = &r.server;
    let out = kubectl(s, &["apply", "--server-side", "-f", "-"], Some(SEED_TPR_YAML));
    assert!(out.contains("thirdpartyresource.extensions/mysql-db.prsn.io serverside-applied"), "{out}");
    let out = kubectl(s, &["apply", "--server-side", "-f", "-"], Some(DB_YAML));
    assert!(out.contains("mysqldb.prsn.io/orders serverside-applied"), "{out}");
    let out = kubectl(s, &["apply", "--server-side", "-f", "-"], Some(DB_YAML));
    assert!(out.contains("serverside-applied"), "applying twice: {out}");
    let other = DB_YAML.replace("huge", "large");
    let (status, out) =
        common::kubectl_status(s, &["apply", "--server-side", "--field-manager=other", "-f", "-"], Some(&other));
    assert_ne!(status, Some(0), "{out}");
    assert!(
        out.contains("Apply failed with 1 conflict: conflict with \"kubectl\" using prsn.io/v1: .instance_size"),
        "{out}"
    );
    assert_eq!(kubectl(s, &["get", "mysqldb", "orders", "-o", "jsonpath={.instance_size}"], None), "huge");
    let args = ["apply", "--server-side", "--field-manager=other", "--force-conflicts", "-f", "-"];
    kubectl(s, &args, Some(&other));
    let out = kubectl(s, &["get", "mysqldb", "orders", "-o", "json", "--show-managed-fields"], None);
    let obj: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(obj["instance_size"], "large");
    let managers: Vec<(&str, &str)> = obj["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["manager"].as_str().unwrap(), e["operation"].as_str().unwrap()))
        .collect();
    assert_eq!(managers, [("kubectl", "Apply"), ("other", "Apply")], "{out}");
    assert!(obj["metadata"]["managedFields"][1]["fieldsV1"]["f:instance_size"].is_object(), "{out}");
    assert!(obj["metadata"]["managedFields"][0]["fieldsV1"].get("f:instance_size").is_none(), "{out}");
    // kubectl edit (an Update) then takes the field without a conflict.
    let out = kubectl(s, &["label", "mysqldb", "orders", "tier=db"], None);
    assert!(out.contains("labeled"), "{out}");
}

on_both_backends!(
    tpr_and_objects_through_kubectl,
    tables_through_kubectl,
    tables_over_http,
    everyday_verbs_through_kubectl,
    server_side_apply_through_kubectl
);
