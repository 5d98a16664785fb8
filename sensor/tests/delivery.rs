//! tpr-sensor against the real server and a local HTTP receiver: every
//! change delivered in order per object, through server restarts, receiver
//! outages and failures, sensor kill -9s and compaction; the sinks' bodies.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use common::{by_object, create, delete, resize, server, Mode, Receiver, Sensor};

/// The expected deliveries per object, in order.
type Expected = BTreeMap<String, Vec<(String, u64)>>;

fn expect(e: &mut Expected, t: &str, name: &str, rv: Option<u64>) {
    if let Some(rv) = rv {
        e.entry(name.to_string()).or_default().push((t.to_string(), rv));
    }
}

/// Waits until every expected delivery arrived; then checks the order per
/// object; returns the number of duplicates.
fn check(rx: &Receiver, expected: &Expected, wait: Duration) -> usize {
    let complete = |got: &[common::Received]| {
        let (per, _) = by_object(got);
        expected.iter().all(|(name, want)| per.get(name).is_some_and(|have| want.iter().all(|w| have.contains(w))))
    };
    let arrived = rx.wait_for(wait, complete);
    let (per, duplicates) = by_object(&rx.received());
    for (name, want) in expected {
        let have = per.get(name).cloned().unwrap_or_default();
        // Only what was expected, in the order it happened.
        let relevant: Vec<(String, u64)> = have.iter().filter(|h| want.contains(h)).cloned().collect();
        assert!(arrived, "missing deliveries for {name}: want {want:?}, have {have:?}");
        assert_eq!(&relevant, want, "order of {name}");
        assert_eq!(relevant.len(), have.len(), "unexpected deliveries for {name}: {have:?}");
    }
    duplicates
}

fn webhook(rx: &Receiver) -> Vec<String> {
    vec!["--sink".into(), "webhook".into(), "--target".into(), rx.url("/hook")]
}

