//! The binary starts on either backend, reports health and stops cleanly.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;

/// GET `path` with HTTP/1.1 and returns (status, body).
fn get(base: &str, path: &str) -> (u16, String) {
    let addr = base.trim_start_matches("http://");
    let mut s = TcpStream::connect(addr).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out.split_whitespace().nth(1).unwrap().parse().unwrap();
    let body = out.split("\r\n\r\n").nth(1).unwrap_or_default().to_string();
    (status, body)
}

fn check(args: &[&str]) {
    let bin = Path::new(env!("CARGO_BIN_EXE_tpr-apiserver"));
    let server = testkit::Server::start(bin, args).unwrap();
    assert_eq!(get(server.url(), "/healthz"), (200, "ok".into()));
    assert_eq!(get(server.url(), "/readyz").0, 200);
    let (code, body) = get(server.url(), "/apis/nothing");
    assert_eq!(code, 404);
    assert!(body.contains("\"kind\":\"Status\""), "{body}");
    assert!(server.terminate().unwrap().success(), "SIGTERM must exit 0");
}

#[test]
fn serves_health_on_the_embedded_store() {
    let dir = tempfile::tempdir().unwrap();
    check(&["--data-dir", dir.path().to_str().unwrap()]);
}

#[test]
fn serves_health_on_etcd() {
    let etcd = testkit::Etcd::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    check(&["--data-dir", dir.path().to_str().unwrap(), "--etcd-servers", &etcd.endpoint()]);
}

#[test]
fn readyz_fails_when_etcd_is_gone() {
    let mut etcd = testkit::Etcd::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let bin = Path::new(env!("CARGO_BIN_EXE_tpr-apiserver"));
    let server =
        testkit::Server::start(bin, &["--data-dir", dir.path().to_str().unwrap(), "--etcd-servers", &etcd.endpoint()])
            .unwrap();
    etcd.kill();
    let (code, body) = get(server.url(), "/readyz");
    assert_eq!(code, 500, "{body}");
    assert!(body.contains("storage"), "{body}");
    assert_eq!(get(server.url(), "/livez").0, 200);
}
