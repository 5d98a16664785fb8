//! Starts the real `tpr-apiserver` binary and finds its URL in the ready log line.

use std::io::{self, BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// A running `tpr-apiserver`; killed when dropped.
pub struct Server {
    child: Child,
    url: String,
    log: std::sync::Mutex<mpsc::Receiver<String>>,
    data_dir: PathBuf,
    /// The bearer token of [`Server::curl`]: given, or the generated admin token.
    token: Option<String>,
}

/// What a curl run printed.
#[derive(Debug)]
pub struct CurlOutput {
    /// The body (stdout).
    pub body: String,
    /// The HTTP status code (0 when curl failed).
    pub code: u16,
    /// curl's stderr.
    pub stderr: String,
}

/// The binary: `$TPR_APISERVER_BIN`, else `target/debug/tpr-apiserver` of this workspace.
pub fn binary() -> PathBuf {
    if let Some(p) = std::env::var_os("TPR_APISERVER_BIN") {
        return PathBuf::from(p);
    }
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap_or(Path::new("."));
    let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| workspace.join("target"));
    target.join("debug").join("tpr-apiserver")
}

impl Server {
    /// Starts `binary` with `args` (plus `--secure-port 0` unless they name a
    /// port) and waits for the ready line.
    /// `args` should name a `--data-dir` (its CA and admin token are used by [`Server::curl`]).
    pub fn start(binary: &Path, args: &[&str]) -> io::Result<Server> {
        Self::start_env(binary, args, &[])
    }

    /// [`Server::start`] with extra environment variables.
    pub fn start_env(binary: &Path, args: &[&str], env: &[(&str, &str)]) -> io::Result<Server> {
        let data_dir = args
            .iter()
            .position(|a| *a == "--data-dir")
            .and_then(|i| args.get(i + 1))
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("tpr-data"));
        let port: &[&str] = if args.contains(&"--secure-port") { &[] } else { &["--secure-port", "0"] };
        let mut child = Command::new(binary)
            .args(args)
            .args(port)
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| {
                io::Error::new(e.kind(), format!("cannot start {} ({e}); build it first", binary.display()))
            })?;
        let stderr = child.stderr.take().ok_or_else(|| io::Error::other("no stderr"))?;
        let (tx, log) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        loop {
            let line = log
                .recv_timeout(Duration::from_secs(30))
                .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "the server did not log its ready line"))?;
            if let Some(at) = line.find("ready at ") {
                let url = line[at + "ready at ".len()..].split_whitespace().next().unwrap_or_default().to_string();
                return Ok(Server { child, url, log: std::sync::Mutex::new(log), data_dir, token: None });
            }
        }
    }

    /// Uses `token` for [`Server::curl`] and kubectl, for a server that makes
    /// no admin token (not standalone): writes a kubeconfig with it (trusting
    /// the generated CA) when the server wrote none.
    pub fn with_token(mut self, token: &str) -> io::Result<Server> {
        self.token = Some(token.to_string());
        let kubeconfig = self.kubeconfig();
        if !kubeconfig.exists() {
            std::fs::write(&kubeconfig, render_kubeconfig(&self.url, &self.data_dir.join("pki/ca.crt"), token))?;
        }
        Ok(self)
    }

    /// The base URL, e.g. `http://127.0.0.1:41234`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The data directory (CA in `pki/ca.crt`, `kubeconfig`, `admin.token`).
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The kubeconfig the server wrote.
    pub fn kubeconfig(&self) -> PathBuf {
        self.data_dir.join("kubeconfig")
    }

    /// Runs curl against `path` (appended to the URL) trusting the server's
    /// CA, with the admin token unless `anonymous`; `args` go before the URL.
    pub fn curl_as(&self, anonymous: bool, args: &[&str], path: &str) -> CurlOutput {
        let mut cmd = Command::new("curl");
        cmd.args(["-sS", "--max-time", "20", "-w", "\n%{http_code}", "--cacert"]).arg(self.data_dir.join("pki/ca.crt"));
        if !anonymous {
            cmd.arg("-H").arg(format!("Authorization: Bearer {}", self.token()));
        }
        cmd.args(args).arg(format!("{}{path}", self.url));
        match cmd.output() {
            Ok(out) => {
                let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
                let (body, code) = stdout.rsplit_once('\n').unwrap_or(("", stdout.as_str()));
                CurlOutput {
                    body: body.to_string(),
                    code: code.trim().parse().unwrap_or(0),
                    stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
                }
            }
            Err(e) => CurlOutput { body: String::new(), code: 0, stderr: format!("cannot run curl: {e}") },
        }
    }

    /// The token [`Server::curl`] sends: the one given, else the generated admin token.
    pub fn token(&self) -> String {
        match &self.token {
            Some(t) => t.clone(),
            None => std::fs::read_to_string(self.data_dir.join("admin.token")).unwrap_or_default().trim().to_string(),
        }
    }

    /// [`Server::curl_as`] with the admin token.
    pub fn curl(&self, args: &[&str], path: &str) -> CurlOutput {
        self.curl_as(false, args, path)
    }

    /// Log lines printed since the ready line (non-blocking).
    pub fn log_lines(&self) -> Vec<String> {
        self.log.lock().map(|l| l.try_iter().collect()).unwrap_or_default()
    }

    /// Kills the server at once (SIGKILL), as a crash would.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM and returns at once (see [`Server::wait`]).
    pub fn signal_term(&self) -> io::Result<()> {
        Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status().map(drop)
    }

    /// Waits up to `limit` for the server to exit.
    pub fn wait(mut self, limit: Duration) -> io::Result<ExitStatus> {
        let deadline = std::time::Instant::now() + limit;
        while std::time::Instant::now() < deadline {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(io::Error::new(io::ErrorKind::TimedOut, format!("the server did not exit within {limit:?}")))
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(mut self) -> io::Result<ExitStatus> {
        Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status()?;
        for _ in 0..300 {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(io::Error::new(io::ErrorKind::TimedOut, "the server did not exit within 6 s of SIGTERM"))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A kubeconfig for `server`, trusting the CA in `ca_file`, with `token`.
fn render_kubeconfig(server: &str, ca_file: &Path, token: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: s\n  cluster:\n    server: {server}\n    certificate-authority: {}\nusers:\n- name: u\n  user:\n    token: {token}\ncontexts:\n- name: c\n  context:\n    cluster: s\n    user: u\n    namespace: default\ncurrent-context: c\n",
        ca_file.display()
    )
}

/// Writes a token file (`--token-auth-file`) with one user in
/// `system:masters`; returns its path and the token.
pub fn masters_token_file(dir: &Path) -> io::Result<(PathBuf, String)> {
    let token = "masters-token".to_string();
    let path = dir.join("masters-tokens.csv");
    std::fs::write(&path, format!("{token},test-admin,0,\"system:masters\"\n"))?;
    Ok((path, token))
}
