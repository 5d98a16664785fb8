//! Pure functions and types for tpr-apiserver, no I/O.
//!
//! Layout of this crate (it grows with discovery, OpenAPI and Table rows):
//! - [`naming`]: a ThirdPartyResource name → group, kind, plural, singular.
//! - [`table`]: Tables for `kubectl get` (columns, cells, rows).
#![forbid(unsafe_code)]

pub mod naming;
pub mod table;

pub use naming::{NameError, ResourceNames};
