//! Which kubectl the tests run: the current one (`$TPR_KUBECTL`, else
//! `kubectl` on `PATH`) and Debian 12's 1.20 (`$TPR_KUBECTL_120`, else the
//! copy `scripts/install-deps test` extracts into `target/kubectl-1.20`,
//! never over the system's kubectl).

use std::path::{Path, PathBuf};

/// The current kubectl: `$TPR_KUBECTL`, else the first `kubectl` on `PATH`.
pub fn kubectl() -> PathBuf {
    if let Some(p) = std::env::var_os("TPR_KUBECTL") {
        return PathBuf::from(p);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join("kubectl"))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| PathBuf::from("kubectl"))
}

/// Debian 12's kubectl 1.20: `$TPR_KUBECTL_120`, else `target/kubectl-1.20/usr/bin/kubectl`.
pub fn kubectl_1_20() -> PathBuf {
    if let Some(p) = std::env::var_os("TPR_KUBECTL_120") {
        return PathBuf::from(p);
    }
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap_or(Path::new("."));
    let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| workspace.join("target"));
    target.join("kubectl-1.20/usr/bin/kubectl")
}
