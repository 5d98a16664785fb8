//! Watches on the embedded store.
//!
//! A watch subscribes to its prefix's channel of the hub first, then catches
//! up from the history on disk, then follows the channel, skipping what it
//! already delivered. A watch that falls behind the channel re-reads the
//! history from its last revision, so it never skips an event. Asked for
//! progress, it takes in what its channel holds up to the store's revision,
//! then reports that revision.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::sync::broadcast::error::{RecvError, TryRecvError};

use super::{schema, Committed, Shared};
use crate::error::{Result, StorageError};
use crate::store::WatchSender;
use crate::types::{Event, Revision, WatchMessage};

/// Events read from disk per query while catching up.
const CATCH_UP_PAGE: usize = 512;

/// Runs one watch until its receiver is dropped or the store fails.
pub(crate) async fn run(shared: Arc<Shared>, prefix: String, after: Revision, sender: WatchSender) {
    if let Err(e) = follow(&shared, &prefix, after, &sender).await {
        let _ = sender.tx.send(Err(e)).await;
    }
}

/// Returns `Ok` when the receiver went away.
async fn follow(shared: &Arc<Shared>, prefix: &str, mut after: Revision, sender: &WatchSender) -> Result<()> {
    loop {
        let mut live = shared.hub.subscribe(prefix);
        // Everything up to `floor` under the prefix has been delivered.
        let mut floor;
        loop {
            let (p, a, s) = (prefix.to_string(), after, shared.clone());
            let (events, snapshot) = shared
                .read(move |c| schema::in_snapshot(c, |tx| schema::events_after(tx, &s.index, &p, a, CATCH_UP_PAGE)))
                .await?;
            floor = snapshot.max(after);
            let Some(last) = events.last().map(Event::revision) else { break };
            after = last;
            if sender.tx.send(Ok(WatchMessage::Events(events))).await.is_err() {
                return Ok(());
            }
        }
        loop {
            tokio::select! {
                _ = sender.tx.closed() => return Ok(()),
                _ = sender.progress.notified() => {
                    // The writer publishes a batch before its revision, so
                    // every batch of this prefix up to `published` is in the
                    // channel: once they are delivered, so is everything up to it.
                    let published = shared.revision.load(Ordering::Acquire);
                    let lagged = loop {
                        match live.try_recv() {
                            Ok(batch) => {
                                if !deliver(&batch, prefix, &mut floor, sender).await {
                                    return Ok(());
                                }
                            }
                            Err(TryRecvError::Empty) => break false,
                            Err(TryRecvError::Lagged(_)) => break true,
                            Err(TryRecvError::Closed) => return Err(closed()),
                        }
                    };
                    if lagged {
                        // Answered once the history is read again.
                        sender.progress.notify_one();
                        after = floor;
                        break;
                    }
                    floor = floor.max(published);
                    if sender.tx.send(Ok(WatchMessage::Progress(floor))).await.is_err() {
                        return Ok(());
                    }
                }
                got = live.recv() => match got {
                    Ok(batch) => {
                        if !deliver(&batch, prefix, &mut floor, sender).await {
                            return Ok(());
                        }
                    }
                    Err(RecvError::Lagged(_)) => {
                        after = floor;
                        break;
                    }
                    Err(RecvError::Closed) => return Err(closed()),
                },
            }
        }
    }
}

/// Sends the events of `batch` under `prefix` after `floor` to the watch,
/// and raises `floor` to the batch's revision. False when the receiver went away.
async fn deliver(batch: &Committed, prefix: &str, floor: &mut Revision, sender: &WatchSender) -> bool {
    let events: Vec<Event> =
        batch.events.iter().filter(|e| e.revision() > *floor && e.key().starts_with(prefix)).cloned().collect();
    *floor = (*floor).max(batch.revision);
    events.is_empty() || sender.tx.send(Ok(WatchMessage::Events(events))).await.is_ok()
}

fn closed() -> StorageError {
    StorageError::Unavailable("the store was closed".into())
}
