//! kube-apiserver's types, served when the server runs alone (no host
//! cluster; see [`crate::config::flags::Flags::serves_builtins`]): what
//! operators and sensors need besides their own types. They go through the
//! same generic registry and watch caches as ThirdPartyResource objects; what
//! each type does to its objects is in [`crate::registry::strategy`].
//!
//! - [`namespaces`]: the namespace lifecycle (objects only in namespaces
//!   that exist and are not terminating; deleting a namespace deletes its
//!   objects, then it) and the namespaces there from the first start.
//! - [`events`]: Events expire after `--event-ttl`.
//!
//! The self-subject reviews are answered in `endpoints::reviews`.

pub mod events;
pub mod namespaces;

use std::collections::BTreeMap;
use std::sync::Arc;

use discovery::Builtin;
use storage::{CacheConfig, StorageError, Store, WatchCache};

use crate::served::{ResourceType, ServedTypes};

/// Serves every stored built-in type (both Event APIs share one storage and
/// one cache) and marks the reviews as served.
pub fn serve(store: &Arc<dyn Store>, served: &ServedTypes) -> Result<(), StorageError> {
    let mut caches: BTreeMap<&str, Arc<WatchCache>> = BTreeMap::new();
    for b in Builtin::STORED {
        let key_prefix = format!("{}{}/", store.prefix(), b.storage());
        let cache = match caches.get(b.storage()) {
            Some(c) => c.clone(),
            None => {
                let c = Arc::new(WatchCache::start(store.clone(), &key_prefix, CacheConfig::default())?);
                caches.insert(b.storage(), c.clone());
                c
            }
        };
        served.insert(Arc::new(ResourceType {
            api: b.resource(),
            key_prefix,
            cache,
            owner: None,
            encoded: Default::default(),
        }));
    }
    served.set_builtins();
    Ok(())
}

/// The groups of the built-in types: no ThirdPartyResource may claim them
/// while they are served.
pub fn reserved_group(group: &str) -> bool {
    Builtin::STORED.iter().chain(Builtin::REVIEWS.iter()).any(|b| b.resource().group == group)
}
