//! APIService registration (`--register-apiservices`): keeps one
//! `apiregistration.k8s.io/v1` APIService in the host cluster for every
//! group-version this server serves (including `v1beta1.extensions`), pointing
//! at its Service with its CA bundle, and removes the ones whose TPR is gone.
//!
//! Every replica runs the same loop; they converge without flapping because
//! the wanted spec depends only on the stored TPRs (read consistently, so a
//! replica that has not yet seen a new TPR does not delete its APIService) and
//! the flags, an APIService is written only when it differs, and only the
//! APIServices labelled as ours are ever deleted.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use kube::api::{Api, DeleteParams, DynamicObject, ListParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::{json, Value};
use storage::{ListOptions, ReadRevision};

use crate::registry::meta::is_dns_label;
use crate::served::ResourceType;

/// The label on the APIServices this server manages.
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "tpr-apiserver");
/// How often the APIServices are checked even when nothing changed.
pub const RESYNC: Duration = Duration::from_secs(30);

/// Where the host cluster reaches this server.
#[derive(Clone, Debug)]
pub struct ServiceRef {
    /// Namespace of the Service.
    pub namespace: String,
    /// Name of the Service.
    pub name: String,
    /// Its port.
    pub port: u16,
    /// PEM of the CA that signed the serving certificate.
    pub ca_pem: String,
}

/// The APIServices this server wants, by name (`<version>.<group>`).
pub fn wanted(group_versions: &[(String, String)], service: &ServiceRef) -> BTreeMap<String, Value> {
    use base64::Engine;
    let ca_bundle = base64::engine::general_purpose::STANDARD.encode(service.ca_pem.as_bytes());
    group_versions
        .iter()
        .map(|(group, version)| {
            let name = format!("{version}.{group}");
            let object = json!({
                "apiVersion": "apiregistration.k8s.io/v1",
                "kind": "APIService",
                "metadata": {"name": name, "labels": {MANAGED_BY.0: MANAGED_BY.1}},
                "spec": {
                    "group": group,
                    "version": version,
                    "service": {"namespace": service.namespace, "name": service.name, "port": service.port},
                    "caBundle": ca_bundle,
                    "groupPriorityMinimum": 1000,
                    "versionPriority": 15,
                },
            });
            (name, object)
        })
        .collect()
}

/// The group-versions of the stored TPRs (read consistently), plus `extensions/v1beta1`.
async fn stored_group_versions(tprs: &ResourceType) -> Result<Vec<(String, String)>, String> {
    let opts =
        ListOptions { prefix: tprs.list_prefix(None), start: None, limit: 0, revision: ReadRevision::Consistent };
    let page = tprs.cache.list(&opts).await.map_err(|e| e.to_string())?;
    let mut out = vec![("extensions".to_string(), "v1beta1".to_string())];
    let mut stored = std::collections::BTreeMap::new();
    for kv in &page.items {
        let Ok(tpr) = serde_json::from_slice::<Value>(&kv.value) else { continue };
        if tpr.pointer("/metadata/deletionTimestamp").is_some() {
            continue;
        }
        if let Some(c) = crate::tpr::candidate(&tpr) {
            stored.insert(c.name.clone(), c);
        }
    }
    // Only what is served: a TPR that conflicts with an older one is not.
    for c in crate::tpr::resolve(&stored).0 {
        for v in c.versions.iter().filter(|v| is_dns_label(v)) {
            out.push((c.names.group.clone(), v.clone()));
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// Keeps the APIServices in line until the process ends: after every change
/// of the stored TPRs (a watch on their cache), and every [`RESYNC`].
pub async fn run(client: kube::Client, tprs: Arc<ResourceType>, service: ServiceRef) {
    let resource = ApiResource::from_gvk(&GroupVersionKind::gvk("apiregistration.k8s.io", "v1", "APIService"));
    let api: Api<DynamicObject> = Api::all_with(client, &resource);
    let mut changes = None;
    loop {
        if changes.is_none() {
            let req = storage::WatchRequest { prefix: tprs.list_prefix(None), start: storage::cache::WatchStart::Now };
            changes = tprs.cache.watch(&req).await.ok();
        }
        if let Err(e) = reconcile(&api, &tprs, &service).await {
            tracing::warn!(error = %e, "APIService registration failed; retrying");
        }
        let next_change = async {
            match changes.as_mut() {
                Some(w) => w.recv().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            item = next_change => if item.is_none() { changes = None },
            _ = tokio::time::sleep(RESYNC) => {}
        }
    }
}

/// One pass: create what is missing, update what differs, delete ours that are not wanted.
pub async fn reconcile(api: &Api<DynamicObject>, tprs: &ResourceType, service: &ServiceRef) -> Result<(), String> {
    let wanted = wanted(&stored_group_versions(tprs).await?, service);
    for (name, object) in &wanted {
        let current = api.get_opt(name).await.map_err(|e| e.to_string())?;
        match current {
            None => {
                let obj: DynamicObject = serde_json::from_value(object.clone()).map_err(|e| e.to_string())?;
                match api.create(&PostParams::default(), &obj).await {
                    Ok(_) => tracing::info!(apiservice = %name, "registered"),
                    // Another replica was first: the next pass compares.
                    Err(kube::Error::Api(e)) if e.code == 409 => {}
                    Err(e) => return Err(e.to_string()),
                }
            }
            Some(cur) => {
                let same_spec = cur.data.get("spec") == object.get("spec");
                let labelled = cur.metadata.labels.as_ref().and_then(|l| l.get(MANAGED_BY.0)).map(String::as_str)
                    == Some(MANAGED_BY.1);
                if same_spec && labelled {
                    continue;
                }
                let mut obj: DynamicObject = serde_json::from_value(object.clone()).map_err(|e| e.to_string())?;
                obj.metadata.resource_version = cur.metadata.resource_version.clone();
                match api.replace(name, &PostParams::default(), &obj).await {
                    Ok(_) => tracing::info!(apiservice = %name, "updated"),
                    Err(kube::Error::Api(e)) if e.code == 409 => {}
                    Err(e) => return Err(e.to_string()),
                }
            }
        }
    }
    let ours = api
        .list(&ListParams::default().labels(&format!("{}={}", MANAGED_BY.0, MANAGED_BY.1)))
        .await
        .map_err(|e| e.to_string())?;
    for obj in ours.items {
        let Some(name) = obj.metadata.name.as_deref() else { continue };
        if !wanted.contains_key(name) {
            match api.delete(name, &DeleteParams::default()).await {
                Ok(_) => tracing::info!(apiservice = %name, "removed"),
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => return Err(e.to_string()),
            }
        }
    }
    Ok(())
}
