//! Shared by the sensor's tests: a local HTTP receiver that records what it
//! is sent and can be down or failing, the real `tpr-sensor` as a child
//! process, and writes through the real server.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use serde_json::{json, Value};
use testkit::Server;

/// How the receiver answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// 200.
    Ok,
    /// 500.
    Fail,
    /// 429 with `Retry-After: 1`.
    Busy,
    /// 400 (not worth retrying).
    Reject,
}

/// One request the receiver took (and answered 200).
#[derive(Clone, Debug)]
pub struct Received {
    pub path: String,
    pub headers: BTreeMap<String, String>,
    pub body: Value,
}

/// A local HTTP receiver on a fixed loopback port; it can be stopped (the
/// port refuses connections) and started again.
pub struct Receiver {
    pub addr: SocketAddr,
    pub got: Arc<Mutex<Vec<Received>>>,
    pub mode: Arc<Mutex<Mode>>,
    /// Requests answered with something else than 200.
    pub refused: Arc<Mutex<usize>>,
    task: Option<tokio::task::JoinHandle<()>>,
    rt: Arc<tokio::runtime::Runtime>,
}

impl Receiver {
    pub fn start() -> Receiver {
        let rt = Arc::new(tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap());
        let port = testkit::free_port().unwrap();
        let mut r = Receiver {
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            got: Arc::default(),
            mode: Arc::new(Mutex::new(Mode::Ok)),
            refused: Arc::default(),
            task: None,
            rt,
        };
        r.up();
        r
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn set(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }

    /// Listening again.
    pub fn up(&mut self) {
        let (addr, got, mode, refused) = (self.addr, self.got.clone(), self.mode.clone(), self.refused.clone());
        let listener = self.rt.block_on(async {
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                match tokio::net::TcpListener::bind(addr).await {
                    Ok(l) => return l,
                    Err(e) if Instant::now() > deadline => panic!("cannot listen on {addr}: {e}"),
                    Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            }
        });
        self.task = Some(self.rt.spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                let (got, mode, refused) = (got.clone(), mode.clone(), refused.clone());
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                        let (got, mode, refused) = (got.clone(), mode.clone(), refused.clone());
                        async move {
                            let path = req.uri().path().to_string();
                            let headers: BTreeMap<String, String> = req
                                .headers()
                                .iter()
                                .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
                                .collect();
                            let body = req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                            let m = *mode.lock().unwrap();
                            let (code, retry_after) = match m {
                                Mode::Ok => (200, None),
                                Mode::Fail => (500, None),
                                Mode::Busy => (429, Some("1")),
                                Mode::Reject => (400, None),
                            };
                            if code == 200 {
                                let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
                                got.lock().unwrap().push(Received { path, headers, body });
                            } else {
                                *refused.lock().unwrap() += 1;
                            }
                            let mut resp = hyper::Response::builder().status(code);
                            if let Some(r) = retry_after {
                                resp = resp.header("retry-after", r);
                            }
                            resp.body(Full::new(Bytes::new()))
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        }));
    }

    /// Not listening: connections are refused.
    pub fn down(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
            let _ = self.rt.block_on(t);
        }
    }

    pub fn received(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }

    /// Waits up to `wait` until `done` holds for what was received.
    pub fn wait_for(&self, wait: Duration, done: impl Fn(&[Received]) -> bool) -> bool {
        let deadline = Instant::now() + wait;
        while Instant::now() < deadline {
            if done(&self.received()) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        done(&self.received())
    }
}

/// The real `tpr-sensor`.
pub struct Sensor {
    pub child: Child,
    pub metrics: SocketAddr,
}

