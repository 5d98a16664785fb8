//! Opens the store the flags ask for.

use std::sync::Arc;

use storage::{CompactionPolicy, EmbeddedConfig, EmbeddedStore, EtcdConfig, EtcdStore, StorageError, Store};

use crate::config::flags::Flags;

/// Opens etcd when `--etcd-servers` is given, else the embedded store in `--data-dir`.
pub async fn open(flags: &Flags) -> Result<Arc<dyn Store>, StorageError> {
    if flags.etcd_servers.is_empty() {
        let mut cfg = EmbeddedConfig::new(&flags.data_dir);
        cfg.prefix = flags.etcd_prefix.clone();
        Ok(Arc::new(EmbeddedStore::open(&cfg)?))
    } else {
        let cfg = EtcdConfig {
            endpoints: flags.etcd_servers.clone(),
            prefix: flags.etcd_prefix.clone(),
            ca_file: flags.etcd_cafile.clone(),
            cert_file: flags.etcd_certfile.clone(),
            key_file: flags.etcd_keyfile.clone(),
            ..EtcdConfig::default()
        };
        Ok(Arc::new(EtcdStore::connect(&cfg).await?))
    }
}

/// The compaction policy of `--etcd-compaction-interval`.
pub fn compaction_policy(flags: &Flags) -> CompactionPolicy {
    if flags.etcd_compaction_interval.is_zero() {
        CompactionPolicy::Disabled
    } else {
        CompactionPolicy::Window(flags.etcd_compaction_interval)
    }
}
