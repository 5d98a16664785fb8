//! Load for the fault tests: writers that create, update and delete objects
//! and watchers that follow them, over HTTP/2, against one or more servers
//! (each writer and watcher moves to the next server when its server stops
//! answering). Everything they see goes in a ledger, which [`Report::check`]
//! holds to the rules: no acknowledged write missing from any watcher, no
//! watch event repeated or out of order, no re-list, every error a Status of
//! an expected code.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use testkit::client::{Answer, ApiClient};

pub const DBS: &str = "/apis/prsn.io/v1/namespaces/default/mysqldbs";

/// The servers, by index.
#[derive(Clone, Default)]
pub struct Targets(Arc<Mutex<Vec<Arc<ApiClient>>>>);

impl Targets {
    /// Targets of `servers`.
    pub fn of(servers: &[&testkit::Server]) -> Targets {
        Targets(Arc::new(Mutex::new(servers.iter().map(|s| Arc::new(ApiClient::of(s).expect("client"))).collect())))
    }

    fn get(&self, i: usize) -> (usize, Arc<ApiClient>) {
        let list = self.0.lock().unwrap();
        let i = i % list.len();
        (i, list[i].clone())
    }
}

/// An answer that was not a success.
#[derive(Clone, Debug)]
pub struct Failure {
    pub at: Instant,
    /// Which server.
    pub target: usize,
    pub what: String,
    /// The status code, 0 when no answer came (the connection failed).
    pub code: u16,
    pub reason: String,
    pub retry_after: Option<u64>,
    /// Whether the body was a `Status` whose code is the HTTP code.
    pub is_status: bool,
    pub message: String,
}

impl Failure {
    fn of(target: usize, what: &str, a: &Answer) -> Failure {
        let body = a.json();
        Failure {
            at: Instant::now(),
            target,
            what: what.to_string(),
            code: a.code,
            reason: body["reason"].as_str().unwrap_or_default().to_string(),
            retry_after: a.retry_after,
            is_status: body["kind"] == "Status" && body["code"].as_u64() == Some(u64::from(a.code)),
            message: body["message"].as_str().unwrap_or_default().to_string(),
        }
    }

    fn no_answer(target: usize, what: &str, e: &std::io::Error) -> Failure {
        Failure {
            at: Instant::now(),
            target,
            what: what.to_string(),
            code: 0,
            reason: String::new(),
            retry_after: None,
            is_status: false,
            message: e.to_string(),
        }
    }
}

/// What the writers saw.
#[derive(Default)]
pub struct Writes {
    /// Acknowledged writes by resourceVersion.
    pub acked: BTreeMap<u64, String>,
    /// When each was acknowledged.
    pub ack_times: Vec<Instant>,
    /// resourceVersions acknowledged twice, or not above the same writer's
    /// previous one (must stay empty).
    pub repeated: Vec<(u64, String, String)>,
    pub failures: Vec<Failure>,
}

/// What one watcher saw.
#[derive(Default)]
pub struct Seen {
    /// Event resourceVersions in arrival order.
    pub revisions: Vec<u64>,
    /// Events that arrived out of order or twice.
    pub disorder: Vec<String>,
    /// Times a 410 forced a re-list.
    pub relists: usize,
    /// Times the watch was opened again from its last resourceVersion.
    pub resumes: usize,
    /// Times a watch stream ended (cleanly or not).
    pub ended: usize,
    pub failures: Vec<Failure>,
    /// The last resourceVersion (events and bookmarks).
    pub last: u64,
}

