//! The source: list and watch of one resource, as an explicit state machine
//! (kube-rs's watcher is the model): `List` (first start without a
//! checkpoint, 410 Gone, `--resync`) → `Watch(revision)` with bookmarks,
//! resumed from the last revision seen when the stream ends or breaks.
//! `kube-runtime`'s watcher always starts with a list; this one starts from
//! the checkpoint's revision, so a restarted sensor sends nothing twice.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use kube::api::{Api, DynamicObject, ListParams, WatchEvent, WatchParams};
use serde_json::Value;
use tokio::sync::{mpsc, watch};

use crate::delivery::Message;
use crate::metrics::Metrics;
use crate::tracker::{self, Tracker};

/// What is watched.
pub struct Watched {
    /// The resource's API (one namespace or all).
    pub api: Api<DynamicObject>,
    /// `labelSelector`.
    pub labels: Option<String>,
    /// `fieldSelector`.
    pub fields: Option<String>,
    /// Periodic full delivery of the current state (`--resync`).
    pub resync: Option<Duration>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// List everything (and compare with what is known).
    List { resync: bool },
    /// Watch after this revision.
    Watch(u64),
}

/// Pause after a failed list or watch request, doubling to 5 s.
struct Backoff(Duration);

impl Backoff {
    async fn wait(&mut self) {
        tokio::time::sleep(self.0).await;
        self.0 = (self.0 * 2).min(Duration::from_secs(5));
    }

    fn reset(&mut self) {
        self.0 = Duration::from_millis(100);
    }
}

impl Watched {
    fn list_params(&self) -> ListParams {
        let mut lp = ListParams::default().limit(500);
        if let Some(l) = &self.labels {
            lp = lp.labels(l);
        }
        if let Some(f) = &self.fields {
            lp = lp.fields(f);
        }
        lp
    }

    /// Every object, paged; the first page's revision.
    async fn list(&self) -> Result<(Vec<Value>, u64), kube::Error> {
        let mut lp = self.list_params();
        let (mut items, mut revision) = (Vec::new(), None);
        loop {
            let page = self.api.list(&lp).await?;
            if revision.is_none() {
                revision = page.metadata.resource_version.as_deref().and_then(|r| r.parse().ok());
            }
            for o in page.items {
                items.push(serde_json::to_value(o).unwrap_or(Value::Null));
            }
            match page.metadata.continue_.filter(|c| !c.is_empty()) {
                Some(token) => lp = lp.continue_token(&token),
                None => return Ok((items, revision.unwrap_or(0))),
            }
        }
    }

    /// Runs until `stop` is set: changes and progress go to `tx` in order.
    pub async fn run(
        self,
        mut tracker: Tracker,
        start: u64,
        tx: mpsc::Sender<Message>,
        metrics: Arc<Metrics>,
        mut stop: watch::Receiver<bool>,
    ) {
        let mut state = if start > 0 { State::Watch(start) } else { State::List { resync: false } };
        let mut backoff = Backoff(Duration::from_millis(100));
        let mut next_resync = self.resync.map(|r| tokio::time::Instant::now() + r);
        let send = |msg: Message| {
            let tx = tx.clone();
            let metrics = metrics.clone();
            async move {
                if matches!(msg, Message::Change(..)) {
                    metrics.waiting();
                }
                tx.send(msg).await.is_ok()
            }
        };
        loop {
            if *stop.borrow() {
                return;
            }
            match state {
                State::List { resync } => {
                    let listed = tokio::select! {
                        l = self.list() => l,
                        _ = stop.changed() => return,
                    };
                    let (items, revision) = match listed {
                        Ok(l) => l,
                        Err(e) => {
                            tracing::warn!(error = %e, "list failed; retrying");
                            backoff.wait().await;
                            continue;
                        }
                    };
                    backoff.reset();
                    metrics.relists.fetch_add(1, Ordering::Relaxed);
                    metrics.seen_revision.fetch_max(revision, Ordering::Relaxed);
                    let changes = tracker.relist(items, revision, resync);
                    tracing::info!(revision, changes = changes.len(), resync, "listed");
                    for c in changes {
                        if !send(Message::Change(c, false)).await {
                            return;
                        }
                    }
                    if !send(Message::Progress(revision)).await {
                        return;
                    }
                    next_resync = self.resync.map(|r| tokio::time::Instant::now() + r);
                    state = State::Watch(revision);
                }
                State::Watch(mut revision) => {
                    let mut wp = WatchParams::default().timeout(290);
                    wp.bookmarks = true;
                    wp.label_selector = self.labels.clone();
                    wp.field_selector = self.fields.clone();
                    let stream = match self.api.watch(&wp, &revision.to_string()).await {
                        Ok(s) => s,
                        Err(kube::Error::Api(s)) if s.code == 410 => {
                            tracing::warn!(revision, "the revision is compacted (410); re-listing");
                            state = State::List { resync: false };
                            continue;
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, revision, "watch failed; retrying");
                            backoff.wait().await;
                            continue;
                        }
                    };
                    backoff.reset();
                    let mut stream = std::pin::pin!(stream);
                    let resync_at = next_resync;
                    loop {
                        let item = tokio::select! {
                            item = stream.next() => item,
                            _ = async { match resync_at { Some(at) => tokio::time::sleep_until(at).await, None => std::future::pending().await } } => {
                                state = State::List { resync: true };
                                break;
                            }
                            _ = stop.changed() => return,
                        };
                        let (event_type, object) = match item {
                            Some(Ok(WatchEvent::Added(o))) => ("ADDED", o),
                            Some(Ok(WatchEvent::Modified(o))) => ("MODIFIED", o),
                            Some(Ok(WatchEvent::Deleted(o))) => ("DELETED", o),
                            Some(Ok(WatchEvent::Bookmark(b))) => {
                                if let Some(r) = b.metadata.resource_version.parse().ok().filter(|r| *r > revision) {
                                    revision = r;
                                    metrics.seen_revision.fetch_max(r, Ordering::Relaxed);
                                    if !send(Message::Progress(r)).await {
                                        return;
                                    }
                                }
                                continue;
                            }
                            Some(Ok(WatchEvent::Error(s))) if s.code == 410 => {
                                tracing::warn!(revision, "the watch is too old (410); re-listing");
                                state = State::List { resync: false };
                                break;
                            }
                            Some(Ok(WatchEvent::Error(s))) => {
                                tracing::warn!(code = s.code, message = %s.message, "watch error; watching again");
                                state = State::Watch(revision);
                                break;
                            }
                            Some(Err(e)) => {
                                tracing::warn!(error = %e, "watch broke; resuming");
                                state = State::Watch(revision);
                                break;
                            }
                            None => {
                                state = State::Watch(revision);
                                break;
                            }
                        };
                        let value = serde_json::to_value(object).unwrap_or(Value::Null);
                        revision = revision.max(tracker::revision(&value));
                        metrics.seen_revision.fetch_max(revision, Ordering::Relaxed);
                        if let Some(c) = tracker.event(event_type, value) {
                            if !send(Message::Change(c, true)).await {
                                return;
                            }
                        }
                    }
                }
            }
        }
    }
}
