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
    let rendered = run(Command::new(testkit::kubectl()).arg("kustomize").arg(dir.path()));
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
    let pod = &deployment["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/livez");
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(container["startupProbe"]["httpGet"]["scheme"], "HTTPS", "{container}");
    assert!(spread_over_nodes(pod, "tpr-apiserver", false), "{pod}");
    let args: Vec<&str> = container["args"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    for flag in ["--register-apiservices", "--authorization-mode=Webhook"] {
        assert!(args.contains(&flag), "{args:?}");
    }
    // etcd over TLS, with the client certificate of the tpr-etcd-client Secret.
    let etcd_servers: Vec<&str> = flag(&args, "--etcd-servers").split(',').collect();
    assert_eq!(etcd_servers.len(), 3, "{etcd_servers:?}");
    assert!(etcd_servers.iter().all(|u| u.starts_with("https://")), "{etcd_servers:?}");
    let client_secret = find("Secret", secret_at(pod, container, "/var/run/tpr/etcd"));
    assert_eq!(client_secret["metadata"]["name"], "tpr-etcd-client");
    for name in ["--etcd-cafile", "--etcd-certfile", "--etcd-keyfile"] {
        let file = flag(&args, name).strip_prefix("/var/run/tpr/etcd/").unwrap_or_else(|| panic!("{name}: {args:?}"));
        assert!(client_secret["data"][file].is_string(), "{name}: {file} in {client_secret}");
    }

    let etcd = find("StatefulSet", "etcd");
    assert_eq!(etcd["spec"]["replicas"], 3);
    assert!(etcd["spec"]["volumeClaimTemplates"].is_array());
    let etcd_pod = &etcd["spec"]["template"]["spec"];
    let member = &etcd_pod["containers"][0];
    // One member per node: a lost node costs one member, not the quorum.
    assert!(spread_over_nodes(etcd_pod, "tpr-etcd", true), "{etcd_pod}");
    for probe in ["livenessProbe", "readinessProbe"] {
        assert!(member[probe]["httpGet"]["path"].is_string(), "{probe}: {member}");
    }
    let command: Vec<&str> = member["command"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    for switch in ["--client-cert-auth", "--peer-client-cert-auth"] {
        assert!(command.contains(&switch), "{command:?}");
    }
    for name in [
        "--listen-client-urls",
        "--advertise-client-urls",
        "--listen-peer-urls",
        "--initial-advertise-peer-urls",
        "--initial-cluster",
    ] {
        let urls = flag(&command, name);
        assert!(urls.contains("https://") && !urls.contains("http://"), "{name}={urls}");
    }
    let certs = find("Secret", secret_at(etcd_pod, member, "/etc/etcd/pki"));
    assert_eq!(certs["metadata"]["name"], "tpr-etcd-certs");
    for name in [
        "--trusted-ca-file",
        "--cert-file",
        "--key-file",
        "--peer-trusted-ca-file",
        "--peer-cert-file",
        "--peer-key-file",
    ] {
        let file = flag(&command, name).strip_prefix("/etc/etcd/pki/").unwrap_or_else(|| panic!("{name}: {command:?}"));
        assert!(certs["data"][file].is_string(), "{name}: {file} in {certs}");
    }
    let data_keys = |secret: &Value| {
        let mut keys: Vec<String> = secret["data"].as_object().map(|d| d.keys().cloned().collect()).unwrap_or_default();
        keys.sort();
        keys
    };
    assert_eq!(data_keys(certs), ["ca.crt", "peer.crt", "peer.key", "server.crt", "server.key"]);
    assert_eq!(data_keys(client_secret), ["ca.crt", "client.crt", "client.key"]);
    for secret in [certs, client_secret] {
        assert_eq!(secret["type"], "Opaque");
    }

    // Voluntary disruptions leave one server and an etcd quorum.
    for (name, workload, min_available) in [("tpr-apiserver", deployment, 1), ("etcd", etcd, 2)] {
        let pdb = find("PodDisruptionBudget", name);
        assert_eq!(pdb["apiVersion"], "policy/v1");
        assert_eq!(pdb["spec"]["minAvailable"], min_available, "{pdb}");
        let labels = &workload["spec"]["template"]["metadata"]["labels"];
        let selector = pdb["spec"]["selector"]["matchLabels"].as_object().unwrap_or_else(|| panic!("{pdb}"));
        assert!(!selector.is_empty() && selector.iter().all(|(k, v)| &labels[k] == v), "{pdb} vs {labels}");
    }

    // The certificates of make-serving-cert.sh: signed by the etcd CA for their uses,
    // named as tpr-apiserver and the peers reach the members.
    let pki = dir.path();
    let etcd_ca = pki.join("etcd/ca.crt");
    assert_eq!(std::fs::read(&etcd_ca).unwrap(), std::fs::read(pki.join("etcd-client/ca.crt")).unwrap());
    for (cert, purpose) in [
        ("etcd/server.crt", "sslserver"),
        ("etcd/server.crt", "sslclient"),
        ("etcd/peer.crt", "sslserver"),
        ("etcd/peer.crt", "sslclient"),
        ("etcd-client/client.crt", "sslclient"),
    ] {
        let out = run(Command::new("openssl")
            .args(["verify", "-purpose", purpose, "-CAfile"])
            .arg(&etcd_ca)
            .arg(pki.join(cert)));
        assert!(out.trim_end().ends_with(": OK"), "{cert} ({purpose}): {out}");
    }
    // The names in tpr-apiserver's --etcd-servers and in the members' --initial-cluster.
    let peer_urls = flag(&command, "--initial-cluster").split(',').filter_map(|m| Some(m.split_once('=')?.1));
    let hosts: Vec<&str> = (etcd_servers.iter().copied().chain(peer_urls))
        .map(|url| url.trim_start_matches("https://").split(':').next().unwrap_or_default())
        .collect();
    assert_eq!(hosts.len(), 6, "{hosts:?}");
    assert!(hosts.contains(&"etcd-0.etcd.tpr-system.svc"), "{hosts:?}");
    for cert in ["etcd/server.crt", "etcd/peer.crt"] {
        let text =
            run(Command::new("openssl").args(["x509", "-noout", "-ext", "subjectAltName", "-in"]).arg(pki.join(cert)));
        let sans: Vec<&str> = text.lines().skip(1).flat_map(|l| l.split(',')).map(str::trim).collect();
        for host in &hosts {
            assert!(sans.contains(&format!("DNS:{host}").as_str()), "{cert}: {host} not in {sans:?}");
        }
        assert!(sans.contains(&"IP Address:127.0.0.1"), "{cert}: {sans:?}");
    }
    // The members take only the peer certificate from a peer, not tpr-apiserver's.
    let subject = |cert: &str| {
        run(Command::new("openssl")
            .args(["x509", "-noout", "-subject", "-nameopt", "RFC2253", "-in"])
            .arg(pki.join(cert)))
        .trim()
        .to_string()
    };
    assert_eq!(subject("etcd-client/client.crt"), "subject=CN=tpr-apiserver");
    if let Some(cn) = command.iter().find_map(|a| a.strip_prefix("--peer-cert-allowed-cn=")) {
        assert_eq!(subject("etcd/peer.crt"), format!("subject=CN={cn}"));
        assert_ne!(subject("etcd-client/client.crt"), format!("subject=CN={cn}"));
    }

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
    let out = run(Command::new(testkit::kubectl())
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .args(["apply", "--dry-run=client", "--validate=false", "-f"])
        .arg(&rendered_file));
    assert_eq!(out.lines().filter(|l| l.ends_with("(dry run)")).count(), docs.len(), "{out}");
}

/// The optional sensor (`deploy/sensor/`): it renders and applies, keeps its
/// checkpoint on a volume of its own in one replica, may read the resource,
/// and names only flags `tpr-sensor` has.
#[test]
fn the_sensor_manifests_render_and_name_real_flags() {
    let deploy = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/sensor");
    let rendered = run(Command::new(testkit::kubectl()).arg("kustomize").arg(&deploy));
    let docs: Vec<Value> = rendered.split("\n---\n").map(|d| serde_norway::from_str::<Value>(d).unwrap()).collect();
    let find = |kind: &str| docs.iter().find(|d| d["kind"] == kind).unwrap_or_else(|| panic!("{kind} in {rendered}"));
    let sts = find("StatefulSet");
    assert_eq!(sts["spec"]["replicas"], 1);
    let container = &sts["spec"]["template"]["spec"]["containers"][0];
    let mount = container["volumeMounts"][0]["mountPath"].as_str().unwrap();
    assert_eq!(sts["spec"]["volumeClaimTemplates"][0]["metadata"]["name"], container["volumeMounts"][0]["name"]);
    let args: Vec<&str> = container["args"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    assert_eq!(flag(&args, "--state-dir"), mount, "the checkpoint is on the volume");
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
    let help = run(Command::new(testkit::apiserver_binary().with_file_name("tpr-sensor")).arg("--help"));
    for a in &args {
        let name = a.split('=').next().unwrap();
        assert!(
            help.contains(&format!("{name} ")) || help.contains(&format!("{name} <")),
            "{name} is not a tpr-sensor flag:\n{help}"
        );
    }
    let rules = &find("ClusterRole")["rules"][0];
    assert_eq!(rules["verbs"], serde_json::json!(["get", "list", "watch"]));
    let host = testkit::FakeKube::start(std::sync::Arc::new(|_: &str, _: &str, _: &str| true)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sensor.yaml");
    std::fs::write(&file, &rendered).unwrap();
    let out = run(Command::new(testkit::kubectl())
        .arg("--kubeconfig")
        .arg(host.kubeconfig().unwrap())
        .args(["apply", "--dry-run=client", "--validate=false", "-f"])
        .arg(&file));
    assert_eq!(out.lines().filter(|l| l.ends_with("(dry run)")).count(), docs.len(), "{out}");
}

/// The value of `--name=value` among `args`.
fn flag<'a>(args: &[&'a str], name: &str) -> &'a str {
    args.iter().find_map(|a| a.strip_prefix(name)?.strip_prefix('=')).unwrap_or_else(|| panic!("{name}=… in {args:?}"))
}

