//! The reflector: keeps the cache in step with the backend. It lists the
//! prefix at one revision, then watches from there. A broken watch is
//! re-established after the last revision applied, so no event is lost; a
//! watch whose history was compacted meanwhile forces a fresh list.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::Inner;
use crate::error::{Result, StorageError};
use crate::types::{KeyValue, RangeRequest, Revision, WatchMessage};

const MIN_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// Runs until the cache handle is dropped.
pub(crate) async fn run(inner: Arc<Inner>, mut stopped: watch::Receiver<()>) {
    tokio::select! {
        _ = stopped.changed() => {}
        _ = reflect(&inner) => {}
    }
}

async fn reflect(inner: &Arc<Inner>) {
    let mut backoff = MIN_BACKOFF;
    loop {
        let (objects, revision) = match list_all(inner).await {
            Ok(listed) => listed,
            Err(e) => {
                tracing::warn!(prefix = %inner.prefix, error = %e, "watch cache list failed; retrying");
                pause(&mut backoff).await;
                continue;
            }
        };
        inner.write().reset(objects, revision);
        inner.revision.send_replace(revision);
        backoff = MIN_BACKOFF;
        loop {
            let from = inner.read().revision();
            match follow(inner, from, &mut backoff).await {
                StorageError::Compacted { .. } => {
                    tracing::warn!(prefix = %inner.prefix, "watch history compacted; re-listing");
                    break;
                }
                e => {
                    tracing::warn!(prefix = %inner.prefix, error = %e, "watch cache lost its watch; resuming");
                    pause(&mut backoff).await;
                }
            }
        }
    }
}

/// Lists every key under the prefix, page by page at the first page's revision.
async fn list_all(inner: &Inner) -> Result<(Vec<KeyValue>, Revision)> {
    let mut req =
        RangeRequest { prefix: inner.prefix.clone(), start: None, limit: inner.config.page_size, revision: None };
    let mut objects = Vec::new();
    loop {
        let page = inner.store.range(&req).await?;
        req.revision = Some(page.revision);
        let more = page.remaining > 0;
        if let Some(last) = page.kvs.last() {
            req.start = Some(format!("{}\0", last.key));
        }
        objects.extend(page.kvs);
        if !more {
            return Ok((objects, page.revision));
        }
    }
}

/// Follows one backend watch from `from`; returns why it ended.
async fn follow(inner: &Inner, from: Revision, backoff: &mut Duration) -> StorageError {
    let mut stream = match inner.store.watch(&inner.prefix, from).await {
        Ok(s) => s,
        Err(e) => return e,
    };
    let mut ticker = tokio::time::interval(inner.config.progress_interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            msg = stream.recv() => match msg {
                Some(Ok(WatchMessage::Events(events))) => {
                    let revision = {
                        let mut state = inner.write();
                        state.apply(events);
                        state.revision()
                    };
                    inner.revision.send_replace(revision);
                    *backoff = MIN_BACKOFF;
                }
                Some(Ok(WatchMessage::Progress(revision))) => {
                    let revision = {
                        let mut state = inner.write();
                        state.progress(revision);
                        state.revision()
                    };
                    inner.revision.send_replace(revision);
                }
                Some(Err(e)) => return e,
                None => return StorageError::Unavailable("the backend watch ended".into()),
            },
            _ = inner.progress_wanted.notified() => stream.request_progress(),
            _ = ticker.tick() => stream.request_progress(),
        }
    }
}

async fn pause(backoff: &mut Duration) {
    tokio::time::sleep(*backoff).await;
    *backoff = (*backoff * 2).min(MAX_BACKOFF);
}
