//! Pure functions and types for tpr-apiserver, no I/O.
//!
//! Layout of this crate (it grows with discovery, OpenAPI and Table rows):
//! - [`naming`]: a ThirdPartyResource name → group, kind, plural, singular.
#![forbid(unsafe_code)]

pub mod naming;

pub use naming::{NameError, ResourceNames};
