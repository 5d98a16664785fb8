//! A small stand-in for a host cluster's kube-apiserver (no real one can run
//! here): it answers TokenReview and SubjectAccessReview as kube-apiserver
//! does, over HTTPS on a free loopback port, and writes a kubeconfig for it.
//!
//! Tokens: `<name>-token` authenticates as `<name>` in group `reviewed`;
//! anything else is not authenticated. Access: a user may do what
//! `allow(user, verb, resource)` says. Every review is counted, so that tests
//! can see the caching of the server under test.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::sync::Mutex;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::{json, Value};

use crate::TestPki;

/// Who may do what: `(user, verb, resource) -> allowed`; for a request of a
/// path that is no resource, `resource` is the path (`/metrics`).
pub type Policy = Arc<dyn Fn(&str, &str, &str) -> bool + Send + Sync>;

/// The running stand-in; stops when dropped.
pub struct FakeKube {
    pki: TestPki,
    url: String,
    token_reviews: Arc<AtomicUsize>,
    access_reviews: Arc<AtomicUsize>,
    apiservices: Arc<Mutex<ApiServices>>,
    extension_authentication: Arc<Mutex<Option<Value>>>,
    _runtime: tokio::runtime::Runtime,
}

/// The stored APIServices and the revision counter.
#[derive(Default)]
struct ApiServices {
    objects: BTreeMap<String, Value>,
    revision: u64,
    /// Every create, update and delete, in order: (create | update | delete, name).
    writes: Vec<(String, String)>,
}

/// Shared state of the handlers.
#[derive(Clone)]
struct State {
    policy: Policy,
    token_reviews: Arc<AtomicUsize>,
    access_reviews: Arc<AtomicUsize>,
    apiservices: Arc<Mutex<ApiServices>>,
    extension_authentication: Arc<Mutex<Option<Value>>>,
}

impl FakeKube {
    /// Starts it with `policy` deciding SubjectAccessReviews.
    pub fn start(policy: Policy) -> std::io::Result<FakeKube> {
        let pki = TestPki::generate("fake-kube-client")?;
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(pki.server_cert())
            .map_err(|e| std::io::Error::other(e.to_string()))?
            .collect::<Result<_, _>>()
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        let key = PrivateKeyDer::from_pem_file(pki.server_key()).map_err(|e| std::io::Error::other(e.to_string()))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| std::io::Error::other(e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build()?;
        let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
        let url = format!("https://{}", listener.local_addr()?);
        let (token_reviews, access_reviews) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let apiservices = Arc::new(Mutex::new(ApiServices::default()));
        let extension_authentication = Arc::new(Mutex::new(None));
        let state = State {
            extension_authentication: extension_authentication.clone(),
            policy,
            token_reviews: token_reviews.clone(),
            access_reviews: access_reviews.clone(),
            apiservices: apiservices.clone(),
        };
        runtime.spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (acceptor, state) = (acceptor.clone(), state.clone());
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else { return };
                    let service = hyper::service::service_fn(move |req| {
                        let state = state.clone();
                        async move { Ok::<_, Infallible>(answer(req, &state).await) }
                    });
                    let _ =
                        hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(tls), service).await;
                });
            }
        });
        Ok(FakeKube {
            pki,
            url,
            token_reviews,
            access_reviews,
            apiservices,
            extension_authentication,
            _runtime: runtime,
        })
    }

    /// Writes a kubeconfig for it (trusting its CA) and returns the path.
    pub fn kubeconfig(&self) -> std::io::Result<PathBuf> {
        let path = self.pki.dir().join("host.kubeconfig");
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: host\n  cluster:\n    server: {}\n    certificate-authority: {}\nusers:\n- name: host\n  user:\n    token: fake-kube-token\ncontexts:\n- name: host\n  context:\n    cluster: host\n    user: host\ncurrent-context: host\n",
            self.url,
            self.pki.ca_cert().display()
        );
        std::fs::write(&path, text)?;
        Ok(path)
    }

    /// TokenReviews answered so far.
    pub fn token_reviews(&self) -> usize {
        self.token_reviews.load(Ordering::SeqCst)
    }

    /// SubjectAccessReviews answered so far.
    pub fn access_reviews(&self) -> usize {
        self.access_reviews.load(Ordering::SeqCst)
    }

    /// The stored APIServices by name.
    pub fn apiservices(&self) -> BTreeMap<String, Value> {
        self.apiservices.lock().map(|a| a.objects.clone()).unwrap_or_default()
    }

    /// Publishes `kube-system/extension-apiserver-authentication` with this `data`.
    pub fn set_extension_authentication(&self, data: Value) {
        if let Ok(mut e) = self.extension_authentication.lock() {
            *e = Some(data);
        }
    }

    /// Every APIService write so far: (create | update | delete, name).
    pub fn apiservice_writes(&self) -> Vec<(String, String)> {
        self.apiservices.lock().map(|a| a.writes.clone()).unwrap_or_default()
    }
}

