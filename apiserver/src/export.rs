//! `tpr-apiserver export`: the CRDs of the stored ThirdPartyResources, or
//! their objects, read through the API (so it runs beside a serving
//! server) and written to stdout as one YAML stream (see [`crate::tpr::export`]).

use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, ListParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use serde_json::Value;

use crate::config::flags::ExportArgs;
use crate::tpr::export;

async fn list(api: &Api<DynamicObject>) -> Result<Vec<Value>, String> {
    let mut lp = ListParams::default().limit(500);
    let mut out = Vec::new();
    loop {
        let page = api.list(&lp).await.map_err(|e| e.to_string())?;
        for o in page.items {
            out.push(serde_json::to_value(o).map_err(|e| e.to_string())?);
        }
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => lp = lp.continue_token(&token),
            None => return Ok(out),
        }
    }
}

/// Runs the export against the server of `kubeconfig`; the YAML stream.
pub async fn run(args: &ExportArgs, kubeconfig: &std::path::Path) -> Result<String, String> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let kc = Kubeconfig::read_from(kubeconfig).map_err(|e| format!("{}: {e}", kubeconfig.display()))?;
    let config =
        kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await.map_err(|e| e.to_string())?;
    let client = kube::Client::try_from(config).map_err(|e| e.to_string())?;
    let tpr_resource = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(crate::tpr::TPR_GROUP, crate::tpr::TPR_VERSION, "ThirdPartyResource"),
        "thirdpartyresources",
    );
    let tprs = list(&Api::all_with(client.clone(), &tpr_resource)).await?;
    let mut docs = Vec::new();
    for tpr in &tprs {
        let name = export::name(tpr);
        if !args.names.is_empty() && !args.names.iter().any(|n| n == name) {
            continue;
        }
        let Some((crd, storage)) = export::crd(tpr) else {
            eprintln!("skipping ThirdPartyResource {name:?}: not valid, or no version a CRD can serve");
            continue;
        };
        if !args.objects {
            docs.push(crd);
            continue;
        }
        let (group, kind, plural) = (
            crd["spec"]["group"].as_str().unwrap_or_default().to_string(),
            crd["spec"]["names"]["kind"].as_str().unwrap_or_default().to_string(),
            crd["spec"]["names"]["plural"].as_str().unwrap_or_default().to_string(),
        );
        let resource = ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(&group, &storage, &kind), &plural);
        for obj in list(&Api::all_with(client.clone(), &resource)).await? {
            docs.push(export::object(&obj, &group, &storage));
        }
    }
    let mut out = String::new();
    for d in docs {
        out.push_str("---\n");
        out.push_str(&serde_norway::to_string(&d).map_err(|e| e.to_string())?);
    }
    Ok(out)
}
