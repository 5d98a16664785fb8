//! Keys: every key lives under the store prefix (default `/registry`).

use crate::error::{Result, StorageError};

/// The key space of one store: the prefix every key must start with.
#[derive(Clone, Debug)]
pub struct KeySpace {
    root: String,
}

impl KeySpace {
    /// A key space under `prefix` (e.g. `/registry`); a trailing `/` is ignored.
    pub fn new(prefix: &str) -> Self {
        let trimmed = prefix.trim_end_matches('/');
        let root = if trimmed.starts_with('/') { format!("{trimmed}/") } else { format!("/{trimmed}/") };
        KeySpace { root: root.replace("//", "/") }
    }

    /// The prefix with its trailing `/`, e.g. `/registry/`.
    pub fn root(&self) -> &str {
        &self.root
    }

    /// Checks that `key` names one key inside the key space.
    pub fn check_key(&self, key: &str) -> Result<()> {
        if key.is_empty() {
            return Err(StorageError::invalid(key, "the key is empty"));
        }
        self.check_prefix(key)?;
        if key.len() == self.root.len() {
            return Err(StorageError::invalid(key, "the key names only the store prefix"));
        }
        if key.ends_with('/') {
            return Err(StorageError::invalid(key, "a key must not end with '/'"));
        }
        Ok(())
    }

    /// Checks that `prefix` lies inside the key space (it may be the root itself).
    pub fn check_prefix(&self, prefix: &str) -> Result<()> {
        if !prefix.starts_with(&self.root) {
            return Err(StorageError::invalid(prefix, format!("it is outside the store prefix {:?}", self.root)));
        }
        if prefix.contains('\0') {
            return Err(StorageError::invalid(prefix, "keys must not contain NUL"));
        }
        Ok(())
    }
}

/// The first key after every key that starts with `prefix` (etcd's range end).
pub fn prefix_end(prefix: &str) -> Vec<u8> {
    let mut end = prefix.as_bytes().to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validates_keys_against_the_prefix() {
        let ks = KeySpace::new("/registry");
        assert_eq!(ks.root(), "/registry/");
        assert!(ks.check_key("/registry/a/b").is_ok());
        assert!(ks.check_key("").is_err());
        assert!(ks.check_key("/registry/").is_err());
        assert!(ks.check_key("/other/a").is_err());
        assert!(ks.check_key("/registryx/a").is_err());
        assert!(ks.check_prefix("/registry/").is_ok());
        assert_eq!(KeySpace::new("registry/").root(), "/registry/");
    }

    #[test]
    fn prefix_end_increments_the_last_byte() {
        assert_eq!(prefix_end("/a/"), b"/a0".to_vec());
        assert_eq!(prefix_end("ab"), b"ac".to_vec());
    }
}
