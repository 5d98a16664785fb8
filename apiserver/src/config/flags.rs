//! Command-line flags, named like kube-apiserver's.

use std::net::IpAddr;
use std::path::PathBuf;

use clap::Parser;

/// tpr-apiserver: ThirdPartyResources as an aggregated API server.
#[derive(Clone, Debug, Parser)]
#[command(
    name = "tpr-apiserver",
    version,
    about = "ThirdPartyResources as a Kubernetes API server: alone with an embedded store, or behind kube-aggregator on etcd."
)]
pub struct Flags {
    /// A command instead of serving (`export`).
    #[command(subcommand)]
    pub command: Option<Command>,
    /// The address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub bind_address: IpAddr,
    /// The port to listen on; 0 picks a free one (logged when ready).
    #[arg(long, default_value_t = 8443)]
    pub secure_port: u16,
    /// Where the embedded store, the generated serving certificate (`pki/`), the
    /// admin token and the kubeconfig live (relative to the current directory).
    #[arg(long, default_value = "tpr-data")]
    pub data_dir: PathBuf,
    /// etcd client URLs, comma-separated; when empty, the embedded store is used.
    #[arg(long, value_delimiter = ',')]
    pub etcd_servers: Vec<String>,
    /// The prefix of every key in the store.
    #[arg(long, default_value = "/registry")]
    pub etcd_prefix: String,
    /// CA bundle that signed etcd's serving certificate.
    #[arg(long)]
    pub etcd_cafile: Option<PathBuf>,
    /// Client certificate for etcd.
    #[arg(long)]
    pub etcd_certfile: Option<PathBuf>,
    /// Key of the etcd client certificate.
    #[arg(long)]
    pub etcd_keyfile: Option<PathBuf>,
    /// Serving certificate (PEM); with --tls-private-key-file. Generated when absent.
    #[arg(long)]
    pub tls_cert_file: Option<PathBuf>,
    /// Key of the serving certificate.
    #[arg(long)]
    pub tls_private_key_file: Option<PathBuf>,
    /// CA bundle for client certificates (CN = user, O = groups).
    #[arg(long)]
    pub client_ca_file: Option<PathBuf>,
    /// CA bundle of the front proxy (kube-aggregator): a connection whose client
    /// certificate it signed may name the user in request headers.
    #[arg(long)]
    pub requestheader_client_ca_file: Option<PathBuf>,
    /// Common names the front proxy's certificate may have (comma-separated; empty: any).
    #[arg(long, value_delimiter = ',')]
    pub requestheader_allowed_names: Vec<String>,
    /// Headers naming the user, first present wins.
    #[arg(long, value_delimiter = ',', default_value = "X-Remote-User")]
    pub requestheader_username_headers: Vec<String>,
    /// Headers naming the groups (every value).
    #[arg(long, value_delimiter = ',', default_value = "X-Remote-Group")]
    pub requestheader_group_headers: Vec<String>,
    /// Prefixes of headers carrying extra user information.
    #[arg(long, value_delimiter = ',', default_value = "X-Remote-Extra-")]
    pub requestheader_extra_headers_prefix: Vec<String>,
    /// Kubeconfig of the host cluster for TokenReviews of bearer tokens this server does not know.
    #[arg(long)]
    pub authentication_kubeconfig: Option<PathBuf>,
    /// Kubeconfig of the host cluster for SubjectAccessReviews (`--authorization-mode=Webhook`).
    #[arg(long)]
    pub authorization_kubeconfig: Option<PathBuf>,
    /// Authorization: `AlwaysAllow`, `Policy` (rules from --authorization-policy-file) or
    /// `Webhook` (SubjectAccessReviews with --authorization-kubeconfig).
    #[arg(long, default_value = "AlwaysAllow")]
    pub authorization_mode: String,
    /// The rules of `--authorization-mode=Policy`: YAML `rules:` of users or groups →
    /// verbs on apiGroups, resources and namespaces, or on nonResourcePaths (README, "Flags").
    #[arg(long)]
    pub authorization_policy_file: Option<PathBuf>,
    /// Keep an APIService in the host cluster for every served group-version.
    #[arg(long)]
    pub register_apiservices: bool,
    /// Kubeconfig of the host cluster for APIService registration (default: in-cluster).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// Namespace of this server's Service (APIService `spec.service`).
    #[arg(long, default_value = "tpr-system")]
    pub apiservice_service_namespace: String,
    /// Name of this server's Service.
    #[arg(long, default_value = "tpr-apiserver")]
    pub apiservice_service_name: String,
    /// Port of this server's Service.
    #[arg(long, default_value_t = 443)]
    pub apiservice_service_port: u16,
    /// CA bundle for the APIServices (default: the CA of the generated serving certificate).
    #[arg(long)]
    pub apiservice_ca_file: Option<PathBuf>,
    /// Append one JSON line per request to this file (the audit log).
    #[arg(long)]
    pub audit_log_path: Option<PathBuf>,
    /// Bearer tokens: CSV lines `token,user,uid[,"group1,group2"]`.
    #[arg(long)]
    pub token_auth_file: Option<PathBuf>,
    /// How often to compact store history, e.g. `5m`, `30s`; `0` disables.
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    pub etcd_compaction_interval: std::time::Duration,
    /// A request that is not a watch is answered within this (504 after); its
    /// body must arrive within it (408).
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub request_timeout: std::time::Duration,
    /// The TLS handshake and the first request's headers (HTTP/1.1: each
    /// request's headers) must arrive within this.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub request_header_timeout: std::time::Duration,
    /// A connection with no request in flight for this long is closed.
    #[arg(long, default_value = "90s", value_parser = parse_duration)]
    pub idle_connection_timeout: std::time::Duration,
    /// Most requests in flight that change nothing (watches aside); more get 429. 0: no limit.
    #[arg(long, default_value_t = 400)]
    pub max_requests_inflight: usize,
    /// Most writes in flight; more get 429. 0: no limit.
    #[arg(long, default_value_t = 200)]
    pub max_mutating_requests_inflight: usize,
    /// On SIGTERM, keep serving (with /readyz failing) this long before
    /// stopping, so that load balancers stop sending first.
    #[arg(long, default_value = "0s", value_parser = parse_duration)]
    pub shutdown_delay_duration: std::time::Duration,
    /// Most watches open at once; more get 429 TooManyRequests.
    #[arg(long, default_value_t = 50_000)]
    pub max_watches: usize,
    /// Serve kube-apiserver's types a standalone server needs (v1 namespaces,
    /// events, configmaps, secrets; events.k8s.io events; coordination.k8s.io
    /// leases; authorization.k8s.io self-subject reviews) and enforce the
    /// namespace lifecycle: `auto` (when no host cluster is configured: no
    /// front proxy, delegation or APIService registration), `true`, `false`.
    #[arg(long, default_value = "auto", value_parser = ["auto", "true", "false"])]
    pub builtin_types: String,
    /// How long an Event is kept after it was last written.
    #[arg(long, default_value = "1h", value_parser = parse_duration)]
    pub event_ttl: std::time::Duration,
    /// Log format: `text` or `json`.
    #[arg(long, default_value = "text", value_parser = ["text", "json"])]
    pub log_format: String,
}

