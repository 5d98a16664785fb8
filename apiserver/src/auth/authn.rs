//! Authentication, in kube-apiserver's order: request headers set by the front
//! proxy (kube-aggregator), honoured only on a connection whose client
//! certificate the request-header CA signed with an allowed CN (see
//! the server's peer classifier, see [`crate::identity::Peer`]); client certificates verified against
//! `--client-ca-file` (CN = user, O = groups); bearer tokens
//! (`--token-auth-file`, plus the admin token the server generates for its
//! kubeconfig).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls_pki_types::CertificateDer;

use crate::config::files::write_private;
pub use crate::identity::{Peer, User};

/// The request headers the front proxy names the user with.
#[derive(Clone, Debug)]
pub struct RequestHeaders {
    /// User name headers, first present wins.
    pub username: Vec<String>,
    /// Group headers (every value of each).
    pub group: Vec<String>,
    /// Prefixes of extra headers (`<prefix><key>: value`).
    pub extra_prefix: Vec<String>,
}

impl Default for RequestHeaders {
    fn default() -> Self {
        RequestHeaders {
            username: vec!["X-Remote-User".into()],
            group: vec!["X-Remote-Group".into()],
            extra_prefix: vec!["X-Remote-Extra-".into()],
        }
    }
}

impl RequestHeaders {
    /// The user the front proxy names; `None` when no user header is present.
    pub fn user(&self, headers: &http::HeaderMap) -> Option<User> {
        let text = |v: &http::HeaderValue| v.to_str().ok().map(str::to_string);
        let name = self.username.iter().find_map(|h| headers.get(h.as_str()).and_then(text))?;
        if name.is_empty() {
            return None;
        }
        let groups = self.group.iter().flat_map(|h| headers.get_all(h.as_str()).iter().filter_map(text)).collect();
        let mut extra: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (key, value) in headers {
            for prefix in &self.extra_prefix {
                let lower = prefix.to_ascii_lowercase();
                if let (Some(k), Some(v)) = (key.as_str().strip_prefix(&lower), text(value)) {
                    let k = percent_decode(k);
                    extra.entry(k).or_default().push(v);
                }
            }
        }
        Some(User { name, groups, extra })
    }
}

/// Extra header keys are percent-encoded (kube's convention for `/` and such).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (bytes[i], bytes.get(i + 1).copied().and_then(hex), bytes.get(i + 2).copied().and_then(hex)) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Why the authenticator could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum AuthnError {
    /// The token file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A line of the token file is malformed.
    #[error("{path}:{line}: expected token,user,uid[,\"group1,group2\"]")]
    BadLine {
        /// The file.
        path: PathBuf,
        /// The 1-based line number.
        line: usize,
    },
}

/// Maps credentials to users.
#[derive(Clone, Debug, Default)]
pub struct Authenticator {
    tokens: HashMap<String, Arc<User>>,
}

/// The user the generated admin token stands for.
pub const ADMIN_USER: &str = "tpr-admin";

impl Authenticator {
    /// Reads `--token-auth-file` (if any) and, given a data dir (the
    /// standalone default only), its generated admin token (created on first
    /// start); returns the admin token too.
    pub fn load(token_file: Option<&Path>, admin_dir: Option<&Path>) -> Result<(Self, Option<String>), AuthnError> {
        let mut tokens = HashMap::new();
        if let Some(path) = token_file {
            parse_token_file(path, &mut tokens)?;
        }
        let Some(data_dir) = admin_dir else { return Ok((Authenticator { tokens }, None)) };
        let admin_path = data_dir.join("admin.token");
        let io = |source| AuthnError::Io { path: admin_path.clone(), source };
        let admin = match std::fs::read_to_string(&admin_path) {
            Ok(t) if !t.trim().is_empty() => t.trim().to_string(),
            _ => {
                std::fs::create_dir_all(data_dir).map_err(io)?;
                let token = format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple());
                write_private(&admin_path, &token).map_err(io)?;
                token
            }
        };
        tokens.insert(
            admin.clone(),
            Arc::new(User { name: ADMIN_USER.into(), groups: vec!["system:masters".into()], ..Default::default() }),
        );
        Ok((Authenticator { tokens }, Some(admin)))
    }

    /// The user behind an `Authorization` header value, if valid.
    pub fn bearer(&self, authorization: Option<&str>) -> Option<Arc<User>> {
        let token = authorization?.strip_prefix("Bearer ")?.trim();
        self.tokens.get(token).cloned()
    }
}

