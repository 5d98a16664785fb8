//! curl against the real binary, on both backends.

use std::process::Command;

fn curl(args: &[&str]) -> (String, String) {
    let out = Command::new("curl").args(["-sS", "--max-time", "10"]).args(args).output().expect("curl is installed");
    (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn health_answers(extra: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let mut args = vec!["--data-dir", dir.path().to_str().unwrap()];
    args.extend_from_slice(extra);
    let server = testkit::Server::start(&testkit::apiserver_binary(), &args).unwrap();
    for path in ["/healthz", "/livez", "/readyz"] {
        let (out, err) = curl(&[&format!("{}{path}", server.url())]);
        assert_eq!(out, "ok", "curl {path}: stderr {err}");
    }
    let (out, _) = curl(&["-w", "\n%{http_code}", &format!("{}/apis/prsn.io/v1/mysqldbs", server.url())]);
    assert!(out.ends_with("\n404"), "an unknown path is a 404 Status: {out}");
    assert!(out.contains("\"reason\":\"NotFound\""), "{out}");
    assert!(server.terminate().unwrap().success());
}

#[test]
fn curl_reads_health_from_the_embedded_default() {
    health_answers(&[]);
}

#[test]
fn curl_reads_health_with_etcd() {
    let etcd = testkit::Etcd::start().unwrap();
    health_answers(&["--etcd-servers", &etcd.endpoint()]);
}
