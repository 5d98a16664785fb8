//! Operator frameworks against the standalone server, as their users run
//! them: a kopf operator (Python, PyPI), the `@kubernetes/client-node`
//! informer (npm), and a `kube-runtime` Controller with Lease-based leader
//! election between two instances (`examples/mysqldb-controller`).

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::json;

use common::{create_tpr, json, post, start, Backend, LineStream};

/// kopf 1.45: create, update and delete handlers with kopf's finalizer,
/// status written back, Events posted, catch-up after a restart, nothing
/// handled twice (see `python/kopf_scenario.py`).
fn kopf_operator(backend: Backend) {
    let r = start(backend);
    let s = &r.server;
    create_tpr(s, "mysql-db.prsn.io", &["v1"]);
    let stdout = common::run_python("kopf_scenario.py", s);
    assert!(stdout.contains("ok: each (verb, object) handled exactly once"), "{stdout}");
}

on_both_backends!(kopf_operator);

/// README.md's "Run your automation against it" shows the operator the test runs.
#[test]
fn the_readme_shows_the_tested_operator() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let operator = std::fs::read_to_string(root.join("conformance/python/kopf_operator.py")).unwrap();
    let code = &operator[operator.find("import logging").expect("the operator's code")..];
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    assert!(
        readme.contains(code.trim_end()),
        "README.md must show conformance/python/kopf_operator.py's code unchanged"
    );
}

/// The `@kubernetes/client-node` informer: add, update and delete seen, and
/// objects that existed before it started (see `node/informer.mjs`).
#[test]
fn client_node_informer() {
    let r = start(Backend::Embedded);
    let s = &r.server;
    create_tpr(s, "mysql-db.prsn.io", &["v1"]);
    let out = post(
        s,
        "/apis/prsn.io/v1/namespaces/default/mysqldbs",
        &json!({"metadata": {"name": "preexisting"}, "spec": {"size": "small"}}),
    );
    assert_eq!(out.code, 201, "{}", out.body);
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("node");
    assert!(dir.join("node_modules/@kubernetes/client-node").exists(), "scripts/test runs npm ci in {}", dir.display());
    let out = Command::new("node")
        .arg(dir.join("informer.mjs"))
        .arg(s.kubeconfig())
        .arg("default")
        .output()
        .expect("node (scripts/test installs it)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "informer.mjs\nstdout:\n{stdout}\nstderr:\n{stderr}");
}

/// One `mysqldb-controller` instance (`examples/mysqldb-controller`), its output lines read as they come.
fn instance(kubeconfig: &std::path::Path, identity: &str, lease_seconds: u64) -> LineStream {
    let binary = testkit::apiserver_binary().with_file_name("mysqldb-controller");
    LineStream::spawn(Command::new(binary).arg(identity).arg(lease_seconds.to_string()).env("KUBECONFIG", kubeconfig))
}

/// Whether `controller` prints the line `want` within `wait`.
fn prints(controller: &LineStream, want: &str, wait: Duration) -> bool {
    controller.until(wait, |l| l == want).is_ok()
}

/// A kube-runtime Controller in two instances with Lease-based leader
/// election: one leads and reconciles; killed, the other takes over within
/// the lease duration and reconciles what comes next.
#[test]
fn kube_runtime_controller_with_leader_election() {
    const LEASE_SECONDS: u64 = 3;
    let r = start(Backend::Embedded);
    let s = &r.server;
    create_tpr(s, "mysql-db.prsn.io", &["v1"]);
    let a = instance(&s.kubeconfig(), "a", LEASE_SECONDS);
    assert!(prints(&a, "LEADING a", Duration::from_secs(20)), "the first instance leads");
    let b = instance(&s.kubeconfig(), "b", LEASE_SECONDS);
    assert!(
        !prints(&b, "LEADING b", Duration::from_secs(LEASE_SECONDS + 1)),
        "only one leads while the lease is renewed"
    );
    let out = post(
        s,
        "/apis/prsn.io/v1/namespaces/default/mysqldbs",
        &json!({"metadata": {"name": "one"}, "spec": {"size": "small"}}),
    );
    assert_eq!(out.code, 201);
    assert!(prints(&a, "RECONCILED default/one by a", Duration::from_secs(20)));
    let one = json(&s.curl(&[], "/apis/prsn.io/v1/namespaces/default/mysqldbs/one"));
    assert_eq!(one["status"]["reconciledBy"], "a", "{one}");
    let lease = json(&s.curl(&[], "/apis/coordination.k8s.io/v1/namespaces/default/leases/mysqldb-controller"));
    assert_eq!(lease["spec"]["holderIdentity"], "a");
    // The leader is killed: the other takes over once the lease runs out.
    let killed = Instant::now();
    drop(a);
    assert!(prints(&b, "LEADING b", Duration::from_secs(LEASE_SECONDS * 2 + 5)), "the second instance takes over");
    let took = killed.elapsed();
    println!("takeover {took:?} after the leader was killed (lease {LEASE_SECONDS} s)");
    assert!(
        took <= Duration::from_secs(LEASE_SECONDS) + Duration::from_secs(2),
        "within the lease duration (and one retry): {took:?}"
    );
    let out = post(
        s,
        "/apis/prsn.io/v1/namespaces/default/mysqldbs",
        &json!({"metadata": {"name": "two"}, "spec": {"size": "large"}}),
    );
    assert_eq!(out.code, 201);
    assert!(prints(&b, "RECONCILED default/two by b", Duration::from_secs(20)));
    let lease = json(&s.curl(&[], "/apis/coordination.k8s.io/v1/namespaces/default/leases/mysqldb-controller"));
    assert_eq!(
        (lease["spec"]["holderIdentity"].as_str(), lease["spec"]["leaseTransitions"].as_i64()),
        (Some("b"), Some(1))
    );
}