/// What `tpr-apiserver <command>` does instead of serving.
#[derive(Clone, Debug, clap::Subcommand)]
pub enum Command {
    /// Writes the CustomResourceDefinition of every stored ThirdPartyResource
    /// (or of the ones named) as YAML, read through the API; with
    /// `--objects`, their objects instead, ready for `kubectl apply` where
    /// those CRDs exist.
    Export(ExportArgs),
}

/// `tpr-apiserver export`.
#[derive(Clone, Debug, clap::Args)]
pub struct ExportArgs {
    /// The ThirdPartyResources to export (default: all).
    pub names: Vec<String>,
    /// Write the objects (apiVersion rewritten to the CRD's storage version,
    /// server-owned metadata stripped) instead of the CRDs.
    #[arg(long)]
    pub objects: bool,
    /// The server to read (default: `<data-dir>/kubeconfig`, the standalone server's).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
}

impl Flags {
    /// True when kube-apiserver's types are served (see `--builtin-types`):
    /// behind kube-aggregator the host cluster serves them.
    pub fn serves_builtins(&self) -> bool {
        match self.builtin_types.as_str() {
            "true" => true,
            "false" => false,
            _ => {
                self.requestheader_client_ca_file.is_none()
                    && self.authentication_kubeconfig.is_none()
                    && self.authorization_kubeconfig.is_none()
                    && !self.register_apiservices
            }
        }
    }

    /// True for the standalone default: a generated serving certificate and
    /// no host cluster (no front proxy, delegation or APIService
    /// registration). Only then does the server make an admin token.
    pub fn standalone(&self) -> bool {
        self.tls_cert_file.is_none()
            && self.requestheader_client_ca_file.is_none()
            && self.authentication_kubeconfig.is_none()
            && self.authorization_kubeconfig.is_none()
            && !self.register_apiservices
    }
}

/// Parses `300ms`, `30s`, `5m`, `1h` or a number of seconds.
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let s = s.trim();
    if s == "0" {
        return Ok(std::time::Duration::ZERO);
    }
    // Go's form, as kube's flags take it: numbers with units, e.g. 90s, 1m30s, 250ms.
    let mut rest = s;
    let mut total = std::time::Duration::ZERO;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        let n: u64 = rest[..digits]
            .parse()
            .map_err(|_| format!("invalid duration {s:?}: expected e.g. 90s, 5m, 1h30m, 250ms"))?;
        rest = &rest[digits..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
        let (unit, after) = rest.split_at(unit_len);
        let step = match unit {
            "ms" => std::time::Duration::from_millis(n),
            "s" => std::time::Duration::from_secs(n),
            "m" => std::time::Duration::from_secs(n.saturating_mul(60)),
            "h" => std::time::Duration::from_secs(n.saturating_mul(3600)),
            "" => return Err(format!("invalid duration {s:?}: a unit is needed (ms, s, m or h), e.g. {n}s")),
            _ => return Err(format!("invalid duration unit {unit:?} in {s:?}: use ms, s, m or h")),
        };
        total = total.saturating_add(step);
        rest = after;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_durations_like_kube_flags() {
        assert_eq!(parse_duration("5m"), Ok(std::time::Duration::from_secs(300)));
        assert_eq!(parse_duration("250ms"), Ok(std::time::Duration::from_millis(250)));
        assert_eq!(parse_duration("0"), Ok(std::time::Duration::ZERO));
        assert_eq!(parse_duration("1m30s"), Ok(std::time::Duration::from_secs(90)));
        assert!(parse_duration("5x").is_err());
        let e = parse_duration("5").unwrap_err();
        assert!(e.contains("a unit is needed"), "{e}");
        assert!(parse_duration("").is_err() || parse_duration("").is_ok_and(|d| d.is_zero()));
    }

    #[test]
    fn defaults_use_the_embedded_store_on_loopback() {
        let f = Flags::parse_from(["tpr-apiserver"]);
        assert!(f.etcd_servers.is_empty());
        assert_eq!(f.secure_port, 8443);
        assert_eq!(f.bind_address.to_string(), "127.0.0.1");
        let f = Flags::parse_from(["tpr-apiserver", "--etcd-servers", "http://127.0.0.1:1,http://127.0.0.1:2"]);
        assert_eq!(f.etcd_servers.len(), 2);
    }
}
