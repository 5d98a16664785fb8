//! The etcd backend, on the `etcd-client` crate.
//!
//! Conditional writes are etcd transactions: create compares the key's
//! create revision with 0, conditional update and delete compare its mod
//! revision; the else branch reads the key, so the loser of a race gets the
//! current value back.

use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use etcd_client::{
    Certificate, Client, CompactionOptions, Compare, CompareOp, ConnectOptions, DeleteOptions, EventType, GetOptions,
    Identity, KvClient, PutOptions, TlsOptions, Txn, TxnOp, TxnOpResponse, WatchClient, WatchOptions,
};
use tokio::task::JoinSet;

use crate::error::{with_deadline, Result, StorageError};
use crate::keys::{prefix_end, KeySpace};
use crate::store::{Store, WatchSender, WatchStream};
use crate::types::{Deleted, Event, KeyValue, RangeRequest, RangeResponse, Revision, WatchMessage};

/// How to reach etcd.
#[derive(Clone, Debug)]
pub struct EtcdConfig {
    /// Client URLs, e.g. `http://127.0.0.1:2379`.
    pub endpoints: Vec<String>,
    /// Every key lives under this prefix (default `/registry`).
    pub prefix: String,
    /// CA bundle that signed etcd's serving certificate.
    pub ca_file: Option<PathBuf>,
    /// Client certificate for mutual TLS.
    pub cert_file: Option<PathBuf>,
    /// Key of the client certificate.
    pub key_file: Option<PathBuf>,
    /// Deadline of every call.
    pub request_timeout: Duration,
    /// Deadline of establishing a connection.
    pub dial_timeout: Duration,
    /// Largest gRPC message accepted (ranges of tens of MB need more than 4 MiB).
    pub max_message_size: usize,
}

impl Default for EtcdConfig {
    fn default() -> Self {
        EtcdConfig {
            endpoints: vec!["http://127.0.0.1:2379".into()],
            prefix: "/registry".into(),
            ca_file: None,
            cert_file: None,
            key_file: None,
            request_timeout: Duration::from_secs(10),
            dial_timeout: Duration::from_secs(2),
            max_message_size: 256 << 20,
        }
    }
}

/// A [`Store`] on an etcd cluster.
#[derive(Clone)]
pub struct EtcdStore {
    kv: KvClient,
    watch: WatchClient,
    keys: KeySpace,
    timeout: Duration,
    /// Whether etcd answers progress requests correctly (see [`Store::progress_on_request`]).
    reliable_progress: bool,
}

/// How many deletes of a prefix delete are in flight at once.
const DELETE_PARALLELISM: usize = 32;
/// Page size of a prefix delete.
const DELETE_PAGE: i64 = 1000;

impl EtcdStore {
    /// Connects to etcd. The connection is re-established by itself after
    /// etcd restarts; calls made meanwhile fail with `Unavailable`.
    pub async fn connect(cfg: &EtcdConfig) -> Result<Self> {
        let mut opts = ConnectOptions::new()
            .with_connect_timeout(cfg.dial_timeout)
            .with_timeout(cfg.request_timeout)
            .with_keep_alive(Duration::from_secs(5), Duration::from_secs(5))
            .with_keep_alive_while_idle(true);
        if cfg.ca_file.is_some() || cfg.cert_file.is_some() {
            opts = opts.with_tls(tls_options(cfg)?);
        }
        let endpoints: Vec<String> =
            cfg.endpoints.iter().map(|e| e.trim().to_string()).filter(|e| !e.is_empty()).collect();
        if endpoints.is_empty() {
            return Err(StorageError::Unavailable("no etcd endpoints configured".into()));
        }
        let client = with_deadline(cfg.dial_timeout + cfg.request_timeout, async {
            Client::connect(&endpoints, Some(opts)).await.map_err(map_err)
        })
        .await?;
        let mut maintenance = client.maintenance_client();
        let status =
            with_deadline(cfg.request_timeout, async move { maintenance.status().await.map_err(map_err) }).await?;
        let reliable_progress = progress_requests_are_reliable(status.version());
        if !reliable_progress {
            tracing::info!(
                version = status.version(),
                "etcd answers progress requests out of order before 3.4.31/3.5.13; using periodic progress notifications"
            );
        }
        Ok(EtcdStore {
            reliable_progress,
            kv: client
                .kv_client()
                .max_decoding_message_size(cfg.max_message_size)
                .max_encoding_message_size(cfg.max_message_size),
            watch: client.watch_client().max_decoding_message_size(cfg.max_message_size),
            keys: KeySpace::new(&cfg.prefix),
            timeout: cfg.request_timeout,
        })
    }