/// The name of the Secret mounted at `path` in `container` of the pod spec `pod`.
fn secret_at<'a>(pod: &'a Value, container: &Value, path: &str) -> &'a str {
    let mounts = container["volumeMounts"].as_array().map(Vec::as_slice).unwrap_or_default();
    let mount =
        mounts.iter().find(|m| m["mountPath"] == path).unwrap_or_else(|| panic!("no volume at {path}: {container}"));
    let volumes = pod["volumes"].as_array().map(Vec::as_slice).unwrap_or_default();
    let volume = volumes.iter().find(|v| v["name"] == mount["name"]).unwrap_or_else(|| panic!("{mount} in {pod}"));
    volume["secret"]["secretName"].as_str().unwrap_or_else(|| panic!("{volume} is no Secret"))
}

/// Whether the pods labelled `app=<app>` go to different nodes: by pod anti-affinity or
/// a topology spread constraint on the hostname; `hard`: only by ones the scheduler may
/// not ignore (required anti-affinity, `whenUnsatisfiable: DoNotSchedule`).
fn spread_over_nodes(pod: &Value, app: &str, hard: bool) -> bool {
    let list = |v: &Value| v.as_array().cloned().unwrap_or_default();
    let anti = &pod["affinity"]["podAntiAffinity"];
    let mut terms = list(&anti["requiredDuringSchedulingIgnoredDuringExecution"]);
    let spread = list(&pod["topologySpreadConstraints"]);
    terms.extend(spread.into_iter().filter(|c| !hard || c["whenUnsatisfiable"] == "DoNotSchedule"));
    if !hard {
        let preferred = list(&anti["preferredDuringSchedulingIgnoredDuringExecution"]);
        terms.extend(preferred.into_iter().map(|t| t["podAffinityTerm"].clone()));
    }
    terms
        .iter()
        .any(|t| t["topologyKey"] == "kubernetes.io/hostname" && t["labelSelector"]["matchLabels"]["app"] == app)
}
