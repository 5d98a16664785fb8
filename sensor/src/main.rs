//! The `tpr-sensor` binary: flags, the client, and the source, delivery and
//! metrics tasks, until SIGTERM or SIGINT.
#![forbid(unsafe_code)]

use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use kube::api::{Api, ApiResource, DynamicObject};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use sensor::change::Source;
use sensor::checkpoint::{self, Checkpoint};
use sensor::config::Flags;
use sensor::delivery::{Delivery, Retries};
use sensor::metrics::Metrics;
use sensor::sink::Sink;
use sensor::source::Watched;
use tokio::signal::unix::{signal, SignalKind};

#[tokio::main]
async fn main() -> ExitCode {
    let flags = Flags::parse();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()));
    if flags.log_format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
    match run(flags).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            ExitCode::FAILURE
        }
    }
}

async fn client(flags: &Flags) -> Result<Client, String> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let config = match &flags.kubeconfig {
        Some(path) => {
            let kc = Kubeconfig::read_from(path).map_err(|e| format!("{}: {e}", path.display()))?;
            Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await.map_err(|e| e.to_string())?
        }
        None => Config::infer().await.map_err(|e| e.to_string())?,
    };
    Client::try_from(config).map_err(|e| e.to_string())
}

/// The resource named by `--resource` (and `--api-version`), by discovery.
async fn resolve(client: &Client, flags: &Flags) -> Result<ApiResource, String> {
    let (plural, group) = flags.resource.split_once('.').unwrap_or((flags.resource.as_str(), ""));
    let found = kube::discovery::oneshot::group(client, group)
        .await
        .map_err(|e| format!("discovery of group {group:?}: {e}"))?;
    let resources = match &flags.api_version {
        Some(v) => found.versioned_resources(v),
        None => found.recommended_resources(),
    };
    resources
        .into_iter()
        .map(|(r, _)| r)
        .find(|r| r.plural == plural)
        .ok_or_else(|| format!("the server serves no resource {:?}", flags.resource))
}

fn sink(flags: &Flags) -> Result<Sink, String> {
    let url = flags.target.clone();
    Ok(match flags.sink.as_str() {
        "webhook" => Sink::Webhook(url),
        "cloudevents" => Sink::CloudEvents { url, structured: false },
        "cloudevents-structured" => Sink::CloudEvents { url, structured: true },
        "st2" => Sink::St2 {
            url,
            api_key: flags.st2_api_key.clone().ok_or("--sink st2 needs --st2-api-key (or ST2_API_KEY)")?,
            trigger: flags.st2_trigger.clone(),
        },
        _ => Sink::Exec(url),
    })
}

async fn run(flags: Flags) -> Result<(), String> {
    let sink = sink(&flags)?;
    let client = client(&flags).await?;
    let resource = resolve(&client, &flags).await?;
    let api: Api<DynamicObject> = match &flags.namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
        None => Api::all_with(client.clone(), &resource),
    };
    std::fs::create_dir_all(&flags.state_dir).map_err(|e| format!("{}: {e}", flags.state_dir.display()))?;
    let checkpoint_path = flags.state_dir.join("checkpoint.json");
    let name = format!("{}{}{}", resource.plural, if resource.group.is_empty() { "" } else { "." }, resource.group);
    let checkpoint = match checkpoint::load(&checkpoint_path).map_err(|e| e.to_string())? {
        Some(c) if c.resource == name => c,
        Some(c) => {
            tracing::warn!(was = c.resource, now = name, "the checkpoint is for another resource; starting over");
            Checkpoint { resource: name.clone(), ..Default::default() }
        }
        None => Checkpoint { resource: name.clone(), ..Default::default() },
    };
    tracing::info!(
        resource = name,
        revision = checkpoint.revision,
        known = checkpoint.delivered.known.len(),
        sink = flags.sink,
        "starting"
    );
    let metrics = Arc::new(Metrics::default());
    let listener = tokio::net::TcpListener::bind(flags.metrics_bind_address)
        .await
        .map_err(|e| format!("--metrics-bind-address {}: {e}", flags.metrics_bind_address))?;
    tracing::info!(address = %listener.local_addr().map_err(|e| e.to_string())?, "serving /metrics and /healthz");
    tokio::spawn(sensor::metrics::serve(listener, metrics.clone()));

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let (tx, rx) = tokio::sync::mpsc::channel(1024);
    let watched = Watched {
        api,
        labels: flags.selector.clone(),
        fields: flags.field_selector.clone(),
        resync: (!flags.resync.is_zero()).then_some(flags.resync),
    };
    let source = tokio::spawn(watched.run(
        checkpoint.delivered.clone(),
        checkpoint.revision,
        tx,
        metrics.clone(),
        stop_rx.clone(),
    ));
    let delivery = Delivery {
        sink,
        http: reqwest::Client::builder().build().map_err(|e| e.to_string())?,
        source: Source {
            group: resource.group.clone(),
            version: resource.version.clone(),
            kind: resource.kind.clone(),
            plural: resource.plural.clone(),
            server: client_url(&flags).await,
        },
        retries: Retries { max_attempts: flags.max_attempts.max(1), base: flags.retry_base, max: flags.retry_max },
        dead_letter: flags.state_dir.join("dead-letter.jsonl"),
        checkpoint_path,
        checkpoint,
        interval: flags.checkpoint_interval,
        metrics,
    };
    let delivering = tokio::spawn(delivery.run(rx, stop_rx));
    let mut term = signal(SignalKind::terminate()).map_err(|e| e.to_string())?;
    let mut int = signal(SignalKind::interrupt()).map_err(|e| e.to_string())?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    tracing::info!("stopping: finishing the delivery in flight, writing the checkpoint");
    let _ = stop_tx.send(true);
    let _ = source.await;
    let done = delivering.await.map_err(|e| e.to_string())?;
    tracing::info!(revision = done.revision, "stopped");
    Ok(())
}

/// The server's URL (CloudEvents `source`), from the kubeconfig.
async fn client_url(flags: &Flags) -> String {
    let config = match &flags.kubeconfig {
        Some(path) => match Kubeconfig::read_from(path) {
            Ok(kc) => Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await.ok(),
            Err(_) => None,
        },
        None => Config::infer().await.ok(),
    };
    config.map(|c| c.cluster_url.to_string().trim_end_matches('/').to_string()).unwrap_or_default()
}
