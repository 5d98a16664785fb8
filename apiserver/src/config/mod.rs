//! Start-up pieces: the flags, the store they choose, the files the server
//! keeps in its data directory (lock, keys, kubeconfig) and logging.

pub mod backend;
pub mod files;
pub mod flags;
pub mod kubeconfig;
pub mod logging;
