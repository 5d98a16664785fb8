//! Writes `<data-dir>/kubeconfig`, so that `kubectl --kubeconfig` works at once.

use std::path::Path;

use base64::Engine;

/// The kubeconfig text for `server` (an https URL), trusting `ca_pem`, with `token`.
pub fn render(server: &str, ca_pem: &str, token: &str) -> String {
    let ca = base64::engine::general_purpose::STANDARD.encode(ca_pem.as_bytes());
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: tpr-apiserver
  cluster:
    server: {server}
    certificate-authority-data: {ca}
users:
- name: tpr-admin
  user:
    token: {token}
contexts:
- name: tpr-apiserver
  context:
    cluster: tpr-apiserver
    user: tpr-admin
    namespace: default
current-context: tpr-apiserver
"
    )
}

/// Writes the kubeconfig (mode 0600).
pub fn write(path: &Path, server: &str, ca_pem: &str, token: &str) -> std::io::Result<()> {
    crate::config::files::write_private(path, &render(server, ca_pem, token))
}
