//! The cost of the worst request of each class issue 9 bounds: peak RSS
//! (over the RSS before the request) and CPU time of the release server, for
//! requests at the limits (3 MiB bodies, 100 levels, 10,000 JSON patch
//! operations) and the hostile ones that used to cost far more.
//!
//! `cargo build --release -p apiserver && cargo run --release -p bench --bin hostile-bench`
//! (TPR_APISERVER_BIN overrides the binary.)
#![forbid(unsafe_code)]

use std::time::{Duration, Instant};

use serde_json::{json, Value};

const DBS: &str = "/apis/prsn.io/v1/namespaces/default/mysqldbs";

use testkit::process::{cpu_time as cpu, status_kb};

struct Bench {
    server: testkit::Server,
    dir: tempfile::TempDir,
}

impl Bench {
    /// A fresh server (release binary, embedded store) serving `mysqldbs.prsn.io`.
    fn fresh(bin: &std::path::Path) -> Bench {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        let server = testkit::Server::start(bin, &["--data-dir", data.to_str().expect("utf-8")])
            .expect("start tpr-apiserver (cargo build --release -p apiserver)");
        let tpr = json!({"metadata": {"name": "mysql-db.prsn.io"}, "versions": [{"name": "v1"}]});
        let out = server.curl(
            &["-H", "Content-Type: application/json", "-d", &tpr.to_string()],
            "/apis/extensions/v1beta1/thirdpartyresources",
        );
        assert_eq!(out.code, 201, "{}", out.body);
        Bench { server, dir }
    }

    /// Creates an object (its body through a file: it may be large).
    fn create(&self, body: &Value) {
        let file = self.dir.path().join("setup");
        std::fs::write(&file, body.to_string()).expect("write body");
        let at = format!("@{}", file.display());
        let out = self.server.curl(&["-H", "Content-Type: application/json", "--data-binary", &at], DBS);
        assert_eq!(out.code, 201, "{}", &out.body[..out.body.len().min(300)]);
    }

    /// Sends one request with curl (`body` from a file) and prints its cost:
    /// CPU time, and peak RSS over the RSS before it.
    fn measure(&self, what: &str, method: &str, path: &str, content_type: &str, body: &[u8]) {
        let file = self.dir.path().join("body");
        std::fs::write(&file, body).expect("write body");
        let pid = self.server.pid();
        // Let the allocator return what the setup freed, then reset the peak.
        std::thread::sleep(Duration::from_millis(300));
        let _ = std::fs::write(format!("/proc/{pid}/clear_refs"), "5");
        let base = status_kb(pid, "VmRSS");
        let cpu0 = cpu(pid);
        let started = Instant::now();
        let at = format!("@{}", file.display());
        let ct = format!("Content-Type: {content_type}");
        let mut args = vec!["--max-time", "60", "-X", method, "-H", &ct];
        if !body.is_empty() {
            args.extend(["--data-binary", &at]);
        }
        let out = self.server.curl(&args, path);
        let took = started.elapsed();
        std::thread::sleep(Duration::from_millis(100));
        let used = cpu(pid).saturating_sub(cpu0);
        let peak = status_kb(pid, "VmHWM");
        println!(
            "{what:<64} {:>9} {:>5} {:>8.0} {:>7} {:>8.1}",
            human(body.len()),
            out.code,
            took.as_secs_f64() * 1e3,
            used.as_millis(),
            (peak.saturating_sub(base)) as f64 / 1024.0
        );
    }
}

fn human(n: usize) -> String {
    if n >= 1 << 20 {
        format!("{:.1} MiB", n as f64 / (1 << 20) as f64)
    } else if n >= 1024 {
        format!("{:.0} KB", n as f64 / 1024.0)
    } else {
        format!("{n} B")
    }
}

fn nested(levels: usize) -> Value {
    let mut v = json!("leaf");
    for _ in 0..levels {
        v = json!({ "a": v });
    }
    v
}

/// `keys` nested keys of `key_len` bytes over `leaves` leaves.
fn wide(name: &str, keys: usize, key_len: usize, leaves: usize) -> Value {
    let mut m = serde_json::Map::new();
    for i in 0..leaves {
        m.insert(format!("leaf{i}"), json!(i));
    }
    let mut v = Value::Object(m);
    for i in 0..keys {
        v = json!({ format!("{i:0key_len$}"): v });
    }
    json!({"metadata": {"name": name}, "spec": v})
}

