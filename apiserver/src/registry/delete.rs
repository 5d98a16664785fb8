//! Deletes: an object, or its mark for deletion while finalizers remain,
//! with preconditions; and the unsafe delete of an object that cannot be read.

use serde_json::Value;
use storage::{StorageError, Store};

use super::{decode, encode, meta, meta_str, metadata_mut, stored, Scope};
use crate::status::{ApiError, Cause};

/// Delete preconditions from DeleteOptions.
#[derive(Clone, Debug, Default)]
pub struct Preconditions {
    /// The object must have this uid.
    pub uid: Option<String>,
    /// The object must be at this resourceVersion.
    pub resource_version: Option<i64>,
}

/// Deletes an object that cannot be read (`ignoreStoreReadErrorWithClusterBreakingPotential`):
/// no preconditions, no finalizers, as kube-apiserver's unsafe delete
/// (KEP-3926). A readable object is a 422: the option is only for corrupt ones.
pub async fn delete_corrupt(store: &dyn Store, scope: Scope<'_>, name: &str) -> Result<Value, ApiError> {
    let target = scope.target(name);
    let key = scope.key(name);
    loop {
        let current = stored(store, &key, &target).await?;
        if decode(&current, &scope.rt.api_version(scope.version)).is_ok() {
            return Err(ApiError::invalid(
                &target,
                "DeleteOptions",
                vec![Cause {
                    reason: "FieldValueInvalid",
                    message: "Invalid value: true: is exclusively used to delete corrupt object(s), try again by removing this option".into(),
                    field: "ignoreStoreReadErrorWithClusterBreakingPotential".into(),
                }],
            ));
        }
        match store.delete(&key, Some(current.mod_revision)).await {
            Ok(_) => {
                tracing::warn!(
                    key,
                    "a corrupt object was deleted with ignoreStoreReadErrorWithClusterBreakingPotential"
                );
                return Ok(serde_json::json!({
                    "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                    "details": {"name": name, "group": target.group, "kind": target.resource},
                }));
            }
            Err(StorageError::Conflict { .. }) => continue,
            Err(e) => return Err(ApiError::from_storage(e, &target)),
        }
    }
}

/// Deletes an object, or marks it for deletion (a deletionTimestamp) while
/// finalizers remain; `keep_for` adds a finalizer of the server's own.
pub async fn delete(
    store: &dyn Store,
    scope: Scope<'_>,
    name: &str,
    pre: &Preconditions,
    dry_run: bool,
    keep_for: Option<&str>,
) -> Result<Value, ApiError> {
    let target = scope.target(name);
    let key = scope.key(name);
    let api_version = scope.rt.api_version(scope.version);
    super::strategy::check_delete(&scope, name)?;
    loop {
        let current = stored(store, &key, &target).await?;
        let mut obj = decode(&current, &api_version)?;
        if let Some(uid) = &pre.uid {
            if meta_str(&obj, "uid") != Some(uid.as_str()) {
                return Err(ApiError::conflict(
                    &target,
                    format!(
                        "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                        meta_str(&obj, "uid").unwrap_or("")
                    ),
                ));
            }
        }
        if let Some(rv) = pre.resource_version {
            if rv != current.mod_revision {
                return Err(ApiError::conflict(&target, format!("Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}", current.mod_revision)));
            }
        }
        if dry_run {
            return Ok(obj);
        }
        let has_finalizers = keep_for.is_some() || super::strategy::finalizers_pending(&scope, &obj);
        let result = if has_finalizers {
            if meta_str(&obj, "deletionTimestamp").is_some() {
                return Ok(obj);
            }
            let meta = metadata_mut(&mut obj)?;
            meta.insert("deletionTimestamp".into(), Value::String(meta::now_rfc3339()));
            meta.insert("deletionGracePeriodSeconds".into(), Value::from(0));
            if let Some(finalizer) = keep_for {
                let list = meta.entry("finalizers").or_insert_with(|| Value::Array(Vec::new()));
                if let Some(list) = list.as_array_mut() {
                    if !list.iter().any(|f| f.as_str() == Some(finalizer)) {
                        list.push(Value::String(finalizer.to_string()));
                    }
                }
            }
            super::strategy::mark_deleting(&scope, &mut obj);
            store.update(&key, encode(&obj)?, Some(current.mod_revision)).await.map(|kv| (kv, None))
        } else {
            store.delete(&key, Some(current.mod_revision)).await.map(|d| (d.prev, Some(d.revision)))
        };
        match result {
            Ok((kv, deleted_at)) => {
                let mut kv = kv;
                if let Some(rev) = deleted_at {
                    kv.mod_revision = rev;
                }
                if has_finalizers {
                    return decode(&kv, &api_version);
                }
                let mut out = decode(&kv, &api_version)?;
                if let Some(Value::Object(m)) = out.get_mut("metadata") {
                    m.insert("resourceVersion".into(), Value::String(kv.mod_revision.to_string()));
                }
                return Ok(out);
            }
            // Changed meanwhile: re-read and re-check the preconditions.
            Err(StorageError::Conflict { .. }) => continue,
            Err(e) => return Err(ApiError::from_storage(e, &target)),
        }
    }
}
