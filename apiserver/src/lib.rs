//! tpr-apiserver: ThirdPartyResources served as an aggregated API server.
#![forbid(unsafe_code)]

pub mod aggregation;
pub mod app;
pub mod auth;
pub mod config;
pub mod endpoints;
pub mod filters;
pub mod identity;
pub mod limits;
pub mod observe;
pub mod registry;
pub mod server;
pub mod status;
pub mod tpr;
