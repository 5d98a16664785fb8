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
