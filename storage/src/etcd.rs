//! The etcd backend, on the `etcd-client` crate.
//!
//! Conditional writes are etcd transactions: create compares the key's
//! create revision with 0, conditional update and delete compare its mod
//! revision; the else branch reads the key, so the loser of a race gets the
//! current value back.
//!
//! Every member has a client of its own ([`members`]): a call goes to the
//! member that answered last, and moves on to the next one when the request
//! certainly never left (the connection could not be made) or etcd has no
//! leader yet, until the call's deadline. Reads are retried on any transport
//! error; a write whose request may have reached etcd is not, and its lost
//! answer is [`StorageError::Indeterminate`]. So while a quorum is up, no
//! request fails because one member is down.

mod members;

use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use etcd_client::{
    Certificate, CompactionOptions, Compare, CompareOp, ConnectOptions, DeleteOptions, EventType, GetOptions, Identity,
    PutOptions, TlsOptions, Txn, TxnOp, TxnOpResponse, WatchOptions,
};
use tokio::task::JoinSet;

use crate::error::{Result, StorageError};
use crate::keys::{prefix_end, KeySpace};
use crate::store::{Store, WatchSender, WatchStream};
use crate::types::{Deleted, Event, KeyValue, RangeRequest, RangeResponse, Revision, WatchMessage};
use members::{Call, Members};

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
    members: std::sync::Arc<Members>,
    keys: KeySpace,
    /// Whether etcd answers progress requests correctly (see [`Store::progress_on_request`]).
    reliable_progress: bool,
}

/// How many deletes of a prefix delete are in flight at once.
const DELETE_PARALLELISM: usize = 32;
/// Page size of a prefix delete.
const DELETE_PAGE: i64 = 1000;

impl EtcdStore {
    /// Connects to etcd: a client per member, connected on first use, so
    /// that the server starts while etcd is down (calls then fail with
    /// `Unavailable` naming each member and why, until one answers). The
    /// connections are re-established by themselves after members restart.
    pub async fn connect(cfg: &EtcdConfig) -> Result<Self> {
        let mut opts = ConnectOptions::new()
            .with_connect_timeout(cfg.dial_timeout)
            // Our own deadline (in `Members::run`) comes first and says what
            // an unanswered call means; this one only backs it up.
            .with_timeout(cfg.request_timeout + Duration::from_secs(1))
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
        let members =
            std::sync::Arc::new(Members::new(endpoints, opts, cfg.request_timeout, cfg.max_message_size).await?);
        let version = members
            .run(Call::Read, |c| async move {
                let mut m = c.maintenance;
                m.status().await.map(|s| s.version().to_string())
            })
            .await;
        let reliable_progress = match &version {
            Ok(v) => progress_requests_are_reliable(v),
            Err(e) => {
                tracing::warn!(error = %e, "etcd does not answer yet; starting anyway (progress from periodic notifications)");
                false
            }
        };
        if let (Ok(v), false) = (&version, reliable_progress) {
            tracing::info!(
                version = v,
                "etcd answers progress requests out of order before 3.4.31/3.5.13; using periodic progress notifications"
            );
        }
        Ok(EtcdStore { members, keys: KeySpace::new(&cfg.prefix), reliable_progress })
    }

    async fn txn(&self, txn: Txn) -> Result<etcd_client::TxnResponse> {
        self.members
            .run(Call::Write, move |c| {
                let (mut kv, txn) = (c.kv, txn.clone());
                async move { kv.txn(txn).await }
            })
            .await
    }

    /// A transaction whose compare fails once it applied, sent again after a
    /// lost answer; true when that happened (a failed compare may then be
    /// the first attempt's doing: the caller looks at what the key holds).
    async fn guarded_txn(&self, txn: Txn) -> Result<(etcd_client::TxnResponse, bool)> {
        self.members
            .run_guarded(move |c| {
                let (mut kv, txn) = (c.kv, txn.clone());
                async move { kv.txn(txn).await }
            })
            .await
    }

    /// After a conditional delete of `key` at `expected` was sent again and
    /// found the key gone: the delete that removed it, when it came right
    /// after `expected` (so it was the lost attempt, or one just like it),
    /// else `NotFound` (someone else changed it first: ours never applied).
    async fn find_delete(&self, key: &str, expected: Revision) -> Result<Deleted> {
        let unknown =
            |why: String| StorageError::Indeterminate(format!("deleting {key:?}: an answer was lost and {why}"));
        let opts = WatchOptions::new().with_start_revision(expected + 1).with_prev_key();
        let k = key.to_string();
        let mut stream = self
            .members
            .run(Call::Read, move |c| {
                let (mut w, k, opts) = (c.watch, k.clone(), opts.clone());
                async move { w.watch(k, Some(opts)).await }
            })
            .await?;
        let first = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                match stream.message().await {
                    Ok(Some(resp)) if resp.canceled() => return Err(unknown("its history is compacted".into())),
                    Ok(Some(resp)) => {
                        if let Some(ev) = resp.events().first() {
                            return convert_event(ev);
                        }
                    }
                    Ok(None) => return Err(unknown("the watch of its history ended".into())),
                    Err(e) => return Err(unknown(format!("its history could not be read: {e}"))),
                }
            }
        })
        .await
        .map_err(|_| unknown("its history did not arrive in time".into()))??;
        match first {
            Event::Delete { revision, prev: Some(prev), .. } if prev.mod_revision == expected => {
                Ok(Deleted { prev, revision })
            }
            _ => Err(StorageError::NotFound { key: key.to_string() }),
        }
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