fn args(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

#[test]
fn every_change_is_delivered_in_order_per_object() {
    let dir = tempfile::tempdir().unwrap();
    let s = server(dir.path(), &[]);
    let mut expected = Expected::new();
    for i in 0..3 {
        let name = format!("pre-{i}");
        expect(&mut expected, "ADDED", &name, create(&s, &name, "small"));
    }
    let rx = Receiver::start();
    let hook = webhook(&rx);
    let mut sensor = Sensor::start(&s, &dir.path().join("state"), &args(&hook));
    for i in 0..20 {
        let name = format!("db-{i}");
        expect(&mut expected, "ADDED", &name, create(&s, &name, "small"));
        expect(&mut expected, "MODIFIED", &name, resize(&s, &name, "medium"));
        expect(&mut expected, "MODIFIED", &name, resize(&s, &name, "large"));
        expect(&mut expected, "DELETED", &name, delete(&s, &name));
    }
    let duplicates = check(&rx, &expected, Duration::from_secs(30));
    assert_eq!(duplicates, 0);
    let total: usize = expected.values().map(Vec::len).sum();
    let metrics = sensor.get("/metrics");
    assert!(metrics.contains(&format!("tpr_sensor_deliveries_total {total}")), "{metrics}");
    assert!(metrics.contains("tpr_sensor_lag_revisions 0"), "{metrics}");
    assert_eq!(sensor.get("/healthz"), "ok");
    // SIGTERM writes the checkpoint: started again, nothing is sent twice.
    assert_eq!(sensor.terminate(), Some(0));
    let before = rx.received().len();
    let _again = Sensor::start(&s, &dir.path().join("state"), &args(&hook));
    std::thread::sleep(Duration::from_secs(2));
    expect(&mut expected, "ADDED", "after", create(&s, "after", "small"));
    check(&rx, &expected, Duration::from_secs(20));
    assert_eq!(rx.received().len(), before + 1, "after a graceful stop only the new change arrives");
}

#[test]
fn server_restarts_and_receiver_outages_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = server(dir.path(), &[]);
    let mut rx = Receiver::start();
    let hook = webhook(&rx);
    let _sensor = Sensor::start(&s, &dir.path().join("state"), &args(&hook));
    let mut expected = Expected::new();
    let mut n = 0;
    let mut write_for = |s: &testkit::Server, expected: &mut Expected, for_: Duration| {
        let until = Instant::now() + for_;
        while Instant::now() < until {
            let name = format!("db-{n}");
            expect(expected, "ADDED", &name, create(s, &name, "small"));
            expect(expected, "MODIFIED", &name, resize(s, &name, "large"));
            n += 1;
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    write_for(&s, &mut expected, Duration::from_secs(1));
    // The receiver is down for 10 s.
    rx.down();
    write_for(&s, &mut expected, Duration::from_secs(10));
    rx.up();
    // Then it answers 500, then 429 with Retry-After.
    rx.set(Mode::Fail);
    write_for(&s, &mut expected, Duration::from_secs(2));
    rx.set(Mode::Busy);
    write_for(&s, &mut expected, Duration::from_secs(2));
    rx.set(Mode::Ok);
    // The server restarts.
    s = common::restart(s, dir.path());
    write_for(&s, &mut expected, Duration::from_secs(2));
    let started = Instant::now();
    let duplicates = check(&rx, &expected, Duration::from_secs(60));
    let total: usize = expected.values().map(Vec::len).sum();
    println!(
        "{total} changes delivered ({duplicates} duplicates, {} refused attempts); caught up {:?} after the last write",
        *rx.refused.lock().unwrap(),
        started.elapsed()
    );
    assert_eq!(duplicates, 0, "no sensor restart: no duplicates");
    assert!(*rx.refused.lock().unwrap() > 0, "the receiver did refuse");
}

#[test]
fn a_killed_sensor_resumes_from_its_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let s = server(dir.path(), &[]);
    let rx = Receiver::start();
    let hook = webhook(&rx);
    let state = dir.path().join("state");
    let mut expected = Expected::new();
    let mut sensor = Sensor::start(&s, &state, &args(&hook));
    let mut kills = 0;
    for i in 0..60 {
        let name = format!("db-{i}");
        expect(&mut expected, "ADDED", &name, create(&s, &name, "small"));
        expect(&mut expected, "MODIFIED", &name, resize(&s, &name, "large"));
        if i % 3 == 0 {
            expect(&mut expected, "DELETED", &name, delete(&s, &name));
        }
        if i % 15 == 7 {
            sensor.kill();
            kills += 1;
            sensor = Sensor::start(&s, &state, &args(&hook));
        }
    }
    let duplicates = check(&rx, &expected, Duration::from_secs(30));
    let total: usize = expected.values().map(Vec::len).sum();
    println!("{kills} kill -9s: {total} changes all delivered, {duplicates} duplicates (the at-least-once window)");
}

#[test]
fn a_compacted_revision_relists_with_synthesized_deletes() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = server(dir.path(), &["--etcd-compaction-interval=1s"]);
    let rx = Receiver::start();
    let hook = webhook(&rx);
    let state = dir.path().join("state");
    let mut expected = Expected::new();
    let mut sensor = Sensor::start(&s, &state, &args(&hook));
    for name in ["a", "b", "c"] {
        expect(&mut expected, "ADDED", name, create(&s, name, "small"));
    }
    check(&rx, &expected, Duration::from_secs(20));
    assert_eq!(sensor.terminate(), Some(0));
    // While the sensor is away: a delete, a create, an update; then history is compacted.
    let deleted_at = delete(&s, "b").unwrap();
    expect(&mut expected, "ADDED", "d", create(&s, "d", "small"));
    expect(&mut expected, "MODIFIED", "c", resize(&s, "c", "large"));
    std::thread::sleep(Duration::from_secs(3));
    create(&s, "filler", "x");
    std::thread::sleep(Duration::from_secs(2));
    // A restarted server's watch cache starts after the compacted history:
    // the sensor's revision is gone (410).
    s = common::restart(s, dir.path());
    let sensor = Sensor::start(&s, &state, &args(&hook));
    let delivered_delete = |got: &[common::Received]| {
        got.iter().any(|r| r.body["type"] == "DELETED" && r.body.pointer("/object/metadata/name") == Some(&json!("b")))
    };
    assert!(rx.wait_for(Duration::from_secs(20), delivered_delete), "the vanished object's delete is synthesized");
    let got = rx.received();
    let del = got.iter().find(|r| r.body["type"] == "DELETED").unwrap();
    assert_eq!(del.body["synthesized"], true);
    assert!(del.body["resourceVersion"].as_str().unwrap().parse::<u64>().unwrap() >= deleted_at);
    assert!(del.body.pointer("/object/metadata/uid").and_then(Value::as_str).is_some_and(|u| !u.is_empty()));
    expect(&mut expected, "ADDED", "filler", None);
    let (per, _) = by_object(&got);
    for (name, want) in [("d", "ADDED"), ("c", "MODIFIED"), ("filler", "ADDED")] {
        assert!(per[name].iter().any(|(t, _)| t == want), "{name}: {:?}", per[name]);
    }
    let metrics = sensor.get("/metrics");
    assert!(metrics.contains("tpr_sensor_relists_total 1"), "one re-list after 410: {metrics}");
}

