//! Delegation to the host cluster, as an aggregated API server does it:
//! bearer tokens checked with a TokenReview (`--authentication-kubeconfig`)
//! and requests authorized with a SubjectAccessReview
//! (`--authorization-mode=Webhook`, `--authorization-kubeconfig`). Answers
//! are cached for [`CACHE_TTL`], as kube-apiserver's delegating authenticator
//! and authorizer cache them.

use std::collections::HashMap;
use std::hash::Hash;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::identity::{Attributes, User};

/// How long a review's answer is reused.
pub const CACHE_TTL: Duration = Duration::from_secs(10);
/// Most cached answers; beyond, the cache starts over.
const CACHE_MAX: usize = 10_000;

/// Why the host cluster could not be reached or understood.
#[derive(Debug, thiserror::Error)]
pub enum DelegationError {
    /// The kubeconfig could not be read or used.
    #[error("kubeconfig {path}: {message}")]
    Config {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// A review failed.
    #[error("review failed: {0}")]
    Review(String),
}

/// A client of the host cluster's API.
#[derive(Clone)]
pub struct HostClient {
    client: kube::Client,
}

impl HostClient {
    /// From a kubeconfig file.
    pub async fn from_kubeconfig(path: &Path) -> Result<Self, DelegationError> {
        let err = |message: String| DelegationError::Config { path: path.display().to_string(), message };
        let kubeconfig = kube::config::Kubeconfig::read_from(path).map_err(|e| err(e.to_string()))?;
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
            .await
            .map_err(|e| err(e.to_string()))?;
        let client = kube::Client::try_from(config).map_err(|e| err(e.to_string()))?;
        Ok(HostClient { client })
    }

    /// The front proxy's settings that kube-apiserver publishes in
    /// `kube-system/extension-apiserver-authentication` (`None` when absent).
    pub async fn extension_apiserver_authentication(&self) -> Result<Option<ExtensionAuthentication>, DelegationError> {
        let request =
            http::Request::get("/api/v1/namespaces/kube-system/configmaps/extension-apiserver-authentication")
                .body(Vec::new())
                .map_err(|e| DelegationError::Review(e.to_string()))?;
        let map = match self.client.request::<Value>(request).await {
            Ok(m) => m,
            Err(kube::Error::Api(e)) if e.code == 404 => return Ok(None),
            Err(e) => return Err(DelegationError::Review(e.to_string())),
        };
        let data = &map["data"];
        let text = |k: &str| data.get(k).and_then(Value::as_str).map(String::from);
        // List values are JSON arrays in a string, e.g. `["X-Remote-User"]`.
        let list = |k: &str| -> Option<Vec<String>> { text(k).and_then(|t| serde_json::from_str(&t).ok()) };
        Ok(Some(ExtensionAuthentication {
            client_ca: text("client-ca-file"),
            requestheader_ca: text("requestheader-client-ca-file"),
            allowed_names: list("requestheader-allowed-names").unwrap_or_default(),
            username_headers: list("requestheader-username-headers"),
            group_headers: list("requestheader-group-headers"),
            extra_headers_prefix: list("requestheader-extra-headers-prefix"),
        }))
    }

    /// The underlying kube client.
    pub fn client(self) -> kube::Client {
        self.client
    }

    async fn create(&self, path: &str, body: &Value) -> Result<Value, DelegationError> {
        let request = http::Request::post(path)
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(body.to_string().into_bytes())
            .map_err(|e| DelegationError::Review(e.to_string()))?;
        self.client.request::<Value>(request).await.map_err(|e| DelegationError::Review(e.to_string()))
    }
}

/// The authentication settings of `kube-system/extension-apiserver-authentication`.
#[derive(Clone, Debug, Default)]
pub struct ExtensionAuthentication {
    /// PEM of the client CA.
    pub client_ca: Option<String>,
    /// PEM of the front proxy's CA.
    pub requestheader_ca: Option<String>,
    /// Allowed common names of the front proxy.
    pub allowed_names: Vec<String>,
    /// User name headers.
    pub username_headers: Option<Vec<String>>,
    /// Group headers.
    pub group_headers: Option<Vec<String>>,
    /// Extra header prefixes.
    pub extra_headers_prefix: Option<Vec<String>>,
}

/// A small cache of answers with a time to live.
struct TtlCache<K, V> {
    entries: Mutex<HashMap<K, (V, Instant)>>,
}

impl<K: Eq + Hash, V: Clone> TtlCache<K, V> {
    fn new() -> Self {
        TtlCache { entries: Mutex::new(HashMap::new()) }
    }

