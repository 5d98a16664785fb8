//! Faults under load: etcd members and leaders killed, etcd paused and
//! killed, replicas killed, the server killed with -9 over and over and
//! stopped with SIGTERM, etcd down when the server starts, a handler that
//! panics, more requests than the server admits, and the embedded store's
//! disk full. Writers and watchers
//! (see `load.rs`) run through each; every scenario asserts that no
//! acknowledged write is missing from any watcher, that no watch event
//! repeats or comes out of order, that no watcher has to re-list, and that
//! every error is a Status of the code the fault calls for. Recovery
//! windows are printed. The scenarios run one at a time (they load both
//! cores); `TPR_FAULT_KILLS` sets the kill -9 loop's length (10 here) and
//! `scripts/soak` repeats the scenarios for as long as asked.

#[path = "../common/mod.rs"]
mod common;
mod load;

use std::time::{Duration, Instant};
use tokio::sync::Mutex;

use serde_json::json;
use testkit::client::ApiClient;
use testkit::Server;

use load::{store_unreachable, Failure, Load, Targets, DBS};

/// One scenario at a time.
static SERIAL: Mutex<()> = Mutex::const_new(());

/// A server on `args` plus a data dir, on a fixed port (so that it can be
/// restarted where its clients look for it).
struct Node {
    server: Option<Server>,
    args: Vec<String>,
    _dir: tempfile::TempDir,
}

impl Node {
    fn start(extra: &[&str]) -> Node {
        Node::start_in(tempfile::tempdir().unwrap(), extra)
    }

    /// A node whose data lives in `dir`.
    fn start_in(dir: tempfile::TempDir, extra: &[&str]) -> Node {
        let port = testkit::free_port().unwrap().to_string();
        let mut args: Vec<String> = vec!["--data-dir".into(), dir.path().to_str().unwrap().into()];
        args.extend(["--secure-port".to_string(), port]);
        args.extend(extra.iter().map(|a| a.to_string()));
        let mut node = Node { server: None, args, _dir: dir };
        node.restart();
        node
    }

    fn server(&self) -> &Server {
        self.server.as_ref().expect("the server runs")
    }

    /// Starts the server (again), with the same flags and data.
    fn restart(&mut self) {
        let flags: Vec<&str> = self.args.iter().map(String::as_str).collect();
        self.server = Some(Server::start(&testkit::apiserver_binary(), &flags).expect("start tpr-apiserver"));
    }

    /// kill -9.
    fn kill(&mut self) {
        if let Some(s) = self.server.take() {
            s.kill();
        }
    }
}

