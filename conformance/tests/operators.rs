//! Operator frameworks against the standalone server, as their users run
//! them: a kopf operator (Python, PyPI), the `@kubernetes/client-node`
//! informer (npm), and a `kube-runtime` Controller with Lease-based leader
//! election between two instances (`examples/mysqldb-controller`).

mod common;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::json;

use common::{create_tpr, json, post, start, Backend};

fn python() -> PathBuf {
    std::env::var_os("TPR_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/pyvenv/bin/python"))
}

/// kopf 1.45: create, update and delete handlers with kopf's finalizer,
/// status written back, Events posted, catch-up after a restart, nothing
/// handled twice (see `python/kopf_scenario.py`).
fn kopf_operator(backend: Backend) {
    let r = start(backend);
    let s = &r.server;
    create_tpr(s, "mysql-db.prsn.io", &["v1"]);
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("python/kopf_scenario.py");
    let out = Command::new(python())
        .arg(&script)
        .arg(s.kubeconfig())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {} ({e}); scripts/test prepares the venv", python().display()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "kopf scenario\nstdout:\n{stdout}\nstderr:\n{stderr}");
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

/// One `mysqldb-controller` instance, its output lines on a channel.
struct Instance {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Instance {
    fn start(kubeconfig: &std::path::Path, identity: &str, lease_seconds: u64) -> Instance {
        let binary = testkit::apiserver_binary().with_file_name("mysqldb-controller");
        let mut child = Command::new(&binary)
            .arg(identity)
            .arg(lease_seconds.to_string())
            .env("KUBECONFIG", kubeconfig)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {} ({e}); cargo build --workspace builds it", binary.display()));
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Instance { child, lines }
    }

    /// Waits up to `wait` for a line equal to `want`.
    fn expect(&self, want: &str, wait: Duration) -> bool {
        let deadline = Instant::now() + wait;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(line) if line == want => return true,
                Ok(_) => {}
                Err(_) => return false,
            }
        }
        false
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
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
    let a = Instance::start(&s.kubeconfig(), "a", LEASE_SECONDS);
    assert!(a.expect("LEADING a", Duration::from_secs(20)), "the first instance leads");
    let b = Instance::start(&s.kubeconfig(), "b", LEASE_SECONDS);
    assert!(
        !b.expect("LEADING b", Duration::from_secs(LEASE_SECONDS + 1)),
        "only one leads while the lease is renewed"
    );
    let out = post(
        s,
        "/apis/prsn.io/v1/namespaces/default/mysqldbs",
        &json!({"metadata": {"name": "one"}, "spec": {"size": "small"}}),
    );
    assert_eq!(out.code, 201);
    assert!(a.expect("RECONCILED default/one by a", Duration::from_secs(20)));
    let one = json(&s.curl(&[], "/apis/prsn.io/v1/namespaces/default/mysqldbs/one"));
    assert_eq!(one["status"]["reconciledBy"], "a", "{one}");
    let lease = json(&s.curl(&[], "/apis/coordination.k8s.io/v1/namespaces/default/leases/mysqldb-controller"));
    assert_eq!(lease["spec"]["holderIdentity"], "a");
    // The leader is killed: the other takes over once the lease runs out.
    let killed = Instant::now();
    drop(a);
    assert!(b.expect("LEADING b", Duration::from_secs(LEASE_SECONDS * 2 + 5)), "the second instance takes over");
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
    assert!(b.expect("RECONCILED default/two by b", Duration::from_secs(20)));
    let lease = json(&s.curl(&[], "/apis/coordination.k8s.io/v1/namespaces/default/leases/mysqldb-controller"));
    assert_eq!(
        (lease["spec"]["holderIdentity"].as_str(), lease["spec"]["leaseTransitions"].as_i64()),
        (Some("b"), Some(1))
    );
}
