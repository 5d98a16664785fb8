//! The controller that keeps the served types equal to the stored TPRs. It
//! follows a watch on the stored TPRs (never polling), so every replica
//! serves a new type as soon as the create is stored; the replica that
//! handled the create serves it before answering. When stored TPRs conflict
//! (see [`super::conflicts`]) the older one is served. A TPR with a
//! deletionTimestamp has its objects deleted (one DELETED event each) if it
//! is the one serving them, then is deleted itself.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};

use discovery::Resource;
use serde_json::Value;
use storage::cache::{EventKind, WatchStart};
use storage::{CacheConfig, ListOptions, ReadRevision, StorageError, Store, WatchCache, WatchItem, WatchRequest};

use super::conflicts::{self, Candidate};
use super::{candidate, TPR_GROUP, TPR_VERSION};
use crate::registry::meta_str;
use crate::served::{Owner, ResourceType, ServedTypes};
use crate::status::{ApiError, Target};

/// Keeps the served types in step with the stored TPRs.
pub struct Controller {
    store: Arc<dyn Store>,
    served: Arc<ServedTypes>,
    tprs: Arc<ResourceType>,
    root: String,
    /// True once every stored TPR has been served.
    synced: tokio::sync::watch::Sender<bool>,
    /// The valid stored TPRs by name, as last seen.
    stored: Mutex<BTreeMap<String, Candidate>>,
    /// Refusals already logged, so each is logged once.
    refused: Mutex<BTreeSet<String>>,
    /// TPR writes on this replica, one at a time: check, store, serve.
    writes: tokio::sync::Mutex<()>,
}

impl Controller {
    /// Starts serving the ThirdPartyResource type itself.
    pub fn new(store: Arc<dyn Store>, served: Arc<ServedTypes>) -> Result<Arc<Self>, StorageError> {
        let root = store.prefix().to_string();
        let key_prefix = format!("{root}thirdpartyresources/");
        let cache = Arc::new(WatchCache::start(store.clone(), &key_prefix, CacheConfig::default())?);
        let tprs = Arc::new(ResourceType {
            api: Resource {
                group: TPR_GROUP.into(),
                versions: vec![TPR_VERSION.into()],
                kind: "ThirdPartyResource".into(),
                plural: "thirdpartyresources".into(),
                singular: "thirdpartyresource".into(),
                namespaced: false,
                builtin: None,
                description: String::new(),
            },
            key_prefix,
            cache,
            owner: None,
            encoded: Default::default(),
        });
        served.insert(tprs.clone());
        Ok(Arc::new(Controller {
            store,
            served,
            tprs,
            root,
            synced: tokio::sync::watch::channel(false).0,
            stored: Mutex::default(),
            refused: Mutex::default(),
            writes: tokio::sync::Mutex::new(()),
        }))
    }

    /// True once every TPR stored at start-up is served.
    pub fn is_synced(&self) -> bool {
        *self.synced.borrow()
    }

    /// Waits until every TPR stored at start-up is served.
    pub async fn wait_synced(&self) {
        let mut rx = self.synced.subscribe();
        let _ = rx.wait_for(|synced| *synced).await;
    }

    /// The ThirdPartyResource type.
    pub fn tpr_type(&self) -> &Arc<ResourceType> {
        &self.tprs
    }

    /// Held by a TPR write on this replica from its conflict check until its
    /// type is served, so that two writes cannot both pass the check.
    pub async fn lock_writes(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.writes.lock().await
    }

    fn stored(&self) -> MutexGuard<'_, BTreeMap<String, Candidate>> {
        self.stored.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// 409 when `tpr` (valid) would conflict with another stored TPR: the
    /// same plural, kind or singular in its group, or ambiguous versions.
    pub fn check_conflicts(&self, tpr: &Value) -> Result<(), ApiError> {
        let Some(new) = candidate(tpr) else { return Ok(()) };
        if self.served.builtins() && crate::builtin::reserved_group(&new.names.group) {
            let target = Target { group: TPR_GROUP.into(), resource: "thirdpartyresources".into(), name: new.name };
            return Err(ApiError::conflict(
                &target,
                format!("the group {} is served by this server's built-in types", new.names.group),
            ));
        }
        let stored = self.stored();
        match stored.values().find_map(|existing| conflicts::conflict(&new, existing)) {
            None => Ok(()),
            Some(why) => {
                let target = Target { group: TPR_GROUP.into(), resource: "thirdpartyresources".into(), name: new.name };
                Err(ApiError::conflict(&target, why))
            }
        }
    }

    /// Serves what a stored TPR asks for (idempotent): after a write, before
    /// the answer, and for every event of the watch. Returns why it is not
    /// served, if it is not (an older TPR serves the same thing).
    pub fn observe(&self, tpr: &Value) -> Result<Option<String>, ApiError> {
        let name = meta_str(tpr, "name").unwrap_or_default().to_string();
        let mut stored = self.stored();
        match candidate(tpr) {
            Some(c) => stored.insert(name.clone(), c),
            None => {
                tracing::warn!(tpr = name, "a stored ThirdPartyResource is not valid; it is not served");
                stored.remove(&name)
            }
        };
        let refusals = self.reconcile(&stored).map_err(|e| ApiError::from_storage(e, &Target::default()))?;
        Ok(refusals.get(&name).cloned())
    }

    fn forget(&self, name: &str) {
        let mut stored = self.stored();
        stored.remove(name);
        if let Err(e) = self.reconcile(&stored) {
            tracing::warn!(error = %e, "cannot update the served types");
        }
    }

