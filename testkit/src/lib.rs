//! Test harness: starts a real etcd (Debian's `etcd-server`) on free loopback
//! ports with a temporary data dir and short election timeouts, so it is
//! ready in well under a second; and the real `tpr-apiserver` binary as a
//! child process. Used by every crate's tests and the benches.
#![forbid(unsafe_code)]

mod fake_kube;
pub mod process;
mod server;
mod tls;

pub use fake_kube::{FakeKube, Policy};
pub use server::{binary as apiserver_binary, masters_token_file, CurlOutput, Server};
pub use tls::TestPki;

use std::io;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running etcd process; killed when dropped.
pub struct Etcd {
    child: Option<Child>,
    dir: tempfile::TempDir,
    client_port: u16,
    peer_port: u16,
    /// Plain-HTTP port for `/health` (also when clients must use TLS).
    metrics_port: u16,
    tls: Option<TestPki>,
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?.local_addr()?.port())
}

/// The etcd binary: `$ETCD_BIN`, else `etcd` on the PATH.
fn etcd_binary() -> PathBuf {
    std::env::var_os("ETCD_BIN").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("etcd"))
}

impl Etcd {
    /// Starts etcd and waits until it accepts client connections.
    pub fn start() -> io::Result<Etcd> {
        Self::start_with(None)
    }

    /// Starts etcd serving clients over mutual TLS with certificates of `pki`.
    pub fn start_tls(pki: TestPki) -> io::Result<Etcd> {
        Self::start_with(Some(pki))
    }

    fn start_with(tls: Option<TestPki>) -> io::Result<Etcd> {
        let mut etcd = Etcd {
            child: None,
            dir: tempfile::tempdir()?,
            client_port: free_port()?,
            peer_port: free_port()?,
            metrics_port: free_port()?,
            tls,
        };
        etcd.spawn()?;
        Ok(etcd)
    }

    fn spawn(&mut self) -> io::Result<()> {
        let client = self.endpoint();
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.dir.path().join("etcd.log"))?;
        let mut cmd = Command::new(etcd_binary());
        if let Some(pki) = &self.tls {
            cmd.arg("--cert-file").arg(pki.server_cert()).arg("--key-file").arg(pki.server_key());
            cmd.arg("--trusted-ca-file").arg(pki.ca_cert()).arg("--client-cert-auth");
        }
        let child = cmd
            .args(["--name", "test", "--data-dir"])
            .arg(self.dir.path().join("data"))
            .args(["--listen-client-urls", &client, "--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer, "--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &format!("test={peer}"), "--initial-cluster-state", "new"])
            .args(["--heartbeat-interval", "10", "--election-timeout", "50", "--log-level", "error"])
            .args(["--listen-metrics-urls", &format!("http://127.0.0.1:{}", self.metrics_port)])
            .args(["--quota-backend-bytes", "4294967296"])
            // Quiet watchers learn the revision through etcd's periodic progress
            // notifications (etcd before 3.4.31 answers explicit requests unreliably).
            .args(["--experimental-watch-progress-notify-interval", "200ms"])
            // Benchmarks may tune etcd (e.g. its backend batching); both sides of a
            // comparison then run against the same etcd.
            .args(std::env::var("ETCD_EXTRA_ARGS").unwrap_or_default().split_whitespace())
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .map_err(|e| {
                io::Error::new(e.kind(), format!("cannot start etcd ({e}); install the etcd-server package"))
            })?;
        self.child = Some(child);
        self.wait_ready()
    }

    fn wait_ready(&mut self) -> io::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(20);
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.client_port));
        // /health is read from the plain-HTTP metrics port.
        while Instant::now() < deadline {
            if let Some(child) = self.child.as_mut() {
                if let Some(status) = child.try_wait()? {
                    let log = std::fs::read_to_string(self.dir.path().join("etcd.log")).unwrap_or_default();
                    return Err(io::Error::other(format!("etcd exited with {status}: {log}")));
                }
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok() && self.healthy() {
                // The client port is up too.
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(io::Error::new(io::ErrorKind::TimedOut, "etcd did not become ready within 20 s"))
    }

    /// True when `/health` answers `"health":"true"` (a leader is elected).
    fn healthy(&self) -> bool {
        use std::io::{Read, Write};
        let Ok(mut s) = TcpStream::connect((Ipv4Addr::LOCALHOST, self.metrics_port)) else { return false };
        let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
        let req = format!("GET /health HTTP/1.0\r\nHost: 127.0.0.1:{}\r\n\r\n", self.metrics_port);
        if s.write_all(req.as_bytes()).is_err() {
            return false;
        }
        let mut body = String::new();
        let _ = s.read_to_string(&mut body);
        body.contains("\"health\":\"true\"")
    }

    /// The client URL, e.g. `http://127.0.0.1:40123` (`https://` with TLS).
    pub fn endpoint(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.client_port)
    }

    /// The temporary directory of this etcd.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Kills etcd at once (SIGKILL), keeping its data.
    pub fn kill(&mut self) {
        let _ = self.resume();
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Freezes etcd (SIGSTOP): it keeps its connections but answers nothing.
    pub fn pause(&self) -> io::Result<()> {
        self.signal("-STOP")
    }

    /// Thaws a paused etcd (SIGCONT).
    pub fn resume(&self) -> io::Result<()> {
        self.signal("-CONT")
    }

    fn signal(&self, sig: &str) -> io::Result<()> {
        let pid = self.child.as_ref().map(|c| c.id()).ok_or_else(|| io::Error::other("etcd is not running"))?;
        let status = Command::new("kill").arg(sig).arg(pid.to_string()).status()?;
        if status.success() {
            Ok(())
        } else {
            Err(io::Error::other(format!("kill {sig} {pid} failed")))
        }
    }

    /// Starts etcd again on the same ports with the same data.
    pub fn restart(&mut self) -> io::Result<()> {
        self.kill();
        self.spawn()
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.kill();
    }
}
