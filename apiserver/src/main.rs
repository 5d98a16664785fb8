//! The `tpr-apiserver` binary.
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::process::ExitCode;

use apiserver::{backend, flags::Flags, logging, server};
use clap::Parser;
use tokio::net::TcpListener;
use tokio::signal::unix::{signal, SignalKind};

#[tokio::main]
async fn main() -> ExitCode {
    let flags = Flags::parse();
    logging::init(flags.log_format == "json");
    match run(flags).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(flags: Flags) -> Result<(), String> {
    let store = backend::open(&flags).await.map_err(|e| format!("cannot open the store: {e}"))?;
    let addr = SocketAddr::new(flags.bind_address, flags.secure_port);
    let listener = TcpListener::bind(addr).await.map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    let mut term = signal(SignalKind::terminate()).map_err(|e| e.to_string())?;
    let mut int = signal(SignalKind::interrupt()).map_err(|e| e.to_string())?;
    let shutdown = async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        tracing::info!("shutting down");
    };
    let (stop_compactor, compactor_stopped) = tokio::sync::oneshot::channel::<()>();
    storage::spawn_compactor(store.clone(), backend::compaction_policy(&flags), async move {
        let _ = compactor_stopped.await;
    });
    let backend = if flags.etcd_servers.is_empty() { "embedded" } else { "etcd" };
    tracing::info!(url = %format!("http://{local}"), backend, "tpr-apiserver ready at http://{local}");
    server::serve(listener, store, shutdown).await.map_err(|e| e.to_string())?;
    let _ = stop_compactor.send(());
    Ok(())
}
