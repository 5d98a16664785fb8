//! The namespace lifecycle, as kube-apiserver's NamespaceLifecycle admission
//! and namespace controller:
//!
//! - [`check_create`]: a namespaced object is created only in a namespace
//!   that exists (404 `namespaces "x" not found`) and is not terminating (403).
//! - Deleting a namespace marks it (`deletionTimestamp`, `status.phase:
//!   Terminating`) through the generic registry: its `spec.finalizers` hold
//!   it, and `registry::strategy` refuses `default`, `kube-system` and
//!   `kube-public`.
//! - [`run`]: the controller. It creates those three namespaces, and on the
//!   first start after an upgrade the namespaces existing objects are in;
//!   for a terminating namespace it deletes every namespaced object of every
//!   type in it (each with its DELETED event; objects with finalizers are
//!   marked and waited for), then removes the `kubernetes` finalizer and the
//!   namespace.

use std::collections::{BTreeSet, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use serde_json::{json, Value};
use storage::cache::{EventKind, WatchStart};
use storage::{KeyValue, ListOptions, ReadRevision, StorageError, Store, WatchItem, WatchRequest};

use crate::registry::strategy::{NAMESPACE_FINALIZER, SYSTEM_NAMESPACES};
use crate::registry::{self, meta, meta_str, Preconditions, Scope};
use crate::served::{ResourceType, ServedTypes};
use crate::status::{ApiError, Target};

/// Objects deleted at once while a namespace is emptied.
const DELETE_CONCURRENCY: usize = 64;

fn namespaces(served: &ServedTypes) -> Option<Arc<ResourceType>> {
    served.get("", "namespaces")
}

fn target(name: &str) -> Target {
    Target { group: String::new(), resource: "namespaces".into(), name: name.to_string() }
}

/// The stored namespace `name`: from the cache, else (just created, not yet
/// seen by the cache) from the store, as kube's admission does a live lookup.
async fn lookup(store: &dyn Store, rt: &ResourceType, name: &str) -> Result<Option<Value>, ApiError> {
    Ok(lookup_stored(store, rt, name).await?.and_then(|v| serde_json::from_slice(&v).ok()))
}

/// The stored bytes of namespace `name`: from the cache, else the store.
async fn lookup_stored(store: &dyn Store, rt: &ResourceType, name: &str) -> Result<Option<bytes::Bytes>, ApiError> {
    let key = rt.key(None, name);
    let cached = rt.cache.get(&key, ReadRevision::Any).await.map_err(|e| ApiError::from_storage(e, &target(name)))?;
    Ok(match cached {
        Some(kv) => Some(kv.value.clone()),
        None => store.get(&key).await.map_err(|e| ApiError::from_storage(e, &target(name)))?.map(|kv| kv.value),
    })
}

/// Whether namespace `name` is terminating (`None` when it does not exist).
/// Every create asks, so it is parsed only when its bytes name
/// `deletionTimestamp` at all.
async fn terminating(store: &dyn Store, rt: &ResourceType, name: &str) -> Result<Option<bool>, ApiError> {
    Ok(lookup_stored(store, rt, name).await?.map(|v| {
        memchr::memmem::find(&v, b"deletionTimestamp").is_some()
            && serde_json::from_slice::<Value>(&v).is_ok_and(|obj| meta_str(&obj, "deletionTimestamp").is_some())
    }))
}

/// A create in `scope` may go ahead: its namespace exists and is not
/// terminating (only when the built-in types are served).
pub async fn check_create(
    store: &dyn Store,
    served: &ServedTypes,
    scope: &Scope<'_>,
    name: &str,
) -> Result<(), ApiError> {
    let (Some(ns), Some(rt)) = (scope.namespace, namespaces(served)) else { return Ok(()) };
    if !scope.rt.namespaced || !served.builtins() {
        return Ok(());
    }
    match terminating(store, &rt, ns).await? {
        None => Err(ApiError::not_found(&target(ns))),
        Some(true) => {
            let t = scope.target(name);
            let what = if t.group.is_empty() { t.resource.clone() } else { format!("{}.{}", t.resource, t.group) };
            let mut e = ApiError::forbidden_on(
                format!("{what} \"{name}\" is forbidden: unable to create new content in namespace {ns} because it is being terminated"),
                &t.group,
                &t.resource,
                name,
            );
            if let Some(details) = e.details.as_mut() {
                details["causes"] = json!([{"reason": "NamespaceTerminating", "message": format!("namespace {ns} is being terminated"), "field": "metadata.namespace"}]);
            }
            Err(e)
        }
        Some(false) => Ok(()),
    }
}

/// Creates the system namespaces that are missing (retrying while the
/// store does not answer). The server awaits it before its first request, so
/// that `kubectl get namespaces` right after start lists them all.
pub async fn ensure_system(store: &Arc<dyn Store>, served: &ServedTypes) {
    let Some(rt) = namespaces(served) else { return };
    for name in SYSTEM_NAMESPACES {
        ensure(store, &rt, name).await;
    }
}

/// Follows the namespaces until the process ends: creates the system ones
/// (and, once, those existing objects are in) and empties terminating ones.
pub async fn run(
    store: Arc<dyn Store>,
    served: Arc<ServedTypes>,
    loaded: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let Some(rt) = namespaces(&served) else { return };
    // Those not made before the server began serving (the store was down).
    ensure_system(&store, &served).await;
    let adopt = {
        let (store, served, rt) = (store.clone(), served.clone(), rt.clone());
        async move {
            loaded.await;
            adopt(&store, &served, &rt).await;
        }
    };
    tokio::spawn(adopt);
    let running: Arc<Mutex<HashSet<String>>> = Arc::default();
    loop {
        let req = WatchRequest { prefix: rt.key_prefix.clone(), start: WatchStart::WithInitialState };
        let mut watcher = match rt.cache.watch(&req).await {
            Ok(w) => w,
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch namespaces; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        while let Some(item) = watcher.recv().await {
            let event = match item {
                Ok(WatchItem::Event(e)) => e,
                Ok(WatchItem::Bookmark(_)) => continue,
                Err(e) => {
                    tracing::warn!(error = %e, "namespace watch ended; watching again");
                    break;
                }
            };
            if event.kind == EventKind::Deleted {
                continue;
            }
            let Ok(obj) = serde_json::from_slice::<Value>(&event.object.value) else { continue };
            let Some(name) = meta_str(&obj, "name").map(String::from) else { continue };
            if meta_str(&obj, "deletionTimestamp").is_none() {
                continue;
            }
            let first = running.lock().unwrap_or_else(|p| p.into_inner()).insert(name.clone());
            if first {
                let (store, served, running) = (store.clone(), served.clone(), running.clone());
                tokio::spawn(async move {
                    finalize(&store, &served, &name).await;
                    running.lock().unwrap_or_else(|p| p.into_inner()).remove(&name);
                });
            }
        }
    }
}

/// Creates namespace `name` if it is missing (retrying while the store does not answer).
async fn ensure(store: &Arc<dyn Store>, rt: &ResourceType, name: &str) {
    let mut pause = Duration::from_millis(100);
    loop {
        let obj = json!({
            "apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": name, "uid": uuid::Uuid::new_v4().to_string(), "creationTimestamp": meta::now_rfc3339(),
                         "labels": {"kubernetes.io/metadata.name": name}},
            "spec": {"finalizers": [NAMESPACE_FINALIZER]},
            "status": {"phase": "Active"},
        });
        let bytes = serde_json::to_vec(&obj).unwrap_or_default();
        match store.create(&rt.key(None, name), bytes.into()).await {
            Ok(_) => {
                tracing::info!(namespace = name, "namespace created");
                return;
            }
            Err(StorageError::AlreadyExists { .. }) => return,
            Err(e) => {
                tracing::warn!(error = %e, namespace = name, "cannot create a namespace; retrying");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// Creates the namespaces that stored objects are in but that were never
/// created (data written before namespaces were served).
async fn adopt(store: &Arc<dyn Store>, served: &ServedTypes, rt: &ResourceType) {
    let mut found = BTreeSet::new();
    for t in served.namespaced_storage() {
        let opts =
            ListOptions { prefix: t.key_prefix.clone(), start: None, limit: 0, revision: ReadRevision::Consistent };
        match t.cache.list(&opts).await {
            Ok(page) => {
                for kv in &page.items {
                    if let Some((ns, _)) = kv.key.strip_prefix(&t.key_prefix).and_then(|rest| rest.split_once('/')) {
                        found.insert(ns.to_string());
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, prefix = t.key_prefix, "cannot list objects to find their namespaces"),
        }
    }
    for ns in found {
        if matches!(lookup(store.as_ref(), rt, &ns).await, Ok(None)) {
            tracing::info!(namespace = ns, "creating the namespace that stored objects are in");
            ensure(store, rt, &ns).await;
        }
    }
}

/// Deletes one object of a terminating namespace: at once without
/// finalizers (conditional on the listed revision), else marked for deletion.
async fn delete_one(store: &dyn Store, t: &ResourceType, kv: &KeyValue) {
    let Ok(obj) = serde_json::from_slice::<Value>(&kv.value) else {
        // Unreadable: no finalizer can be honoured; it goes with its namespace.
        let _ = store.delete(&kv.key, Some(kv.mod_revision)).await;
        return;
    };
    if meta_str(&obj, "deletionTimestamp").is_some() {
        return;
    }
    let has_finalizers =
        crate::registry::meta_value(&obj, "finalizers").and_then(Value::as_array).is_some_and(|f| !f.is_empty());
    if !has_finalizers {
        match store.delete(&kv.key, Some(kv.mod_revision)).await {
            Ok(_) | Err(StorageError::NotFound { .. }) | Err(StorageError::Conflict { .. }) => {}
            Err(e) => tracing::warn!(error = %e, key = kv.key, "cannot delete an object of a terminating namespace"),
        }
        return;
    }
    let (Some(name), ns) = (meta_str(&obj, "name"), meta_str(&obj, "namespace")) else { return };
    let version = t.versions.first().cloned().unwrap_or_default();
    let scope = Scope { rt: t, version: &version, namespace: ns };
    if let Err(e) = registry::delete(store, scope, name, &Preconditions::default(), false, None).await {
        if e.code != 404 && e.code != 409 {
            tracing::warn!(error = %e.message, key = kv.key, "cannot mark an object of a terminating namespace");
        }
    }
}

/// Empties terminating namespace `name`, then removes it.
async fn finalize(store: &Arc<dyn Store>, served: &ServedTypes, name: &str) {
    let started = std::time::Instant::now();
    let mut pause = Duration::from_millis(20);
    let mut deleted_objects = 0usize;
    loop {
        let mut remaining = 0usize;
        for t in served.namespaced_storage() {
            let opts = ListOptions {
                prefix: t.list_prefix(Some(name)),
                start: None,
                limit: 0,
                revision: ReadRevision::Consistent,
            };
            let page = match t.cache.list(&opts).await {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!(error = %e, namespace = name, "cannot list a terminating namespace's objects");
                    remaining += 1;
                    continue;
                }
            };
            remaining += page.items.len();
            deleted_objects += page.items.len();
            futures::stream::iter(page.items.iter())
                .for_each_concurrent(DELETE_CONCURRENCY, |kv| delete_one(store.as_ref(), &t, kv))
                .await;
        }
        if remaining == 0 {
            break;
        }
        // Objects with finalizers are waited for.
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(1));
    }
    let Some(rt) = namespaces(served) else { return };
    let key = rt.key(None, name);
    loop {
        let kv = match store.get(&key).await {
            Ok(Some(kv)) => kv,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(error = %e, namespace = name, "cannot read a terminating namespace; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let Ok(mut obj) = serde_json::from_slice::<Value>(&kv.value) else {
            let _ = store.delete(&key, Some(kv.mod_revision)).await;
            return;
        };
        if let Some(Value::Array(f)) = obj.pointer_mut("/spec/finalizers") {
            f.retain(|x| x.as_str() != Some(NAMESPACE_FINALIZER));
        }
        let spec_done = obj.pointer("/spec/finalizers").and_then(Value::as_array).is_none_or(|f| f.is_empty());
        let meta_done = obj.pointer("/metadata/finalizers").and_then(Value::as_array).is_none_or(|f| f.is_empty());
        let result = if spec_done && meta_done {
            store.delete(&key, Some(kv.mod_revision)).await.map(|_| ())
        } else {
            let bytes = serde_json::to_vec(&obj).unwrap_or_default();
            match store.update(&key, bytes.into(), Some(kv.mod_revision)).await {
                Ok(_) => return,
                Err(e) => Err(e),
            }
        };
        match result {
            Ok(()) => {
                tracing::info!(namespace = name, objects = deleted_objects, elapsed = ?started.elapsed(), "namespace deleted");
                return;
            }
            Err(StorageError::Conflict { .. }) => continue,
            Err(StorageError::NotFound { .. }) => return,
            Err(e) => {
                tracing::warn!(error = %e, namespace = name, "cannot remove a terminating namespace; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}