async fn answer(req: Request<hyper::body::Incoming>, state: &State) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let method = req.method().clone();
    let authorized = req.headers().get("authorization").and_then(|v| v.to_str().ok()) == Some("Bearer fake-kube-token");
    let body: Value = match req.into_body().collect().await {
        Ok(b) => serde_json::from_slice(&b.to_bytes()).unwrap_or(Value::Null),
        Err(_) => Value::Null,
    };
    let reply = |code: u16, v: Value| {
        let mut r = Response::new(Full::new(Bytes::from(v.to_string())));
        *r.status_mut() = hyper::StatusCode::from_u16(code).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
        r.headers_mut().insert("content-type", hyper::header::HeaderValue::from_static("application/json"));
        r
    };
    if !authorized {
        return reply(
            401,
            json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 401, "reason": "Unauthorized"}),
        );
    }
    match path.as_str() {
        "/apis/authentication.k8s.io/v1/tokenreviews" => {
            state.token_reviews.fetch_add(1, Ordering::SeqCst);
            let token = body.pointer("/spec/token").and_then(Value::as_str).unwrap_or("");
            let status = match token.strip_suffix("-token") {
                Some(name) if !name.is_empty() => json!({
                    "authenticated": true,
                    "user": {"username": name, "uid": format!("uid-{name}"), "groups": ["reviewed"], "extra": {"via": ["tokenreview"]}},
                }),
                _ => json!({"authenticated": false, "error": "invalid bearer token"}),
            };
            let mut review = body.clone();
            review["status"] = status;
            reply(201, review)
        }
        "/apis/authorization.k8s.io/v1/subjectaccessreviews" => {
            state.access_reviews.fetch_add(1, Ordering::SeqCst);
            let user = body.pointer("/spec/user").and_then(Value::as_str).unwrap_or("");
            // A request for a path that is no resource passes its path as the resource.
            let text = |p: &str| body.pointer(p).and_then(Value::as_str);
            let verb = text("/spec/resourceAttributes/verb").or(text("/spec/nonResourceAttributes/verb")).unwrap_or("");
            let resource =
                text("/spec/resourceAttributes/resource").or(text("/spec/nonResourceAttributes/path")).unwrap_or("");
            let allowed = (state.policy)(user, verb, resource);
            let mut review = body.clone();
            review["status"] =
                json!({"allowed": allowed, "reason": if allowed { "allowed by the test policy" } else { "" }});
            reply(201, review)
        }
        "/api/v1/namespaces/kube-system/configmaps/extension-apiserver-authentication" => {
            match state.extension_authentication.lock().ok().and_then(|e| e.clone()) {
                Some(data) => reply(
                    200,
                    json!({"kind": "ConfigMap", "apiVersion": "v1",
                    "metadata": {"name": "extension-apiserver-authentication", "namespace": "kube-system"}, "data": data}),
                ),
                None => {
                    reply(404, status(404, "NotFound", "configmaps \"extension-apiserver-authentication\" not found"))
                }
            }
        }
        "/api" => reply(200, json!({"kind": "APIVersions", "versions": ["v1"]})),
        "/apis" => reply(200, discovery_groups()),
        p if discovery_resources(p).is_some() => reply(200, discovery_resources(p).unwrap_or_default()),
        p if p.starts_with(APISERVICES) => {
            let (code, v) = apiservice(state, &method, p[APISERVICES.len()..].trim_start_matches('/'), &query, body);
            reply(code, v)
        }
        _ => reply(404, status(404, "NotFound", "not found")),
    }
}

const APISERVICES: &str = "/apis/apiregistration.k8s.io/v1/apiservices";

/// The groups a deployment of tpr-apiserver uses (legacy discovery), and
/// apiextensions for the CRDs `tpr-apiserver export` writes.
const GROUPS: [(&str, &str); 5] = [
    ("apps", "v1"),
    ("policy", "v1"),
    ("rbac.authorization.k8s.io", "v1"),
    ("apiregistration.k8s.io", "v1"),
    ("apiextensions.k8s.io", "v1"),
];