/// Creates the TPR on `first` and waits until every server serves it.
fn serve_tpr(servers: &[&Server]) {
    common::create_tpr(servers[0], "mysql-db.prsn.io", &["v1"]);
    for s in servers {
        let began = Instant::now();
        while s.curl(&[], DBS).code != 200 {
            assert!(began.elapsed() < Duration::from_secs(10), "the TPR is not served");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn blocking<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

/// A 3-member etcd loses a follower, then its leader, for 2 s each, under
/// writers and watchers on two replicas: nothing fails at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_members_and_leader_killed_under_load() {
    let _serial = SERIAL.lock().await;
    let mut cluster = testkit::EtcdCluster::start(3).expect("start a 3-member etcd");
    let endpoints = cluster.endpoints();
    let a = Node::start(&["--etcd-servers", &endpoints]);
    let b = Node::start(&["--etcd-servers", &endpoints]);
    serve_tpr(&[a.server(), b.server()]);
    let targets = Targets::of(&[a.server(), b.server()]);
    let load = Load::start(&targets, 4, 4).await;
    load.progress(100).await;
    let mut windows = Vec::new();
    for role in ["follower", "leader"] {
        let leader = blocking(|| cluster.leader()).expect("a leader");
        let victim = if role == "leader" { leader } else { (leader + 1) % 3 };
        let killed = Instant::now();
        cluster.members[victim].kill();
        tokio::time::sleep(Duration::from_secs(2)).await;
        windows.push((role, killed, Instant::now()));
        blocking(|| cluster.members[victim].restart()).expect("restart the member");
        load.progress(100).await;
    }
    let report = load.stop().await;
    for (role, from, to) in &windows {
        eprintln!(
            "etcd {role} killed: longest time without an acknowledged write {:?}",
            report.longest_pause(*from, *to)
        );
    }
    report.check("etcd members killed", |_| false);
}

/// A single etcd paused (SIGSTOP) for 4 s, then killed for 4 s: cached lists
/// keep answering; writes answer 504 (no answer in time: the outcome is
/// unknown) while it is paused, and 503 with Retry-After (certainly not
/// stored) while it is down; watchers miss nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_paused_then_killed_under_load() {
    let _serial = SERIAL.lock().await;
    let mut etcd = testkit::Etcd::start().expect("start etcd");
    let node = Node::start(&["--etcd-servers", &etcd.endpoint(), "--request-timeout", "3s"]);
    serve_tpr(&[node.server()]);
    let targets = Targets::of(&[node.server()]);
    let client = ApiClient::of(node.server()).unwrap();
    let load = Load::start(&targets, 3, 2).await;
    load.progress(50).await;

    etcd.pause().unwrap();
    let paused = Instant::now();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let cached = client.call("GET", &format!("{DBS}?resourceVersion=0"), None).await.unwrap();
    assert_eq!(cached.code, 200, "a cached list answers while etcd is paused");
    tokio::time::sleep(Duration::from_secs(3)).await;
    etcd.resume().unwrap();
    let resumed = Instant::now();
    let back = load.progress(50).await;
    eprintln!("etcd paused {:?}: writes back {back:?} after it resumed", resumed - paused);

    etcd.kill();
    let killed = Instant::now();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let cached = client.call("GET", &format!("{DBS}?resourceVersion=0"), None).await.unwrap();
    assert_eq!(cached.code, 200, "a cached list answers while etcd is down");
    let ready = client.call("GET", "/readyz", None).await.unwrap();
    let report_text = String::from_utf8_lossy(&ready.body).to_string();
    assert_eq!(ready.code, 500, "{report_text}");
    assert!(report_text.contains(&etcd.endpoint()), "/readyz names the endpoint: {report_text}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    blocking(|| etcd.restart()).expect("restart etcd");
    let restarted = Instant::now();
    let back = load.progress(50).await;
    eprintln!("etcd down {:?}: writes back {back:?} after it restarted", restarted - killed);

    let report = load.stop().await;
    report.check("etcd paused then killed", store_unreachable);
    let during = |f: &&Failure, from: Instant, to: Instant| f.at >= from && f.at <= to + Duration::from_secs(2);
    let failures = report.failures();
    assert!(
        failures.iter().any(|f| f.code == 504 && during(f, paused, resumed)),
        "writes while etcd was paused answer 504"
    );
    assert!(
        failures.iter().any(|f| f.code == 503 && during(f, killed, restarted)),
        "writes while etcd was down answer 503"
    );
}

/// Two replicas on one etcd; one is killed (-9): its writers and watchers
/// move to the other, and the watchers resume from their last
/// resourceVersion with nothing missed and no re-list.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_killed_and_its_watchers_fail_over() {
    let _serial = SERIAL.lock().await;
    let etcd = testkit::Etcd::start().expect("start etcd");
    let mut a = Node::start(&["--etcd-servers", &etcd.endpoint()]);
    let b = Node::start(&["--etcd-servers", &etcd.endpoint()]);
    serve_tpr(&[a.server(), b.server()]);
    let targets = Targets::of(&[a.server(), b.server()]);
    let load = Load::start(&targets, 4, 4).await;
    load.progress(100).await;
    a.kill();
    let killed = Instant::now();
    let back = load.progress(100).await;
    let report = load.stop().await;
    let resumes: usize = report.seen.iter().map(|s| s.resumes).sum();
    eprintln!("replica killed: 100 writes {back:?} later; watchers resumed {resumes} times");
    let _ = killed;
    // Only the killed replica may fail to answer; the other answers everything.
    report.check("a replica killed", |f| f.code == 0 && f.target == 0);
    assert!(resumes >= 2, "the watchers of the killed replica resumed on the other");
}

/// The embedded store's server killed with -9 over and over under load:
/// every acknowledged write is kept, resourceVersions stay unique and
/// increasing across restarts, and watchers resume from where they were.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_loop_on_the_embedded_store() {
    let _serial = SERIAL.lock().await;
    let kills: usize = std::env::var("TPR_FAULT_KILLS").ok().and_then(|k| k.parse().ok()).unwrap_or(10);
    let mut node = Node::start(&[]);
    serve_tpr(&[node.server()]);
    let targets = Targets::of(&[node.server()]);
    let load = Load::start(&targets, 4, 2).await;
    let mut downtime = Duration::ZERO;
    for _ in 0..kills {
        load.progress(30).await;
        let began = Instant::now();
        node.kill();
        blocking(|| node.restart());
        downtime += began.elapsed();
    }
    load.progress(30).await;
    let report = load.stop().await;
    eprintln!("{kills} kill -9s: restart to ready {:?} on average", downtime / kills.max(1) as u32);
    // While the server is down nothing answers; as it starts, 503 until its types are loaded.
    report.check("kill -9 loop", |f| f.code == 0 || (f.code == 503 && f.is_status && f.retry_after.is_some()));
}

