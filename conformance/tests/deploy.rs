//! `deploy/` renders with `kubectl kustomize` and passes `kubectl apply
//! --dry-run=client` (against `testkit::FakeKube`'s discovery: no cluster runs here).

use std::path::Path;
use std::process::Command;

use serde_json::Value;

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().expect("command runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{cmd:?}\nstdout: {stdout}\nstderr: {}", String::from_utf8_lossy(&out.stderr));
    stdout
}

#[test]
fn the_kustomize_base_renders_and_applies() {
    let deploy = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy");
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(&deploy).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            std::fs::copy(&path, dir.path().join(path.file_name().unwrap())).unwrap();
        }
    }
    run(Command::new("bash").arg(deploy.join("make-serving-cert.sh")).arg(dir.path()));
    let rendered = run(Command::new("/usr/bin/kubectl").arg("kustomize").arg(dir.path()));
    let docs: Vec<Value> = rendered
        .split("\n---\n")
        .map(|d| serde_norway::from_str::<Value>(d).unwrap_or_else(|e| panic!("{e}: {d}")))
        .collect();
    let find = |kind: &str, name: &str| {
        docs.iter()
            .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("{kind} {name} in:\n{rendered}"))
    };
    let deployment = find("Deployment", "tpr-apiserver");
    assert_eq!(deployment["spec"]["replicas"], 2);
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/livez");
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    let args: Vec<&str> = container["args"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    for flag in ["--register-apiservices", "--authorization-mode=Webhook"] {
        assert!(args.contains(&flag), "{args:?}");
    }
    let etcd = find("StatefulSet", "etcd");
    assert_eq!(etcd["spec"]["replicas"], 3);
    assert!(etcd["spec"]["volumeClaimTemplates"].is_array());
    let reader = find("RoleBinding", "tpr-apiserver-auth-reader");
    assert_eq!(reader["metadata"]["namespace"], "kube-system");
    assert_eq!(reader["roleRef"]["name"], "extension-apiserver-authentication-reader");
    assert_eq!(
        find("ClusterRoleBinding", "tpr-apiserver:system:auth-delegator")["roleRef"]["name"],
        "system:auth-delegator"
    );
    assert!(find("Secret", "tpr-apiserver-serving")["data"]["tls.crt"].is_string());
    find("Service", "tpr-apiserver");
    find("Namespace", "tpr-system");

    // kubectl apply --dry-run=client maps every kind through the host's discovery.
    let host = testkit::FakeKube::start(std::sync::Arc::new(|_: &str, _: &str, _: &str| true)).unwrap();
    let kubeconfig = host.kubeconfig().unwrap();
    let rendered_file = dir.path().join("rendered.yaml");
    std::fs::write(&rendered_file, &rendered).unwrap();
    let out = run(Command::new("/usr/bin/kubectl")
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .args(["apply", "--dry-run=client", "--validate=false", "-f"])
        .arg(&rendered_file));
    assert_eq!(out.lines().filter(|l| l.ends_with("(dry run)")).count(), docs.len(), "{out}");
}
