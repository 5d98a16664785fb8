//! Serving certificates: loaded from `--tls-cert-file`/`--tls-private-key-file`,
//! or a CA and serving certificate generated on first start and kept in the
//! data directory. Also the rustls server configuration (ALPN h2 and
//! http/1.1, optional client certificates against `--client-ca-file`).

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};

pub use crate::server::client_auth::PeerClassifier;
use crate::server::client_auth::{RequestClientCert, Trust};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A certificate or key could not be parsed or generated.
    #[error("{0}")]
    Pem(String),
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

/// The serving identity and the CA that clients should trust.
pub struct ServingCerts {
    /// PEM of the CA that signed the serving certificate (for kubeconfig).
    pub ca_pem: String,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Io { path: path.to_path_buf(), source })
}

fn write_private(path: &Path, data: &str) -> Result<(), TlsError> {
    crate::config::files::write_private(path, data).map_err(|source| TlsError::Io { path: path.to_path_buf(), source })
}

fn pem_err(what: &str, path: &Path, e: impl std::fmt::Display) -> TlsError {
    TlsError::Pem(format!("{}: cannot parse {what}: {e}", path.display()))
}

/// Reads every certificate of a PEM file.
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_err("certificates", path, e))?;
    if certs.is_empty() {
        return Err(TlsError::Pem(format!("{}: no certificate found", path.display())));
    }
    Ok(certs)
}

fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_slice(&read(path)?).map_err(|e| pem_err("the private key", path, e))
}

impl ServingCerts {
    /// Loads the given certificate and key files.
    pub fn load(cert: &Path, key: &Path) -> Result<Self, TlsError> {
        let chain = load_certs(cert)?;
        let ca_pem = String::from_utf8_lossy(&read(cert)?).into_owned();
        Ok(ServingCerts { ca_pem, chain, key: load_key(key)? })
    }

    /// Loads `<dir>/pki`, generating a CA and a serving certificate for
    /// 127.0.0.1, ::1, localhost and `bind` on first start.
    pub fn load_or_generate(dir: &Path, bind: IpAddr) -> Result<Self, TlsError> {
        let pki = dir.join("pki");
        let (ca_crt, crt, key) = (pki.join("ca.crt"), pki.join("apiserver.crt"), pki.join("apiserver.key"));
        if !(ca_crt.exists() && crt.exists() && key.exists()) {
            std::fs::create_dir_all(&pki).map_err(|source| TlsError::Io { path: pki.clone(), source })?;
            generate(&ca_crt, &pki.join("ca.key"), &crt, &key, bind)?;
        }
        let ca_pem = String::from_utf8_lossy(&read(&ca_crt)?).into_owned();
        Ok(ServingCerts { ca_pem, chain: load_certs(&crt)?, key: load_key(&key)? })
    }

    /// The rustls configuration: ALPN h2 and http/1.1; client certificates
    /// are requested (never required) when `client_ca` or the front proxy's
    /// `requestheader_ca` is given, and accepted whatever they are (see
    /// [`crate::server::client_auth`]); the classifier then tells who they name.
    pub fn server_config(
        &self,
        client_ca: Option<&Path>,
        requestheader_ca: Option<&Path>,
        allowed_names: &[String],
    ) -> Result<(Arc<ServerConfig>, PeerClassifier), TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ServerConfig::builder_with_provider(provider.clone()).with_safe_default_protocol_versions()?;
        let trust = |path: &Path| -> Result<(Trust, RootCertStore), TlsError> {
            let certs = load_certs(path)?;
            let mut roots = RootCertStore::empty();
            for cert in &certs {
                roots.add(cert.clone()).map_err(|e| pem_err("a client CA", path, e))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots.clone()), provider.clone())
                .allow_unauthenticated()
                .build()
                .map_err(|e| TlsError::Pem(format!("client CA: {e}")))?;
            Ok((Trust { verifier, roots: certs }, roots))
        };
        let client = client_ca.map(trust).transpose()?;
        let proxy = requestheader_ca.map(trust).transpose()?;
        let hints: Vec<_> = client.iter().chain(proxy.iter()).flat_map(|(_, roots)| roots.subjects()).collect();
        let builder = if client.is_some() || proxy.is_some() {
            let verifier = RequestClientCert::new(hints, provider.signature_verification_algorithms);
            builder.with_client_cert_verifier(Arc::new(verifier))
        } else {
            builder.with_no_client_auth()
        };
        let classifier = PeerClassifier {
            client: client.map(|(t, _)| t),
            proxy: proxy.map(|(t, _)| t),
            allowed_names: allowed_names.iter().filter(|n| !n.is_empty()).cloned().collect(),
        };
        let mut config = builder.with_single_cert(self.chain.clone(), self.key.clone_key())?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok((Arc::new(config), classifier))
    }
}

fn gen_err(e: rcgen::Error) -> TlsError {
    TlsError::Pem(format!("cannot generate a certificate: {e}"))
}

fn generate(ca_crt: &Path, ca_key_path: &Path, crt: &Path, key_path: &Path, bind: IpAddr) -> Result<(), TlsError> {
    let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(gen_err)?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(DnType::CommonName, "tpr-apiserver-ca");
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    ca.not_after = rcgen::date_time_ymd(2036, 1, 1);
    let ca_key = KeyPair::generate().map_err(gen_err)?;
    let ca_cert = ca.self_signed(&ca_key).map_err(gen_err)?;
    write_private(ca_key_path, &ca_key.serialize_pem())?;
    let issuer = Issuer::new(ca, ca_key);

    let mut params = CertificateParams::new(vec!["localhost".to_string()]).map_err(gen_err)?;
    params.distinguished_name.push(DnType::CommonName, "tpr-apiserver");
    for ip in [IpAddr::from([127, 0, 0, 1]), IpAddr::from([0u16, 0, 0, 0, 0, 0, 0, 1]), bind] {
        if !ip.is_unspecified() && !params.subject_alt_names.contains(&SanType::IpAddress(ip)) {
            params.subject_alt_names.push(SanType::IpAddress(ip));
        }
    }
    params.not_after = rcgen::date_time_ymd(2036, 1, 1);
    let key = KeyPair::generate().map_err(gen_err)?;
    let cert = params.signed_by(&key, &issuer).map_err(gen_err)?;
    std::fs::write(ca_crt, ca_cert.pem()).map_err(|source| TlsError::Io { path: ca_crt.to_path_buf(), source })?;
    std::fs::write(crt, cert.pem()).map_err(|source| TlsError::Io { path: crt.to_path_buf(), source })?;
    write_private(key_path, &key.serialize_pem())
}