/// SIGTERM with watches open and writes in flight: every write that got its
/// answer reached the open watches before they ended, and after the restart
/// the watchers resume from their last resourceVersion (the store has the
/// history: no re-list).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_open_watches_and_writes_in_flight() {
    let _serial = SERIAL.lock().await;
    let mut node = Node::start(&[]);
    serve_tpr(&[node.server()]);
    let targets = Targets::of(&[node.server()]);
    let load = Load::start(&targets, 4, 3).await;
    load.progress(100).await;
    let server = node.server.take().unwrap();
    server.signal_term().unwrap();
    let status = blocking(|| server.wait(Duration::from_secs(30))).expect("the server exits");
    assert!(status.success(), "SIGTERM exits 0: {status}");
    // Each watcher reads to the end of its stream (what the server sent before it exited).
    let began = Instant::now();
    while load.watchers.iter().any(|s| s.lock().unwrap().ended == 0) && began.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Before anything restarts: each watcher saw every acknowledged write.
    let acked: Vec<u64> = load.writes.lock().unwrap().acked.keys().copied().collect();
    for (i, seen) in load.watchers.iter().enumerate() {
        let seen = seen.lock().unwrap();
        let missing: Vec<&u64> = acked.iter().filter(|rv| !seen.revisions.contains(rv)).collect();
        assert!(missing.is_empty(), "watcher {i} did not get acknowledged writes before its watch ended: {missing:?}");
    }
    eprintln!("SIGTERM: {} acknowledged writes all reached {} open watches", acked.len(), load.watchers.len());
    blocking(|| node.restart());
    load.progress(50).await;
    let report = load.stop().await;
    // Requests that come during the shutdown get 429 with Retry-After (as
    // kube's --shutdown-send-retry-after); while the server is down, no answer;
    // as it starts, 503 until its types are loaded.
    report.check("SIGTERM", |f| f.code == 0 || (matches!(f.code, 429 | 503) && f.is_status && f.retry_after.is_some()));
}

/// `--shutdown-delay-duration`: after SIGTERM the server keeps serving for
/// the delay with `/readyz` failing (load balancers stop sending), then stops.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shutdown_delay_keeps_serving_with_readyz_failing() {
    let _serial = SERIAL.lock().await;
    let mut node = Node::start(&["--shutdown-delay-duration", "2s"]);
    serve_tpr(&[node.server()]);
    let client = ApiClient::of(node.server()).unwrap();
    assert_eq!(client.call("GET", "/readyz", None).await.unwrap().code, 200);
    let server = node.server.take().unwrap();
    server.signal_term().unwrap();
    let began = Instant::now();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let ready = client.call("GET", "/readyz", None).await.unwrap();
    assert_eq!(ready.code, 500);
    assert!(String::from_utf8_lossy(&ready.body).contains("shutting down"));
    let out = client.call("POST", DBS, Some(&json!({"metadata": {"name": "during-delay"}}))).await.unwrap();
    assert_eq!(out.code, 201, "requests are served during the delay");
    let status = blocking(|| server.wait(Duration::from_secs(30))).expect("the server exits");
    assert!(status.success());
    assert!(began.elapsed() >= Duration::from_secs(2), "it stopped before the delay: {:?}", began.elapsed());
}

