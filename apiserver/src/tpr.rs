//! ThirdPartyResources: validation, and the controller that keeps the set of
//! served types equal to the stored TPRs. It follows a watch on the stored
//! TPRs (never polling), so every replica serves a new type as soon as the
//! create is stored; the replica that handled the create serves it before
//! answering. A TPR with a deletionTimestamp has its objects deleted (one
//! DELETED event each), then is deleted itself.

use std::sync::Arc;

use discovery::naming;
use serde_json::Value;
use storage::cache::{EventKind, WatchStart};
use storage::{CacheConfig, ListOptions, ReadRevision, StorageError, Store, WatchCache, WatchItem, WatchRequest};

use crate::meta;
use crate::registry::meta_str;
use crate::resources::{ResourceType, ServedTypes};
use crate::status::{ApiError, Cause, Target};

/// Group, version and names of the ThirdPartyResource type itself.
pub const TPR_GROUP: &str = "extensions";
/// The version of the ThirdPartyResource type.
pub const TPR_VERSION: &str = "v1beta1";
/// The finalizer that keeps a deleted TPR until its objects are gone.
pub const OBJECTS_FINALIZER: &str = "tpr-apiserver/objects";

/// Why a version name is served by path only.
pub fn version_warning(version: &str) -> Option<String> {
    (!meta::is_dns_label(version)).then(|| {
        format!("version {version:?} is not a DNS label: it is served at its path for compatibility but left out of discovery, because clients cannot parse a group/version with two slashes")
    })
}

/// A TPR's served versions, checked.
fn versions_of(obj: &Value, target: &Target) -> Result<Vec<String>, ApiError> {
    let invalid = |message: String| {
        ApiError::invalid(
            target,
            "ThirdPartyResource",
            vec![Cause { reason: "FieldValueInvalid", message, field: "versions".into() }],
        )
    };
    let list = obj
        .get("versions")
        .and_then(Value::as_array)
        .ok_or_else(|| invalid("Required value: at least one version, e.g. versions: [{name: v1}]".into()))?;
    let mut out = Vec::new();
    for v in list {
        let name = v.get("name").and_then(Value::as_str).unwrap_or_default();
        let parts_ok = !name.is_empty() && name.split('/').count() <= 2 && name.split('/').all(meta::is_dns_label);
        if !parts_ok {
            return Err(invalid(format!("Invalid value: {name:?}: a version must be a DNS label (e.g. v1), or two joined by '/' (e.g. stable/v1)")));
        }
        if out.iter().any(|o| o == name) {
            return Err(invalid(format!("Duplicate value: {name:?}")));
        }
        out.push(name.to_string());
    }
    if out.is_empty() {
        return Err(invalid("Required value: at least one version, e.g. versions: [{name: v1}]".into()));
    }
    Ok(out)
}

/// Checks a TPR object: its name gives kind, group and plural; its versions are well-formed.
pub fn validate(obj: &Value) -> Result<(naming::ResourceNames, Vec<String>), ApiError> {
    let name = meta_str(obj, "name").unwrap_or_default();
    let target = Target { group: TPR_GROUP.into(), resource: "thirdpartyresources".into(), name: name.into() };
    let names = naming::from_tpr_name(name).map_err(|e| {
        ApiError::invalid(
            &target,
            "ThirdPartyResource",
            vec![Cause {
                reason: "FieldValueInvalid",
                message: format!("Invalid value: {name:?}: {e}"),
                field: "metadata.name".into(),
            }],
        )
    })?;
    if names.group == TPR_GROUP {
        return Err(ApiError::invalid(
            &target,
            "ThirdPartyResource",
            vec![Cause {
                reason: "FieldValueForbidden",
                message: "the group extensions is reserved".into(),
                field: "metadata.name".into(),
            }],
        ));
    }
    Ok((names, versions_of(obj, &target)?))
}

