//! Shared harness for the storage contract tests: the same test body runs
//! against a real etcd and against the embedded store.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use storage::{EmbeddedConfig, EmbeddedStore, EtcdConfig, EtcdStore, Store};

/// Which backend a test runs on.
#[derive(Clone, Copy, Debug)]
pub enum Backend {
    Etcd,
    Embedded,
}

/// A store and whatever keeps it alive.
pub struct Harness {
    pub store: Arc<dyn Store>,
    pub etcd: Option<testkit::Etcd>,
    pub dir: tempfile::TempDir,
}

pub fn etcd_config(endpoint: String) -> EtcdConfig {
    EtcdConfig {
        endpoints: vec![endpoint],
        request_timeout: Duration::from_secs(2),
        dial_timeout: Duration::from_secs(1),
        ..EtcdConfig::default()
    }
}

pub async fn harness(backend: Backend) -> Harness {
    let dir = tempfile::tempdir().expect("tempdir");
    match backend {
        Backend::Etcd => {
            let etcd = testkit::Etcd::start().expect("start etcd");
            let store = EtcdStore::connect(&etcd_config(etcd.endpoint())).await.expect("connect to etcd");
            Harness { store: Arc::new(store), etcd: Some(etcd), dir }
        }
        Backend::Embedded => {
            let store = EmbeddedStore::open(&EmbeddedConfig::new(dir.path())).expect("open embedded store");
            Harness { store: Arc::new(store), etcd: None, dir }
        }
    }
}

/// Generates one `#[tokio::test]` per backend for each named async test body.
#[macro_export]
macro_rules! contract_tests {
    ($($name:ident),* $(,)?) => {
        mod etcd {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::common::Backend::Etcd).await
                }
            )*
        }
        mod embedded {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::common::Backend::Embedded).await
                }
            )*
        }
    };
}
