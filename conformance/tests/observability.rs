//! `/metrics` and the audit log reflect a scripted sequence of requests.

mod common;

use common::{create_tpr, json, CurlWatch};
use testkit::Server;

#[test]
fn metrics_and_audit_log_follow_the_requests() {
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.log");
    let data = dir.path().join("data");
    let args = ["--data-dir", data.to_str().unwrap(), "--audit-log-path", audit.to_str().unwrap()];
    let s = Server::start(&testkit::apiserver_binary(), &args).unwrap();
    create_tpr(&s, "mysql-db.prsn.io", &["v1"]);
    let dbs = "/apis/prsn.io/v1/namespaces/default/mysqldbs";
    for name in ["a", "b"] {
        let out = common::post(&s, dbs, &serde_json::json!({"metadata": {"name": name}}));
        assert_eq!(out.code, 201);
    }
    assert_eq!(s.curl(&[], &format!("{dbs}/a")).code, 200);
    assert_eq!(s.curl(&[], &format!("{dbs}/missing")).code, 404);
    assert_eq!(s.curl(&[], dbs).code, 200);
    let out = s.curl(&["-X", "DELETE"], &format!("{dbs}/b"));
    assert_eq!(out.code, 200, "{}", out.body);
    let dup = common::post(&s, dbs, &serde_json::json!({"metadata": {"name": "a"}}));
    assert_eq!(dup.code, 409);
    let watch = CurlWatch::open(&s, &format!("{dbs}?watch=true"));
    std::thread::sleep(std::time::Duration::from_millis(300));

    let metrics = s.curl(&[], "/metrics");
    assert_eq!(metrics.code, 200);
    let m = &metrics.body;
    let line = |verb: &str, code: u16| {
        format!(
            "apiserver_request_total{{verb=\"{verb}\",group=\"prsn.io\",version=\"v1\",resource=\"mysqldbs\",code=\"{code}\"}}"
        )
    };
    for (verb, code, count) in
        [("CREATE", 201, 2), ("CREATE", 409, 1), ("GET", 200, 1), ("GET", 404, 1), ("LIST", 200, 1), ("DELETE", 200, 1)]
    {
        assert!(m.contains(&format!("{} {count}", line(verb, code))), "{verb} {code} x{count} in:\n{m}");
    }
    assert!(m.contains("apiserver_request_duration_seconds_bucket{"), "{m}");
    let watching =
        "apiserver_longrunning_requests{verb=\"WATCH\",group=\"prsn.io\",version=\"v1\",resource=\"mysqldbs\"} 1";
    assert!(m.contains(watching), "{m}");
    assert!(m.contains(r#"etcd_requests_total{operation="create",type="mysqldbs.prsn.io"} 3"#), "{m}");
    assert!(m.contains(r#"etcd_request_duration_seconds_count{operation="get",type="mysqldbs.prsn.io"}"#), "{m}");
    assert!(!m.contains("etcd_request_errors_total{operation=\"create\""), "a lost condition is no error: {m}");
    drop(watch);
    assert_eq!(s.curl_as(true, &[], "/metrics").code, 401, "metrics need credentials");

    let log = std::fs::read_to_string(&audit).unwrap();
    let lines: Vec<serde_json::Value> = log.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let find = |verb: &str, name: &str, code: u64| {
        lines
            .iter()
            .find(|l| l["verb"] == verb && l["resource"] == "mysqldbs" && l["name"] == name && l["code"] == code)
            .cloned()
    };
    let created = find("create", "", 201).expect("a create line");
    assert_eq!(created["user"], "tpr-admin");
    assert_eq!(created["groups"], serde_json::json!(["system:masters"]));
    assert_eq!((created["resource"].as_str(), created["namespace"].as_str()), (Some("mysqldbs"), Some("default")));
    assert!(created["latencyMs"].as_f64().is_some() && created["time"].is_string() && created["auditID"].is_string());
    assert!(find("get", "missing", 404).is_some(), "{log}");
    assert!(find("delete", "b", 200).is_some(), "{log}");
    let out = s.curl(&[], &format!("{dbs}/a"));
    assert!(json(&out)["metadata"]["name"] == "a");
}

/// `/metrics` is the Prometheus text format 0.0.4 unless OpenMetrics is asked
/// for; logs written to a file or pipe have no colours; the JSON ready line
/// names the port.
#[test]
fn metrics_formats_and_plain_logs() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(
        &testkit::apiserver_binary(),
        &["--data-dir", dir.path().to_str().unwrap(), "--log-format", "json"],
    )
    .unwrap();
    let head = |accept: Option<&str>| {
        let mut args = vec!["-D", "-"];
        if let Some(a) = accept {
            args.extend(["-H", a]);
        }
        s.curl(&args, "/metrics").body
    };
    head(None); // counted: the next answer has request counters
    let plain = head(None);
    assert!(plain.to_ascii_lowercase().contains("content-type: text/plain; version=0.0.4"), "{plain}");
    assert!(!plain.contains("# EOF") && !plain.contains("# UNIT"), "{plain}");
    let counter = plain.lines().find(|l| l.starts_with("# TYPE apiserver_request_total")).expect("the request counter");
    assert_eq!(counter, "# TYPE apiserver_request_total counter");
    let open = head(Some("Accept: application/openmetrics-text;version=1.0.0,text/plain;q=0.5"));
    assert!(open.to_ascii_lowercase().contains("content-type: application/openmetrics-text; version=1.0.0"), "{open}");
    assert!(open.trim_end().ends_with("# EOF"), "{open}");
    drop(s);
    // The server's stderr written to a file, as a service manager would.
    let log = dir.path().join("server.log");
    let data = dir.path().join("again");
    let mut child = std::process::Command::new(testkit::apiserver_binary())
        .args(["--data-dir", data.to_str().unwrap(), "--secure-port", "0", "--log-format", "json"])
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let text = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("tpr-apiserver ready at") || std::time::Instant::now() > deadline {
            break text;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let _ = child.kill();
    let _ = child.wait();
    assert!(!text.contains('\u{1b}'), "no ANSI colours in a log file: {text}");
    let ready = text.lines().find(|l| l.contains("tpr-apiserver ready at")).expect("the ready line");
    let v: serde_json::Value = serde_json::from_str(ready).unwrap();
    let port = v["fields"]["port"].as_u64().expect("a port field");
    assert!(v["fields"]["message"].as_str().unwrap().contains(&format!(":{port} ")), "{ready}");
    // Text logs to a file: no colours either.
    let text_log = dir.path().join("text.log");
    let mut child = std::process::Command::new(testkit::apiserver_binary())
        .args(["--data-dir", dir.path().join("third").to_str().unwrap(), "--secure-port", "0"])
        .stderr(std::fs::File::create(&text_log).unwrap())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !std::fs::read_to_string(&text_log).unwrap_or_default().contains("ready at")
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    let text = std::fs::read_to_string(&text_log).unwrap();
    assert!(text.contains("ready at") && !text.contains('\u{1b}'), "{text}");
}
