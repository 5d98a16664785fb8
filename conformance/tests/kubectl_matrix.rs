//! The same kubectl matrix with the current kubectl and with Debian 12's
//! kubectl 1.20 (which validates client-side with the protobuf OpenAPI v2):
//! create, apply twice, edit, explain, get -o yaml, label, merge and JSON
//! patches, get -w, delete, and the honest error for a mistyped kind.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{kubectl_output_with, start, Backend, LineStream};

const SEED_TPR: &str = "apiVersion: extensions/v1beta1\nkind: ThirdPartyResource\nmetadata:\n  name: mysql-db.prsn.io\ndescription: \"A specification of database for mysql\"\nversions:\n  - name: stable/v1\n  - name: v1\n";
const DB: &str = "apiVersion: prsn.io/v1\nkind: MysqlDb\nmetadata:\n  name: orders\nengine_version: \"5.6.23\"\ninstance_size: huge\n";

fn matrix(backend: Backend, kubectl: &Path, current: bool) {
    assert!(kubectl.exists(), "{} missing: scripts/install-deps test", kubectl.display());
    let r = start(backend);
    let s = &r.server;
    let cache = tempfile::tempdir().unwrap();
    let cache_dir = cache.path().to_str().unwrap().to_string();
    let run_env = |args: &[&str], stdin: Option<&str>, env: &[(&str, &str)]| {
        let mut all = vec!["--cache-dir", cache_dir.as_str()];
        all.extend_from_slice(args);
        kubectl_output_with(kubectl, s, &all, stdin, env)
    };
    let ok = |args: &[&str], stdin: Option<&str>| {
        let (code, out, err) = run_env(args, stdin, &[]);
        assert_eq!(code, Some(0), "kubectl {}\nstdout: {out}\nstderr: {err}", args.join(" "));
        out
    };
    assert!(
        ok(&["create", "-f", "-"], Some(SEED_TPR)).contains("thirdpartyresource.extensions/mysql-db.prsn.io created")
    );
    assert!(ok(&["apply", "-f", "-"], Some(DB)).contains("mysqldb.prsn.io/orders created"));
    assert!(ok(&["apply", "-f", "-"], Some(DB)).contains("mysqldb.prsn.io/orders unchanged"));
    let (code, out, err) = run_env(
        &["edit", "mysqldb", "orders"],
        None,
        &[("EDITOR", "sed -i s/huge/tiny/"), ("KUBE_EDITOR", "sed -i s/huge/tiny/")],
    );
    assert_eq!(code, Some(0), "edit: {out} {err}");
    assert!(out.contains("edited"), "{out}");
    assert!(ok(&["get", "mysqldb", "orders", "-o", "yaml"], None).contains("instance_size: tiny"));
    let explain = ok(&["explain", "mysqldbs"], None);
    assert!(explain.contains("A specification of database for mysql"), "{explain}");
    let explain = ok(&["explain", "thirdpartyresources.versions"], None);
    assert!(explain.contains("name") && explain.contains("stable/v1"), "{explain}");
    if current {
        // Old kubectl reads OpenAPI v2, where a schemaless type lists no fields (see discovery::openapi).
        assert!(ok(&["explain", "mysqldbs.metadata"], None).contains("labels"));
    }
    assert!(ok(&["label", "mysqldb", "orders", "team=shop"], None).contains("labeled"));
    let watch =
        LineStream::start_with(kubectl, s, &["--cache-dir", &cache_dir, "get", "mysqldbs", "-w", "--no-headers"]);
    assert!(ok(&["patch", "mysqldb", "orders", "--type", "merge", "-p", r#"{"instance_size":"small"}"#], None)
        .contains("patched"));
    assert!(ok(
        &[
            "patch",
            "mysqldb",
            "orders",
            "--type",
            "json",
            "-p",
            r#"[{"op":"replace","path":"/instance_size","value":"large"}]"#
        ],
        None
    )
    .contains("patched"));
    let got = ok(&["get", "mysqldb", "orders", "-o", "jsonpath={.instance_size} {.metadata.labels.team}"], None);
    assert_eq!(got, "large shop");
    assert!(watch.until(Duration::from_secs(10), |l| l.starts_with("orders")).is_ok(), "get -w shows the object");
    // A mistyped kind: the honest error, with validation on.
    let (code, out, err) = run_env(&["apply", "-f", "-"], Some(&DB.replace("MysqlDb", "Wrong")), &[]);
    assert_ne!(code, Some(0));
    let text = format!("{out}{err}");
    assert!(text.contains(r#"no matches for kind "Wrong" in version "prsn.io/v1""#), "{text}");
    assert!(!text.contains("failed to download openapi"), "{text}");
    assert!(ok(&["delete", "mysqldb", "orders"], None).contains("deleted"));
    let (code, _, err) = run_env(&["get", "mysqldb", "orders"], None, &[]);
    assert_ne!(code, Some(0));
    assert!(err.contains("NotFound") || err.contains("not found"), "{err}");
}

fn kubectl_current(backend: Backend) {
    matrix(backend, &testkit::kubectl(), true);
}

fn kubectl_1_20(backend: Backend) {
    matrix(backend, &testkit::kubectl_1_20(), false);
}

on_both_backends!(kubectl_current, kubectl_1_20);