#[test]
fn cloudevents_stackstorm_and_commands() {
    let dir = tempfile::tempdir().unwrap();
    let s = server(dir.path(), &[]);
    create(&s, "plain", "small");
    common::write(
        &s,
        "POST",
        "",
        Some(json!({"metadata": {"name": "labelled", "labels": {"team": "shop"}}, "instance_size": "large"})),
    );
    let rx = Receiver::start();
    let two = |got: &[common::Received]| got.len() >= 2;
    // CloudEvents, binary mode: the required attributes as ce- headers.
    let target = rx.url("/ce");
    let sensor = Sensor::start(&s, &dir.path().join("ce"), &["--sink", "cloudevents", "--target", &target]);
    assert!(rx.wait_for(Duration::from_secs(20), two));
    drop(sensor);
    let mut ids = Vec::new();
    for r in rx.received() {
        let h = &r.headers;
        assert_eq!(h.get("ce-specversion").map(String::as_str), Some("1.0"));
        for attr in ["ce-id", "ce-source", "ce-type", "ce-subject", "ce-time"] {
            assert!(h.get(attr).is_some_and(|v| !v.is_empty()), "{attr} in {h:?}");
        }
        assert_eq!(h.get("ce-type").map(String::as_str), Some("io.tpr-apiserver.prsn.io.mysqldb.added"));
        assert!(h["ce-source"].ends_with("/apis/prsn.io/v1/namespaces/default/mysqldbs"), "{}", h["ce-source"]);
        assert_eq!(h.get("content-type").map(String::as_str), Some("application/json"));
        assert_eq!(r.body["kind"], "MysqlDb", "the body is the object");
        ids.push(h["ce-id"].clone());
    }
    ids.dedup();
    assert_eq!(ids.len(), 2, "ids are unique per change");
    rx.got.lock().unwrap().clear();
    // Structured mode.
    let sensor = Sensor::start(&s, &dir.path().join("ces"), &["--sink", "cloudevents-structured", "--target", &target]);
    assert!(rx.wait_for(Duration::from_secs(20), two));
    drop(sensor);
    for r in rx.received() {
        assert_eq!(r.headers.get("content-type").map(String::as_str), Some("application/cloudevents+json"));
        for attr in ["specversion", "id", "source", "type"] {
            assert!(r.body[attr].as_str().is_some_and(|v| !v.is_empty()), "{attr}: {}", r.body);
        }
        assert_eq!(r.body["specversion"], "1.0");
        assert_eq!(r.body["data"]["kind"], "MysqlDb");
    }
    rx.got.lock().unwrap().clear();
    // StackStorm's webhook API.
    let st2 = rx.url("/api/v1/webhooks/st2");
    let sensor = Sensor::start(
        &s,
        &dir.path().join("st2"),
        &["--sink", "st2", "--target", &st2, "--st2-api-key", "secret-key", "--st2-trigger", "tpr.mysqldb_change"],
    );
    assert!(rx.wait_for(Duration::from_secs(20), two));
    drop(sensor);
    for r in rx.received() {
        assert_eq!(r.path, "/api/v1/webhooks/st2");
        assert_eq!(r.headers.get("st2-api-key").map(String::as_str), Some("secret-key"));
        assert_eq!(r.body["trigger"], "tpr.mysqldb_change");
        let p = &r.body["payload"];
        assert_eq!(
            (p["resource"].as_str(), p["namespace"].as_str(), p["object_kind"].as_str()),
            (Some("ADDED"), Some("default"), Some("MysqlDb"))
        );
        assert!(p["uid"].as_str().is_some_and(|u| !u.is_empty()));
        assert_eq!(p["object"]["metadata"]["name"], p["name"]);
        let want = if p["name"] == "labelled" { json!({"team": "shop"}) } else { json!({}) };
        assert_eq!(p["labels"], want, "labels, empty when absent");
    }
    // A command per change, the change as JSON on stdin.
    let out = dir.path().join("exec.jsonl");
    let command = format!("cat >> {} && echo >> {}", out.display(), out.display());
    let sensor = Sensor::start(&s, &dir.path().join("exec"), &["--sink", "exec", "--target", &command]);
    let lines = || std::fs::read_to_string(&out).unwrap_or_default().lines().filter(|l| !l.is_empty()).count();
    let deadline = Instant::now() + Duration::from_secs(20);
    while lines() < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(sensor);
    let text = std::fs::read_to_string(&out).unwrap();
    let names: Vec<String> = text
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["object"]["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names.len(), 2, "{text}");
    assert!(names.contains(&"plain".to_string()) && names.contains(&"labelled".to_string()));
}

#[test]
fn a_rejected_change_is_dead_lettered_and_the_rest_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let s = server(dir.path(), &[]);
    let rx = Receiver::start();
    rx.set(Mode::Reject);
    let hook = webhook(&rx);
    let state = dir.path().join("state");
    let sensor = Sensor::start(&s, &state, &args(&hook));
    create(&s, "refused", "small");
    let dead = state.join("dead-letter.jsonl");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !dead.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    rx.set(Mode::Ok);
    create(&s, "accepted", "small");
    assert!(rx.wait_for(Duration::from_secs(20), |got| got
        .iter()
        .any(|r| r.body.pointer("/object/metadata/name") == Some(&json!("accepted")))));
    let line: Value = serde_json::from_str(std::fs::read_to_string(&dead).unwrap().lines().next().unwrap()).unwrap();
    assert_eq!(line["change"]["object"]["metadata"]["name"], "refused");
    assert!(line["error"].as_str().unwrap().contains("400"), "{line}");
    assert!(sensor.get("/metrics").contains("tpr_sensor_dead_letters_total 1"));
}

