//! Real etcd processes on free loopback ports, with temporary data dirs and
//! short election timeouts: one member ([`Etcd`]), or a cluster of several
//! ([`EtcdCluster`]) whose members can be killed, paused and restarted.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{free_port, TestPki};

/// A running etcd process (a member of a cluster of one, or of an
/// [`EtcdCluster`]); killed when dropped.
pub struct Etcd {
    child: Option<Child>,
    dir: tempfile::TempDir,
    name: String,
    client_port: u16,
    peer_port: u16,
    /// Plain-HTTP port for `/health` and `/metrics` (also when clients must use TLS).
    metrics_port: u16,
    /// `--initial-cluster`: every member's name and peer URL.
    initial_cluster: String,
    /// `--heartbeat-interval` and `--election-timeout`, in milliseconds.
    timing: (u32, u32),
    tls: Option<TestPki>,
}

/// The etcd binary: `$ETCD_BIN`, else `etcd` on the PATH.
fn etcd_binary() -> PathBuf {
    std::env::var_os("ETCD_BIN").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("etcd"))
}

fn peer_url(port: u16) -> String {
    format!("http://127.0.0.1:{port}")
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

    fn start_with(mut tls: Option<TestPki>) -> io::Result<Etcd> {
        // A port found free can be taken by another test's process before
        // etcd binds it: then etcd exits, and another set of ports is tried.
        let mut attempts = 0;
        loop {
            attempts += 1;
            let mut etcd = Self::unstarted_with(tls.take())?;
            match etcd.launch().and_then(|()| etcd.wait_ready()) {
                Ok(()) => return Ok(etcd),
                Err(e) if attempts < 3 && e.to_string().contains("address already in use") => tls = etcd.tls.take(),
                Err(e) => return Err(e),
            }
        }
    }

    /// An etcd with its ports and directory chosen but not running yet (as
    /// etcd that is down when its clients start); [`Etcd::restart`] starts it.
    pub fn unstarted() -> io::Result<Etcd> {
        Self::unstarted_with(None)
    }

    fn unstarted_with(tls: Option<TestPki>) -> io::Result<Etcd> {
        let peer_port = free_port()?;
        Etcd::member("test".into(), peer_port, format!("test={}", peer_url(peer_port)), (10, 50), tls)
    }

    fn member(
        name: String,
        peer_port: u16,
        initial_cluster: String,
        timing: (u32, u32),
        tls: Option<TestPki>,
    ) -> io::Result<Etcd> {
        Ok(Etcd {
            child: None,
            dir: tempfile::tempdir()?,
            name,
            client_port: free_port()?,
            peer_port,
            metrics_port: free_port()?,
            initial_cluster,
            timing,
            tls,
        })
    }

    /// Starts the process (without waiting for it to be ready).
    fn launch(&mut self) -> io::Result<()> {
        let client = self.endpoint();
        let peer = peer_url(self.peer_port);
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.dir.path().join("etcd.log"))?;
        let mut cmd = Command::new(etcd_binary());
        if let Some(pki) = &self.tls {
            cmd.arg("--cert-file").arg(pki.server_cert()).arg("--key-file").arg(pki.server_key());
            cmd.arg("--trusted-ca-file").arg(pki.ca_cert()).arg("--client-cert-auth");
        }
        let child = cmd
            .args(["--name", &self.name, "--data-dir"])
            .arg(self.dir.path().join("data"))
            .args(["--listen-client-urls", &client, "--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer, "--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &self.initial_cluster, "--initial-cluster-state", "new"])
            .args(["--heartbeat-interval", &self.timing.0.to_string()])
            .args(["--election-timeout", &self.timing.1.to_string(), "--log-level", "error"])
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
        Ok(())
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

    /// A plain-HTTP GET of `path` on the metrics port (empty when it does not answer).
    fn metrics_get(&self, path: &str) -> String {
        use std::io::{Read, Write};
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.metrics_port));
        let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else { return String::new() };
        let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
        let req = format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{}\r\n\r\n", self.metrics_port);
        if s.write_all(req.as_bytes()).is_err() {
            return String::new();
        }
        let mut body = String::new();
        let _ = s.read_to_string(&mut body);
        body
    }

    /// True when `/health` answers `"health":"true"` (a leader is elected).
    fn healthy(&self) -> bool {
        self.metrics_get("/health").contains("\"health\":\"true\"")
    }

    /// Whether this member is the cluster's leader now.
    pub fn is_leader(&self) -> bool {
        self.child.is_some() && self.metrics_get("/metrics").lines().any(|l| l.trim() == "etcd_server_is_leader 1")
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

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
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
        let pid = self.pid().ok_or_else(|| io::Error::other("etcd is not running"))?;
        let status = Command::new("kill").arg(sig).arg(pid.to_string()).status()?;
        if status.success() {
            Ok(())
        } else {
            Err(io::Error::other(format!("kill {sig} {pid} failed")))
        }
    }

    /// Starts etcd again on the same ports with the same data, and waits
    /// until it is healthy (for a cluster member: it has rejoined a leader).
    pub fn restart(&mut self) -> io::Result<()> {
        self.kill();
        self.launch()?;
        self.wait_ready()
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A cluster of etcd members on loopback (heartbeat 25 ms, election timeout
/// 250 ms: a new leader within about half a second of losing one).
pub struct EtcdCluster {
    /// The members, in the order of [`EtcdCluster::endpoints`].
    pub members: Vec<Etcd>,
}

impl EtcdCluster {
    /// Starts `n` members and waits until they have a leader.
    pub fn start(n: usize) -> io::Result<EtcdCluster> {
        let peers: Vec<u16> = (0..n).map(|_| free_port()).collect::<io::Result<_>>()?;
        let initial: Vec<String> = peers.iter().enumerate().map(|(i, p)| format!("m{i}={}", peer_url(*p))).collect();
        let mut members = Vec::new();
        for (i, peer) in peers.iter().enumerate() {
            members.push(Etcd::member(format!("m{i}"), *peer, initial.join(","), (25, 250), None)?);
        }
        // Every member must run before any can elect a leader.
        for m in &mut members {
            m.launch()?;
        }
        for m in &mut members {
            m.wait_ready()?;
        }
        Ok(EtcdCluster { members })
    }

    /// The client URLs, comma-separated (as `--etcd-servers` takes them).
    pub fn endpoints(&self) -> String {
        self.members.iter().map(Etcd::endpoint).collect::<Vec<_>>().join(",")
    }

    /// The index of the current leader, waiting up to 10 s for one.
    pub fn leader(&self) -> Option<usize> {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Some(i) = self.members.iter().position(Etcd::is_leader) {
                return Some(i);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}