    async fn txn(&self, txn: Txn) -> Result<etcd_client::TxnResponse> {
        let mut kv = self.kv.clone();
        with_deadline(self.timeout, async move { kv.txn(txn).await.map_err(map_err) }).await
    }

    /// The conditional delete/update else-branch outcome: NotFound or Conflict.
    fn lost_race(key: &str, expected: Revision, resp: &etcd_client::TxnResponse) -> StorageError {
        match first_get_kv(resp) {
            Some(current) => StorageError::Conflict { expected, current: Box::new(current) },
            None => StorageError::NotFound { key: key.to_string() },
        }
    }
}

/// etcd fixed progress responses overtaking events in 3.4.31 and 3.5.13.
fn progress_requests_are_reliable(version: &str) -> bool {
    let parts: Vec<u64> = version.split(['.', '-', '+']).take(3).filter_map(|p| p.parse().ok()).collect();
    match parts.as_slice() {
        [3, 4, patch] => *patch >= 31,
        [3, 5, patch] => *patch >= 13,
        [3, minor, _] => *minor > 5,
        [major, ..] => *major > 3,
        _ => false,
    }
}

fn tls_options(cfg: &EtcdConfig) -> Result<TlsOptions> {
    let read = |p: &PathBuf| {
        std::fs::read(p).map_err(|e| StorageError::Unavailable(format!("cannot read {}: {e}", p.display())))
    };
    let mut tls = TlsOptions::new();
    if let Some(ca) = &cfg.ca_file {
        tls = tls.ca_certificate(Certificate::from_pem(read(ca)?));
    }
    match (&cfg.cert_file, &cfg.key_file) {
        (Some(cert), Some(key)) => tls = tls.identity(Identity::from_pem(read(cert)?, read(key)?)),
        (None, None) => {}
        _ => return Err(StorageError::Unavailable("--etcd-certfile and --etcd-keyfile must be given together".into())),
    }
    Ok(tls)
}

/// Maps an etcd-client error to the storage error a caller can act on.
fn map_err(e: etcd_client::Error) -> StorageError {
    use etcd_client::Error as E;
    match e {
        E::GRpcStatus(s) => match s.code() {
            tonic_code::Unavailable | tonic_code::Cancelled | tonic_code::Unknown | tonic_code::Aborted => {
                StorageError::Unavailable(s.message().to_string())
            }
            tonic_code::DeadlineExceeded => StorageError::Unavailable(format!("deadline exceeded: {}", s.message())),
            _ => StorageError::Internal(format!("etcd: {:?}: {}", s.code(), s.message())),
        },
        E::TransportError(t) => StorageError::Unavailable(t.to_string()),
        E::IoError(io) => StorageError::Unavailable(io.to_string()),
        E::WatchError(w) => StorageError::Unavailable(w),
        other => StorageError::Internal(other.to_string()),
    }
}

use tonic::Code as tonic_code;

fn is_out_of_range(e: &etcd_client::Error, needle: &str) -> bool {
    matches!(e, etcd_client::Error::GRpcStatus(s) if s.message().contains(needle))
}

fn convert(kv: &etcd_client::KeyValue) -> Result<KeyValue> {
    let key = kv.key_str().map_err(|_| StorageError::Internal("etcd returned a key that is not UTF-8".into()))?;
    Ok(KeyValue {
        key: key.to_string(),
        value: Bytes::copy_from_slice(kv.value()),
        create_revision: kv.create_revision(),
        mod_revision: kv.mod_revision(),
    })
}

