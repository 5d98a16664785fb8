//! Running behind kube-aggregator: the front proxy's request headers are
//! honoured only on a connection whose client certificate the request-header
//! CA signed with an allowed common name (otherwise ignored); client
//! certificates and tokens; a policy file; TokenReview and SubjectAccessReview
//! with the host cluster; APIService registration. The host cluster is
//! `testkit::FakeKube` (no real kube-apiserver can run here).

mod common;

use common::{json, kubectl};
use testkit::{Server, TestPki};

const WHOAMI: &str = "/apis/authentication.k8s.io/v1/selfsubjectreviews";

/// POSTs a SelfSubjectReview with the given certificate and headers, no token.
fn whoami(s: &Server, cert: Option<(&std::path::Path, &std::path::Path)>, headers: &[&str]) -> testkit::CurlOutput {
    let mut args: Vec<String> = vec!["-X".into(), "POST".into(), "-H".into(), "Content-Type: application/json".into()];
    args.extend(["-d".into(), r#"{"apiVersion":"authentication.k8s.io/v1","kind":"SelfSubjectReview"}"#.into()]);
    if let Some((crt, key)) = cert {
        args.extend(["--cert".into(), crt.display().to_string(), "--key".into(), key.display().to_string()]);
    }
    for h in headers {
        args.extend(["-H".into(), h.to_string()]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    s.curl_as(true, &args, WHOAMI)
}

const BOB: [&str; 3] = ["X-Remote-User: bob", "X-Remote-Group: team-a", "X-Remote-Extra-Acme.com%2Fscopes: read"];

#[test]
fn front_proxy_headers_only_from_the_front_proxy() {
    let proxy_ca = TestPki::generate("front-proxy-client").unwrap();
    let (other_crt, other_key) = proxy_ca.issue_client("other", "someone-else", &[]).unwrap();
    let foreign_ca = TestPki::generate("front-proxy-client").unwrap();
    let client_ca = TestPki::generate("unused").unwrap();
    let (alice_crt, alice_key) = client_ca.issue_client("alice", "alice", &["dev"]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (client_ca_file, proxy_ca_file) = (client_ca.ca_cert(), proxy_ca.ca_cert());
    let (tokens, admin) = testkit::masters_token_file(dir.path()).unwrap();
    let data = dir.path().join("data");
    let args = [
        "--data-dir",
        data.to_str().unwrap(),
        "--client-ca-file",
        client_ca_file.to_str().unwrap(),
        "--requestheader-client-ca-file",
        proxy_ca_file.to_str().unwrap(),
        "--requestheader-allowed-names",
        "front-proxy-client",
        "--token-auth-file",
        tokens.to_str().unwrap(),
    ];
    let s = Server::start(&testkit::apiserver_binary(), &args).unwrap().with_token(&admin).unwrap();
    assert!(!data.join("admin.token").exists(), "behind the aggregator: no generated admin token");
    let proxy = (proxy_ca.client_cert(), proxy_ca.client_key());

    // The front proxy names the user, groups and extras.
    let out = whoami(&s, Some((&proxy.0, &proxy.1)), &BOB);
    assert_eq!(out.code, 201, "{}", out.body);
    let info = &json(&out)["status"]["userInfo"];
    assert_eq!(info["username"], "bob", "{info}");
    assert_eq!(info["groups"], serde_json::json!(["team-a", "system:authenticated"]), "{info}");
    assert_eq!(info["extra"]["acme.com/scopes"], serde_json::json!(["read"]), "{info}");
    // The front proxy without user headers is nobody.
    assert_eq!(whoami(&s, Some((&proxy.0, &proxy.1)), &[]).code, 401);
    // Another CN from the same CA: the headers are ignored.
    let out = whoami(&s, Some((&other_crt, &other_key)), &BOB);
    assert_eq!(out.code, 401, "{}", out.body);
    // An allowed CN from another CA: not the front proxy (kube-apiserver
    // finishes the handshake and does not take the certificate): 401.
    let out = whoami(&s, Some((&foreign_ca.client_cert(), &foreign_ca.client_key())), &BOB);
    assert_eq!(out.code, 401, "{}", out.body);
    assert!(!out.body.contains("bob"), "{}", out.body);
    // No certificate: ignored.
    assert_eq!(whoami(&s, None, &BOB).code, 401);
    // A client certificate of the client CA is its own user, whatever the headers say.
    let out = whoami(&s, Some((&alice_crt, &alice_key)), &BOB);
    let info = &json(&out)["status"]["userInfo"];
    assert_eq!((info["username"].as_str(), info["groups"][0].as_str()), (Some("alice"), Some("dev")), "{info}");
    // A token with the headers: the token's user.
    let out = s.curl(&["-X", "POST", "-H", BOB[0], "-H", "Content-Type: application/json", "-d", "{}"], WHOAMI);
    assert_eq!(json(&out)["status"]["userInfo"]["username"], "test-admin", "{}", out.body);
    // kubectl auth whoami.
    let out = kubectl(&s, &["auth", "whoami"], None);
    assert!(out.contains("test-admin") && out.contains("system:masters"), "{out}");
    // Anonymous requests reach only the public paths.
    assert_eq!(s.curl_as(true, &[], "/version").code, 200);
    assert_eq!(s.curl_as(true, &[], "/apis").code, 401);
}

/// `--authorization-mode=Policy`: rules from a file; system:masters always;
/// discovery open to every authenticated user; denials name user, verb, resource.
#[test]
fn a_policy_file_authorizes() {
    let (s, _dir) = common::start_with_policy(
        "alice-token,alice,1\nbob-token,bob,2,\"admins\"\n",
        "rules:\n- users: [alice]\n  verbs: [get, list, watch]\n  apiGroups: [prsn.io]\n  resources: [mysqldbs]\n  namespaces: [default]\n- groups: [admins]\n  verbs: ['*']\n  apiGroups: ['*']\n  resources: ['*']\n",
    );
    common::create_tpr(&s, "mysql-db.prsn.io", &["v1"]); // the admin token is system:masters
    let as_user = |token: &str, args: &[&str], path: &str| {
        let auth = format!("Authorization: Bearer {token}");
        let mut all = vec!["-H", auth.as_str()];
        all.extend_from_slice(args);
        s.curl_as(true, &all, path)
    };
    let dbs = "/apis/prsn.io/v1/namespaces/default/mysqldbs";
    let body = r#"{"metadata":{"name":"a"}}"#;
    let create = ["-H", "Content-Type: application/json", "-d", body];
    assert_eq!(as_user("bob-token", &create, dbs).code, 201, "bob is in admins");
    assert_eq!(as_user("alice-token", &[], dbs).code, 200, "alice may list in default");
    assert_eq!(as_user("alice-token", &[], &format!("{dbs}/a")).code, 200);
    let out = as_user("alice-token", &create, dbs);
    assert_eq!((out.code, json(&out)["reason"].as_str()), (403, Some("Forbidden")), "{}", out.body);
    assert_eq!(
        json(&out)["message"],
        "mysqldbs.prsn.io is forbidden: User \"alice\" cannot create resource \"mysqldbs\" in API group \"prsn.io\" in the namespace \"default\""
    );
    let out = as_user("alice-token", &[], "/apis/prsn.io/v1/namespaces/other/mysqldbs");
    assert_eq!(out.code, 403, "{}", out.body);
    let out = as_user("alice-token", &[], "/apis/extensions/v1beta1/thirdpartyresources");
    assert!(json(&out)["message"].as_str().unwrap().ends_with("at the cluster scope"), "{}", out.body);
    assert_eq!(as_user("alice-token", &[], "/apis").code, 200, "discovery is open to authenticated users");
    assert_eq!(as_user("alice-token", &["-X", "OPTIONS"], dbs).code, 405, "not a verb: 405, not 403");
    assert_eq!(as_user("nobody", &[], dbs).code, 401);
}

/// Delegation to the host cluster: unknown bearer tokens are checked with a
/// TokenReview, requests authorized with a SubjectAccessReview
/// (`--authorization-mode=Webhook`); both answers are cached briefly.
#[test]
fn token_review_and_subject_access_review_with_the_host_cluster() {
    let policy: testkit::Policy = std::sync::Arc::new(|user: &str, verb: &str, _resource: &str| {
        user == "carol" && matches!(verb, "get" | "list" | "watch")
    });
    let host = testkit::FakeKube::start(policy).unwrap();
    let kubeconfig = host.kubeconfig().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (tokens, admin) = testkit::masters_token_file(dir.path()).unwrap();
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
        "--token-auth-file",
        tokens.to_str().unwrap(),
    ];
    let s = Server::start(&testkit::apiserver_binary(), &args).unwrap().with_token(&admin).unwrap();
    common::create_tpr(&s, "mysql-db.prsn.io", &["v1"]); // a system:masters token: no review
    let as_token = |token: &str, extra: &[&str], path: &str| {
        let auth = format!("Authorization: Bearer {token}");
        let mut all = vec!["-H", auth.as_str()];
        all.extend_from_slice(extra);
        s.curl_as(true, &all, path)
    };
    let out = as_token("carol-token", &["-X", "POST", "-H", "Content-Type: application/json", "-d", "{}"], WHOAMI);
    let info = &json(&out)["status"]["userInfo"];
    assert_eq!((info["username"].as_str(), info["groups"][0].as_str()), (Some("carol"), Some("reviewed")), "{out:?}");
    assert_eq!(info["extra"]["via"], serde_json::json!(["tokenreview"]));
    let dbs = "/apis/prsn.io/v1/namespaces/default/mysqldbs";
    assert_eq!(as_token("carol-token", &[], dbs).code, 200, "the host allows carol to list");
    let out =
        as_token("carol-token", &["-H", "Content-Type: application/json", "-d", r#"{"metadata":{"name":"x"}}"#], dbs);
    assert_eq!(out.code, 403, "the host denies carol's create: {}", out.body);
    assert!(json(&out)["message"].as_str().unwrap().contains("User \"carol\" cannot create resource \"mysqldbs\""));
    assert_eq!(as_token("dave-token", &[], dbs).code, 403, "dave is known but not allowed");
    assert_eq!(as_token("garbage", &[], dbs).code, 401);
    // Cached: repeating the same requests asks the host nothing more.
    let (tokens, accesses) = (host.token_reviews(), host.access_reviews());
    for _ in 0..3 {
        assert_eq!(as_token("carol-token", &[], dbs).code, 200);
    }
    assert_eq!((host.token_reviews(), host.access_reviews()), (tokens, accesses), "answers are cached");
    // Paths that are no resource are reviewed too (nonResourceAttributes):
    // the test policy allows carol get/list/watch of anything, dave nothing.
    assert_eq!(as_token("carol-token", &[], "/metrics").code, 200, "get /metrics, reviewed");
    assert_eq!(as_token("dave-token", &[], "/metrics").code, 403, "dave may not get /metrics");
    assert_eq!(as_token("dave-token", &[], "/apis").code, 403, "dave may not even read discovery");
}

/// `--register-apiservices`: an APIService per served group-version (and
/// `v1beta1.extensions`), following TPRs; two replicas converge without flapping.
#[test]
fn apiservices_follow_the_tprs_on_two_replicas() {
    let allow_all: testkit::Policy = std::sync::Arc::new(|_: &str, _: &str, _: &str| true);
    let host = testkit::FakeKube::start(allow_all).unwrap();
    let kubeconfig = host.kubeconfig().unwrap();
    let etcd = testkit::Etcd::start().unwrap();
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let tokens_dir = tempfile::tempdir().unwrap();
    let (tokens, admin) = testkit::masters_token_file(tokens_dir.path()).unwrap();
    let start = |dir: &std::path::Path| {
        let args = [
            "--data-dir",
            dir.to_str().unwrap(),
            "--etcd-servers",
            &etcd.endpoint(),
            "--register-apiservices",
            "--kubeconfig",
            kubeconfig.to_str().unwrap(),
            "--token-auth-file",
            tokens.to_str().unwrap(),
        ];
        Server::start(&testkit::apiserver_binary(), &args).unwrap().with_token(&admin).unwrap()
    };
    let a = start(dir_a.path());
    let wait_for = |what: &str, ok: &dyn Fn(&std::collections::BTreeMap<String, serde_json::Value>) -> bool| {
        let began = std::time::Instant::now();
        while !ok(&host.apiservices()) {
            assert!(began.elapsed() < std::time::Duration::from_secs(15), "{what}: {:?}", host.apiservices().keys());
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    };
    wait_for("v1beta1.extensions registered", &|s| s.contains_key("v1beta1.extensions"));
    common::create_tpr(&a, "mysql-db.prsn.io", &["stable/v1", "v1"]);
    wait_for("v1.prsn.io registered", &|s| s.contains_key("v1.prsn.io"));
    let services = host.apiservices();
    assert_eq!(services.keys().collect::<Vec<_>>(), ["v1.prsn.io", "v1beta1.extensions"], "stable/v1 is path-only");
    let spec = &services["v1.prsn.io"]["spec"];
    assert_eq!(spec["service"], serde_json::json!({"namespace": "tpr-system", "name": "tpr-apiserver", "port": 443}));
    assert_eq!((spec["group"].as_str(), spec["version"].as_str()), (Some("prsn.io"), Some("v1")));
    use base64::Engine;
    let ca = std::fs::read(dir_a.path().join("pki/ca.crt")).unwrap();
    assert_eq!(spec["caBundle"], base64::engine::general_purpose::STANDARD.encode(ca));
    // A second replica with its own generated CA would fight over caBundle; replicas share one.
    std::fs::create_dir_all(dir_b.path().join("pki")).unwrap();
    for f in ["ca.crt", "ca.key", "apiserver.crt", "apiserver.key"] {
        let from = dir_a.path().join("pki").join(f);
        if from.exists() {
            std::fs::copy(&from, dir_b.path().join("pki").join(f)).unwrap();
        }
    }
    let b = start(dir_b.path());
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let writes = host.apiservice_writes().len();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert_eq!(host.apiservice_writes().len(), writes, "two replicas converge: {:?}", host.apiservice_writes());
    // Deleting the TPR (through replica B) removes its APIService.
    let out = b.curl(&["-X", "DELETE"], "/apis/extensions/v1beta1/thirdpartyresources/mysql-db.prsn.io");
    assert!(out.code == 200 || out.code == 202, "{}", out.body);
    wait_for("v1.prsn.io removed", &|s| !s.contains_key("v1.prsn.io") && s.contains_key("v1beta1.extensions"));
}

/// Without the request-header flags, the server takes the front proxy's
/// settings from `kube-system/extension-apiserver-authentication`.
#[test]
fn front_proxy_settings_from_the_host_cluster() {
    let allow_all: testkit::Policy = std::sync::Arc::new(|_: &str, _: &str, _: &str| true);
    let host = testkit::FakeKube::start(allow_all).unwrap();
    let proxy_ca = TestPki::generate("front-proxy-client").unwrap();
    let (other_crt, other_key) = proxy_ca.issue_client("other", "someone-else", &[]).unwrap();
    host.set_extension_authentication(serde_json::json!({
        "requestheader-client-ca-file": std::fs::read_to_string(proxy_ca.ca_cert()).unwrap(),
        "requestheader-allowed-names": "[\"front-proxy-client\"]",
        "requestheader-username-headers": "[\"X-Remote-User\"]",
        "requestheader-group-headers": "[\"X-Remote-Group\"]",
        "requestheader-extra-headers-prefix": "[\"X-Remote-Extra-\"]",
    }));
    let kubeconfig = host.kubeconfig().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let args =
        ["--data-dir", dir.path().to_str().unwrap(), "--authentication-kubeconfig", kubeconfig.to_str().unwrap()];
    let s = Server::start(&testkit::apiserver_binary(), &args).unwrap();
    let out = whoami(&s, Some((&proxy_ca.client_cert(), &proxy_ca.client_key())), &BOB);
    assert_eq!(json(&out)["status"]["userInfo"]["username"], "bob", "{}", out.body);
    assert_eq!(whoami(&s, Some((&other_crt, &other_key)), &BOB).code, 401, "CN not allowed by the ConfigMap");
}
