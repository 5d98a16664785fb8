//! An example operator for the seed's MysqlDb objects (`prsn.io/v1`), run
//! against tpr-apiserver alone: a `kube-runtime` [`Controller`] that writes
//! `status.reconciledBy`, and Lease-based leader election (a
//! `coordination.k8s.io/v1` Lease, taken over when its holder stops renewing
//! it, as client-go's leader election does), so that of several instances
//! exactly one reconciles.
//!
//! Usage: `KUBECONFIG=<kubeconfig> mysqldb-controller IDENTITY [LEASE_SECONDS]`.
//! Prints `LEADING <identity>` when it becomes the leader and `RECONCILED
//! <namespace>/<name> by <identity>` per reconcile; exits when it loses the lease.
#![forbid(unsafe_code)]

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures::StreamExt;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::Client;
use serde_json::{json, Value};

const LEASE_NAME: &str = "mysqldb-controller";
const LEASE_NAMESPACE: &str = "default";

struct Context {
    client: Client,
    resource: ApiResource,
    identity: String,
}

fn now() -> String {
    humantime::format_rfc3339_micros(SystemTime::now()).to_string()
}

/// Whether the lease `spec` is held by someone else who renewed it within its duration.
fn held_by_other(spec: &Value, identity: &str) -> bool {
    let holder = spec.get("holderIdentity").and_then(Value::as_str).unwrap_or("");
    if holder.is_empty() || holder == identity {
        return false;
    }
    let duration = Duration::from_secs(spec.get("leaseDurationSeconds").and_then(Value::as_u64).unwrap_or(15));
    let renewed = spec.get("renewTime").and_then(Value::as_str).and_then(|t| humantime::parse_rfc3339_weak(t).ok());
    renewed.is_some_and(|r| SystemTime::now().duration_since(r).map_or(true, |age| age < duration))
}

/// Tries once to take or renew the lease: true when this instance holds it.
async fn try_acquire(leases: &Api<DynamicObject>, resource: &ApiResource, identity: &str, seconds: u64) -> bool {
    let current = match leases.get_opt(LEASE_NAME).await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("cannot read the lease: {e}");
            return false;
        }
    };
    let Some(mut lease) = current else {
        let mut lease = DynamicObject::new(LEASE_NAME, resource).within(LEASE_NAMESPACE);
        lease.data = json!({"spec": {"holderIdentity": identity, "leaseDurationSeconds": seconds,
                                     "acquireTime": now(), "renewTime": now(), "leaseTransitions": 0}});
        return leases.create(&PostParams::default(), &lease).await.is_ok();
    };
    let spec = lease.data.get("spec").cloned().unwrap_or(json!({}));
    if held_by_other(&spec, identity) {
        return false;
    }
    let mine = spec.get("holderIdentity").and_then(Value::as_str) == Some(identity);
    let transitions = spec.get("leaseTransitions").and_then(Value::as_i64).unwrap_or(0);
    let mut next = json!({"holderIdentity": identity, "leaseDurationSeconds": seconds, "renewTime": now(),
                          "leaseTransitions": if mine { transitions } else { transitions + 1 }});
    next["acquireTime"] = if mine { spec.get("acquireTime").cloned().unwrap_or(json!(now())) } else { json!(now()) };
    lease.data["spec"] = next;
    // A replace at the read resourceVersion: of two racing candidates one wins (409 for the other).
    leases.replace(LEASE_NAME, &PostParams::default(), &lease).await.is_ok()
}

async fn reconcile(obj: Arc<DynamicObject>, ctx: Arc<Context>) -> Result<Action, kube::Error> {
    let (Some(name), Some(ns)) = (obj.metadata.name.clone(), obj.metadata.namespace.clone()) else {
        return Ok(Action::await_change());
    };
    if obj.data.pointer("/status/reconciledBy").and_then(Value::as_str) != Some(ctx.identity.as_str()) {
        let api: Api<DynamicObject> = Api::namespaced_with(ctx.client.clone(), &ns, &ctx.resource);
        let status = json!({"status": {"reconciledBy": ctx.identity, "size": obj.data.pointer("/spec/size")}});
        api.patch(&name, &PatchParams::default(), &Patch::Merge(status)).await?;
    }
    println!("RECONCILED {ns}/{name} by {}", ctx.identity);
    Ok(Action::await_change())
}

fn error_policy(_: Arc<DynamicObject>, e: &kube::Error, _: Arc<Context>) -> Action {
    eprintln!("reconcile failed: {e}");
    Action::requeue(Duration::from_millis(500))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut args = std::env::args().skip(1);
    let identity = args.next().ok_or("usage: mysqldb-controller IDENTITY [LEASE_SECONDS]")?;
    let seconds: u64 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(15);
    let client = Client::try_default().await?;
    let lease_resource =
        ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("coordination.k8s.io", "v1", "Lease"), "leases");
    let leases: Api<DynamicObject> = Api::namespaced_with(client.clone(), LEASE_NAMESPACE, &lease_resource);
    let retry = Duration::from_millis(seconds * 1000 / 5);
    while !try_acquire(&leases, &lease_resource, &identity, seconds).await {
        tokio::time::sleep(retry).await;
    }
    println!("LEADING {identity}");
    // Renew every third of the lease; a renewal that fails for a whole lease ends this leader.
    let renewing = {
        let (leases, lease_resource, identity) = (leases.clone(), lease_resource.clone(), identity.clone());
        async move {
            let mut last = tokio::time::Instant::now();
            loop {
                tokio::time::sleep(Duration::from_millis(seconds * 1000 / 3)).await;
                if try_acquire(&leases, &lease_resource, &identity, seconds).await {
                    last = tokio::time::Instant::now();
                } else if last.elapsed() >= Duration::from_secs(seconds) {
                    return;
                }
            }
        }
    };
    let resource = ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("prsn.io", "v1", "MysqlDb"), "mysqldbs");
    let objects: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
    let ctx = Arc::new(Context { client, resource: resource.clone(), identity: identity.clone() });
    let controller = Controller::new_with(objects, watcher::Config::default(), resource)
        .run(reconcile, error_policy, ctx)
        .for_each(|_| async {});
    tokio::select! {
        _ = controller => {}
        _ = renewing => eprintln!("lost the lease; stopping"),
    }
    Ok(())
}
