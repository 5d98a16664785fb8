//! The sensor's flags.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

/// `tpr-sensor`: delivers every change of one resource to a sink.
#[derive(Clone, Debug, Parser)]
#[command(name = "tpr-sensor", version, about)]
pub struct Flags {
    /// The resource: `<plural>.<group>` (`mysqldbs.prsn.io`), or `<plural>` of the core group (`namespaces`).
    #[arg(long)]
    pub resource: String,
    /// The version (default: the server's preferred one).
    #[arg(long)]
    pub api_version: Option<String>,
    /// One namespace (default: all).
    #[arg(long, short = 'n')]
    pub namespace: Option<String>,
    /// Label selector, e.g. `team=shop`.
    #[arg(long, short = 'l')]
    pub selector: Option<String>,
    /// Field selector, e.g. `metadata.name=orders`.
    #[arg(long)]
    pub field_selector: Option<String>,
    /// Kubeconfig (default: $KUBECONFIG, ~/.kube/config, or in-cluster).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// The sink: `webhook`, `cloudevents` (binary mode), `cloudevents-structured`, `st2` or `exec`.
    #[arg(long, value_parser = ["webhook", "cloudevents", "cloudevents-structured", "st2", "exec"])]
    pub sink: String,
    /// The receiver's URL, or the command for `exec` (run with `sh -c`).
    #[arg(long)]
    pub target: String,
    /// StackStorm API key (`St2-Api-Key`).
    #[arg(long, env = "ST2_API_KEY", hide_env_values = true)]
    pub st2_api_key: Option<String>,
    /// StackStorm trigger reference.
    #[arg(long, default_value = "tpr.resource_change")]
    pub st2_trigger: String,
    /// Where the checkpoint and the dead-letter file are kept.
    #[arg(long, default_value = "tpr-sensor")]
    pub state_dir: PathBuf,
    /// Attempts per change before it goes to the dead-letter file.
    #[arg(long, default_value_t = 10)]
    pub max_attempts: u32,
    /// The first retry pause (doubling, with jitter).
    #[arg(long, default_value = "100ms", value_parser = humantime::parse_duration)]
    pub retry_base: Duration,
    /// The longest retry pause.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub retry_max: Duration,
    /// Deliver the whole current state this often (`0s`: never).
    #[arg(long, default_value = "0s", value_parser = humantime::parse_duration)]
    pub resync: Duration,
    /// How often the checkpoint is written at most (and always at exit).
    #[arg(long, default_value = "200ms", value_parser = humantime::parse_duration)]
    pub checkpoint_interval: Duration,
    /// `/metrics` and `/healthz` (port 0: a free one, logged).
    #[arg(long, default_value = "127.0.0.1:9464")]
    pub metrics_bind_address: std::net::SocketAddr,
    /// Log format: `text` or `json`.
    #[arg(long, default_value = "text", value_parser = ["text", "json"])]
    pub log_format: String,
}
