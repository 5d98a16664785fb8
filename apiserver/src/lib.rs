//! tpr-apiserver: ThirdPartyResources served as an aggregated API server.
//!
//! Layout of this crate (the request path grows with each issue):
//! - [`flags`]: command-line flags, named like kube-apiserver's.
//! - [`backend`]: opens the configured store (embedded by default, or etcd)
//!   and starts automatic compaction.
//! - [`health`]: `/healthz`, `/livez`, `/readyz` (which asks the store).
//! - [`server`]: the accept loop; shutdown is passed in as a future.
//! - [`logging`]: `tracing` set-up, text or JSON.
#![forbid(unsafe_code)]

pub mod backend;
pub mod flags;
pub mod health;
pub mod logging;
pub mod server;
