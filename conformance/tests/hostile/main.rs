//! Hostile input: several hundred generated requests across malformed and
//! deep JSON and YAML, wrong types for every metadata field, bad names,
//! paths, selectors, resourceVersions, continue tokens, patches of every
//! content type, methods, headers, and TPR names and versions, sent over raw
//! TLS connections. Asserted, on both backends: the server never crashes,
//! answers no 5xx (but 504 for a future resourceVersion), every error is a
//! Status whose `code` is the HTTP status (except where the HTTP library
//! itself answers a request it cannot parse, see ARCHITECTURE.md), nothing a
//! refused request sent is written (the store's revision after each request,
//! and every stored key and revision at the end), every request is answered
//! within 5 s, and the server's memory stays bounded.

mod cases;
#[path = "../common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use cases::{cases, short_str, Expect};
use common::{alive, create_tpr, json, post, raw, revision, start, Backend};
use serde_json::{json, Value};
use testkit::Server;

const DBS: &str = "/apis/prsn.io/v1/namespaces/default/mysqldbs";
const TPRS: &str = "/apis/extensions/v1beta1/thirdpartyresources";

/// Every stored key (as its API path) with its resourceVersion.
fn snapshot(s: &Server) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let tprs = json(&s.curl(&[], TPRS));
    let mut lists = vec![TPRS.to_string()];
    for t in tprs["items"].as_array().unwrap() {
        let names = discovery::naming::from_tpr_name(t["metadata"]["name"].as_str().unwrap()).unwrap();
        let version = t["versions"][0]["name"].as_str().unwrap();
        lists.push(format!("/apis/{}/{version}/{}", names.group, names.plural));
    }
    for list in lists {
        let body = json(&s.curl(&[], &list));
        for item in body["items"].as_array().unwrap() {
            let m = &item["metadata"];
            let key = format!("{list}/{}/{}", m["namespace"].as_str().unwrap_or(""), m["name"].as_str().unwrap());
            out.insert(key, m["resourceVersion"].as_str().unwrap().to_string());
        }
    }
    out
}

fn hostile_input_is_refused_cleanly(backend: Backend) {
    let r = start(backend);
    let s = &r.server;
    create_tpr(s, "mysql-db.prsn.io", &["v1", "stable/v1"]);
    create_tpr(s, "redis.prsn.io", &["v1"]);
    for name in ["a", "b"] {
        let out = post(s, DBS, &json!({"metadata": {"name": name, "labels": {"tier": "db"}}, "list": [1, 2]}));
        assert_eq!(out.code, 201, "{}", out.body);
    }
    let before = snapshot(s);
    let cases = cases(&s.token());
    assert!(cases.len() >= 500, "{} cases", cases.len());
    testkit::process::reset_peak_rss(s.pid());
    let mut revision_now = revision(s);
    let mut failures = Vec::new();
    for case in &cases {
        let started = Instant::now();
        let mut conn = raw::connect(s, b"http/1.1").expect("connect");
        let _ = conn.send(&case.request);
        let answer = if case.request.starts_with(b"HEAD ") {
            // No body follows the headers of a HEAD answer; the connection closes.
            conn.until_closed(Duration::from_secs(5)).and_then(|(bytes, _)| {
                let text = String::from_utf8_lossy(&bytes).into_owned();
                text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).map(|c| (c, String::new()))
            })
        } else {
            conn.response(Duration::from_secs(5))
        };
        let took = started.elapsed();
        let problem = match (&answer, case.expect) {
            (None, Expect::Library) => {
                conn.until_closed(Duration::from_secs(5)).is_none().then(|| "neither answered nor closed".to_string())
            }
            (None, _) => Some(format!("no answer within 5 s ({took:?})")),
            (Some((code, _)), Expect::FutureRevision) if *code == 504 => None,
            (Some((code, body)), expect) if *code >= 500 => Some(format!("{code} {expect:?}: {}", short_str(body))),
            (Some((code, _)), Expect::Library) if *code >= 400 => None,
            // HEAD answers carry no body.
            (Some((code, _)), _) if *code >= 400 && case.request.starts_with(b"HEAD ") => None,
            (Some((code, body)), _) if *code >= 400 => match serde_json::from_str::<Value>(body) {
                Ok(v) if v["kind"] == "Status" && v["code"].as_u64() == Some(*code as u64) => None,
                _ => Some(format!("{code} without a matching Status: {}", short_str(body))),
            },
            // Reads may succeed; a write that succeeded shows in the revision below.
            (Some(_), _) => None,
        };
        if let Some(p) = problem {
            failures.push(format!("{}: {p}", case.what));
        }
        assert!(alive(s), "the server died at: {}", case.what);
        let now = revision(s);
        if now != revision_now {
            failures.push(format!("{}: the store's revision moved from {revision_now} to {now}", case.what));
            revision_now = now;
        }
    }
    let peak_mb = testkit::process::status_kb(s.pid(), "VmHWM") / 1024;
    assert!(failures.is_empty(), "{} of {} cases failed:\n{}", failures.len(), cases.len(), failures.join("\n"));
    assert_eq!(snapshot(s), before, "every key and revision as before");
    assert!(peak_mb < 400, "peak RSS {peak_mb} MB");
    eprintln!("{} hostile requests, peak RSS {peak_mb} MB", cases.len());
}

on_both_backends!(hostile_input_is_refused_cleanly);
