//! Batches the "what is the store's current revision?" questions of
//! consistent reads: every question waiting when a round starts is answered
//! by that round's single call, so a thousand concurrent consistent GETs cost
//! one round trip to etcd, not a thousand. A question that arrives during a
//! round waits for the next one: the answer must come from a call that began
//! after the question was asked, or a write acknowledged before the question
//! could be missed.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use crate::error::{Result, StorageError};
use crate::store::Store;
use crate::types::Revision;

/// One waiting question.
type Asker = oneshot::Sender<Result<Revision>>;

/// The handle consistent reads ask through.
pub(crate) struct FreshRevision {
    asks: mpsc::UnboundedSender<Asker>,
}

impl FreshRevision {
    /// Starts the batching task; it ends when the handle is dropped.
    pub(crate) fn start(store: Arc<dyn Store>) -> Self {
        let (asks, mut queue) = mpsc::unbounded_channel::<Asker>();
        tokio::spawn(async move {
            while let Some(first) = queue.recv().await {
                let mut round = vec![first];
                while let Ok(more) = queue.try_recv() {
                    round.push(more);
                }
                let answer = store.current_revision().await;
                for asker in round {
                    let _ = asker.send(answer.clone());
                }
            }
        });
        FreshRevision { asks }
    }

    /// The store's revision, read by a call that began after this one.
    pub(crate) async fn get(&self) -> Result<Revision> {
        let (tx, rx) = oneshot::channel();
        self.asks.send(tx).map_err(|_| StorageError::Unavailable("the watch cache stopped".into()))?;
        rx.await.map_err(|_| StorageError::Unavailable("the watch cache stopped".into()))?
    }
}
