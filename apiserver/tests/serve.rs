//! The binary starts on either backend over HTTPS, reports health without
//! credentials, refuses anonymous API requests and stops cleanly.

use std::path::Path;

fn start(dir: &Path, extra: &[&str]) -> testkit::Server {
    let mut args = vec!["--data-dir", dir.to_str().unwrap()];
    args.extend_from_slice(extra);
    testkit::Server::start(Path::new(env!("CARGO_BIN_EXE_tpr-apiserver")), &args).unwrap()
}

fn check(extra: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), extra);
    assert!(server.url().starts_with("https://127.0.0.1:"));
    for path in ["/healthz", "/livez", "/readyz"] {
        let out = server.curl_as(true, &[], path);
        assert_eq!((out.code, out.body.as_str()), (200, "ok"), "{path}: {}", out.stderr);
    }
    assert_eq!(server.curl_as(true, &[], "/version").code, 200);
    let anon = server.curl_as(true, &[], "/apis/extensions/v1beta1/thirdpartyresources");
    assert_eq!(anon.code, 401, "{}", anon.body);
    let status: serde_json::Value = serde_json::from_str(&anon.body).unwrap();
    assert_eq!(status["reason"], "Unauthorized", "{}", anon.body);
    let missing = server.curl(&[], "/apis/nothing/v1/things");
    assert_eq!(missing.code, 404);
    let status: serde_json::Value = serde_json::from_str(&missing.body).unwrap();
    assert_eq!(status["kind"], "Status", "{}", missing.body);
    assert!(server.terminate().unwrap().success(), "SIGTERM must exit 0");
}

#[test]
fn serves_https_on_the_embedded_store() {
    check(&[]);
}

#[test]
fn serves_https_on_etcd() {
    let etcd = testkit::Etcd::start().unwrap();
    check(&["--etcd-servers", &etcd.endpoint()]);
}

#[test]
fn readyz_fails_when_etcd_is_gone() {
    let mut etcd = testkit::Etcd::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &["--etcd-servers", &etcd.endpoint()]);
    etcd.kill();
    let out = server.curl_as(true, &[], "/readyz");
    assert_eq!(out.code, 500, "{}", out.body);
    assert!(out.body.contains("storage"), "{}", out.body);
    assert_eq!(server.curl_as(true, &[], "/livez").code, 200);
}

#[test]
fn accepts_tokens_from_the_token_file() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens.csv");
    std::fs::write(&tokens, "s3cret,alice,1,\"dev\"\n").unwrap();
    let server = start(dir.path(), &["--token-auth-file", tokens.to_str().unwrap()]);
    let ok =
        server.curl_as(true, &["-H", "Authorization: Bearer s3cret"], "/apis/extensions/v1beta1/thirdpartyresources");
    assert_eq!(ok.code, 200, "{}", ok.body);
    let bad =
        server.curl_as(true, &["-H", "Authorization: Bearer wrong"], "/apis/extensions/v1beta1/thirdpartyresources");
    assert_eq!(bad.code, 401);
}

/// Objects are stored as kube-apiserver stores custom resources: JSON at
/// `<prefix>/<group>/<plural>/<namespace>/<name>`, without resourceVersion.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stores_objects_in_the_kube_layout() {
    let etcd = testkit::Etcd::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &["--etcd-servers", &etcd.endpoint()]);
    let tpr = r#"{"metadata":{"name":"mysql-db.prsn.io"},"versions":[{"name":"v1"}]}"#;
    assert_eq!(server.curl(&["-d", tpr], "/apis/extensions/v1beta1/thirdpartyresources").code, 201);
    let obj = r#"{"metadata":{"name":"db"},"engine_version":"5.6.23"}"#;
    assert_eq!(server.curl(&["-d", obj], "/apis/prsn.io/v1/namespaces/default/mysqldbs").code, 201);
    let cfg = storage::EtcdConfig { endpoints: vec![etcd.endpoint()], ..Default::default() };
    let store = storage::EtcdStore::connect(&cfg).await.unwrap();
    use storage::Store;
    for key in ["/registry/thirdpartyresources/mysql-db.prsn.io", "/registry/prsn.io/mysqldbs/default/db"] {
        let kv = store.get(key).await.unwrap().unwrap_or_else(|| panic!("{key} is not stored"));
        let v: serde_json::Value = serde_json::from_slice(&kv.value).unwrap();
        assert!(v["metadata"]["name"].is_string(), "{v}");
        assert!(v["metadata"].get("resourceVersion").is_none(), "stored without resourceVersion: {v}");
    }
}

#[test]
fn a_client_that_never_finishes_its_handshake_does_not_hold_up_others() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &[]);
    let addr = server.url().trim_start_matches("https://").to_string();
    // Connections that send nothing: their handshakes wait in their own tasks.
    let idle: Vec<_> = (0..4).map(|_| std::net::TcpStream::connect(&addr).unwrap()).collect();
    let started = std::time::Instant::now();
    let out = server.curl(&[], "/apis/extensions/v1beta1/thirdpartyresources");
    assert_eq!(out.code, 200, "{}", out.stderr);
    // The handshake timeout is 10 s: an accept loop blocked on the idle
    // connections would have answered only after it.
    assert!(started.elapsed() < std::time::Duration::from_secs(5), "took {:?}", started.elapsed());
    drop(idle);
}
