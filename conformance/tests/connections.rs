//! Connections and the process (issue 9): client certificates that fail
//! verification, idle and slow connections, file-descriptor exhaustion, two
//! servers on one data directory, and the admin token outside the
//! standalone default.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{json, raw};
use testkit::{Server, TestPki};

const WHOAMI: &str = "/apis/authentication.k8s.io/v1/selfsubjectreviews";

fn start(dir: &std::path::Path, extra: &[&str]) -> Server {
    let mut args = vec!["--data-dir", dir.to_str().unwrap()];
    args.extend_from_slice(extra);
    Server::start(&testkit::apiserver_binary(), &args).unwrap()
}

/// Who the server takes a request with this certificate (and token) for.
fn whoami(s: &Server, cert: (&std::path::Path, &std::path::Path), extra: &[&str]) -> testkit::CurlOutput {
    let (crt, key) = (cert.0.display().to_string(), cert.1.display().to_string());
    let mut args =
        vec!["--cert", &crt, "--key", &key, "-X", "POST", "-H", "Content-Type: application/json", "-d", "{}"];
    args.extend_from_slice(extra);
    s.curl_as(true, &args, WHOAMI)
}

/// An X.509 version 1 certificate (no extensions), as `openssl x509 -req` makes it.
fn openssl_v1(pki: &TestPki, name: &str, subject: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let dir = pki.dir();
    let (key, csr, crt) =
        (dir.join(format!("{name}.key")), dir.join(format!("{name}.csr")), dir.join(format!("{name}.crt")));
    let run = |args: &[&str]| {
        let out = Command::new("openssl").args(args).output().expect("openssl runs");
        assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    let p = |p: &std::path::Path| p.display().to_string();
    run(&["req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", &p(&key), "-out", &p(&csr), "-subj", subject]);
    let (ca, ca_key) = (p(&pki.ca_cert()), p(&pki.ca_key()));
    run(&[
        "x509",
        "-req",
        "-in",
        &p(&csr),
        "-CA",
        &ca,
        "-CAkey",
        &ca_key,
        "-CAcreateserial",
        "-out",
        &p(&crt),
        "-days",
        "2",
    ]);
    let text = Command::new("openssl").args(["x509", "-noout", "-text", "-in", &p(&crt)]).output().unwrap();
    assert!(String::from_utf8_lossy(&text.stdout).contains("Version: 1"), "a version 1 certificate");
    (crt, key)
}

/// A client certificate that fails verification does not end the TLS
/// connection: a token still authenticates the request, otherwise 401; the
/// reason is logged. X.509 v1 certificates of the client or front-proxy CA
/// are accepted, as kube-apiserver accepts them.
#[test]
fn client_certificates_that_fail_verification_are_not_fatal() {
    let client_ca = TestPki::generate("unused").unwrap();
    let proxy_ca = TestPki::generate("front-proxy-client").unwrap();
    let stranger_ca = TestPki::generate("someone").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens.csv");
    std::fs::write(&tokens, "carol-token,carol,1\n").unwrap();
    let s = start(
        &dir.path().join("data"),
        &[
            "--client-ca-file",
            client_ca.ca_cert().to_str().unwrap(),
            "--requestheader-client-ca-file",
            proxy_ca.ca_cert().to_str().unwrap(),
            "--requestheader-allowed-names",
            "front-proxy-client",
            "--token-auth-file",
            tokens.to_str().unwrap(),
        ],
    );
    let stranger = (stranger_ca.client_cert(), stranger_ca.client_key());
    let out = whoami(&s, (&stranger.0, &stranger.1), &["-H", "Authorization: Bearer carol-token"]);
    assert_eq!(out.code, 201, "a token still authenticates: {} {}", out.body, out.stderr);
    assert_eq!(json(&out)["status"]["userInfo"]["username"], "carol");
    let out = whoami(&s, (&stranger.0, &stranger.1), &[]);
    assert_eq!(out.code, 401, "no TLS failure, a 401: {} {}", out.body, out.stderr);
    // Version 1 certificates of the configured CAs.
    let v1 = openssl_v1(&client_ca, "v1-dave", "/CN=dave/O=ops");
    let out = whoami(&s, (&v1.0, &v1.1), &[]);
    assert_eq!(out.code, 201, "{} {}", out.body, out.stderr);
    let info = &json(&out)["status"]["userInfo"];
    assert_eq!((info["username"].as_str(), info["groups"][0].as_str()), (Some("dave"), Some("ops")), "{info}");
    let proxy_v1 = openssl_v1(&proxy_ca, "v1-proxy", "/CN=front-proxy-client");
    let out = whoami(&s, (&proxy_v1.0, &proxy_v1.1), &["-H", "X-Remote-User: erin"]);
    assert_eq!(json(&out)["status"]["userInfo"]["username"], "erin", "{}", out.body);
    // A version 1 certificate of a CA that is not configured: not accepted.
    let foreign_v1 = openssl_v1(&stranger_ca, "v1-mallory", "/CN=mallory");
    assert_eq!(whoami(&s, (&foreign_v1.0, &foreign_v1.1), &[]).code, 401);
    std::thread::sleep(Duration::from_millis(200));
    let log = s.log_lines().join("\n");
    assert!(log.contains("not accepted") && log.contains("someone"), "the reason is logged:\n{log}");
}

fn timeouts() -> [&'static str; 6] {
    ["--request-header-timeout", "1s", "--idle-connection-timeout", "2s", "--request-timeout", "2s"]
}

/// Connections that send nothing, only the HTTP/2 preface, or trickle their
/// headers or body are closed; idle keep-alive connections too.
#[test]
fn idle_and_slow_connections_are_closed() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &timeouts());
    let closed_within = |c: &mut raw::Raw, limit: u64, what: &str| {
        let got = c.until_closed(Duration::from_secs(limit));
        assert!(got.is_some(), "{what}: still open after {limit} s");
        got.unwrap_or_default()
    };
    // 100 TLS connections that send nothing at all.
    let mut idle: Vec<raw::Raw> = (0..100).map(|_| raw::connect(&s, b"http/1.1").unwrap()).collect();
    for c in &mut idle {
        closed_within(c, 5, "an idle HTTP/1.1 connection");
    }
    // HTTP/2: only the preface.
    let mut h2 = raw::connect(&s, b"h2").unwrap();
    h2.send(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").unwrap();
    closed_within(&mut h2, 5, "an HTTP/2 connection that only sent its preface");
    // Headers trickled a byte every 300 ms.
    let mut slow = raw::connect(&s, b"http/1.1").unwrap();
    let started = Instant::now();
    for b in b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaa" {
        if slow.send(&[*b]).is_err() {
            break;
        }
        std::thread::sleep(Duration::from_millis(300));
        if started.elapsed() > Duration::from_secs(6) {
            break;
        }
    }
    closed_within(&mut slow, 3, "a connection trickling its headers");
    // A body trickled a byte a second: 408 once --request-timeout passes.
    let mut body = raw::connect(&s, b"http/1.1").unwrap();
    let token = s.token();
    let head = format!(
        "POST /apis/extensions/v1beta1/thirdpartyresources HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{"
    );
    body.send(head.as_bytes()).unwrap();
    std::thread::sleep(Duration::from_secs(1));
    body.send(b" ").unwrap();
    // Still 98 bytes to go when --request-timeout (2 s) passes.
    let (code, text) = body.response(Duration::from_secs(5)).expect("an answer");
    assert_eq!(code, 408, "{text}");
    assert!(text.contains("\"code\":408"), "{text}");
    // A keep-alive connection after its request: closed once idle.
    let mut keep = raw::connect(&s, b"http/1.1").unwrap();
    keep.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    assert_eq!(keep.response(Duration::from_secs(5)).map(|r| r.0), Some(200));
    closed_within(&mut keep, 5, "an idle keep-alive connection");
    assert_eq!(s.curl_as(true, &[], "/healthz").body, "ok");
}

