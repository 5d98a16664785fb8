//! Shared helpers: servers on either backend, curl watches, kubectl, raw
//! TLS connections, and writes straight to the store.
#![allow(dead_code)]

pub mod raw;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;
use testkit::Server;

/// Which store a server runs on.
#[derive(Clone, Copy, Debug)]
pub enum Backend {
    Embedded,
    Etcd,
}

/// A server and what keeps it alive.
pub struct Running {
    pub server: Server,
    pub etcd: Option<testkit::Etcd>,
    pub dir: tempfile::TempDir,
    /// The server's flags, for a restart.
    pub args: Vec<String>,
}

impl Running {
    /// Stops the server (SIGTERM) and starts it again with the same flags and store.
    pub fn restart(self) -> Running {
        let Running { server, etcd, dir, args } = self;
        assert!(server.terminate().expect("terminate").success(), "SIGTERM must exit 0");
        let flags: Vec<&str> = args.iter().map(String::as_str).collect();
        let server = Server::start(&testkit::apiserver_binary(), &flags).expect("restart tpr-apiserver");
        Running { server, etcd, dir, args }
    }
}

impl Running {
    /// Stops the server, runs `f` on its store (as an operator editing etcd,
    /// or a bug would), and starts the server again on the same store.
    pub fn with_store(self, f: impl FnOnce(&dyn storage::Store, &tokio::runtime::Runtime)) -> Running {
        let Running { server, etcd, dir, args } = self;
        assert!(server.terminate().expect("terminate").success(), "SIGTERM must exit 0");
        let rt = tokio::runtime::Runtime::new().expect("runtime");
        {
            let store: Box<dyn storage::Store> = match &etcd {
                Some(e) => {
                    let cfg = storage::EtcdConfig { endpoints: vec![e.endpoint()], ..Default::default() };
                    Box::new(rt.block_on(storage::EtcdStore::connect(&cfg)).expect("connect to etcd"))
                }
                None => {
                    Box::new(storage::EmbeddedStore::open(&storage::EmbeddedConfig::new(dir.path())).expect("open"))
                }
            };
            f(store.as_ref(), &rt);
        }
        drop(rt);
        let flags: Vec<&str> = args.iter().map(String::as_str).collect();
        let server = Server::start(&testkit::apiserver_binary(), &flags).expect("restart tpr-apiserver");
        Running { server, etcd, dir, args }
    }
}

/// The store revision a server has reached (a consistent list's resourceVersion).
pub fn revision(server: &Server) -> String {
    let out = server.curl(&[], "/apis/extensions/v1beta1/thirdpartyresources?limit=1");
    json(&out)["metadata"]["resourceVersion"].as_str().unwrap_or_default().to_string()
}

/// Whether the server process is still running.
pub fn alive(server: &Server) -> bool {
    testkit::process::alive(server.pid())
}

/// Starts a standalone server with `tokens` (a `--token-auth-file`) and the
/// rules of `--authorization-mode=Policy`; the directory holds its files.
pub fn start_with_policy(tokens: &str, rules: &str) -> (Server, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let (token_file, policy, data) =
        (dir.path().join("tokens.csv"), dir.path().join("policy.yaml"), dir.path().join("data"));
    std::fs::write(&token_file, tokens).unwrap();
    std::fs::write(&policy, rules).unwrap();
    let args = [
        "--data-dir",
        data.to_str().unwrap(),
        "--token-auth-file",
        token_file.to_str().unwrap(),
        "--authorization-mode",
        "Policy",
        "--authorization-policy-file",
        policy.to_str().unwrap(),
    ];
    (Server::start(&testkit::apiserver_binary(), &args).expect("start tpr-apiserver"), dir)
}

pub fn start(backend: Backend) -> Running {
    start_with(backend, &[])
}

/// Starts a server with extra flags.
pub fn start_with(backend: Backend, extra: &[&str]) -> Running {
    let etcd = match backend {
        Backend::Etcd => Some(testkit::Etcd::start().expect("start etcd")),
        Backend::Embedded => None,
    };
    let dir = tempfile::tempdir().unwrap();
    let mut args = vec!["--data-dir".to_string(), dir.path().to_str().unwrap().to_string()];
    if let Some(e) = &etcd {
        args.push("--etcd-servers".into());
        args.push(e.endpoint());
    }
    args.extend(extra.iter().map(|a| a.to_string()));
    let flags: Vec<&str> = args.iter().map(String::as_str).collect();
    let server = Server::start(&testkit::apiserver_binary(), &flags).expect("start tpr-apiserver");
    Running { server, etcd, dir, args }
}

