//! Automatic compaction: keeps history bounded on either backend.

use std::sync::Arc;
use std::time::Duration;

use crate::error::StorageError;
use crate::store::Store;
use crate::types::Revision;

/// When to discard history.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CompactionPolicy {
    /// Never compact automatically.
    Disabled,
    /// Every interval, compact to the revision seen one interval earlier
    /// (kube-apiserver's `--etcd-compaction-interval`, default 5 minutes).
    Window(Duration),
    /// Keep the last this many revisions; checked every `every`.
    Revisions { keep: i64, every: Duration },
}

/// Starts the compactor; it runs until `shutdown` resolves.
pub fn spawn_compactor(
    store: Arc<dyn Store>,
    policy: CompactionPolicy,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        tokio::select! {
            _ = shutdown => {}
            _ = compact_forever(store, policy) => {}
        }
    })
}

async fn compact_forever(store: Arc<dyn Store>, policy: CompactionPolicy) {
    let period = match policy {
        CompactionPolicy::Disabled => return std::future::pending().await,
        CompactionPolicy::Window(d) | CompactionPolicy::Revisions { every: d, .. } => d,
    };
    let mut ticker = tokio::time::interval(period);
    ticker.tick().await;
    let mut previous: Option<Revision> = None;
    loop {
        ticker.tick().await;
        let current = match store.current_revision().await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "compaction skipped: cannot read the current revision");
                continue;
            }
        };
        let target = match policy {
            CompactionPolicy::Window(_) => previous.replace(current),
            CompactionPolicy::Revisions { keep, .. } => Some(current - keep),
            CompactionPolicy::Disabled => None,
        };
        let Some(target) = target.filter(|t| *t > 0) else { continue };
        match store.compact(target).await {
            Ok(()) => tracing::info!(revision = target, "compacted storage history"),
            // Someone (another replica) compacted further already.
            Err(StorageError::Compacted { .. }) => {}
            Err(e) => tracing::warn!(revision = target, error = %e, "compaction failed"),
        }
    }
}