/// Out of file descriptors, the accept loop backs off instead of spinning,
/// logs once per interval, and serves again once descriptors are free.
#[test]
fn running_out_of_file_descriptors_does_not_spin() {
    let dir = tempfile::tempdir().unwrap();
    let bin = testkit::apiserver_binary();
    let data = dir.path().to_str().unwrap();
    let args = ["--nofile=64:64", bin.to_str().unwrap(), "--data-dir", data, "--request-header-timeout", "3s"];
    let s = Server::start(std::path::Path::new("/usr/bin/prlimit"), &args).unwrap();
    let addr = s.url().trim_start_matches("https://").to_string();
    let held: Vec<_> = (0..120).map(|_| std::net::TcpStream::connect(&addr).unwrap()).collect();
    std::thread::sleep(Duration::from_millis(500));
    let cpu = testkit::process::cpu_time(s.pid());
    std::thread::sleep(Duration::from_secs(2));
    let used = testkit::process::cpu_time(s.pid()).saturating_sub(cpu);
    assert!(used < Duration::from_millis(800), "the server used {used:?} of CPU in 2 s while out of descriptors");
    let warnings = s.log_lines().iter().filter(|l| l.contains("accept failed")).count();
    assert!((1..=2).contains(&warnings), "{warnings} warnings logged");
    drop(held);
    let began = Instant::now();
    while s.curl_as(true, &["--max-time", "2"], "/healthz").body != "ok" {
        assert!(began.elapsed() < Duration::from_secs(15), "the server must serve again");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A second server on the same data directory exits at once, naming the
/// directory and the holder, and touches nothing; the first one works on.
#[test]
fn two_servers_cannot_share_a_data_directory() {
    let dir = tempfile::tempdir().unwrap();
    let first = start(dir.path(), &[]);
    let kubeconfig = std::fs::read(first.kubeconfig()).unwrap();
    let started = Instant::now();
    let out = Command::new(testkit::apiserver_binary())
        .args(["--data-dir", dir.path().to_str().unwrap(), "--secure-port", "0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(started.elapsed() < Duration::from_secs(5), "it exits at once");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(dir.path().to_str().unwrap()), "{stderr}");
    assert!(stderr.contains(&first.pid().to_string()), "names the holder: {stderr}");
    assert_eq!(std::fs::read(first.kubeconfig()).unwrap(), kubeconfig, "the kubeconfig is untouched");
    common::create_tpr(&first, "mysql-db.prsn.io", &["v1"]);
    let out = common::post(
        &first,
        "/apis/prsn.io/v1/namespaces/default/mysqldbs",
        &serde_json::json!({"metadata": {"name": "a"}}),
    );
    assert_eq!(out.code, 201, "the first server still writes: {}", out.body);
}

/// With a serving certificate given (as behind the aggregator) no admin token
/// is made, and one left in the data directory is not accepted.
#[test]
fn no_admin_token_outside_the_standalone_default() {
    let pki = TestPki::generate("x").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let standalone = start(dir.path(), &[]);
    let token = standalone.token();
    assert!(!token.is_empty());
    assert!(standalone.terminate().unwrap().success());
    let (crt, key) = (pki.server_cert(), pki.server_key());
    let cert = ["--tls-cert-file", crt.to_str().unwrap(), "--tls-private-key-file", key.to_str().unwrap()];
    let other = tempfile::tempdir().unwrap();
    let s = start(other.path(), &cert);
    assert!(!other.path().join("admin.token").exists() && !other.path().join("kubeconfig").exists());
    let auth = format!("Authorization: Bearer {token}");
    let out = s.curl_as(true, &["--cacert", pki.ca_cert().to_str().unwrap(), "-H", &auth], "/apis");
    assert_eq!(out.code, 401, "{} {}", out.body, out.stderr);
    drop(s);
    // The same data directory, now with the certificate: its old token is refused.
    let s = start(dir.path(), &cert);
    let out = s.curl_as(true, &["--cacert", pki.ca_cert().to_str().unwrap(), "-H", &auth], "/apis");
    assert_eq!(out.code, 401, "{} {}", out.body, out.stderr);
}
