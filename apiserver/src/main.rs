//! The `tpr-apiserver` binary.
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use apiserver::app::App;
use apiserver::auth::authn::Authenticator;
use apiserver::config::{backend, flags::Flags, kubeconfig, logging};
use apiserver::served::ServedTypes;
use apiserver::server;
use apiserver::server::tls::ServingCerts;
use apiserver::tpr::Controller;
use clap::Parser;
use tokio::net::TcpListener;
use tokio::signal::unix::{signal, SignalKind};

/// mimalloc: the server allocates many small, short-lived buffers per request
/// and per watch event; glibc's malloc took about a tenth of its time.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let flags = Flags::parse();
    logging::init(flags.log_format == "json");
    if let Some(apiserver::config::flags::Command::Export(args)) = &flags.command {
        let kubeconfig = args.kubeconfig.clone().unwrap_or_else(|| flags.data_dir.join("kubeconfig"));
        return match apiserver::export::run(args, &kubeconfig).await {
            Ok(yaml) => {
                print!("{yaml}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                tracing::error!("export: {e}");
                ExitCode::FAILURE
            }
        };
    }
    match run(flags).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(flags: Flags) -> Result<(), String> {
    std::fs::create_dir_all(&flags.data_dir).map_err(|e| format!("{}: {e}", flags.data_dir.display()))?;
    // One server per data directory: a second one exits here, touching nothing.
    let _lock = apiserver::config::files::lock_dir(&flags.data_dir)?;
    // As Go does: the soft file-descriptor limit up to the hard one.
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) => tracing::debug!(limit = n, "open files limit"),
        Err(e) => tracing::warn!(error = %e, "cannot raise the open files limit"),
    }
    let store = backend::open(&flags).await.map_err(|e| format!("cannot open the store: {e}"))?;
    let metrics = apiserver::observe::Metrics::default();
    let store: Arc<dyn storage::Store> =
        Arc::new(apiserver::observe::store_metrics::InstrumentedStore::new(store, metrics.store.clone()));
    let certs = match (&flags.tls_cert_file, &flags.tls_private_key_file) {
        (Some(c), Some(k)) => ServingCerts::load(c, k),
        (None, None) => ServingCerts::load_or_generate(&flags.data_dir, flags.bind_address),
        _ => return Err("--tls-cert-file and --tls-private-key-file must be given together".into()),
    }
    .map_err(|e| e.to_string())?;
    // kube's rustls client (delegation to the host cluster) uses the process-wide provider.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let authn_host = match &flags.authentication_kubeconfig {
        Some(path) => Some(
            apiserver::aggregation::delegated::HostClient::from_kubeconfig(path).await.map_err(|e| e.to_string())?,
        ),
        None => None,
    };
    let mut client_ca = flags.client_ca_file.clone();
    let mut requestheader_ca = flags.requestheader_client_ca_file.clone();
    let mut request_headers = apiserver::auth::authn::RequestHeaders {
        username: flags.requestheader_username_headers.clone(),
        group: flags.requestheader_group_headers.clone(),
        extra_prefix: flags.requestheader_extra_headers_prefix.clone(),
    };
    let mut allowed_names = flags.requestheader_allowed_names.clone();
    // Without the request-header flags, use what the host cluster publishes, as kube's aggregated servers do.
    if let (Some(host), None) = (&authn_host, &requestheader_ca) {
        match host.extension_apiserver_authentication().await {
            Ok(Some(ext)) => {
                let pki = flags.data_dir.join("pki");
                std::fs::create_dir_all(&pki).map_err(|e| format!("{}: {e}", pki.display()))?;
                if let Some(pem) = &ext.requestheader_ca {
                    let path = pki.join("requestheader-ca.crt");
                    std::fs::write(&path, pem).map_err(|e| format!("{}: {e}", path.display()))?;
                    requestheader_ca = Some(path);
                    allowed_names = ext.allowed_names.clone();
                    request_headers.username = ext.username_headers.clone().unwrap_or(request_headers.username);
                    request_headers.group = ext.group_headers.clone().unwrap_or(request_headers.group);
                    request_headers.extra_prefix =
                        ext.extra_headers_prefix.clone().unwrap_or(request_headers.extra_prefix);
                }
                if let (Some(pem), None) = (&ext.client_ca, &client_ca) {
                    let path = pki.join("host-client-ca.crt");
                    std::fs::write(&path, pem).map_err(|e| format!("{}: {e}", path.display()))?;
                    client_ca = Some(path);
                }
                tracing::info!("front-proxy settings read from kube-system/extension-apiserver-authentication");
            }
            Ok(None) => tracing::warn!("kube-system/extension-apiserver-authentication not found"),
            Err(e) => tracing::warn!(error = %e, "cannot read kube-system/extension-apiserver-authentication"),
        }
    }
    let (tls, peers) = certs
        .server_config(client_ca.as_deref(), requestheader_ca.as_deref(), &allowed_names)
        .map_err(|e| e.to_string())?;
    // The admin token exists only for the standalone default (see README).
    let admin_dir = flags.standalone().then_some(flags.data_dir.as_path());
    let (authn, admin_token) =
        Authenticator::load(flags.token_auth_file.as_deref(), admin_dir).map_err(|e| e.to_string())?;

    let webhook = match &flags.authorization_kubeconfig {
        Some(path) => Some(Arc::new(apiserver::aggregation::delegated::AccessReviewer::new(
            apiserver::aggregation::delegated::HostClient::from_kubeconfig(path).await.map_err(|e| e.to_string())?,
        ))),
        None => None,
    };
    let token_reviewer = authn_host.map(apiserver::aggregation::delegated::TokenReviewer::new);
    let authz = apiserver::auth::authz::Authorizer::from_flags(
        &flags.authorization_mode,
        flags.authorization_policy_file.as_deref(),
        webhook,
    )
    .map_err(|e| e.to_string())?;
    let audit = match &flags.audit_log_path {
        Some(path) => {
            Some(apiserver::observe::AuditLog::open(path).map_err(|e| format!("audit log {}: {e}", path.display()))?)
        }
        None => None,
    };
    let served = Arc::new(ServedTypes::default());
    if flags.serves_builtins() {
        apiserver::builtin::serve(&store, &served).map_err(|e| e.to_string())?;
    }
    let controller = Controller::new(store.clone(), served.clone()).map_err(|e| e.to_string())?;
    tokio::spawn(controller.clone().run());
    if served.builtins() {
        let synced = controller.clone();
        tokio::spawn(apiserver::builtin::namespaces::run(store.clone(), served.clone(), async move {
            synced.wait_synced().await
        }));
        if let Some(events) = served.get("", "events") {
            tokio::spawn(apiserver::builtin::events::expire(store.clone(), events, flags.event_ttl));
        }
        tracing::info!("serving namespaces, events, leases, configmaps, secrets and self-subject reviews (standalone)");
    }
    // Serve the stored TPRs' types from the first request when the store
    // answers; when it does not (etcd down at start), serve anyway: /readyz
    // fails and resource requests answer 503 until they are loaded.
    // The system namespaces too, in the same wait (see `namespaces::ensure_system`).
    let wait = std::time::Duration::from_secs(5);
    let (loaded, _) = tokio::join!(
        tokio::time::timeout(wait, controller.wait_synced()),
        tokio::time::timeout(wait, apiserver::builtin::namespaces::ensure_system(&store, &served))
    );
    if loaded.is_err() {
        let why = match store.current_revision().await {
            Ok(_) => "the store answers; still loading".to_string(),
            Err(e) => e.to_string(),
        };
        tracing::warn!(backend = ?flags.etcd_servers, "the stored ThirdPartyResources are not loaded yet ({why}); serving, not ready, retrying");
    }
    let addr = SocketAddr::new(flags.bind_address, flags.secure_port);
    let listener = TcpListener::bind(addr).await.map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    let mut local = listener.local_addr().map_err(|e| e.to_string())?;
    if local.ip().is_unspecified() {
        local.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let url = format!("https://{local}");
    let kubeconfig_path = flags.data_dir.join("kubeconfig");
    if let Some(token) = &admin_token {
        kubeconfig::write(&kubeconfig_path, &url, &certs.ca_pem, token)
            .map_err(|e| format!("{}: {e}", kubeconfig_path.display()))?;
    }

    if flags.register_apiservices {
        let client = match &flags.kubeconfig {
            Some(path) => {
                apiserver::aggregation::delegated::HostClient::from_kubeconfig(path).await.map(|h| h.client())
            }
            None => kube::Client::try_default().await.map_err(|e| {
                apiserver::aggregation::delegated::DelegationError::Config {
                    path: "in-cluster".into(),
                    message: e.to_string(),
                }
            }),
        }
        .map_err(|e| format!("--register-apiservices: {e}"))?;
        let ca_pem = match &flags.apiservice_ca_file {
            Some(path) => std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?,
            None => certs.ca_pem.clone(),
        };
        let service = apiserver::aggregation::apiservices::ServiceRef {
            namespace: flags.apiservice_service_namespace.clone(),
            name: flags.apiservice_service_name.clone(),
            port: flags.apiservice_service_port,
            ca_pem,
        };
        tokio::spawn(apiserver::aggregation::apiservices::run(client, controller.tpr_type().clone(), service));
    }
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let (draining_tx, draining_rx) = tokio::sync::watch::channel(false);
    let app = Arc::new(App {
        store: store.clone(),
        served,
        controller,
        authn,
        shutdown: stop_rx,
        watches: Default::default(),
        max_watches: flags.max_watches,
        request_headers,
        authz,
        metrics,
        audit,
        token_reviewer,
        draining: draining_rx,
        inflight: Arc::new(apiserver::app::InFlight::new(
            flags.max_requests_inflight,
            flags.max_mutating_requests_inflight,
        )),
        request_timeout: flags.request_timeout,
        panic_path: std::env::var("TPR_APISERVER_TEST_PANIC_PATH").ok(),
    });
    let mut term = signal(SignalKind::terminate()).map_err(|e| e.to_string())?;
    let mut int = signal(SignalKind::interrupt()).map_err(|e| e.to_string())?;
    let delay = flags.shutdown_delay_duration;
    let shutdown = async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        tracing::info!("shutting down: not ready from now, serving for {delay:?} more");
        let _ = draining_tx.send(true);
        tokio::time::sleep(delay).await;
    };
    let mut compactor_stop = app.shutdown.clone();
    storage::spawn_compactor(store, backend::compaction_policy(&flags), async move {
        let _ = compactor_stop.changed().await;
    });
    let backend = if flags.etcd_servers.is_empty() { "embedded" } else { "etcd" };
    match admin_token {
        Some(_) => {
            tracing::info!(backend, address = %local.ip(), port = local.port(), kubeconfig = %kubeconfig_path.display(), "tpr-apiserver ready at {url} (kubeconfig: {})", kubeconfig_path.display())
        }
        None => {
            tracing::info!(backend, address = %local.ip(), port = local.port(), "tpr-apiserver ready at {url} (no admin token: not standalone)")
        }
    }
    let timeouts = server::Timeouts {
        header: flags.request_header_timeout,
        idle: flags.idle_connection_timeout,
        request: flags.request_timeout,
    };
    let stopping = server::Stopping { end_watches: stop_tx };
    server::serve(listener, tls, Arc::new(peers), app, timeouts, shutdown, stopping).await.map_err(|e| e.to_string())
}