fn header_revision(h: Option<&etcd_client::ResponseHeader>) -> Revision {
    h.map(|h| h.revision()).unwrap_or(0)
}

fn first_get_kv(resp: &etcd_client::TxnResponse) -> Option<KeyValue> {
    resp.op_responses().into_iter().find_map(|op| match op {
        TxnOpResponse::Get(g) => g.kvs().first().and_then(|kv| convert(kv).ok()),
        _ => None,
    })
}

fn prev_kv_of(resp: &etcd_client::TxnResponse) -> Option<KeyValue> {
    resp.op_responses().into_iter().find_map(|op| match op {
        TxnOpResponse::Put(p) => p.prev_key().and_then(|kv| convert(kv).ok()),
        TxnOpResponse::Delete(d) => d.prev_kvs().first().and_then(|kv| convert(kv).ok()),
        _ => None,
    })
}

#[async_trait]
impl Store for EtcdStore {
    fn prefix(&self) -> &str {
        self.keys.root()
    }

    fn progress_on_request(&self) -> bool {
        self.reliable_progress
    }

    async fn current_revision(&self) -> Result<Revision> {
        let mut kv = self.kv.clone();
        let root = self.keys.root().to_string();
        let resp = with_deadline(self.timeout, async move {
            kv.get(root, Some(GetOptions::new().with_count_only())).await.map_err(map_err)
        })
        .await?;
        Ok(header_revision(resp.header()))
    }

    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        self.keys.check_key(key)?;
        let mut kv = self.kv.clone();
        let k = key.to_string();
        let resp = with_deadline(self.timeout, async move { kv.get(k, None).await.map_err(map_err) }).await?;
        resp.kvs().first().map(convert).transpose()
    }

    async fn range(&self, req: &RangeRequest) -> Result<RangeResponse> {
        self.keys.check_prefix(&req.prefix)?;
        let start = match &req.start {
            Some(s) if !s.starts_with(&req.prefix) => {
                return Err(StorageError::invalid(
                    s,
                    format!("the start key is outside the range prefix {:?}", req.prefix),
                ))
            }
            Some(s) => s.clone(),
            None => req.prefix.clone(),
        };
        let mut opts = GetOptions::new().with_range(prefix_end(&req.prefix));
        if req.limit > 0 {
            opts = opts.with_limit(req.limit as i64);
        }
        if let Some(rev) = req.revision {
            if rev <= 0 {
                return Err(StorageError::invalid(&req.prefix, format!("revision {rev} is not positive")));
            }
            opts = opts.with_revision(rev);
        }
        let mut kv = self.kv.clone();
        let result = with_deadline(self.timeout, async move { Ok(kv.get(start, Some(opts)).await) }).await?;
        let resp = match result {
            Ok(r) => r,
            Err(e) if is_out_of_range(&e, "compacted") => {
                let requested = req.revision.unwrap_or(0);
                return Err(StorageError::Compacted { requested, compacted: 0 });
            }
            Err(e) if is_out_of_range(&e, "future revision") => {
                let current = self.current_revision().await?;
                return Err(StorageError::FutureRevision { requested: req.revision.unwrap_or(0), current });
            }
            Err(e) => return Err(map_err(e)),
        };
        let kvs = resp.kvs().iter().map(convert).collect::<Result<Vec<_>>>()?;
        let remaining = (resp.count() as usize).saturating_sub(kvs.len());
        let revision = req.revision.unwrap_or_else(|| header_revision(resp.header()));
        Ok(RangeResponse { kvs, revision, remaining })
    }

    async fn create(&self, key: &str, value: Bytes) -> Result<KeyValue> {
        self.keys.check_key(key)?;
        let txn = Txn::new()
            .when([Compare::create_revision(key, CompareOp::Equal, 0)])
            .and_then([TxnOp::put(key, value.to_vec(), None)])
            .or_else([TxnOp::get(key, None)]);
        let resp = self.txn(txn).await?;
        if !resp.succeeded() {
            return match first_get_kv(&resp) {
                Some(current) => Err(StorageError::AlreadyExists { current: Box::new(current) }),
                // The compare and the read are one transaction: the key must be there.
                None => Err(StorageError::Internal(format!("etcd refused to create {key:?} but returned no value"))),
            };
        }
        let rev = header_revision(resp.header());
        Ok(KeyValue { key: key.to_string(), value, create_revision: rev, mod_revision: rev })
    }

    async fn update(&self, key: &str, value: Bytes, expected: Option<Revision>) -> Result<KeyValue> {
        self.keys.check_key(key)?;
        let cmp = match expected {
            Some(rev) => Compare::mod_revision(key, CompareOp::Equal, rev),
            None => Compare::create_revision(key, CompareOp::Greater, 0),
        };
        let txn = Txn::new()
            .when([cmp])
            .and_then([TxnOp::put(key, value.to_vec(), Some(PutOptions::new().with_prev_key()))])
            .or_else([TxnOp::get(key, None)]);
        let resp = self.txn(txn).await?;
        if !resp.succeeded() {
            return Err(Self::lost_race(key, expected.unwrap_or(0), &resp));
        }
        let rev = header_revision(resp.header());
        let create_revision = prev_kv_of(&resp).map(|p| p.create_revision).unwrap_or(rev);
        Ok(KeyValue { key: key.to_string(), value, create_revision, mod_revision: rev })
    }

    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<Deleted> {
        self.keys.check_key(key)?;
        let cmp = match expected {
            Some(rev) => Compare::mod_revision(key, CompareOp::Equal, rev),
            None => Compare::create_revision(key, CompareOp::Greater, 0),
        };
        let txn = Txn::new()
            .when([cmp])
            .and_then([TxnOp::delete(key, Some(DeleteOptions::new().with_prev_key()))])
            .or_else([TxnOp::get(key, None)]);
        let resp = self.txn(txn).await?;
        if !resp.succeeded() {
            return Err(Self::lost_race(key, expected.unwrap_or(0), &resp));
        }
        let revision = header_revision(resp.header());
        let prev = prev_kv_of(&resp).ok_or_else(|| StorageError::NotFound { key: key.to_string() })?;
        Ok(Deleted { prev, revision })
    }

    async fn delete_prefix(&self, prefix: &str) -> Result<Vec<Deleted>> {
        self.keys.check_prefix(prefix)?;
        if prefix.len() == self.keys.root().len() {
            return Err(StorageError::invalid(prefix, "refusing to delete the whole store"));
        }
        let mut deleted = Vec::new();
        loop {
            let page = self
                .range(&RangeRequest {
                    prefix: prefix.to_string(),
                    start: None,
                    limit: DELETE_PAGE as usize,
                    revision: None,
                })
                .await?;
            if page.kvs.is_empty() {
                break;
            }
            let mut tasks = JoinSet::new();
            for kv in page.kvs {
                if tasks.len() >= DELETE_PARALLELISM {
                    collect_delete(tasks.join_next().await, &mut deleted)?;
                }
                let store = self.clone();
                tasks.spawn(async move { store.delete(&kv.key, None).await });
            }
            while let Some(done) = tasks.join_next().await {
                collect_delete(Some(done), &mut deleted)?;
            }
        }
        deleted.sort_by_key(|d| d.revision);
        Ok(deleted)
    }

    async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream> {
        self.keys.check_prefix(prefix)?;
        if after < 0 {
            return Err(StorageError::invalid(prefix, format!("revision {after} is negative")));
        }
        let mut opts = WatchOptions::new().with_prefix().with_start_revision(after + 1).with_prev_key();
        if !self.reliable_progress {
            opts = opts.with_progress_notify();
        }
        let mut client = self.watch.clone();
        let key = prefix.to_string();
        let stream =
            with_deadline(self.timeout, async move { client.watch(key, Some(opts)).await.map_err(map_err) }).await?;
        let (sender, watch) = WatchStream::channel(64);
        tokio::spawn(pump_watch(stream, sender, after, self.reliable_progress));
        Ok(watch)
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        let mut kv = self.kv.clone();
        let result = with_deadline(self.timeout, async move {
            Ok(kv.compact(revision, Some(CompactionOptions::new().with_physical())).await)
        })
        .await?;
        match result {
            Ok(_) => Ok(()),
            Err(e) if is_out_of_range(&e, "compacted") => {
                Err(StorageError::Compacted { requested: revision, compacted: 0 })
            }
            Err(e) if is_out_of_range(&e, "future revision") => {
                let current = self.current_revision().await?;
                Err(StorageError::FutureRevision { requested: revision, current })
            }
            Err(e) => Err(map_err(e)),
        }
    }
}

