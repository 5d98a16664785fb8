//! tpr-apiserver: ThirdPartyResources served as an aggregated API server.
//!
//! Layout of this crate, in the order a request meets it:
//! - [`flags`]: command-line flags, named like kube-apiserver's.
//! - [`tls`]: serving certificates (generated on first start) and rustls.
//! - [`client_auth`]: client certificates: asked for, then classified (front proxy, user, none).
//! - [`server`]: the accept loop (TLS, HTTP/1.1 and HTTP/2); shutdown is a future.
//! - [`batched_io`]: gathers a connection's writes into fewer TLS records.
//! - [`authn`]: front-proxy headers, client certificates, bearer tokens.
//! - [`apiservices`]: APIService registration in the host cluster.
//! - [`delegated`]: TokenReview and SubjectAccessReview with the host cluster, cached.
//! - [`authz`]: AlwaysAllow or a static policy file; 403 naming user, verb, resource.
//! - [`handlers`]: public paths, then routing of `/apis/...` to the verbs.
//! - [`registry`]: create, get, update, delete of objects on the store.
//! - [`patch`]: merge and JSON patches.
//! - [`yaml`]: YAML bodies (apply) to JSON, bounded in depth and alias expansion.
//! - [`field_validation`]: `fieldValidation` (unknown metadata, duplicate fields).
//! - [`managed_fields`]: managedFields and server-side apply.
//! - [`watch`]: watch responses streamed from the watch cache.
//! - [`selectors`]: label and field selectors.
//! - [`paging`]: the continue tokens of paged lists.
//! - [`meta`]: metadata validation (names, labels, annotations).
//! - [`tpr`]: ThirdPartyResource validation and the controller of served types.
//! - [`resources`]: the served types and their watch caches.
//! - [`observe`]: request info, Prometheus metrics, the audit log.
//! - [`store_metrics`]: the store under the server, timed per call.
//! - [`status`]: errors and their `Status` responses (the one mapping place).
//! - [`http`]: response bodies, bounded request bodies, query parameters.
//! - [`limits`]: bounds on what one request can make the server build.
//! - [`backend`], [`kubeconfig`], [`files`], [`logging`]: start-up pieces.
#![forbid(unsafe_code)]

pub mod apiservices;
pub mod authn;
pub mod authz;
pub mod backend;
pub mod batched_io;
pub mod client_auth;
pub mod delegated;
pub mod field_validation;
pub mod files;
pub mod flags;
pub mod handlers;
pub mod http;
pub mod kubeconfig;
pub mod limits;
pub mod logging;
pub mod managed_fields;
pub mod meta;
pub mod observe;
pub mod paging;
pub mod patch;
pub mod registry;
pub mod resources;
pub mod selectors;
pub mod server;
pub mod status;
pub mod store_metrics;
pub mod tls;
pub mod tpr;
pub mod watch;
pub mod yaml;
