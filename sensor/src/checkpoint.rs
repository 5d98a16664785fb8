//! The durable checkpoint: the last resourceVersion whose changes were all
//! delivered, and what the receiver then knew of each object (for the
//! synthesized deletes of a later re-list). Written atomically: a temporary
//! file, fsync, rename, fsync of the directory.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::tracker::Tracker;

/// What a checkpoint holds.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The resource it is for (`mysqldbs.prsn.io`); another resource's is ignored.
    pub resource: String,
    /// Every change up to this revision was delivered (0: nothing yet).
    pub revision: u64,
    /// The objects the receiver knows.
    pub delivered: Tracker,
}

/// Why a checkpoint could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// The file system.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// Not a checkpoint.
    #[error("{path}: not a checkpoint: {source}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What failed.
        source: serde_json::Error,
    },
}

/// Reads the checkpoint at `path` (None when there is none).
pub fn load(path: &Path) -> Result<Option<Checkpoint>, CheckpointError> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|source| CheckpointError::Corrupt { path: path.to_path_buf(), source }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(CheckpointError::Io { path: path.to_path_buf(), source }),
    }
}

/// Writes `c` to `path` atomically and durably.
pub fn store(path: &Path, c: &Checkpoint) -> Result<(), CheckpointError> {
    let io = |source| CheckpointError::Io { path: path.to_path_buf(), source };
    let tmp = path.with_extension("tmp");
    let bytes = serde_json::to_vec(c).map_err(|e| io(std::io::Error::other(e)))?;
    let mut f = std::fs::File::create(&tmp).map_err(io)?;
    f.write_all(&bytes).map_err(io)?;
    f.sync_all().map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_atomic_replace() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("checkpoint.json");
        assert_eq!(load(&path).unwrap(), None);
        let c = Checkpoint { resource: "mysqldbs.prsn.io".into(), revision: 42, delivered: Tracker::default() };
        store(&path, &c).unwrap();
        assert_eq!(load(&path).unwrap(), Some(c));
        std::fs::write(&path, "garbage").unwrap();
        assert!(load(&path).is_err());
    }
}
