//! kubectl 1.32 against the real binary: the seed's ThirdPartyResource, and
//! objects of a `v1` version (apply, get, delete).

mod common;

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
    assert!(out.body.contains("\"apiVersion\":\"prsn.io/stable/v1\""), "{}", out.body);
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

on_both_backends!(tpr_and_objects_through_kubectl);
