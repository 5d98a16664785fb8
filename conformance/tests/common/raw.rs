//! A raw TLS client, for what curl cannot do: malformed requests, and
//! connections that stay idle or trickle their bytes.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use testkit::Server;

/// One TLS connection to a server.
pub struct Raw {
    stream: rustls::StreamOwned<rustls::ClientConnection, TcpStream>,
}

/// Connects to `server` with TLS, offering `alpn` (e.g. `b"http/1.1"`, `b"h2"`),
/// and completes the handshake.
pub fn connect(server: &Server, alpn: &[u8]) -> io::Result<Raw> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(server.data_dir().join("pki/ca.crt")).map_err(io::Error::other)? {
        roots.add(cert.map_err(io::Error::other)?).map_err(io::Error::other)?;
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(io::Error::other)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![alpn.to_vec()];
    let addr = server.url().trim_start_matches("https://").to_string();
    let tcp = TcpStream::connect(&addr)?;
    tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
    let name = ServerName::try_from("127.0.0.1").map_err(io::Error::other)?;
    let conn = rustls::ClientConnection::new(Arc::new(config), name).map_err(io::Error::other)?;
    let mut stream = rustls::StreamOwned::new(conn, tcp);
    while stream.conn.is_handshaking() {
        stream.conn.complete_io(&mut stream.sock)?;
    }
    Ok(Raw { stream })
}

impl Raw {
    /// Sends bytes (flushed).
    pub fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes)?;
        self.stream.flush()
    }

    /// Reads until the server closes the connection: what it sent and how
    /// long it took, or `None` if it is still open after `limit`.
    pub fn until_closed(&mut self, limit: Duration) -> Option<(Vec<u8>, Duration)> {
        let started = Instant::now();
        let mut got = Vec::new();
        let mut buf = [0u8; 16 * 1024];
        loop {
            let left = limit.checked_sub(started.elapsed())?;
            let _ = self.stream.sock.set_read_timeout(Some(left.max(Duration::from_millis(1))));
            match self.stream.read(&mut buf) {
                Ok(0) => return Some((got, started.elapsed())),
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                    if started.elapsed() >= limit {
                        return None;
                    }
                }
                // A reset or an unclean close is a close too.
                Err(_) => return Some((got, started.elapsed())),
            }
        }
    }

    /// Reads one HTTP/1.1 response (Content-Length or chunked): its status
    /// and body; `None` when the connection ends first or `limit` passes.
    pub fn response(&mut self, limit: Duration) -> Option<(u16, String)> {
        let started = Instant::now();
        let mut got: Vec<u8> = Vec::new();
        let mut buf = [0u8; 16 * 1024];
        loop {
            if let Some(parsed) = parse_response(&got) {
                return Some(parsed);
            }
            let left = limit.checked_sub(started.elapsed())?;
            let _ = self.stream.sock.set_read_timeout(Some(left.max(Duration::from_millis(1))));
            match self.stream.read(&mut buf) {
                Ok(0) => return None,
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {}
                Err(_) => return None,
            }
        }
    }
}

/// A whole HTTP/1.1 response in `bytes`, if there is one.
fn parse_response(bytes: &[u8]) -> Option<(u16, String)> {
    let end = bytes.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&bytes[..end]).to_string();
    let code: u16 = head.split_whitespace().nth(1)?.parse().ok()?;
    let rest = &bytes[end + 4..];
    let header = |name: &str| {
        head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    };
    if let Some(len) = header("content-length").and_then(|l| l.parse::<usize>().ok()) {
        return (rest.len() >= len).then(|| (code, String::from_utf8_lossy(&rest[..len]).into_owned()));
    }
    if header("transfer-encoding").is_some_and(|t| t.eq_ignore_ascii_case("chunked")) {
        let mut body = Vec::new();
        let mut at = 0;
        loop {
            let line_end = rest[at..].windows(2).position(|w| w == b"\r\n")? + at;
            let size = usize::from_str_radix(String::from_utf8_lossy(&rest[at..line_end]).trim(), 16).ok()?;
            let start = line_end + 2;
            if size == 0 {
                return Some((code, String::from_utf8_lossy(&body).into_owned()));
            }
            if rest.len() < start + size + 2 {
                return None;
            }
            body.extend_from_slice(&rest[start..start + size]);
            at = start + size + 2;
        }
    }
    Some((code, String::from_utf8_lossy(rest).into_owned()))
}
