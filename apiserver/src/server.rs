//! The accept loop: TLS (HTTP/1.1 and HTTP/2 by ALPN), the client
//! certificate's user, then [`crate::handlers::handle`]. Shutdown is passed in
//! as a future: when it resolves, the listener closes, in-flight requests
//! finish, and `serve` returns.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::batched_io::{batched, drive};
use crate::handlers::{handle, App};
use crate::tls::PeerClassifier;

/// How long in-flight requests may take to finish after shutdown begins.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
/// A client must finish the TLS handshake, and send its headers, within this.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest request header block.
const MAX_HEADER_BYTES: usize = 64 * 1024;

/// Serves HTTPS until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    peers: Arc<PeerClassifier>,
    app: Arc<App>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let graceful = GracefulShutdown::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HANDSHAKE_TIMEOUT)
        .max_buf_size(MAX_HEADER_BYTES.max(8192));
    builder.http2().timer(TokioTimer::new()).max_header_list_size(MAX_HEADER_BYTES as u32).max_concurrent_streams(1000);
    let acceptor = TlsAcceptor::from(tls);
    tokio::pin!(shutdown);
    loop {
        let (stream, _peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let (app, acceptor, builder, graceful_watcher, peers) =
            (app.clone(), acceptor.clone(), builder.clone(), graceful.watcher(), peers.clone());
        // The handshake runs in the connection's own task, so that a slow client
        // cannot hold up the accept loop.
        tokio::spawn(async move {
            let Ok(Ok(tls_stream)) = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await else {
                return;
            };
            let peer = peers.classify(tls_stream.get_ref().1.peer_certificates());
            let service = hyper::service::service_fn(move |req| {
                let (app, peer) = (app.clone(), peer.clone());
                async move { Ok::<_, Infallible>(handle(app, req, peer).await) }
            });
            let (io, io_handle) = batched(tls_stream);
            let conn = graceful_watcher.watch(builder.serve_connection(TokioIo::new(io), service));
            if let Err(e) = drive(conn, io_handle).await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown()).await.is_err() {
        tracing::warn!("in-flight requests did not finish within {DRAIN_TIMEOUT:?}");
    }
    Ok(())
}