/// A flat object of at most `bytes` bytes of small fields (`"k0000001":1,`).
fn flat(name: &str, bytes: usize) -> Value {
    let mut m = serde_json::Map::new();
    for i in 0..bytes / 14 {
        m.insert(format!("k{i:07}"), json!(i % 10));
    }
    json!({"metadata": {"name": name}, "spec": m})
}

fn main() {
    let bin = std::env::var_os("TPR_APISERVER_BIN").map(std::path::PathBuf::from).unwrap_or_else(|| {
        let d = testkit::apiserver_binary();
        d.parent().and_then(|p| p.parent()).map(|t| t.join("release/tpr-apiserver")).unwrap_or(d)
    });
    // mimalloc returns freed memory at once, so that RSS follows what is in use.
    std::env::set_var("MIMALLOC_PURGE_DELAY", "0");
    let fresh = || Bench::fresh(&bin);
    println!(
        "each request on a fresh release server (embedded store); peak = peak RSS over the RSS before the request"
    );
    println!("{:<64} {:>9} {:>5} {:>8} {:>7} {:>8}", "request", "body", "code", "wall ms", "CPU ms", "peak MB");
    let js = "application/json";
    let apply_ct = "application/apply-patch+yaml";

    // Memory: the issue's 119 KB body, then the largest bodies.
    let refused = wide("wide", 100, 1000, 2000).to_string();
    fresh().measure(
        "create, 100 nested 1,000-byte keys over 2,000 leaves, dryRun",
        "POST",
        &format!("{DBS}?dryRun=All"),
        js,
        refused.as_bytes(),
    );
    let issue = wide("wide", 98, 1000, 2000).to_string();
    fresh().measure(
        "create, 98 nested 1,000-byte keys over 2,000 leaves, dryRun",
        "POST",
        &format!("{DBS}?dryRun=All"),
        js,
        issue.as_bytes(),
    );
    fresh().measure("create, the same, stored", "POST", DBS, js, issue.as_bytes());
    let wide_big = wide("wide", 98, 1000, 60_000).to_string();
    fresh().measure("create, 98 nested 1,000-byte keys over 60,000 leaves", "POST", DBS, js, wide_big.as_bytes());
    let refused = flat("refused", 3_000_000).to_string();
    fresh().measure(
        "create, 2.7 MiB of small fields (too large with managedFields)",
        "POST",
        DBS,
        js,
        refused.as_bytes(),
    );
    // The largest objects of small fields that are stored (managedFields double them).
    let small = flat("flat", 1_400_000);
    fresh().measure("create, 1.3 MiB of small fields", "POST", DBS, js, small.to_string().as_bytes());
    let mut applied = flat("flat", 1_400_000);
    applied["apiVersion"] = json!("prsn.io/v1");
    applied["kind"] = json!("MysqlDb");
    let b = fresh();
    b.create(&small);
    b.measure(
        "apply (JSON), the same fields, another manager, force",
        "PATCH",
        &format!("{DBS}/flat?fieldManager=other&force=true"),
        apply_ct,
        applied.to_string().as_bytes(),
    );
    let mut yaml = String::from("apiVersion: prsn.io/v1\nkind: MysqlDb\nmetadata:\n  name: flat\nspec:\n");
    for i in 0..1_400_000 / 14 {
        yaml.push_str(&format!("  y{i:07}: {}\n", i % 10));
    }
    fresh().measure(
        "apply (YAML), 1.3 MiB of small fields, creating",
        "PATCH",
        &format!("{DBS}/flat?fieldManager=yaml"),
        apply_ct,
        yaml.as_bytes(),
    );
    let b = fresh();
    b.measure("apply (YAML), the same", "PATCH", &format!("{DBS}/flat?fieldManager=yaml"), apply_ct, yaml.as_bytes());
    let empty = "apiVersion: prsn.io/v1\nkind: MysqlDb\nmetadata:\n  name: flat\n";
    b.measure(
        "apply (YAML) by the same manager, dropping its 100,000 fields",
        "PATCH",
        &format!("{DBS}/flat?fieldManager=yaml"),
        apply_ct,
        empty.as_bytes(),
    );
    let b = fresh();
    b.create(&small);
    let merge = json!({"spec": flat("x", 1_000_000)["spec"].clone()}).to_string();
    b.measure(
        "merge patch, 1 MB of small fields into them",
        "PATCH",
        &format!("{DBS}/flat"),
        "application/merge-patch+json",
        merge.as_bytes(),
    );
    let nulls: serde_json::Map<String, Value> =
        small["spec"].as_object().map(|m| m.keys().map(|k| (k.clone(), Value::Null)).collect()).unwrap_or_default();
    b.measure(
        "merge patch removing those 100,000 fields",
        "PATCH",
        &format!("{DBS}/flat"),
        "application/merge-patch+json",
        json!({"spec": nulls}).to_string().as_bytes(),
    );
    let dup = format!(
        "{{\"metadata\":{{\"name\":\"dup\"}},\"spec\":{}}}",
        "{\"a\":".repeat(97) + "\"x\",\"b\":1,\"b\":2" + &"}".repeat(97)
    );
    fresh().measure(
        "create, a duplicate field 98 levels down, Strict",
        "POST",
        &format!("{DBS}?fieldValidation=Strict"),
        js,
        dup.as_bytes(),
    );

    // Depth.
    let deepest = json!({"metadata": {"name": "deep"}, "deep": nested(98)}).to_string();
    fresh().measure("create, 99 levels (the deepest allowed)", "POST", DBS, js, deepest.as_bytes());
    let too_deep = format!("{}1{}", "[".repeat(1_500_000), "]".repeat(1_500_000));
    fresh().measure("create, 1,500,000 nested arrays (refused)", "POST", DBS, js, too_deep.as_bytes());

    // JSON patches.
    let b = fresh();
    b.create(&json!({"metadata": {"name": "d"}, "deep": nested(50)}));
    let into_itself = format!("/deep{}", "/a".repeat(49));
    let copies: Vec<Value> = (0..6).map(|_| json!({"op": "copy", "from": "/deep", "path": into_itself})).collect();
    b.measure(
        "JSON patch, 6 copies into itself, dryRun (crashed the server)",
        "PATCH",
        &format!("{DBS}/d?dryRun=All"),
        "application/json-patch+json",
        Value::Array(copies).to_string().as_bytes(),
    );
    let b = fresh();
    b.create(&json!({"metadata": {"name": "big"}, "a": ["x".repeat(1 << 20)]}));
    let doubling: Vec<Value> = (0..30).map(|_| json!({"op": "copy", "from": "/a", "path": "/a/0"})).collect();
    b.measure(
        "JSON patch, 30 copies doubling a 1 MiB array (refused)",
        "PATCH",
        &format!("{DBS}/big"),
        "application/json-patch+json",
        Value::Array(doubling).to_string().as_bytes(),
    );
    let b = fresh();
    b.create(&json!({"metadata": {"name": "arr"}, "a": vec![0; 300_000]}));
    let shifts: Vec<Value> = (0..10_000).map(|_| json!({"op": "add", "path": "/a/0", "value": 1})).collect();
    b.measure(
        "JSON patch, 10,000 inserts at the front of 300,000 elements",
        "PATCH",
        &format!("{DBS}/arr"),
        "application/json-patch+json",
        Value::Array(shifts).to_string().as_bytes(),
    );
    let tests: Vec<Value> = (0..10_000).map(|_| json!({"op": "test", "path": "/a/299999", "value": 0})).collect();
    b.measure(
        "JSON patch, 10,000 tests on that object (the most operations)",
        "PATCH",
        &format!("{DBS}/arr"),
        "application/json-patch+json",
        Value::Array(tests).to_string().as_bytes(),
    );

    // YAML.
    fresh().measure(
        "apply, 60,000 nested [ (took 12-16 s of CPU)",
        "PATCH",
        &format!("{DBS}/y?fieldManager=t"),
        apply_ct,
        "[".repeat(60_000).as_bytes(),
    );
    fresh().measure(
        "apply, 750,000 nested {a: (refused)",
        "PATCH",
        &format!("{DBS}/y?fieldManager=t"),
        apply_ct,
        "{a: ".repeat(750_000).as_bytes(),
    );
    let mut fan = String::from("x: &x {");
    for i in 0..1000 {
        fan.push_str(&format!("k{i}: {},", "v".repeat(100)));
    }
    fan.push_str("}\ny: [");
    fan.push_str(&"*x,".repeat(20_000));
    fan.push_str("]\n");
    fresh().measure(
        "apply, 20,000 aliases of a 100 KB map (2 GB expanded)",
        "PATCH",
        &format!("{DBS}/y?fieldManager=t"),
        apply_ct,
        fan.as_bytes(),
    );

    // Metric series.
    let b = fresh();
    let size = |b: &Bench| b.server.curl(&[], "/metrics").body.len();
    b.server.curl_as(true, &["-X", "JUNK"], "/apis/x");
    size(&b);
    let before = size(&b);
    for i in 0..300 {
        b.server.curl_as(true, &["-X", &format!("JUNK{i}")], "/apis/x");
    }
    println!("/metrics after 300 more junk-method requests (401): {before} -> {} bytes", size(&b));
}
