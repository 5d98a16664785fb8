//! Files the server writes for itself (keys, tokens, kubeconfig): owner-only;
//! and the lock that keeps one server per data directory.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Writes `data` to `path` with mode 0600, replacing what was there.
pub fn write_private(path: &Path, data: &str) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new().create(true).truncate(true).write(true).mode(0o600).open(path)?;
    f.write_all(data.as_bytes())
}

/// The exclusive lock on a data directory, held while the process runs.
#[derive(Debug)]
pub struct DirLock(#[allow(dead_code)] std::fs::File);

/// Takes the lock on `dir` (`dir/lock`, holding the owner's pid), or says
/// which process holds it. Touches nothing else.
pub fn lock_dir(dir: &Path) -> Result<DirLock, String> {
    let path = dir.join("lock");
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let holder = std::fs::read_to_string(&path).unwrap_or_default();
            let holder = holder.trim();
            let holder = if holder.is_empty() { "another process".to_string() } else { format!("process {holder}") };
            return Err(format!(
                "the data directory {} is in use by {holder} (another tpr-apiserver?); each server needs its own --data-dir",
                dir.display()
            ));
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(format!("{}: cannot lock: {e}", path.display())),
    }
    file.set_len(0)
        .and_then(|_| write!(file, "{}", std::process::id()))
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(DirLock(file))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_lock_per_directory() {
        let dir = tempfile::tempdir().unwrap();
        let held = lock_dir(dir.path()).unwrap();
        let e = lock_dir(dir.path()).unwrap_err();
        assert!(e.contains(&dir.path().display().to_string()) && e.contains(&std::process::id().to_string()), "{e}");
        drop(held);
        assert!(lock_dir(dir.path()).is_ok(), "free again once released");
    }
}