/// Parses a JSON body, failing with what the user would have seen.
pub fn json(out: &testkit::CurlOutput) -> Value {
    serde_json::from_str(&out.body)
        .unwrap_or_else(|e| panic!("not JSON ({e}): code {} body {} stderr {}", out.code, out.body, out.stderr))
}

/// Creates a TPR with curl; panics with the response on failure.
pub fn create_tpr(server: &Server, name: &str, versions: &[&str]) {
    let versions: Vec<Value> = versions.iter().map(|v| serde_json::json!({ "name": v })).collect();
    let body = serde_json::json!({"apiVersion": "extensions/v1beta1", "kind": "ThirdPartyResource", "metadata": {"name": name}, "versions": versions});
    let out = server.curl(
        &["-H", "Content-Type: application/json", "-d", &body.to_string()],
        "/apis/extensions/v1beta1/thirdpartyresources",
    );
    assert_eq!(out.code, 201, "create TPR {name}: {}", out.body);
}

/// Creates namespace `name` (a standalone server serves namespaces; objects
/// live only in namespaces that exist).
pub fn create_namespace(server: &Server, name: &str) {
    let out = post(server, "/api/v1/namespaces", &serde_json::json!({"metadata": {"name": name}}));
    assert_eq!(out.code, 201, "create namespace {name}: {}", out.body);
}

/// POSTs `body` to `path`, returning the response.
pub fn post(server: &Server, path: &str, body: &Value) -> testkit::CurlOutput {
    server.curl(&["-H", "Content-Type: application/json", "-d", &body.to_string()], path)
}

/// Sends a JSON merge patch to `path`.
pub fn merge_patch(server: &Server, path: &str, patch: &str) -> testkit::CurlOutput {
    server.curl(&["-X", "PATCH", "-H", "Content-Type: application/merge-patch+json", "-d", patch], path)
}

/// A watch read by curl; events arrive on a channel.
pub struct CurlWatch {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl CurlWatch {
    /// Opens `path` (which should include `watch=true` or a /watch/ prefix).
    pub fn open(server: &Server, path: &str) -> CurlWatch {
        let token = std::fs::read_to_string(server.data_dir().join("admin.token")).unwrap();
        let mut child = Command::new("curl")
            .args(["-sS", "-N", "--cacert"])
            .arg(server.data_dir().join("pki/ca.crt"))
            .arg("-H")
            .arg(format!("Authorization: Bearer {}", token.trim()))
            .arg(format!("{}{path}", server.url()))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let lines = lines_of(child.stdout.take().unwrap());
        CurlWatch { child, lines }
    }

    /// The next event (type and object), skipping bookmarks; panics after 10 s.
    pub fn next(&self) -> (String, Value) {
        loop {
            let line = self.lines.recv_timeout(Duration::from_secs(10)).expect("no watch event within 10 s");
            let v: Value =
                serde_json::from_str(&line).unwrap_or_else(|e| panic!("watch line is not JSON ({e}): {line}"));
            let kind = v["type"].as_str().unwrap_or_default().to_string();
            if kind != "BOOKMARK" {
                return (kind, v["object"].clone());
            }
        }
    }

    /// The next raw line, or None when the stream ended.
    pub fn next_line(&self, wait: Duration) -> Option<String> {
        self.lines.recv_timeout(wait).ok()
    }

