//! Client certificates, as kube-apiserver takes them: the TLS handshake asks
//! for a certificate and accepts any ([`RequestClientCert`], Go's
//! `tls.RequestClientCert`), proving only that the client holds its key; who
//! the certificate names is decided after the handshake by
//! [`PeerClassifier`]: the front proxy (request-header CA, allowed CN), a user
//! (client CA), or nobody, with the reason logged. A certificate that is not
//! accepted does not end the connection: the request may still authenticate
//! with a bearer token, else it is a 401.
//!
//! Chains are verified by rustls' WebPKI verifier. WebPKI refuses X.509
//! version 1 certificates (what `openssl x509 -req` makes without
//! extensions), which Go accepts; a version 1 leaf signed directly by a
//! configured CA is verified with `x509-parser`'s signature check (ring) and
//! its validity period instead.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};
use rustls_pki_types::{CertificateDer, SubjectPublicKeyInfoDer, UnixTime};

use crate::auth::authn::{user_from_certificate, Peer};

/// The handshake's client-certificate policy: ask (naming the configured
/// CAs), never require, accept any certificate whose key the client proves
/// it holds.
#[derive(Debug)]
pub struct RequestClientCert {
    hints: Vec<DistinguishedName>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl RequestClientCert {
    /// Asks for certificates of the CAs named by `hints`.
    pub fn new(hints: Vec<DistinguishedName>, algorithms: WebPkiSupportedAlgorithms) -> Self {
        RequestClientCert { hints, algorithms }
    }
}

/// The public key of a version 1 certificate (which WebPKI cannot parse).
fn v1_public_key(cert: &CertificateDer<'_>) -> Option<SubjectPublicKeyInfoDer<'static>> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    (parsed.version() == x509_parser::x509::X509Version::V1)
        .then(|| SubjectPublicKeyInfoDer::from(parsed.tbs_certificate.subject_pki.raw.to_vec()))
}

impl ClientCertVerifier for RequestClientCert {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &self.hints
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        // Decided per connection after the handshake (PeerClassifier).
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let result = rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms);
        let Some(spki) = result.as_ref().err().and_then(|_| v1_public_key(cert)) else { return result };
        let key = webpki::RawPublicKeyEntity::try_from(&spki).map_err(|_| bad_signature())?;
        let algorithms = self.algorithms.mapping.iter().find(|(s, _)| *s == dss.scheme).map(|(_, a)| *a);
        for alg in algorithms.unwrap_or_default() {
            if key.verify_signature(*alg, message, dss.signature()).is_ok() {
                return Ok(HandshakeSignatureValid::assertion());
            }
        }
        Err(bad_signature())
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let result = rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms);
        match result.as_ref().err().and_then(|_| v1_public_key(cert)) {
            Some(spki) => rustls::crypto::verify_tls13_signature_with_raw_key(message, &spki, dss, &self.algorithms),
            None => result,
        }
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

fn bad_signature() -> rustls::Error {
    rustls::Error::InvalidCertificate(rustls::CertificateError::BadSignature)
}

/// The certificates of one CA bundle and the verifier of chains to them.
#[derive(Clone)]
pub struct Trust {
    /// WebPKI's verifier of chains to `roots`.
    pub verifier: Arc<dyn ClientCertVerifier>,
    /// The CA certificates (for version 1 leaves).
    pub roots: Vec<CertificateDer<'static>>,
}

impl Trust {
    /// Verifies `leaf` (with `intermediates`) against this bundle.
    fn verify(&self, leaf: &CertificateDer<'_>, intermediates: &[CertificateDer<'_>]) -> Result<(), String> {
        let now = UnixTime::now();
        let webpki = match self.verifier.verify_client_cert(leaf, intermediates, now) {
            Ok(_) => return Ok(()),
            Err(e) => e.to_string(),
        };
        match v1_signed_by(leaf, &self.roots) {
            Some(result) => result,
            None => Err(webpki),
        }
    }
}