fn collect_delete(done: Option<Result<Result<Deleted>, tokio::task::JoinError>>, out: &mut Vec<Deleted>) -> Result<()> {
    match done {
        Some(Ok(Ok(d))) => out.push(d),
        // Deleted by someone else meanwhile: nothing left to do for that key.
        Some(Ok(Err(StorageError::NotFound { .. }))) | None => {}
        Some(Ok(Err(e))) => return Err(e),
        Some(Err(join)) => return Err(StorageError::Internal(format!("delete task failed: {join}"))),
    }
    Ok(())
}

/// Moves messages from an etcd watch stream to the storage watch stream until
/// either side ends.
/// With `answer_progress` false, progress requests are ignored and only
/// etcd's periodic notifications (which are ordered with events) come through.
async fn pump_watch(mut stream: etcd_client::WatchStream, sender: WatchSender, after: Revision, answer_progress: bool) {
    loop {
        let msg = tokio::select! {
            _ = sender.tx.closed() => return,
            _ = sender.progress.notified(), if answer_progress => {
                if let Err(e) = stream.request_progress().await {
                    let _ = sender.tx.send(Err(map_err(e))).await;
                    return;
                }
                continue;
            }
            msg = stream.message() => msg,
        };
        let out = match msg {
            Ok(Some(resp)) if resp.canceled() => {
                let err = if resp.compact_revision() > 0 {
                    StorageError::Compacted { requested: after + 1, compacted: resp.compact_revision() }
                } else {
                    StorageError::Unavailable(format!("etcd cancelled the watch: {}", resp.cancel_reason()))
                };
                let _ = sender.tx.send(Err(err)).await;
                return;
            }
            Ok(Some(resp)) if resp.created() && resp.events().is_empty() => continue,
            Ok(Some(resp)) if resp.events().is_empty() => Ok(WatchMessage::Progress(header_revision(resp.header()))),
            Ok(Some(resp)) => {
                resp.events().iter().map(convert_event).collect::<Result<Vec<_>>>().map(WatchMessage::Events)
            }
            Ok(None) => Err(StorageError::Unavailable("etcd closed the watch stream".into())),
            Err(e) => Err(map_err(e)),
        };
        let failed = out.is_err();
        if sender.tx.send(out).await.is_err() || failed {
            return;
        }
    }
}

fn convert_event(ev: &etcd_client::Event) -> Result<Event> {
    let kv = ev.kv().ok_or_else(|| StorageError::Internal("etcd event without a key".into()))?;
    let prev = ev.prev_kv().map(convert).transpose()?;
    Ok(match ev.event_type() {
        EventType::Put => Event::Put { kv: convert(kv)?, prev },
        EventType::Delete => Event::Delete { key: convert(kv)?.key, revision: kv.mod_revision(), prev },
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn knows_which_etcd_versions_answer_progress_in_order() {
        use super::progress_requests_are_reliable as ok;
        assert!(!ok("3.4.23"));
        assert!(ok("3.4.31"));
        assert!(!ok("3.5.12"));
        assert!(ok("3.5.13"));
        assert!(ok("3.6.0"));
        assert!(!ok("garbage"));
    }
}
