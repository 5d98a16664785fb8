//! A small stand-in for a host cluster's kube-apiserver (no real one can run
//! here): it answers TokenReview and SubjectAccessReview as kube-apiserver
//! does, over HTTPS on a free loopback port, and writes a kubeconfig for it.
//!
//! Tokens: `<name>-token` authenticates as `<name>` in group `reviewed`;
//! anything else is not authenticated. Access: a user may do what
//! `allow(user, verb, resource)` says. Every review is counted, so that tests
//! can see the caching of the server under test.

use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::{json, Value};

use crate::TestPki;

/// Who may do what: `(user, verb, resource) -> allowed`.
pub type Policy = Arc<dyn Fn(&str, &str, &str) -> bool + Send + Sync>;

/// The running stand-in; stops when dropped.
pub struct FakeKube {
    pki: TestPki,
    url: String,
    token_reviews: Arc<AtomicUsize>,
    access_reviews: Arc<AtomicUsize>,
    _runtime: tokio::runtime::Runtime,
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
        let counters = (token_reviews.clone(), access_reviews.clone());
        runtime.spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (acceptor, policy, counters) = (acceptor.clone(), policy.clone(), counters.clone());
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else { return };
                    let service = hyper::service::service_fn(move |req| {
                        let (policy, counters) = (policy.clone(), counters.clone());
                        async move { Ok::<_, Infallible>(answer(req, &policy, &counters).await) }
                    });
                    let _ =
                        hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(tls), service).await;
                });
            }
        });
        Ok(FakeKube { pki, url, token_reviews, access_reviews, _runtime: runtime })
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
}

async fn answer(
    req: Request<hyper::body::Incoming>,
    policy: &Policy,
    counters: &(Arc<AtomicUsize>, Arc<AtomicUsize>),
) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_string();
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
            counters.0.fetch_add(1, Ordering::SeqCst);
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
            counters.1.fetch_add(1, Ordering::SeqCst);
            let user = body.pointer("/spec/user").and_then(Value::as_str).unwrap_or("");
            let verb = body.pointer("/spec/resourceAttributes/verb").and_then(Value::as_str).unwrap_or("");
            let resource = body.pointer("/spec/resourceAttributes/resource").and_then(Value::as_str).unwrap_or("");
            let allowed = policy(user, verb, resource);
            let mut review = body.clone();
            review["status"] =
                json!({"allowed": allowed, "reason": if allowed { "allowed by the test policy" } else { "" }});
            reply(201, review)
        }
        _ => reply(
            404,
            json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 404, "reason": "NotFound"}),
        ),
    }
}