/// A version 1 leaf signed directly by one of `roots` and valid now: `None`
/// when `leaf` is not a version 1 certificate.
fn v1_signed_by(leaf: &CertificateDer<'_>, roots: &[CertificateDer<'_>]) -> Option<Result<(), String>> {
    let (_, leaf) = x509_parser::parse_x509_certificate(leaf.as_ref()).ok()?;
    if leaf.version() != x509_parser::x509::X509Version::V1 {
        return None;
    }
    if !leaf.validity().is_valid() {
        return Some(Err("the version 1 certificate is expired or not yet valid".into()));
    }
    for root in roots {
        let Ok((_, ca)) = x509_parser::parse_x509_certificate(root.as_ref()) else { continue };
        if ca.subject().as_raw() != leaf.issuer().as_raw() || !ca.validity().is_valid() {
            continue;
        }
        if leaf.verify_signature(Some(ca.public_key())).is_ok() {
            return Some(Ok(()));
        }
    }
    Some(Err("the version 1 certificate is not signed by a configured CA".into()))
}

/// Tells who a connection's client certificate names: the front proxy's
/// (request-header CA with an allowed common name), a user (client CA), or
/// nobody, and why not.
#[derive(Clone, Default)]
pub struct PeerClassifier {
    /// `--client-ca-file`.
    pub client: Option<Trust>,
    /// `--requestheader-client-ca-file`.
    pub proxy: Option<Trust>,
    /// `--requestheader-allowed-names` (empty: any).
    pub allowed_names: Vec<String>,
}

impl PeerClassifier {
    /// The identity of a connection with this certificate chain (leaf
    /// first), and why a certificate it presented was not accepted.
    pub fn classify(&self, chain: Option<&[CertificateDer<'static>]>) -> (Peer, Option<String>) {
        let Some((leaf, intermediates)) = chain.and_then(|c| c.split_first()) else { return (Peer::None, None) };
        let user = user_from_certificate(leaf);
        let subject = user.as_ref().map(|u| u.name.clone()).unwrap_or_else(|| "(no common name)".into());
        let mut why = Vec::new();
        if let Some(proxy) = &self.proxy {
            match proxy.verify(leaf, intermediates) {
                Ok(()) => {
                    let allowed = self.allowed_names.is_empty()
                        || user.as_ref().is_some_and(|u| self.allowed_names.contains(&u.name));
                    if allowed {
                        return (Peer::FrontProxy, None);
                    }
                    why.push(format!("signed by the request-header CA, but {subject:?} is not an allowed name"));
                }
                Err(e) => why.push(format!("request-header CA: {e}")),
            }
        }
        if let Some(client) = &self.client {
            match client.verify(leaf, intermediates) {
                Ok(()) => match user {
                    Some(user) => return (Peer::User(std::sync::Arc::new(user)), None),
                    None => why.push("signed by the client CA, but it has no common name".into()),
                },
                Err(e) => why.push(format!("client CA: {e}")),
            }
        }
        if why.is_empty() {
            why.push("no client CA is configured".into());
        }
        let why = format!("client certificate {subject:?} not accepted: {}", why.join("; "));
        (Peer::Refused(why.as_str().into()), Some(why))
    }
}

/// Logs why client certificates were not accepted: each connection's at
/// debug level (each request's too, in `handlers`), and a warning at most
/// once per [`WARN_EVERY`] with how many there were.
pub struct RefusalLog {
    last_warn: Mutex<Option<Instant>>,
    since: AtomicU64,
}

/// Shortest time between two warnings about refused certificates.
pub const WARN_EVERY: Duration = Duration::from_secs(60);

impl Default for RefusalLog {
    fn default() -> Self {
        RefusalLog { last_warn: Mutex::new(None), since: AtomicU64::new(0) }
    }
}

impl RefusalLog {
    /// Records one refusal.
    pub fn record(&self, why: &str) {
        tracing::debug!("{why}");
        let count = self.since.fetch_add(1, Ordering::Relaxed) + 1;
        let mut last = self.last_warn.lock().unwrap_or_else(|p| p.into_inner());
        if last.is_none_or(|t| t.elapsed() >= WARN_EVERY) {
            *last = Some(Instant::now());
            self.since.store(0, Ordering::Relaxed);
            tracing::warn!(
                refused = count,
                "{why} (client certificates not accepted since the last warning: {count}; details at debug level)"
            );
        }
    }
}