    /// Makes the served types those of the TPRs [`conflicts::resolve`]
    /// chooses; a type whose TPR changes keeps its cache. Returns the refused
    /// TPRs with the reason.
    fn reconcile(&self, stored: &BTreeMap<String, Candidate>) -> Result<BTreeMap<String, String>, StorageError> {
        let (mut chosen, refused) = conflicts::resolve(stored);
        let mut refusals: BTreeMap<String, String> =
            refused.into_iter().map(|(c, why)| (c.name.clone(), why)).collect();
        if self.served.builtins() {
            chosen.retain(|c| {
                let reserved = crate::builtin::reserved_group(&c.names.group);
                if reserved {
                    refusals.insert(c.name.clone(), format!("the group {} is served by built-in types", c.names.group));
                }
                !reserved
            });
        }
        {
            let mut logged = self.refused.lock().unwrap_or_else(|p| p.into_inner());
            for (name, why) in &refusals {
                if logged.insert(format!("{name}: {why}")) {
                    tracing::warn!(tpr = name, "ThirdPartyResource not served: {why}");
                }
            }
        }
        let desired: BTreeMap<(String, String), &Candidate> =
            chosen.into_iter().map(|c| ((c.names.group.clone(), c.names.plural.clone()), c)).collect();
        for t in self.served.all() {
            if t.owner.is_some() && !desired.contains_key(&(t.group.clone(), t.plural.clone())) {
                self.served.remove(&t.group, &t.plural);
            }
        }
        for ((group, plural), c) in desired {
            let owner = Owner { name: c.name.clone(), uid: c.uid.clone() };
            let existing = self.served.get(&group, &plural);
            if let Some(t) = &existing {
                if t.owner.as_ref() == Some(&owner)
                    && t.versions == c.versions
                    && t.kind == c.names.kind
                    && t.description == c.description
                {
                    continue;
                }
            }
            let key_prefix = format!("{}{group}/{plural}/", self.root);
            let cache = match existing {
                Some(t) => t.cache.clone(),
                None => Arc::new(WatchCache::start(self.store.clone(), &key_prefix, CacheConfig::default())?),
            };
            self.served.insert(Arc::new(ResourceType {
                api: Resource {
                    group,
                    versions: c.versions.clone(),
                    kind: c.names.kind.clone(),
                    plural,
                    singular: c.names.singular.clone(),
                    namespaced: true,
                    builtin: None,
                    description: c.description.clone(),
                },
                key_prefix,
                cache,
                owner: Some(owner),
                encoded: Default::default(),
            }));
        }
        Ok(refusals)
    }

    /// Follows the stored TPRs until the process ends.
    pub async fn run(self: Arc<Self>) {
        loop {
            let req = WatchRequest { prefix: self.tprs.key_prefix.clone(), start: WatchStart::WithInitialState };
            let mut watcher = match self.tprs.cache.watch(&req).await {
                Ok(w) => w,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot watch ThirdPartyResources; retrying");
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                    continue;
                }
            };
            loop {
                if !watcher.has_pending() {
                    self.synced.send_replace(true);
                }
                let Some(item) = watcher.recv().await else { break };
                let event = match item {
                    Ok(WatchItem::Event(e)) => e,
                    Ok(WatchItem::Bookmark(_)) => continue,
                    Err(e) => {
                        tracing::warn!(error = %e, "ThirdPartyResource watch ended; re-listing");
                        break;
                    }
                };
                let name = event.object.key.strip_prefix(&self.tprs.key_prefix).unwrap_or_default().to_string();
                let Ok(obj) = serde_json::from_slice::<Value>(&event.object.value) else {
                    tracing::error!(key = %event.object.key, "a stored ThirdPartyResource cannot be read; it is not served");
                    self.forget(&name);
                    continue;
                };
                match event.kind {
                    EventKind::Added | EventKind::Modified => {
                        if let Err(e) = self.observe(&obj) {
                            tracing::warn!(error = %e, tpr = name, "cannot serve a ThirdPartyResource");
                        }
                        if meta_str(&obj, "deletionTimestamp").is_some() {
                            tokio::spawn(self.clone().finish_delete(obj, event.object.mod_revision));
                        }
                    }
                    EventKind::Deleted => self.forget(&name),
                }
            }
        }
    }

    /// Deletes the objects of a deleted TPR's type, if it is the TPR serving
    /// them (never another TPR's data), then the TPR itself.
    pub async fn finish_delete(self: Arc<Self>, tpr: Value, revision: i64) {
        // Until every stored TPR is known, who serves what is not settled.
        self.wait_synced().await;
        let name = meta_str(&tpr, "name").unwrap_or_default().to_string();
        let owner = Owner { name: name.clone(), uid: meta_str(&tpr, "uid").unwrap_or_default().to_string() };
        let owned = candidate(&tpr)
            .and_then(|c| self.served.get(&c.names.group, &c.names.plural))
            .filter(|rt| rt.owner.as_ref() == Some(&owner));
        if let Some(rt) = owned {
            let deleted = match self.store.delete_prefix(&rt.key_prefix).await {
                Ok(d) => d,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot delete the objects of a deleted ThirdPartyResource");
                    return;
                }
            };
            // Let the type's watchers see every DELETED event before the type goes.
            if let Some(last) = deleted.last() {
                let opts = ListOptions {
                    prefix: rt.key_prefix.clone(),
                    start: None,
                    limit: 1,
                    revision: ReadRevision::NotOlderThan(last.revision),
                };
                let _ = rt.cache.list(&opts).await;
            }
        }
        match self.store.delete(&self.tprs.key(None, &name), Some(revision)).await {
            Ok(_) | Err(StorageError::NotFound { .. }) | Err(StorageError::Conflict { .. }) => {}
            Err(e) => tracing::warn!(error = %e, tpr = name, "cannot delete the ThirdPartyResource"),
        }
    }
}