impl Sensor {
    pub fn start(server: &Server, state: &std::path::Path, extra: &[&str]) -> Sensor {
        let metrics = SocketAddr::from(([127, 0, 0, 1], testkit::free_port().unwrap()));
        let mut args: Vec<String> = vec![
            "--kubeconfig".into(),
            server.kubeconfig().display().to_string(),
            "--state-dir".into(),
            state.display().to_string(),
            "--metrics-bind-address".into(),
            metrics.to_string(),
            "--retry-base".into(),
            "50ms".into(),
            "--retry-max".into(),
            "1s".into(),
            "--max-attempts".into(),
            "100".into(),
            "--checkpoint-interval".into(),
            "100ms".into(),
        ];
        if !extra.contains(&"--resource") {
            args.extend(["--resource".to_string(), "mysqldbs.prsn.io".to_string()]);
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        let child = Command::new(env!("CARGO_BIN_EXE_tpr-sensor"))
            .args(&args)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .spawn()
            .expect("start tpr-sensor");
        Sensor { child, metrics }
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM; waits for the exit; its status code.
    pub fn terminate(&mut self) -> Option<i32> {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(s)) = self.child.try_wait() {
                return s.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.kill();
        None
    }

    /// GET of the sensor's `/metrics` (or another path) with curl.
    pub fn get(&self, path: &str) -> String {
        let out = Command::new("curl").args(["-sS", &format!("http://{}{path}", self.metrics)]).output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Sensor {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A standalone server (embedded store) with the MysqlDb TPR, on a fixed
/// port (a restarted server keeps its URL, as in a real deployment).
pub fn server(dir: &std::path::Path, extra: &[&str]) -> Server {
    let data = dir.join("data");
    let port = testkit::free_port().unwrap().to_string();
    let mut args: Vec<String> = vec!["--data-dir".into(), data.display().to_string(), "--secure-port".into(), port];
    args.extend(extra.iter().map(|a| a.to_string()));
    std::fs::write(dir.join("server-args"), args.join("\n")).unwrap();
    let flags: Vec<&str> = args.iter().map(String::as_str).collect();
    let s = Server::start(&testkit::apiserver_binary(), &flags).expect("start tpr-apiserver");
    let tpr = json!({"apiVersion": "extensions/v1beta1", "kind": "ThirdPartyResource", "metadata": {"name": "mysql-db.prsn.io"}, "versions": [{"name": "v1"}]});
    let out = s.curl(
        &["-H", "Content-Type: application/json", "-d", &tpr.to_string()],
        "/apis/extensions/v1beta1/thirdpartyresources",
    );
    assert!(out.code == 201 || out.code == 409, "{}", out.body);
    s
}

/// Stops the server of `dir` (SIGTERM) and starts it again with the same flags.
pub fn restart(s: Server, dir: &std::path::Path) -> Server {
    assert!(s.terminate().unwrap().success());
    let args = std::fs::read_to_string(dir.join("server-args")).unwrap();
    let flags: Vec<&str> = args.lines().collect();
    Server::start(&testkit::apiserver_binary(), &flags).expect("restart tpr-apiserver")
}

/// A write; returns its resourceVersion (None when refused, e.g. during a restart).
pub fn write(s: &Server, method: &str, name: &str, body: Option<Value>) -> Option<u64> {
    let path = match method {
        "POST" => "/apis/prsn.io/v1/namespaces/default/mysqldbs".to_string(),
        _ => format!("/apis/prsn.io/v1/namespaces/default/mysqldbs/{name}"),
    };
    let mut args = vec!["-X".to_string(), method.to_string()];
    if let Some(b) = body {
        let ct = if method == "PATCH" { "application/merge-patch+json" } else { "application/json" };
        args.extend(["-H".into(), format!("Content-Type: {ct}"), "-d".into(), b.to_string()]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = s.curl(&args, &path);
    if !(200..300).contains(&out.code) {
        return None;
    }
    let v: Value = serde_json::from_str(&out.body).ok()?;
    v.pointer("/metadata/resourceVersion").and_then(Value::as_str).and_then(|r| r.parse().ok())
}

/// Creates `name` with `size`.
pub fn create(s: &Server, name: &str, size: &str) -> Option<u64> {
    write(s, "POST", name, Some(json!({"metadata": {"name": name}, "instance_size": size})))
}

/// Sets `instance_size`.
pub fn resize(s: &Server, name: &str, size: &str) -> Option<u64> {
    write(s, "PATCH", name, Some(json!({"instance_size": size})))
}

/// Deletes `name`.
pub fn delete(s: &Server, name: &str) -> Option<u64> {
    write(s, "DELETE", name, None)
}

/// (type, name, resourceVersion) of a webhook delivery.
pub fn summary(r: &Received) -> (String, String, u64) {
    let b = &r.body;
    (
        b["type"].as_str().unwrap_or("").to_string(),
        b.pointer("/object/metadata/name").and_then(Value::as_str).unwrap_or("").to_string(),
        b["resourceVersion"].as_str().and_then(|v| v.parse().ok()).unwrap_or(0),
    )
}

/// Per object, the deliveries in arrival order; and how many were duplicates
/// (the same type and revision again).
pub fn by_object(got: &[Received]) -> (BTreeMap<String, Vec<(String, u64)>>, usize) {
    let mut per: BTreeMap<String, Vec<(String, u64)>> = BTreeMap::new();
    let mut duplicates = 0;
    for r in got {
        let (t, name, rv) = summary(r);
        let list = per.entry(name).or_default();
        if list.contains(&(t.clone(), rv)) {
            duplicates += 1;
            continue;
        }
        list.push((t, rv));
    }
    (per, duplicates)
}