/// Splits one CSV line, honouring double quotes.
fn csv_fields(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut quoted = false;
    for c in line.chars() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => fields.push(String::new()),
            c => {
                if let Some(f) = fields.last_mut() {
                    f.push(c)
                }
            }
        }
    }
    fields.into_iter().map(|f| f.trim().to_string()).collect()
}

fn parse_token_file(path: &Path, tokens: &mut HashMap<String, Arc<User>>) -> Result<(), AuthnError> {
    let text = std::fs::read_to_string(path).map_err(|source| AuthnError::Io { path: path.to_path_buf(), source })?;
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        let f = csv_fields(line);
        if f.len() < 3 || f[0].is_empty() || f[1].is_empty() {
            return Err(AuthnError::BadLine { path: path.to_path_buf(), line: i + 1 });
        }
        let groups = f
            .get(3)
            .map(|g| g.split(',').map(str::trim).filter(|g| !g.is_empty()).map(String::from).collect())
            .unwrap_or_default();
        tokens.insert(f[0].clone(), Arc::new(User { name: f[1].clone(), groups, ..Default::default() }));
    }
    Ok(())
}

/// The user of a verified client certificate: CN is the name, O the groups.
pub fn user_from_certificate(cert: &CertificateDer<'_>) -> Option<User> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    let subject = parsed.subject();
    let name = subject.iter_common_name().next()?.as_str().ok()?.to_string();
    let groups = subject.iter_organization().filter_map(|o| o.as_str().ok().map(String::from)).collect();
    Some(User { name, groups, ..Default::default() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn front_proxy_headers() {
        let mut h = http::HeaderMap::new();
        h.insert("x-remote-user", "bob".parse().unwrap());
        h.append("x-remote-group", "dev".parse().unwrap());
        h.append("x-remote-group", "ops".parse().unwrap());
        h.insert("x-remote-extra-acme.com%2Fproject", "p1".parse().unwrap());
        let u = RequestHeaders::default().user(&h).unwrap();
        assert_eq!((u.name.as_str(), u.groups.clone()), ("bob", vec!["dev".to_string(), "ops".to_string()]));
        assert_eq!(u.extra.get("acme.com/project"), Some(&vec!["p1".to_string()]));
        assert!(RequestHeaders::default().user(&http::HeaderMap::new()).is_none());
    }

    #[test]
    fn reads_kube_token_files() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tokens.csv");
        std::fs::write(&file, "# comment\nabc,alice,1,\"dev,ops\"\ndef,bob,2\n").unwrap();
        let (a, admin) = Authenticator::load(Some(&file), Some(dir.path())).unwrap();
        let admin = admin.unwrap();
        assert_eq!(
            a.bearer(Some("Bearer abc")).unwrap(),
            User { name: "alice".into(), groups: vec!["dev".into(), "ops".into()], ..Default::default() }.into()
        );
        assert_eq!(a.bearer(Some("Bearer def")).unwrap().groups, Vec::<String>::new());
        assert_eq!(a.bearer(Some(&format!("Bearer {admin}"))).unwrap().name, ADMIN_USER);
        assert!(a.bearer(Some("Bearer nope")).is_none());
        assert!(a.bearer(Some("Basic abc")).is_none());
        // The admin token survives a restart.
        let (_, again) = Authenticator::load(None, Some(dir.path())).unwrap();
        assert_eq!(Some(admin.clone()), again);
        // Not standalone: no admin token, and the stored one is not accepted.
        let (cluster, none) = Authenticator::load(Some(&file), None).unwrap();
        assert!(none.is_none() && cluster.bearer(Some(&format!("Bearer {admin}"))).is_none());
        std::fs::write(&file, "onlytoken\n").unwrap();
        assert!(Authenticator::load(Some(&file), Some(dir.path())).is_err());
    }
}
