//! Test certificates (the TLS tests of midge-server, midge-client and
//! midged share them), made with rcgen at test time, written as PEM files to a
//! temporary folder: two CAs, a server certificate for localhost and
//! 127.0.0.1, an expired one, client certificates from either CA.

// Test support: a certificate that cannot be made fails the test at once.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::PathBuf;
use std::sync::Arc;

use futures_rustls::rustls::pki_types::pem::PemObject;
use futures_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use futures_rustls::rustls::{self, ClientConfig, RootCertStore};
use rcgen::{
    date_time_ymd, BasicConstraints, Certificate, CertificateParams, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose,
};

/// A certificate authority: its self-signed certificate and key.
pub struct Ca {
    /// The CA certificate.
    pub cert: Certificate,
    /// Its key.
    pub key: KeyPair,
}

impl Ca {
    /// A new CA named `name`.
    pub fn new(name: &str) -> Self {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params.self_signed(&key).unwrap();
        Self { cert, key }
    }

    /// A leaf certificate and its key, PEM.
    pub fn issue(&self, cn: &str, server: bool, expired: bool) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let names = if server {
            vec!["localhost".to_owned(), "127.0.0.1".to_owned()]
        } else {
            Vec::new()
        };
        let mut params = CertificateParams::new(names).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.extended_key_usages = vec![if server {
            ExtendedKeyUsagePurpose::ServerAuth
        } else {
            ExtendedKeyUsagePurpose::ClientAuth
        }];
        if expired {
            params.not_before = date_time_ymd(2001, 1, 1);
            params.not_after = date_time_ymd(2002, 1, 1);
        }
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

/// A folder of PEM files.
pub struct Pki {
    /// Where the PEM files are (removed on drop).
    pub dir: tempfile::TempDir,
    /// The CA that signs `server.pem` and `client.pem`.
    pub ca: Ca,
    /// A CA nobody trusts; it signs the `other-*` files.
    pub other_ca: Ca,
}

impl Default for Pki {
    fn default() -> Self {
        Self::new()
    }
}

impl Pki {
    /// Makes both CAs and every file: `ca.pem`, `other-ca.pem`,
    /// `server.pem`/`.key` (localhost and 127.0.0.1), `other-server.*`,
    /// `expired-server.*`, `client.*` and the other client files.
    pub fn new() -> Self {
        let pki = Self {
            dir: tempfile::tempdir().unwrap(),
            ca: Ca::new("Midge Test CA"),
            other_ca: Ca::new("Some Other CA"),
        };
        pki.write("ca.pem", &pki.ca.cert.pem());
        pki.write("other-ca.pem", &pki.other_ca.cert.pem());
        let (cert, key) = pki.ca.issue("localhost", true, false);
        pki.write("server.pem", &cert);
        pki.write("server.key", &key);
        let (cert, key) = pki.other_ca.issue("localhost", true, false);
        pki.write("other-server.pem", &cert);
        pki.write("other-server.key", &key);
        let (cert, key) = pki.ca.issue("localhost", true, true);
        pki.write("expired-server.pem", &cert);
        pki.write("expired-server.key", &key);
        let (cert, key) = pki.ca.issue("device-7", false, false);
        pki.write("client.pem", &cert);
        pki.write("client.key", &key);
        let (cert, key) = pki.other_ca.issue("intruder", false, false);
        pki.write("other-client.pem", &cert);
        pki.write("other-client.key", &key);
        let (cert, key) = pki.ca.issue("old-device", false, true);
        pki.write("expired-client.pem", &cert);
        pki.write("expired-client.key", &key);
        pki
    }

    /// The path of file `name` in the folder.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes `pem` as file `name`.
    pub fn write(&self, name: &str, pem: &str) {
        std::fs::write(self.path(name), pem).unwrap();
    }

    /// A rustls client trusting `ca_file`, presenting `client` (a name
    /// prefix: `client` for client.pem/client.key) if given.
    /// A rustls client configuration trusting `ca_file`, presenting the
    /// client certificate `client` (`client` names `client.pem` and
    /// `client.key` without extension) if given.
    pub fn client_config(&self, ca_file: &str, client: Option<&str>) -> Arc<ClientConfig> {
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(self.path(ca_file)).unwrap() {
            roots.add(cert.unwrap()).unwrap();
        }
        let builder =
            ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots);
        let config = match client {
            None => builder.with_no_client_auth(),
            Some(name) => {
                let chain = CertificateDer::pem_file_iter(self.path(&format!("{name}.pem")))
                    .unwrap()
                    .map(Result::unwrap)
                    .collect();
                let key = PrivateKeyDer::from_pem_file(self.path(&format!("{name}.key"))).unwrap();
                builder.with_client_auth_cert(chain, key).unwrap()
            }
        };
        Arc::new(config)
    }
}

/// The server name the server certificates are issued for.
pub fn localhost() -> ServerName<'static> {
    ServerName::try_from("localhost").unwrap()
}
