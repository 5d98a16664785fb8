//! Black-box conformance tests live in `tests/`: they start the real
//! `tpr-apiserver` binary (built by `cargo build`) and drive it with real
//! clients: curl now; kubectl, the Python and Rust clients as the API grows.
#![forbid(unsafe_code)]
