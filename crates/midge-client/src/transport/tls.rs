//! TLS for the client: trusted roots, an optional client certificate, and
//! the `insecure` switch.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures_lite::{AsyncRead, AsyncWrite};
use futures_rustls::rustls::client::danger::{
    HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
};
use futures_rustls::rustls::crypto::{self, CryptoProvider};
use futures_rustls::rustls::pki_types::pem::PemObject;
use futures_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use futures_rustls::rustls::{
    self, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use futures_rustls::TlsConnector;
use midge_runtime::BrokerUrl;

use crate::ClientError;

/// TLS settings for `mqtts://` and `wss://` addresses. The default trusts
/// the operating system's certificate authorities and presents no client
/// certificate.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TlsOptions {
    /// PEM file of the certificate authorities to trust, in place of the
    /// operating system's.
    pub ca_file: Option<PathBuf>,
    /// PEM file with the client certificate (and its chain), for brokers
    /// that ask for one. Needs `key`.
    pub cert: Option<PathBuf>,
    /// PEM file with the client certificate's private key.
    pub key: Option<PathBuf>,
    /// Accept any server certificate: no chain, expiry or name check (the
    /// handshake's signatures are still checked). Encrypts without knowing
    /// who is at the other end; for tests and first setups only.
    pub insecure: bool,
}

impl TlsOptions {
    /// Trusts the certificate authorities in `path` (PEM).
    #[must_use]
    pub fn with_ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.ca_file = Some(path.into());
        self
    }

    /// Presents this client certificate and key (PEM files).
    #[must_use]
    pub fn with_client_cert(mut self, cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        self.cert = Some(cert.into());
        self.key = Some(key.into());
        self
    }

    /// Sets [`insecure`](Self::insecure).
    #[must_use]
    pub fn with_insecure(mut self, insecure: bool) -> Self {
        self.insecure = insecure;
        self
    }
}

fn file_error(path: &Path, error: impl std::fmt::Display) -> ClientError {
    ClientError::Tls(format!("cannot read `{}`: {error}", path.display()))
}

fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, ClientError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| file_error(path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_error(path, e))?;
    if certs.is_empty() {
        return Err(file_error(path, "no certificate in the file"));
    }
    Ok(certs)
}

/// The rustls configuration of `options`: TLS 1.2 and 1.3 only, on the
/// `ring` provider. Reads the files now.
///
/// # Errors
/// [`ClientError::Tls`] for a file that cannot be read or used.
pub(crate) fn client_config(options: &TlsOptions) -> Result<Arc<ClientConfig>, ClientError> {
    let provider = Arc::new(crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| ClientError::Tls(e.to_string()))?;
    let builder = if options.insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyServerCert(provider)))
    } else {
        let mut roots = RootCertStore::empty();
        match &options.ca_file {
            Some(path) => {
                for cert in certificates(path)? {
                    roots.add(cert).map_err(|e| file_error(path, e))?;
                }
            }
            None => {
                let native = rustls_native_certs::load_native_certs();
                let (added, _) = roots.add_parsable_certificates(native.certs);
                if added == 0 {
                    return Err(ClientError::Tls(
                        "no trusted certificate authorities found; pass a CA file".into(),
                    ));
                }
            }
        }
        builder.with_root_certificates(roots)
    };
    let config = match (&options.cert, &options.key) {
        (None, None) => builder.with_no_client_auth(),
        (Some(cert), Some(key)) => {
            let chain = certificates(cert)?;
            let key = PrivateKeyDer::from_pem_file(key).map_err(|e| file_error(key, e))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| ClientError::Tls(e.to_string()))?
        }
        _ => {
            return Err(ClientError::Tls(
                "a client certificate needs both a certificate and a key file".into(),
            ))
        }
    };
    Ok(Arc::new(config))
}

/// The TLS handshake with the broker named in `url`.
pub(super) async fn connect<S>(
    tcp: S,
    url: &BrokerUrl,
    config: &Arc<ClientConfig>,
) -> Result<futures_rustls::client::TlsStream<S>, ClientError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let name = ServerName::try_from(url.host.clone())
        .map_err(|e| ClientError::Tls(format!("`{}` as a TLS server name: {e}", url.host)))?;
    TlsConnector::from(Arc::clone(config))
        .connect(name, tcp)
        .await
        .map_err(|e| ClientError::Tls(e.to_string()))
}

/// The verifier of [`TlsOptions::insecure`]: every certificate passes, the
/// handshake signatures are checked with the provider's algorithms.
#[derive(Debug)]
struct AnyServerCert(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyServerCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
