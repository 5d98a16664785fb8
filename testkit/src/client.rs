//! A small HTTP/2 client of a running server, for tests that drive load and
//! watch streams and must see every answer as it was sent (status, headers,
//! body), including when the server dies mid-request. It reconnects on the
//! next call after its connection broke.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::sync::Mutex;

use crate::Server;

/// An answer: status, `Retry-After` and body.
#[derive(Clone, Debug)]
pub struct Answer {
    /// The HTTP status code.
    pub code: u16,
    /// The `Retry-After` header, in seconds.
    pub retry_after: Option<u64>,
    /// The body.
    pub body: Bytes,
}

impl Answer {
    /// The body as JSON (`Null` when it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// A client of one server address (one HTTP/2 connection at a time).
pub struct ApiClient {
    addr: SocketAddr,
    tls: tokio_rustls::TlsConnector,
    token: String,
    conn: Mutex<Option<SendRequest<Full<Bytes>>>>,
}

impl ApiClient {
    /// A client of `server`, trusting the CA in its data dir, with its token.
    pub fn of(server: &Server) -> io::Result<ApiClient> {
        Self::new(server.url(), &server.data_dir().join("pki/ca.crt"), &server.token())
    }

    /// A client of `url` (`https://127.0.0.1:PORT`) trusting `ca_file`, sending `token`.
    pub fn new(url: &str, ca_file: &std::path::Path, token: &str) -> io::Result<ApiClient> {
        let addr: SocketAddr = url.trim_start_matches("https://").parse().map_err(io::Error::other)?;
        let ca = std::fs::read(ca_file)?;
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(&ca) {
            roots.add(cert.map_err(io::Error::other)?).map_err(io::Error::other)?;
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(io::Error::other)?
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(ApiClient {
            addr,
            tls: tokio_rustls::TlsConnector::from(Arc::new(config)),
            token: token.to_string(),
            conn: Mutex::new(None),
        })
    }

    async fn connect(&self) -> io::Result<SendRequest<Full<Bytes>>> {
        let tcp = tokio::net::TcpStream::connect(self.addr).await?;
        tcp.set_nodelay(true)?;
        let tls = self.tls.connect(ServerName::IpAddress(self.addr.ip().into()), tcp).await?;
        let (sender, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
            .initial_stream_window_size(1 << 20)
            .handshake(TokioIo::new(tls))
            .await
            .map_err(io::Error::other)?;
        tokio::spawn(conn);
        Ok(sender)
    }

    /// The open connection, or a new one.
    async fn sender(&self) -> io::Result<SendRequest<Full<Bytes>>> {
        let mut conn = self.conn.lock().await;
        if let Some(c) = conn.as_ref().filter(|c| !c.is_closed()) {
            return Ok(c.clone());
        }
        let c = self.connect().await?;
        *conn = Some(c.clone());
        Ok(c)
    }

    fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> io::Result<http::Request<Full<Bytes>>> {
        let body = body.map(|b| Bytes::from(b.to_string())).unwrap_or_default();
        http::Request::builder()
            .method(method)
            .uri(format!("https://{}{path}", self.addr))
            .header("authorization", format!("Bearer {}", self.token))
            .header("content-type", "application/json")
            .body(Full::new(body))
            .map_err(io::Error::other)
    }

    /// Sends a request and reads the whole answer. An error means no answer
    /// came (the connection failed or broke).
    pub async fn call(&self, method: &str, path: &str, body: Option<&serde_json::Value>) -> io::Result<Answer> {
        let mut sender = self.sender().await?;
        let resp = sender.send_request(self.request(method, path, body)?).await.map_err(io::Error::other)?;
        let code = resp.status().as_u16();
        let retry_after = resp.headers().get("retry-after").and_then(|v| v.to_str().ok()?.parse().ok());
        let body = resp.into_body().collect().await.map_err(io::Error::other)?.to_bytes();
        Ok(Answer { code, retry_after, body })
    }

    /// Opens a watch (`path` names `watch=true`): `Ok` with the stream on a
    /// 200, else the answer.
    pub async fn watch(&self, path: &str) -> io::Result<Result<WatchStream, Answer>> {
        let mut sender = self.sender().await?;
        let resp = sender.send_request(self.request("GET", path, None)?).await.map_err(io::Error::other)?;
        let code = resp.status().as_u16();
        if code != 200 {
            let retry_after = resp.headers().get("retry-after").and_then(|v| v.to_str().ok()?.parse().ok());
            let body = resp.into_body().collect().await.map_err(io::Error::other)?.to_bytes();
            return Ok(Err(Answer { code, retry_after, body }));
        }
        Ok(Ok(WatchStream { body: resp.into_body(), pending: Vec::new() }))
    }
}

/// The events of a watch, one JSON object per line.
pub struct WatchStream {
    body: hyper::body::Incoming,
    pending: Vec<u8>,
}

impl WatchStream {
    /// The next event; `Ok(None)` when the server ended the stream cleanly,
    /// an error when it broke.
    pub async fn next(&mut self) -> io::Result<Option<serde_json::Value>> {
        use hyper::body::Body;
        loop {
            if let Some(end) = self.pending.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.pending.drain(..=end).collect();
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                return serde_json::from_slice(&line).map(Some).map_err(io::Error::other);
            }
            let frame = std::future::poll_fn(|cx| std::pin::Pin::new(&mut self.body).poll_frame(cx)).await;
            match frame {
                None if self.pending.is_empty() => return Ok(None),
                None => return Err(io::Error::other("the stream ended inside an event")),
                Some(Err(e)) => return Err(io::Error::other(e)),
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.pending.extend_from_slice(&data);
                    }
                }
            }
        }
    }
}