    fn get(&self, key: &K) -> Option<V> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.get(key).filter(|(_, at)| at.elapsed() < CACHE_TTL).map(|(v, _)| v.clone())
    }

    fn put(&self, key: K, value: V) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= CACHE_MAX {
            entries.clear();
        }
        entries.insert(key, (value, Instant::now()));
    }
}

/// Bearer tokens checked by the host cluster.
pub struct TokenReviewer {
    host: HostClient,
    cache: TtlCache<String, Option<User>>,
}

impl TokenReviewer {
    /// Reviews with `host`.
    pub fn new(host: HostClient) -> Self {
        TokenReviewer { host, cache: TtlCache::new() }
    }

    /// The user behind `token`; `None` when the host says it is not valid or
    /// cannot be asked (logged).
    pub async fn review(&self, token: &str) -> Option<User> {
        if let Some(answer) = self.cache.get(&token.to_string()) {
            return answer;
        }
        let body = json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": token}});
        let reply = match self.host.create("/apis/authentication.k8s.io/v1/tokenreviews", &body).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "TokenReview failed");
                return None;
            }
        };
        let status = &reply["status"];
        let user = (status["authenticated"] == true).then(|| {
            let strings = |v: &Value| -> Vec<String> {
                v.as_array().into_iter().flatten().filter_map(|s| s.as_str().map(String::from)).collect()
            };
            User {
                name: status.pointer("/user/username").and_then(Value::as_str).unwrap_or_default().to_string(),
                groups: strings(&status["user"]["groups"]),
                extra: (status["user"]["extra"].as_object().into_iter().flatten())
                    .map(|(k, v)| (k.clone(), strings(v)))
                    .collect(),
            }
        });
        let user = user.filter(|u| !u.name.is_empty());
        self.cache.put(token.to_string(), user.clone());
        user
    }
}

/// Requests authorized by the host cluster.
pub struct AccessReviewer {
    host: HostClient,
    cache: TtlCache<String, bool>,
}

impl AccessReviewer {
    /// Reviews with `host`.
    pub fn new(host: HostClient) -> Self {
        AccessReviewer { host, cache: TtlCache::new() }
    }

    /// Whether the host allows `user` to do `a`.
    pub async fn allowed(&self, user: &User, a: &Attributes<'_>, version: &str) -> Result<bool, DelegationError> {
        let spec = json!({
            "user": user.name,
            "groups": user.groups,
            "extra": user.extra,
            "resourceAttributes": {
                "namespace": a.namespace.unwrap_or_default(),
                "verb": a.verb,
                "group": a.group,
                "version": version,
                "resource": a.resource,
                "name": a.name.unwrap_or_default(),
            },
        });
        self.review(spec).await
    }

    /// Whether the host allows `user` to `verb` the path `path` (no resource).
    pub async fn allowed_path(&self, user: &User, verb: &str, path: &str) -> Result<bool, DelegationError> {
        let spec = json!({
            "user": user.name,
            "groups": user.groups,
            "extra": user.extra,
            "nonResourceAttributes": {"path": path, "verb": verb},
        });
        self.review(spec).await
    }

    async fn review(&self, spec: Value) -> Result<bool, DelegationError> {
        let key = spec.to_string();
        if let Some(answer) = self.cache.get(&key) {
            return Ok(answer);
        }
        let body = json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": spec});
        let reply = self.host.create("/apis/authorization.k8s.io/v1/subjectaccessreviews", &body).await?;
        let allowed = reply.pointer("/status/allowed") == Some(&Value::Bool(true));
        self.cache.put(key, allowed);
        Ok(allowed)
    }
}
