//! A throw-away PKI for tests: a CA, a serving certificate for 127.0.0.1 and
//! localhost, and a client certificate, written as PEM files.

use std::io;
use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};

/// PEM files of a test CA and the certificates it signed; removed when dropped.
pub struct TestPki {
    dir: tempfile::TempDir,
    issuer: Issuer<'static, KeyPair>,
}

fn err(e: rcgen::Error) -> io::Error {
    io::Error::other(e.to_string())
}

impl TestPki {
    /// Generates the CA, a server certificate and a client certificate (CN `client_cn`).
    pub fn generate(client_cn: &str) -> io::Result<TestPki> {
        let dir = tempfile::tempdir()?;
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(err)?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.distinguished_name.push(DnType::CommonName, "tpr test CA");
        ca_params.key_usages =
            vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        let ca_key = KeyPair::generate().map_err(err)?;
        let ca_cert = ca_params.self_signed(&ca_key).map_err(err)?;
        let ca_key_pem = ca_key.serialize_pem();
        let issuer = Issuer::new(ca_params, ca_key);

        let write = |name: &str, pem: String| std::fs::write(dir.path().join(name), pem);
        write("ca.crt", ca_cert.pem())?;
        write("ca.key", ca_key_pem)?;
        for (name, sans, cn) in [
            ("server", vec!["127.0.0.1".to_string(), "localhost".to_string()], "127.0.0.1"),
            ("client", vec![], client_cn),
        ] {
            let mut params = CertificateParams::new(sans).map_err(err)?;
            params.distinguished_name.push(DnType::CommonName, cn);
            let key = KeyPair::generate().map_err(err)?;
            let cert = params.signed_by(&key, &issuer).map_err(err)?;
            write(&format!("{name}.crt"), cert.pem())?;
            write(&format!("{name}.key"), key.serialize_pem())?;
        }
        Ok(TestPki { dir, issuer })
    }

    /// Issues another client certificate from this CA (CN `cn`, O `orgs`),
    /// written as `<name>.crt` and `<name>.key`; returns their paths.
    pub fn issue_client(&self, name: &str, cn: &str, orgs: &[&str]) -> io::Result<(PathBuf, PathBuf)> {
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(err)?;
        params.distinguished_name.push(DnType::CommonName, cn);
        for o in orgs {
            params.distinguished_name.push(DnType::OrganizationName, *o);
        }
        let key = KeyPair::generate().map_err(err)?;
        let cert = params.signed_by(&key, &self.issuer).map_err(err)?;
        let (crt, key_path) = (self.file(&format!("{name}.crt")), self.file(&format!("{name}.key")));
        std::fs::write(&crt, cert.pem())?;
        std::fs::write(&key_path, key.serialize_pem())?;
        Ok((crt, key_path))
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The CA certificate.
    pub fn ca_cert(&self) -> PathBuf {
        self.file("ca.crt")
    }

    /// The CA's private key (to sign with other tools, e.g. `openssl x509 -req`).
    pub fn ca_key(&self) -> PathBuf {
        self.file("ca.key")
    }

    /// The serving certificate (SANs 127.0.0.1 and localhost).
    pub fn server_cert(&self) -> PathBuf {
        self.file("server.crt")
    }

    /// The serving key.
    pub fn server_key(&self) -> PathBuf {
        self.file("server.key")
    }

    /// The client certificate.
    pub fn client_cert(&self) -> PathBuf {
        self.file("client.crt")
    }

    /// The client key.
    pub fn client_key(&self) -> PathBuf {
        self.file("client.key")
    }

    /// The directory holding every file.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}
