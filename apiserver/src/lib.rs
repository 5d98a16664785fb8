//! tpr-apiserver: ThirdPartyResources served as an aggregated API server.
//!
//! Layout, in the order a request meets it (imports flow down this list's
//! arrows only; see ARCHITECTURE.md):
//!
//! - [`server`]: the listener and its connections: TLS (serving certificates,
//!   client certificates classified), HTTP/1.1 or HTTP/2, batched writes,
//!   deadlines and idle timeouts; shutdown is a future passed in.
//! - [`filters`]: the request corridor, `tower` layers in order: request info
//!   and audit id, metrics, audit, recovery, timeout, authentication, in-flight,
//!   negotiation, authorization.
//! - [`endpoints`]: routing ([`endpoints::routing`]) and the answers: public
//!   paths and documents, and resource requests by verb (reads, writes,
//!   patches and applies, deletes, watches).
//! - [`registry`]: objects on the store: create, read, update, delete,
//!   metadata rules, managedFields, field validation, selectors, paging.
//! - [`builtin`]: kube-apiserver's types served standalone (namespaces and
//!   their lifecycle, events and their expiry, leases, configmaps, secrets).
//! - [`tpr`]: ThirdPartyResource validation, conflicts, and the controller
//!   that keeps [`served`] (the served types and their watch caches) in step.
//! - [`auth`]: credentials to users and the authorization modes;
//!   [`aggregation`]: the host cluster (delegated reviews, APIServices).
//! - Leaves: [`app`] (the shared state), [`copy`] (long copies made in
//!   short pieces), [`identity`] (users, peers,
//!   request attributes), [`observe`] (metrics, audit log, store timing),
//!   [`limits`] (what one request may make the server build), [`status`]
//!   (errors and their `Status`), [`config`] (flags and start-up files).
#![forbid(unsafe_code)]

pub mod aggregation;
pub mod app;
pub mod auth;
pub mod builtin;
pub mod config;
pub mod copy;
pub mod endpoints;
pub mod export;
pub mod filters;
pub mod identity;
pub mod limits;
pub mod observe;
pub mod registry;
pub mod served;
pub mod server;
pub mod status;
pub mod tpr;