fn discovery_groups() -> Value {
    let groups: Vec<Value> = GROUPS
        .iter()
        .map(|(g, v)| {
            let gv = json!({"groupVersion": format!("{g}/{v}"), "version": v});
            json!({"name": g, "versions": [gv.clone()], "preferredVersion": gv})
        })
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `/api/v1` and `/apis/<g>/<v>` resource lists (for kubectl's REST mapping).
fn discovery_resources(path: &str) -> Option<Value> {
    let verbs = json!(["create", "delete", "get", "list", "patch", "update", "watch"]);
    let r = |name: &str, singular: &str, kind: &str, namespaced: bool| json!({"name": name, "singularName": singular, "kind": kind, "namespaced": namespaced, "verbs": verbs});
    let (gv, resources) = match path {
        "/api/v1" => (
            "v1",
            vec![
                r("namespaces", "namespace", "Namespace", false),
                r("serviceaccounts", "serviceaccount", "ServiceAccount", true),
                r("services", "service", "Service", true),
                r("secrets", "secret", "Secret", true),
                r("configmaps", "configmap", "ConfigMap", true),
            ],
        ),
        "/apis/apps/v1" => (
            "apps/v1",
            vec![
                r("deployments", "deployment", "Deployment", true),
                r("statefulsets", "statefulset", "StatefulSet", true),
            ],
        ),
        "/apis/policy/v1" => {
            ("policy/v1", vec![r("poddisruptionbudgets", "poddisruptionbudget", "PodDisruptionBudget", true)])
        }
        "/apis/rbac.authorization.k8s.io/v1" => (
            "rbac.authorization.k8s.io/v1",
            vec![
                r("clusterroles", "clusterrole", "ClusterRole", false),
                r("clusterrolebindings", "clusterrolebinding", "ClusterRoleBinding", false),
                r("roles", "role", "Role", true),
                r("rolebindings", "rolebinding", "RoleBinding", true),
            ],
        ),
        "/apis/apiextensions.k8s.io/v1" => (
            "apiextensions.k8s.io/v1",
            vec![r("customresourcedefinitions", "customresourcedefinition", "CustomResourceDefinition", false)],
        ),
        "/apis/apiregistration.k8s.io/v1" => {
            ("apiregistration.k8s.io/v1", vec![r("apiservices", "apiservice", "APIService", false)])
        }
        _ => return None,
    };
    Some(json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}))
}

fn status(code: u16, reason: &str, message: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": code, "reason": reason, "message": message})
}

/// APIService storage with kube-apiserver's answers.
fn apiservice(state: &State, method: &hyper::Method, name: &str, query: &str, mut body: Value) -> (u16, Value) {
    let Ok(mut a) = state.apiservices.lock() else { return (500, status(500, "InternalError", "poisoned")) };
    match (method.as_str(), name) {
        ("GET", "") => {
            // Only `labelSelector=key=value` (what the server under test sends).
            let selector = query
                .split('&')
                .find_map(|kv| kv.strip_prefix("labelSelector="))
                .map(|s| s.replace("%3D", "=").replace("%2F", "/"))
                .unwrap_or_default();
            let items: Vec<Value> = (a.objects.values())
                .filter(|o| match selector.split_once('=') {
                    Some((k, v)) => o["metadata"]["labels"][k] == v,
                    None => true,
                })
                .cloned()
                .collect();
            let rv = a.revision.to_string();
            let list = json!({"kind": "APIServiceList", "apiVersion": "apiregistration.k8s.io/v1",
                              "metadata": {"resourceVersion": rv}, "items": items});
            (200, list)
        }
        ("POST", "") => {
            let name = body["metadata"]["name"].as_str().unwrap_or_default().to_string();
            if a.objects.contains_key(&name) {
                let message = format!("apiservices.apiregistration.k8s.io \"{name}\" already exists");
                return (409, status(409, "AlreadyExists", &message));
            }
            a.revision += 1;
            body["metadata"]["resourceVersion"] = json!(a.revision.to_string());
            a.objects.insert(name.clone(), body.clone());
            a.writes.push(("create".into(), name));
            (201, body)
        }
        ("GET", name) => match a.objects.get(name) {
            Some(o) => (200, o.clone()),
            None => (404, status(404, "NotFound", "not found")),
        },
        ("PUT", name) => {
            let Some(current) = a.objects.get(name) else { return (404, status(404, "NotFound", "not found")) };
            if body["metadata"]["resourceVersion"] != current["metadata"]["resourceVersion"] {
                return (409, status(409, "Conflict", "the object has been modified"));
            }
            a.revision += 1;
            body["metadata"]["resourceVersion"] = json!(a.revision.to_string());
            a.objects.insert(name.to_string(), body.clone());
            a.writes.push(("update".into(), name.to_string()));
            (200, body)
        }
        ("DELETE", name) => match a.objects.remove(name) {
            Some(o) => {
                a.writes.push(("delete".into(), name.to_string()));
                (200, o)
            }
            None => (404, status(404, "NotFound", "not found")),
        },
        _ => (405, status(405, "MethodNotAllowed", "method not allowed")),
    }
}