impl EtcdStore {
    /// Fails with `Compacted` when `revision` is no longer in etcd's history.
    /// etcd reports a compacted watch start only later, inside the stream;
    /// asking up front (a one-key read at that revision) lets a watch from a
    /// compacted revision fail at creation, as it does on the embedded store.
    /// A revision in the future is fine for a watch and passes.
    async fn check_not_compacted(&self, prefix: &str, revision: Revision) -> Result<()> {
        let opts =
            GetOptions::new().with_range(prefix_end(prefix)).with_revision(revision).with_limit(1).with_keys_only();
        let key = prefix.to_string();
        let result = self
            .members
            .run(Call::Read, move |c| {
                let (mut kv, key, opts) = (c.kv, key.clone(), opts.clone());
                async move { kv.get(key, Some(opts)).await }
            })
            .await;
        match result {
            Err(e) if is_out_of_range(&e, "compacted") => {
                Err(StorageError::Compacted { requested: revision, compacted: 0 })
            }
            Err(e) if is_out_of_range(&e, "future revision") => Ok(()),
            Err(e) => Err(e),
            Ok(_) => Ok(()),
        }
    }
}

fn is_out_of_range(e: &StorageError, needle: &str) -> bool {
    matches!(e, StorageError::Internal(m) if m.contains(needle))
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
        let root = self.keys.root().to_string();
        let resp = self
            .members
            .run(Call::Read, move |c| {
                let (mut kv, root) = (c.kv, root.clone());
                async move { kv.get(root, Some(GetOptions::new().with_count_only())).await }
            })
            .await?;
        Ok(header_revision(resp.header()))
    }

    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        self.keys.check_key(key)?;
        let k = key.to_string();
        let resp = self
            .members
            .run(Call::Read, move |c| {
                let (mut kv, k) = (c.kv, k.clone());
                async move { kv.get(k, None).await }
            })
            .await?;
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
        let result = self
            .members
            .run(Call::Read, move |c| {
                let (mut kv, start, opts) = (c.kv, start.clone(), opts.clone());
                async move { kv.get(start, Some(opts)).await }
            })
            .await;
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
            Err(e) => return Err(e),
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
        let (resp, retried) = self.guarded_txn(txn).await?;
        if !resp.succeeded() {
            return match first_get_kv(&resp) {
                // The lost first attempt applied (a value is never written twice:
                // it holds the object's uid and timestamps).
                Some(current) if retried && current.value == value => Ok(current),
                Some(_) if retried => Err(StorageError::Indeterminate(format!(
                    "creating {key:?}: an answer was lost and the key now holds another value"
                ))),
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
        // Only a compare-and-swap is guarded: a plain put applies again.
        let (resp, retried) = match expected {
            Some(_) => self.guarded_txn(txn).await?,
            None => (self.txn(txn).await?, false),
        };
        if !resp.succeeded() {
            return match first_get_kv(&resp) {
                Some(current) if retried && current.value == value && current.mod_revision > expected.unwrap_or(0) => {
                    Ok(current)
                }
                _ if retried => Err(StorageError::Indeterminate(format!(
                    "updating {key:?}: an answer was lost and the key has changed since"
                ))),
                _ => Err(Self::lost_race(key, expected.unwrap_or(0), &resp)),
            };
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
        let (resp, retried) = self.guarded_txn(txn).await?;
        if !resp.succeeded() {
            return match (retried, first_get_kv(&resp), expected) {
                (false, _, _) => Err(Self::lost_race(key, expected.unwrap_or(0), &resp)),
                (true, None, Some(expected)) => self.find_delete(key, expected).await,
                (true, _, _) => Err(StorageError::Indeterminate(format!(
                    "deleting {key:?}: an answer was lost and the key has changed since"
                ))),
            };
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
        if after > 0 {
            self.check_not_compacted(prefix, after + 1).await?;
        }
        let mut opts = WatchOptions::new().with_prefix().with_start_revision(after + 1).with_prev_key();
        if !self.reliable_progress {
            opts = opts.with_progress_notify();
        }
        let key = prefix.to_string();
        let stream = self
            .members
            .run(Call::Read, move |c| {
                let (mut client, key, opts) = (c.watch, key.clone(), opts.clone());
                async move { client.watch(key, Some(opts)).await }
            })
            .await?;
        let (sender, watch) = WatchStream::channel(64);
        tokio::spawn(pump_watch(stream, sender, after, self.reliable_progress));
        Ok(watch)
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        let result = self
            .members
            .run(Call::Read, move |c| {
                let mut kv = c.kv;
                async move { kv.compact(revision, Some(CompactionOptions::new().with_physical())).await }
            })
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if is_out_of_range(&e, "compacted") => {
                Err(StorageError::Compacted { requested: revision, compacted: 0 })
            }
            Err(e) if is_out_of_range(&e, "future revision") => {
                let current = self.current_revision().await?;
                Err(StorageError::FutureRevision { requested: revision, current })
            }
            Err(e) => Err(e),
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
                    let _ = sender.tx.send(Err(members::classify(e, Call::Read))).await;
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
            Err(e) => Err(members::classify(e, Call::Read)),
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