/// Keeps the served types in step with the stored TPRs.
pub struct Controller {
    store: Arc<dyn Store>,
    served: Arc<ServedTypes>,
    tprs: Arc<ResourceType>,
    root: String,
    /// True once every stored TPR has been served.
    synced: tokio::sync::watch::Sender<bool>,
}

impl Controller {
    /// Starts serving the ThirdPartyResource type itself.
    pub fn new(store: Arc<dyn Store>, served: Arc<ServedTypes>) -> Result<Arc<Self>, StorageError> {
        let root = store.prefix().to_string();
        let key_prefix = format!("{root}thirdpartyresources/");
        let cache = Arc::new(WatchCache::start(store.clone(), &key_prefix, CacheConfig::default())?);
        let tprs = Arc::new(ResourceType {
            group: TPR_GROUP.into(),
            versions: vec![TPR_VERSION.into()],
            kind: "ThirdPartyResource".into(),
            plural: "thirdpartyresources".into(),
            singular: "thirdpartyresource".into(),
            namespaced: false,
            key_prefix,
            cache,
        });
        served.insert(tprs.clone());
        Ok(Arc::new(Controller { store, served, tprs, root, synced: tokio::sync::watch::channel(false).0 }))
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

    /// Serves the type a TPR describes (idempotent; versions follow the TPR).
    pub fn ensure_served(&self, tpr: &Value) -> Result<(), ApiError> {
        let (names, versions) = validate(tpr)?;
        if let Some(existing) = self.served.get(&names.group, &names.plural) {
            if existing.versions == versions {
                return Ok(());
            }
            self.served.insert(Arc::new(ResourceType { versions, ..clone_type(&existing) }));
            return Ok(());
        }
        let key_prefix = format!("{}{}/{}/", self.root, names.group, names.plural);
        let cache = WatchCache::start(self.store.clone(), &key_prefix, CacheConfig::default())
            .map_err(|e| ApiError::from_storage(e, &Target::default()))?;
        self.served.insert(Arc::new(ResourceType {
            group: names.group,
            versions,
            kind: names.kind,
            plural: names.plural,
            singular: names.singular,
            namespaced: true,
            key_prefix,
            cache: Arc::new(cache),
        }));
        Ok(())
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
                let Ok(obj) = serde_json::from_slice::<Value>(&event.object.value) else { continue };
                match event.kind {
                    EventKind::Added | EventKind::Modified => {
                        if let Err(e) = self.ensure_served(&obj) {
                            tracing::warn!(error = %e, "stored ThirdPartyResource is not valid; not served");
                            continue;
                        }
                        if meta_str(&obj, "deletionTimestamp").is_some() {
                            tokio::spawn(self.clone().finish_delete(obj, event.object.mod_revision));
                        }
                    }
                    EventKind::Deleted => {
                        if let Ok((names, _)) = validate(&obj) {
                            self.served.remove(&names.group, &names.plural);
                        }
                    }
                }
            }
        }
    }

    /// Deletes every object of a deleted TPR's type, then the TPR itself.
    pub async fn finish_delete(self: Arc<Self>, tpr: Value, revision: i64) {
        let Ok((names, _)) = validate(&tpr) else { return };
        let Some(rt) = self.served.get(&names.group, &names.plural) else { return };
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
        let name = meta_str(&tpr, "name").unwrap_or_default();
        match self.store.delete(&self.tprs.key(None, name), Some(revision)).await {
            Ok(_) | Err(StorageError::NotFound { .. }) | Err(StorageError::Conflict { .. }) => {}
            Err(e) => tracing::warn!(error = %e, tpr = name, "cannot delete the ThirdPartyResource"),
        }
    }
}

fn clone_type(t: &ResourceType) -> ResourceType {
    ResourceType {
        group: t.group.clone(),
        versions: t.versions.clone(),
        kind: t.kind.clone(),
        plural: t.plural.clone(),
        singular: t.singular.clone(),
        namespaced: t.namespaced,
        key_prefix: t.key_prefix.clone(),
        cache: t.cache.clone(),
    }
}