/// A running load; [`Load::stop`] ends it.
pub struct Load {
    pub writes: Arc<Mutex<Writes>>,
    pub watchers: Vec<Arc<Mutex<Seen>>>,
    stop_writers: Arc<AtomicBool>,
    stop_watchers: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

fn rv_of(v: &Value) -> u64 {
    v["metadata"]["resourceVersion"].as_str().and_then(|s| s.parse().ok()).unwrap_or(0)
}

/// Writer `w` on target `home`: create, update, delete, over and over.
async fn writer(w: usize, home: usize, targets: Targets, writes: Arc<Mutex<Writes>>, stop: Arc<AtomicBool>) {
    let mut target = home;
    let mut i = 0u64;
    // One writer's acknowledged resourceVersions must increase, across restarts too.
    let last = std::sync::atomic::AtomicU64::new(0);
    let ack = |rv: u64, what: String| {
        let mut l = writes.lock().unwrap();
        let before = last.swap(rv, Ordering::Relaxed);
        if rv <= before {
            l.repeated.push((rv, format!("after {before} from the same writer"), what.clone()));
        }
        if let Some(prev) = l.acked.insert(rv, what.clone()) {
            l.repeated.push((rv, prev, what));
        }
        l.ack_times.push(Instant::now());
    };
    while !stop.load(Ordering::Relaxed) {
        i += 1;
        let name = format!("w{w}-{i}");
        let (t, client) = targets.get(target);
        let body = json!({"apiVersion": "prsn.io/v1", "kind": "MysqlDb", "metadata": {"name": name}, "spec": {"size": "small"}});
        // Create, then update and delete what was created.
        let mut current = match client.call("POST", DBS, Some(&body)).await {
            Ok(a) if a.code == 201 => {
                let obj = a.json();
                ack(rv_of(&obj), format!("create {name}"));
                obj
            }
            Ok(a) => {
                let f = Failure::of(t, &format!("create {name}"), &a);
                writes.lock().unwrap().failures.push(f);
                tokio::time::sleep(Duration::from_millis(a.retry_after.unwrap_or(0) * 1000 + 20)).await;
                continue;
            }
            Err(e) => {
                writes.lock().unwrap().failures.push(Failure::no_answer(t, &format!("create {name}"), &e));
                target += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        current["spec"]["size"] = json!("large");
        match client.call("PUT", &format!("{DBS}/{name}"), Some(&current)).await {
            Ok(a) if a.code == 200 => ack(rv_of(&a.json()), format!("update {name}")),
            Ok(a) => writes.lock().unwrap().failures.push(Failure::of(t, &format!("update {name}"), &a)),
            Err(e) => writes.lock().unwrap().failures.push(Failure::no_answer(t, &format!("update {name}"), &e)),
        }
        match client.call("DELETE", &format!("{DBS}/{name}"), None).await {
            Ok(a) if a.code == 200 => ack(rv_of(&a.json()), format!("delete {name}")),
            Ok(a) => writes.lock().unwrap().failures.push(Failure::of(t, &format!("delete {name}"), &a)),
            Err(e) => writes.lock().unwrap().failures.push(Failure::no_answer(t, &format!("delete {name}"), &e)),
        }
    }
}

/// Watcher on target `home`: lists once, then watches from there, resuming
/// from its last resourceVersion whenever the stream ends or breaks.
async fn watcher(home: usize, targets: Targets, seen: Arc<Mutex<Seen>>, stop: Arc<AtomicBool>) {
    let mut target = home;
    let mut from: Option<u64> = None;
    let mut opened = false;
    while !stop.load(Ordering::Relaxed) {
        let (t, client) = targets.get(target);
        let Some(rv) = from else {
            match client.call("GET", DBS, None).await {
                Ok(a) if a.code == 200 => {
                    let rv = rv_of(&a.json());
                    let mut s = seen.lock().unwrap();
                    s.last = s.last.max(rv);
                    from = Some(rv);
                }
                Ok(a) => seen.lock().unwrap().failures.push(Failure::of(t, "list", &a)),
                Err(e) => {
                    seen.lock().unwrap().failures.push(Failure::no_answer(t, "list", &e));
                    target += 1;
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        };
        let path = format!("{DBS}?watch=true&allowWatchBookmarks=true&timeoutSeconds=30&resourceVersion={rv}");
        let mut stream = match client.watch(&path).await {
            Ok(Ok(s)) => s,
            Ok(Err(a)) => {
                seen.lock().unwrap().failures.push(Failure::of(t, "watch", &a));
                tokio::time::sleep(Duration::from_millis(a.retry_after.unwrap_or(0) * 1000 + 50)).await;
                continue;
            }
            Err(e) => {
                seen.lock().unwrap().failures.push(Failure::no_answer(t, "watch", &e));
                target += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        if opened {
            seen.lock().unwrap().resumes += 1;
        }
        opened = true;
        loop {
            let event = tokio::select! {
                e = stream.next() => e,
                _ = tokio::time::sleep(Duration::from_millis(200)) => {
                    if stop.load(Ordering::Relaxed) { return; }
                    continue;
                }
            };
            match event {
                Ok(Some(e)) => {
                    let kind = e["type"].as_str().unwrap_or_default().to_string();
                    let obj = &e["object"];
                    let mut s = seen.lock().unwrap();
                    match kind.as_str() {
                        "ERROR" if obj["code"] == 410 => {
                            s.relists += 1;
                            from = None;
                            break;
                        }
                        "ERROR" => {
                            let a = Answer {
                                code: obj["code"].as_u64().unwrap_or(0) as u16,
                                retry_after: None,
                                body: obj.to_string().into(),
                            };
                            s.failures.push(Failure::of(t, "watch event", &a));
                            break;
                        }
                        "BOOKMARK" => {
                            let rv = rv_of(obj);
                            s.last = s.last.max(rv);
                            from = Some(s.last);
                        }
                        _ => {
                            let rv = rv_of(obj);
                            if rv <= s.last {
                                let what = format!("{kind} {} at {rv} after {}", obj["metadata"]["name"], s.last);
                                s.disorder.push(what);
                            } else {
                                s.last = rv;
                                s.revisions.push(rv);
                            }
                            from = Some(s.last);
                        }
                    }
                }
                // The server ended the stream (timeoutSeconds, or shutdown): resume.
                Ok(None) => {
                    seen.lock().unwrap().ended += 1;
                    break;
                }
                Err(e) => {
                    let mut s = seen.lock().unwrap();
                    s.ended += 1;
                    s.failures.push(Failure::no_answer(t, "watch stream", &e));
                    drop(s);
                    target += 1;
                    break;
                }
            }
        }
    }
}

impl Load {
    /// Starts `watchers` watchers, and once they have listed, `writers`
    /// writers, spread over the targets (writer and watcher `i` start on
    /// target `i`).
    pub async fn start(targets: &Targets, writers: usize, watchers: usize) -> Load {
        let writes = Arc::new(Mutex::new(Writes::default()));
        let (stop_writers, stop_watchers) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicBool::new(false)));
        let mut tasks = Vec::new();
        let mut seen = Vec::new();
        for i in 0..watchers {
            let s = Arc::new(Mutex::new(Seen::default()));
            seen.push(s.clone());
            tasks.push(tokio::spawn(watcher(i, targets.clone(), s, stop_watchers.clone())));
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        while seen.iter().any(|s| s.lock().unwrap().last == 0) {
            assert!(Instant::now() < deadline, "the watchers did not list");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        for w in 0..writers {
            tasks.push(tokio::spawn(writer(w, w, targets.clone(), writes.clone(), stop_writers.clone())));
        }
        Load { writes, watchers: seen, stop_writers, stop_watchers, tasks }
    }

    /// Acknowledged writes so far.
    pub fn acked(&self) -> usize {
        self.writes.lock().unwrap().acked.len()
    }

    /// Waits until `n` more writes are acknowledged (panics after 30 s).
    pub async fn progress(&self, n: usize) -> Duration {
        let began = Instant::now();
        let target = self.acked() + n;
        while self.acked() < target {
            assert!(began.elapsed() < Duration::from_secs(30), "writes made no progress");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        began.elapsed()
    }

    /// Stops the writers, lets the watchers catch up with the last
    /// acknowledged write, and stops them.
    pub async fn stop(self) -> Report {
        let Load { writes, watchers, stop_writers, stop_watchers, tasks } = self;
        stop_writers.store(true, Ordering::Relaxed);
        // Writes in flight finish (a writer stops between requests).
        tokio::time::sleep(Duration::from_millis(200)).await;
        let last = writes.lock().unwrap().acked.keys().next_back().copied().unwrap_or(0);
        let deadline = Instant::now() + Duration::from_secs(30);
        while watchers.iter().any(|s| s.lock().unwrap().last < last) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        stop_watchers.store(true, Ordering::Relaxed);
        for t in tasks {
            let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
        }
        let writes = std::mem::take(&mut *writes.lock().unwrap());
        let seen = watchers.iter().map(|s| std::mem::take(&mut *s.lock().unwrap())).collect();
        Report { writes, seen }
    }
}

/// What a load saw, to check and print.
pub struct Report {
    pub writes: Writes,
    pub seen: Vec<Seen>,
}

impl Report {
    /// Every failure (writers' and watchers').
    pub fn failures(&self) -> Vec<&Failure> {
        self.writes.failures.iter().chain(self.seen.iter().flat_map(|s| s.failures.iter())).collect()
    }

    /// The longest time without an acknowledged write between `from` and `to`.
    pub fn longest_pause(&self, from: Instant, to: Instant) -> Duration {
        let mut times: Vec<Instant> =
            self.writes.ack_times.iter().copied().filter(|t| *t >= from && *t <= to).collect();
        times.sort();
        times.insert(0, from);
        times.push(to);
        times.windows(2).map(|w| w[1] - w[0]).max().unwrap_or_default()
    }

    /// Prints the counts, and asserts the rules every scenario keeps: no
    /// acknowledged write missing from a watcher, no event repeated or out
    /// of order, no re-list, no resourceVersion acknowledged twice, and
    /// every failure allowed by `allowed` (which sees each one).
    pub fn check(&self, scenario: &str, allowed: impl Fn(&Failure) -> bool) {
        let failures = self.failures();
        let mut codes: BTreeMap<u16, usize> = BTreeMap::new();
        for f in &failures {
            *codes.entry(f.code).or_default() += 1;
        }
        let resumes: usize = self.seen.iter().map(|s| s.resumes).sum();
        eprintln!(
            "{scenario}: {} acknowledged writes, {} watchers, {resumes} watch resumes, failures by code (0: no answer) {codes:?}",
            self.writes.acked.len(),
            self.seen.len()
        );
        let mut shown = BTreeSet::new();
        for f in &failures {
            if shown.insert(f.code) {
                eprintln!("  e.g. {} on server {}: {} {} {}", f.what, f.target, f.code, f.reason, f.message);
            }
        }
        assert!(self.writes.acked.len() >= 50, "{scenario}: too few writes to tell ({})", self.writes.acked.len());
        assert!(
            self.writes.repeated.is_empty(),
            "{scenario}: resourceVersions acknowledged twice: {:?}",
            self.writes.repeated
        );
        let bad: Vec<&&Failure> = failures.iter().filter(|f| !allowed(f)).collect();
        assert!(bad.is_empty(), "{scenario}: failures not allowed here: {bad:#?}");
        for (i, s) in self.seen.iter().enumerate() {
            assert!(
                s.disorder.is_empty(),
                "{scenario}: watcher {i} saw events repeated or out of order: {:?}",
                s.disorder
            );
            assert_eq!(s.relists, 0, "{scenario}: watcher {i} had to re-list");
            let seen: BTreeSet<u64> = s.revisions.iter().copied().collect();
            let missing: Vec<(&u64, &String)> = self.writes.acked.iter().filter(|(rv, _)| !seen.contains(rv)).collect();
            assert!(
                missing.is_empty(),
                "{scenario}: watcher {i} missed {} acknowledged writes, e.g. {:?}",
                missing.len(),
                &missing[..missing.len().min(5)]
            );
        }
    }
}

/// A Status answer whose code and reason say the store did not answer in time
/// (504) or was certainly not reached (503, with `Retry-After`).
pub fn store_unreachable(f: &Failure) -> bool {
    f.is_status
        && match f.code {
            503 => f.reason == "ServiceUnavailable" && f.retry_after.is_some(),
            504 => f.reason == "Timeout",
            _ => false,
        }
}