/// etcd is down when the server starts: it starts anyway, /readyz fails and
/// names the endpoint, and once etcd is up it serves without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_down_when_the_server_starts() {
    let _serial = SERIAL.lock().await;
    let mut etcd = testkit::Etcd::unstarted().unwrap();
    let node = Node::start(&["--etcd-servers", &etcd.endpoint()]);
    let client = ApiClient::of(node.server()).unwrap();
    let ready = client.call("GET", "/readyz", None).await.unwrap();
    let text = String::from_utf8_lossy(&ready.body).to_string();
    assert_eq!(ready.code, 500, "{text}");
    assert!(text.contains(&etcd.endpoint()), "/readyz names the endpoint: {text}");
    let tprs = client.call("GET", "/apis/extensions/v1beta1/thirdpartyresources", None).await.unwrap();
    assert!(matches!(tprs.code, 503 | 504), "{tprs:?}");
    assert_eq!(tprs.json()["kind"], "Status");
    blocking(|| etcd.restart()).expect("start etcd");
    let began = Instant::now();
    loop {
        let ready = client.call("GET", "/readyz", None).await.unwrap();
        if ready.code == 200 {
            break;
        }
        assert!(began.elapsed() < Duration::from_secs(20), "never ready: {}", String::from_utf8_lossy(&ready.body));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!("etcd up: ready {:?} later", began.elapsed());
    blocking(|| serve_tpr(&[node.server()]));
    let out = client.call("POST", DBS, Some(&json!({"metadata": {"name": "after"}}))).await.unwrap();
    assert_eq!(out.code, 201, "{out:?}");
}

/// A handler that panics answers a 500 Status; the watch open on the same
/// HTTP/2 connection carries on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_handler_answers_500_and_its_connection_carries_on() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let boom = format!("{DBS}/boom");
    let server = blocking(|| {
        Server::start_env(
            &testkit::apiserver_binary(),
            &["--data-dir", dir.path().to_str().unwrap()],
            &[("TPR_APISERVER_TEST_PANIC_PATH", boom.as_str())],
        )
    })
    .unwrap();
    blocking(|| serve_tpr(&[&server]));
    let client = ApiClient::of(&server).unwrap();
    let mut watch = client.watch(&format!("{DBS}?watch=true&resourceVersion=0")).await.unwrap().unwrap();
    let out = client.call("GET", &boom, None).await.unwrap();
    assert_eq!(out.code, 500);
    assert_eq!((out.json()["kind"].as_str(), out.json()["code"].as_u64()), (Some("Status"), Some(500)));
    let out = client.call("POST", DBS, Some(&json!({"metadata": {"name": "after"}}))).await.unwrap();
    assert_eq!(out.code, 201, "the connection still carries requests");
    let event = tokio::time::timeout(Duration::from_secs(10), watch.next()).await.unwrap().unwrap().unwrap();
    assert_eq!((event["type"].as_str(), event["object"]["metadata"]["name"].as_str()), (Some("ADDED"), Some("after")));
    assert!(testkit::process::alive(server.pid()));
}