/// Any served resource is a source, core types too, with label and field selectors.
#[test]
fn selectors_and_core_types() {
    let dir = tempfile::tempdir().unwrap();
    let s = server(dir.path(), &[]);
    let rx = Receiver::start();
    let target = rx.url("/hook");
    let labelled = Sensor::start(
        &s,
        &dir.path().join("labelled"),
        &["--sink", "webhook", "--target", &target, "--selector", "team=shop"],
    );
    common::write(&s, "POST", "", Some(json!({"metadata": {"name": "shop-db", "labels": {"team": "shop"}}})));
    create(&s, "other-db", "small");
    assert!(rx.wait_for(Duration::from_secs(20), |got| !got.is_empty()));
    std::thread::sleep(Duration::from_millis(500));
    let names: Vec<String> = rx.received().iter().map(|r| common::summary(r).1).collect();
    assert_eq!(names, ["shop-db"], "only what the label selector selects");
    drop(labelled);
    rx.got.lock().unwrap().clear();
    // ConfigMaps (the core group), one namespace, a field selector, CloudEvents.
    let cm = |ns: &str, name: &str| {
        let body = json!({"metadata": {"name": name}, "data": {"k": "v"}});
        let out = s.curl(
            &["-H", "Content-Type: application/json", "-d", &body.to_string()],
            &format!("/api/v1/namespaces/{ns}/configmaps"),
        );
        assert_eq!(out.code, 201, "{}", out.body);
    };
    let _core = Sensor::start(
        &s,
        &dir.path().join("core"),
        &[
            "--resource",
            "configmaps",
            "--namespace",
            "default",
            "--field-selector",
            "metadata.name!=skipped",
            "--sink",
            "cloudevents",
            "--target",
            &target,
        ],
    );
    cm("default", "settings");
    cm("default", "skipped");
    cm("kube-system", "elsewhere");
    assert!(rx.wait_for(Duration::from_secs(20), |got| !got.is_empty()));
    std::thread::sleep(Duration::from_millis(500));
    let got = rx.received();
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].headers.get("ce-type").map(String::as_str), Some("io.tpr-apiserver.core.configmap.added"));
    assert!(got[0].headers["ce-source"].ends_with("/api/v1/namespaces/default/configmaps"), "{:?}", got[0].headers);
    assert_eq!(got[0].headers.get("ce-subject").map(String::as_str), Some("default/settings"));
}

/// `--resync`: the whole current state again, as SYNCED, on a period.
#[test]
fn resync_delivers_the_current_state_again() {
    let dir = tempfile::tempdir().unwrap();
    let s = server(dir.path(), &[]);
    create(&s, "a", "small");
    create(&s, "b", "small");
    let rx = Receiver::start();
    let hook = webhook(&rx);
    let mut extra = args(&hook);
    extra.extend(["--resync", "1s"]);
    let _sensor = Sensor::start(&s, &dir.path().join("state"), &extra);
    let synced = |got: &[common::Received]| got.iter().filter(|r| r.body["type"] == "SYNCED").count() >= 4;
    assert!(
        rx.wait_for(Duration::from_secs(20), synced),
        "{:?}",
        rx.received().iter().map(common::summary).collect::<Vec<_>>()
    );
    let (per, _) = by_object(&rx.received());
    assert_eq!(per["a"][0].0, "ADDED");
    assert!(per["a"].iter().any(|(t, _)| t == "SYNCED") && per["b"].iter().any(|(t, _)| t == "SYNCED"));
}
