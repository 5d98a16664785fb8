//! Files the server writes for itself (keys, tokens, kubeconfig): owner-only.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Writes `data` to `path` with mode 0600, replacing what was there.
pub fn write_private(path: &Path, data: &str) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new().create(true).truncate(true).write(true).mode(0o600).open(path)?;
    f.write_all(data.as_bytes())
}