/// More requests than `--max-requests-inflight` and
/// `--max-mutating-requests-inflight` admit: the rest get 429 with
/// Retry-After at once; health checks and system:masters still get through;
/// requests past `--request-timeout` get 504.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overload_is_refused_with_429_and_slow_requests_time_out() {
    let _serial = SERIAL.lock().await;
    let etcd = testkit::Etcd::start().expect("start etcd");
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens.csv");
    std::fs::write(&tokens, "admin-token,admin,1,\"system:masters\"\nuser-token,user,2,\"developers\"\n").unwrap();
    let args = [
        "--data-dir",
        dir.path().to_str().unwrap(),
        "--etcd-servers",
        &etcd.endpoint(),
        "--token-auth-file",
        tokens.to_str().unwrap(),
        "--max-requests-inflight",
        "2",
        "--max-mutating-requests-inflight",
        "1",
        "--request-timeout",
        "3s",
    ];
    let server =
        blocking(|| Server::start(&testkit::apiserver_binary(), &args).and_then(|s| s.with_token("admin-token")))
            .unwrap();
    blocking(|| serve_tpr(&[&server]));
    let ca = server.data_dir().join("pki/ca.crt");
    let user = std::sync::Arc::new(ApiClient::new(server.url(), &ca, "user-token").unwrap());
    let admin = ApiClient::new(server.url(), &ca, "admin-token").unwrap();
    assert_eq!(user.call("POST", DBS, Some(&json!({"metadata": {"name": "a"}}))).await.unwrap().code, 201);
    // etcd paused: consistent reads and writes hang, holding their places.
    etcd.pause().unwrap();
    let mut held = Vec::new();
    for (method, path) in [("GET", format!("{DBS}/a")), ("GET", format!("{DBS}/a")), ("POST", DBS.to_string())] {
        let user = user.clone();
        let body = json!({"metadata": {"generateName": "held-"}});
        held.push(tokio::spawn(async move { user.call(method, &path, Some(&body)).await }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    for (method, path) in [("GET", format!("{DBS}/a")), ("POST", DBS.to_string())] {
        let began = Instant::now();
        let out = user.call(method, &path, Some(&json!({"metadata": {"generateName": "x-"}}))).await.unwrap();
        assert_eq!(out.code, 429, "{method} over the limit: {out:?}");
        assert_eq!(out.json()["reason"], "TooManyRequests");
        assert_eq!(out.retry_after, Some(1));
        assert!(began.elapsed() < Duration::from_secs(1), "refused at once, not after {:?}", began.elapsed());
    }
    // Health checks are not limited; nor is system:masters (it waits for etcd like the rest).
    assert_eq!(user.call("GET", "/healthz", None).await.unwrap().code, 200);
    let admin_read = admin.call("GET", &format!("{DBS}/a"), None).await.unwrap();
    assert_eq!(admin_read.code, 504, "system:masters is admitted, and times out: {admin_read:?}");
    // The held requests passed --request-timeout: 504.
    for h in held {
        let out = h.await.unwrap().unwrap();
        assert_eq!((out.code, out.json()["reason"].as_str()), (504, Some("Timeout")), "{out:?}");
    }
    etcd.resume().unwrap();
    assert_eq!(user.call("GET", &format!("{DBS}/a"), None).await.unwrap().code, 200, "places are given back");
}

/// A small tmpfs mounted on a temporary directory (unmounted when dropped).
struct SmallDisk {
    dir: Option<tempfile::TempDir>,
}

impl SmallDisk {
    /// `None` where this process may not mount (not root, or no such
    /// privilege in the sandbox).
    fn mount(size: &str) -> Option<SmallDisk> {
        let dir = tempfile::tempdir().unwrap();
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .is_ok_and(|s| s.success());
        mounted.then_some(SmallDisk { dir: Some(dir) })
    }

    fn path(&self) -> &std::path::Path {
        self.dir.as_ref().map(|d| d.path()).expect("mounted")
    }

    /// Fills what is left with one file, until the disk refuses a byte.
    fn fill(&self) -> std::path::PathBuf {
        use std::io::Write;
        let filler = self.path().join("filler");
        let mut f = std::fs::File::create(&filler).unwrap();
        let chunk = vec![0u8; 64 * 1024];
        while f.write_all(&chunk).is_ok() {}
        for _ in 0..64 * 1024 {
            if f.write_all(&[0]).is_err() {
                break;
            }
        }
        filler
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        if let Some(dir) = self.dir.take() {
            let _ = std::process::Command::new("umount").arg("-l").arg(dir.path()).status();
        }
    }
}

/// The embedded store's disk fills up under writers and watchers: every
/// write fails with a 500 Status that says so and none of them shows up
/// anywhere; reads and watches go on; once there is room again, writes
/// succeed with no restart, and a restarted server serves every
/// acknowledged write. Skipped (with a line saying so) where tmpfs cannot
/// be mounted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedded_store_survives_a_full_disk() {
    let _serial = SERIAL.lock().await;
    let Some(disk) = SmallDisk::mount("64m") else {
        eprintln!("SKIPPED: cannot mount a tmpfs here (needs root)");
        return;
    };
    let data = tempfile::tempdir_in(disk.path()).unwrap();
    let mut node = Node::start_in(data, &[]);
    serve_tpr(&[node.server()]);
    let targets = Targets::of(&[node.server()]);
    let load = Load::start(&targets, 4, 2).await;
    load.progress(50).await;
    let filler = blocking(|| disk.fill());
    // Writes now fail; wait for a few refusals.
    let began = Instant::now();
    while load.writes.lock().unwrap().failures.len() < 10 {
        assert!(began.elapsed() < Duration::from_secs(20), "writes still succeed on a full disk");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let list = node.server().curl(&[], DBS);
    assert_eq!(list.code, 200, "reads go on on a full disk: {}", list.body);
    std::fs::remove_file(filler).unwrap();
    let recovered = load.progress(50).await;
    eprintln!("full disk: writes succeed again {recovered:?} after the room came back");
    let report = load.stop().await;
    report.check("full disk", |f| {
        f.is_status && f.code == 500 && f.reason == "InternalError" && f.message.contains("disk is full")
    });
    // A restart serves the history: the last acknowledged write is there.
    let last = *report.writes.acked.keys().next_back().expect("acknowledged writes");
    node.kill();
    blocking(|| node.restart());
    let list = node.server().curl(&[], DBS);
    let rv: u64 = common::json(&list)["metadata"]["resourceVersion"].as_str().unwrap().parse().unwrap();
    assert!(rv >= last, "the restarted server is at {rv}, before the last acknowledged write {last}");
    node.kill();
}
