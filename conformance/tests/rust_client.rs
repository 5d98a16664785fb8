//! The Rust `kube` crate: `Api<DynamicObject>` from discovery does the verbs,
//! and `kube::runtime::watcher` sees every change, also across a server restart.

mod common;

use std::time::Duration;

use futures::StreamExt;
use kube::api::{Api, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::watcher;
use kube::runtime::WatchStreamExt;
use kube::{Client, Config, Discovery};
use serde_json::json;
use tokio::sync::mpsc;

use common::{create_tpr, start_with, Backend};

async fn client(kubeconfig: &std::path::Path) -> Client {
    // kube's rustls leaves the choice of crypto provider to the application.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let kc = Kubeconfig::read_from(kubeconfig).expect("kubeconfig");
    let config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await.expect("config");
    Client::try_from(config).expect("client")
}

fn object(name: &str, size: &str) -> DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": "prsn.io/v1", "kind": "MysqlDb",
        "metadata": {"name": name}, "spec": {"size": size},
    }))
    .expect("object")
}

/// Watcher events as "apply NAME SIZE" / "delete NAME" lines.
fn describe(event: watcher::Event<DynamicObject>) -> Option<String> {
    let line = |verb: &str, o: &DynamicObject| {
        let size = o.data.pointer("/spec/size").and_then(|v| v.as_str()).unwrap_or("-");
        format!("{verb} {} {size}", o.metadata.name.clone().unwrap_or_default())
    };
    match event {
        watcher::Event::Apply(o) | watcher::Event::InitApply(o) => Some(line("apply", &o)),
        watcher::Event::Delete(o) => Some(line("delete", &o)),
        watcher::Event::InitDone => Some("init done".into()),
        watcher::Event::Init => None,
    }
}

async fn expect(rx: &mut mpsc::UnboundedReceiver<String>, want: &str) {
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while let Ok(Some(line)) = tokio::time::timeout_at(deadline, rx.recv()).await {
        if line == want {
            return;
        }
        seen.push(line);
    }
    panic!("the watcher never reported {want:?}; it reported {seen:?}");
}

fn kube_client(backend: Backend) {
    let port = testkit::free_port().expect("free port").to_string();
    let mut r = start_with(backend, &["--secure-port", &port]);
    create_tpr(&r.server, "mysql-db.prsn.io", &["v1"]);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let client = rt.block_on(client(&r.server.kubeconfig()));
    let (api, mut events) = rt.block_on(async {
        let discovery = Discovery::new(client.clone()).run().await.expect("discovery");
        let (resource, caps) =
            discovery.resolve_gvk(&GroupVersionKind::gvk("prsn.io", "v1", "MysqlDb")).expect("MysqlDb discovered");
        assert_eq!(resource.plural, "mysqldbs");
        assert_eq!(caps.scope, kube::discovery::Scope::Namespaced);
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), "default", &resource);
        let (tx, rx) = mpsc::unbounded_channel();
        let stream = watcher(api.clone(), watcher::Config::default()).default_backoff();
        tokio::spawn(async move {
            let mut stream = std::pin::pin!(stream);
            while let Some(event) = stream.next().await {
                if let Some(line) = event.ok().and_then(describe) {
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            }
        });
        (api, rx)
    });
    rt.block_on(async {
        expect(&mut events, "init done").await;
        let created = api.create(&PostParams::default(), &object("orders", "small")).await.expect("create");
        assert!(created.metadata.uid.is_some());
        expect(&mut events, "apply orders small").await;
        let got = api.get("orders").await.expect("get");
        assert_eq!(got.metadata.uid, created.metadata.uid);
        let list = api.list(&ListParams::default()).await.expect("list");
        assert_eq!(list.items.len(), 1);
        let patch = json!({"spec": {"size": "large"}});
        api.patch("orders", &PatchParams::default(), &Patch::Merge(&patch)).await.expect("merge patch");
        expect(&mut events, "apply orders large").await;
        let mut current = api.get("orders").await.expect("get");
        current.data["spec"]["size"] = json!("medium");
        api.replace("orders", &PostParams::default(), &current).await.expect("replace");
        expect(&mut events, "apply orders medium").await;
        api.delete("orders", &DeleteParams::default()).await.expect("delete");
        expect(&mut events, "delete orders medium").await;
    });
    // The server restarts (same port, same store); a change made before the
    // watcher reconnects still reaches it.
    r = r.restart();
    rt.block_on(async {
        api.create(&PostParams::default(), &object("after", "tiny")).await.expect("create after the restart");
        expect(&mut events, "apply after tiny").await;
    });
    drop(r);
}

on_both_backends!(kube_client);
