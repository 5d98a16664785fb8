//! Events expire `--event-ttl` after they were last written (kube-apiserver
//! attaches an etcd lease per write; here a sweeper deletes them, on both
//! backends, conditionally on the revision it read, so an event written
//! again meanwhile is kept).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde_json::Value;
use storage::{ListOptions, ReadRevision, StorageError, Store};

use crate::served::ResourceType;

/// When an event was last written: the latest of its timestamps and of its
/// managedFields' write times.
pub fn last_written(event: &Value) -> Option<SystemTime> {
    let mut times: Vec<&str> =
        ["/metadata/creationTimestamp", "/lastTimestamp", "/eventTime", "/series/lastObservedTime"]
            .iter()
            .filter_map(|p| event.pointer(p).and_then(Value::as_str))
            .collect();
    if let Some(Value::Array(managed)) = event.pointer("/metadata/managedFields") {
        times.extend(managed.iter().filter_map(|m| m.get("time").and_then(Value::as_str)));
    }
    times.into_iter().filter_map(|t| humantime::parse_rfc3339_weak(t).ok()).max()
}

/// Deletes the events older than `ttl`, every `ttl / 10` (at least 1 s, at most 1 min).
pub async fn expire(store: Arc<dyn Store>, events: Arc<ResourceType>, ttl: Duration) {
    let every = (ttl / 10).clamp(Duration::from_secs(1), Duration::from_secs(60));
    loop {
        tokio::time::sleep(every).await;
        let opts =
            ListOptions { prefix: events.key_prefix.clone(), start: None, limit: 0, revision: ReadRevision::Any };
        let Ok(page) = events.cache.list(&opts).await else { continue };
        let now = SystemTime::now();
        let mut expired = 0usize;
        for kv in &page.items {
            let written = serde_json::from_slice::<Value>(&kv.value).ok().and_then(|e| last_written(&e));
            let old = written.is_none_or(|w| now.duration_since(w).is_ok_and(|age| age > ttl));
            if !old {
                continue;
            }
            match store.delete(&kv.key, Some(kv.mod_revision)).await {
                Ok(_) => expired += 1,
                Err(StorageError::NotFound { .. } | StorageError::Conflict { .. }) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "cannot delete expired events; retrying later");
                    break;
                }
            }
        }
        if expired > 0 {
            tracing::debug!(expired, "expired events deleted");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_latest_write_counts() {
        let e = json!({"metadata": {"creationTimestamp": "2026-01-01T00:00:00Z",
                                    "managedFields": [{"time": "2026-01-01T00:10:00Z"}]},
                       "lastTimestamp": "2026-01-01T00:05:00Z"});
        assert_eq!(last_written(&e), humantime::parse_rfc3339("2026-01-01T00:10:00Z").ok());
        assert_eq!(last_written(&json!({})), None);
    }
}