    /// Waits for curl to exit (the server ended the stream); its exit status.
    pub fn wait(mut self) -> std::process::ExitStatus {
        self.child.wait().unwrap()
    }
}

impl Drop for CurlWatch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs kubectl ([`testkit::kubectl`]) with the server's kubeconfig; panics with the
/// command, its output and stderr when it fails.
pub fn kubectl(server: &Server, args: &[&str], stdin: Option<&str>) -> String {
    let (status, stdout, stderr) = kubectl_output(server, args, stdin, &[]);
    assert!(status == Some(0), "kubectl {}\nstdout: {stdout}\nstderr: {stderr}", args.join(" "));
    stdout
}

/// Runs kubectl with extra environment variables (e.g. EDITOR); it must succeed.
pub fn kubectl_env(server: &Server, args: &[&str], env: &[(&str, &str)]) -> String {
    let (status, stdout, stderr) = kubectl_output(server, args, None, env);
    assert!(status == Some(0), "kubectl {}\nstdout: {stdout}\nstderr: {stderr}", args.join(" "));
    stdout
}

/// Runs kubectl; returns its exit code and stdout+stderr, whatever the outcome.
pub fn kubectl_status(server: &Server, args: &[&str], stdin: Option<&str>) -> (Option<i32>, String) {
    let (status, stdout, stderr) = kubectl_output(server, args, stdin, &[]);
    (status, format!("{stdout}{stderr}"))
}

/// Runs kubectl: exit code, stdout, stderr.
pub fn kubectl_output(
    server: &Server,
    args: &[&str],
    stdin: Option<&str>,
    env: &[(&str, &str)],
) -> (Option<i32>, String, String) {
    kubectl_output_with(&testkit::kubectl(), server, args, stdin, env)
}

/// Runs the kubectl at `binary`: exit code, stdout, stderr.
pub fn kubectl_output_with(
    binary: &std::path::Path,
    server: &Server,
    args: &[&str],
    stdin: Option<&str>,
    env: &[(&str, &str)],
) -> (Option<i32>, String, String) {
    use std::io::Write;
    let mut cmd = Command::new(binary);
    cmd.arg("--kubeconfig").arg(server.kubeconfig()).args(args);
    cmd.envs(env.iter().copied());
    cmd.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child =
        cmd.spawn().unwrap_or_else(|e| panic!("kubectl at {} ({e}); scripts/install-deps test", binary.display()));
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(input.as_bytes()).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.code(), text(&out.stdout), text(&out.stderr))
}

/// One `#[test]` per backend for each named test body `fn(Backend)`.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod embedded {
            $( #[test] fn $name() { super::$name($crate::common::Backend::Embedded) } )*
        }
        mod etcd {
            $( #[test] fn $name() { super::$name($crate::common::Backend::Etcd) } )*
        }
    };
}

/// The lines `stdout` (a child's) writes, on a channel, read by a thread of their own.
pub fn lines_of(stdout: impl std::io::Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    lines
}

/// The Python of the venv `scripts/test` prepares (`target/pyvenv`), or `$TPR_PYTHON`.
pub fn python() -> std::path::PathBuf {
    std::env::var_os("TPR_PYTHON")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/pyvenv/bin/python"))
}

/// Runs `conformance/python/<script> <kubeconfig>`; panics with its output
/// unless it succeeds; its stdout.
pub fn run_python(script: &str, server: &Server) -> String {
    let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("python").join(script);
    let out = Command::new(python())
        .arg(&path)
        .arg(server.kubeconfig())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {} ({e}); scripts/test prepares the venv", python().display()));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "python {}\nstdout:\n{stdout}\nstderr:\n{stderr}", path.display());
    stdout
}

/// A long-running child (kubectl `get -w`, an operator) whose output lines arrive on a channel.
pub struct LineStream {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl LineStream {
    /// Starts `kubectl args...` against `server`.
    pub fn start(server: &Server, args: &[&str]) -> LineStream {
        Self::start_with(&testkit::kubectl(), server, args)
    }

    /// Starts the kubectl at `binary`.
    pub fn start_with(binary: &std::path::Path, server: &Server, args: &[&str]) -> LineStream {
        let mut cmd = Command::new(binary);
        cmd.arg("--kubeconfig").arg(server.kubeconfig()).args(args).stderr(Stdio::null());
        Self::spawn(&mut cmd)
    }

    /// Starts `cmd` with its stdout read line by line.
    pub fn spawn(cmd: &mut Command) -> LineStream {
        let mut child =
            cmd.stdin(Stdio::null()).stdout(Stdio::piped()).spawn().unwrap_or_else(|e| {
                panic!("cannot start {cmd:?} ({e}); scripts/test installs and builds what tests run")
            });
        let lines = lines_of(child.stdout.take().expect("stdout"));
        LineStream { child, lines }
    }

    /// Lines until one satisfies `found` (returned), or all seen lines after `wait`.
    pub fn until(&self, wait: Duration, found: impl Fn(&str) -> bool) -> Result<String, Vec<String>> {
        let deadline = std::time::Instant::now() + wait;
        let mut seen = Vec::new();
        while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(line) if found(&line) => return Ok(line),
                Ok(line) => seen.push(line),
                Err(_) => break,
            }
        }
        Err(seen)
    }
}

impl Drop for LineStream {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
