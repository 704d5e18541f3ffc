//! TLS for listeners: certificates from PEM files, optional client
//! certificates (mutual TLS), reload without dropping connections.
//!
//! The rustls configuration lives behind a lock as an `Arc`: each handshake
//! takes the current one, a reload swaps in a new one. A connection keeps
//! the session it negotiated; only later handshakes see the new files.

use std::io;
use std::path::Path;
use std::sync::{Arc, RwLock};

use futures_lite::{AsyncRead, AsyncWrite};
use futures_rustls::rustls::pki_types::pem::PemObject;
use futures_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use futures_rustls::rustls::server::WebPkiClientVerifier;
use futures_rustls::rustls::{self, RootCertStore, ServerConfig};
use futures_rustls::TlsAcceptor;

use super::{TlsOptions, TransportError};

/// One listener's TLS settings and the configuration read from them.
#[derive(Debug)]
pub(crate) struct TlsHolder {
    options: TlsOptions,
    config: RwLock<Arc<ServerConfig>>,
}

impl TlsHolder {
    /// Reads the files of `options`.
    pub(crate) fn load(options: TlsOptions) -> Result<Self, TransportError> {
        let config = server_config(&options)?;
        Ok(Self {
            options,
            config: RwLock::new(config),
        })
    }

    /// Reads the files again, for [`install`](Self::install).
    pub(crate) fn prepare(&self) -> Result<Arc<ServerConfig>, TransportError> {
        server_config(&self.options)
    }

    /// Later handshakes use `config`; connections already open keep theirs.
    pub(crate) fn install(&self, config: Arc<ServerConfig>) {
        match self.config.write() {
            Ok(mut current) => *current = config,
            Err(poisoned) => *poisoned.into_inner() = config,
        }
    }

    fn current(&self) -> Arc<ServerConfig> {
        match self.config.read() {
            Ok(current) => Arc::clone(&current),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// The TLS handshake, and the client certificate's common name when the
    /// listener uses it as the user name.
    pub(crate) async fn accept<S>(
        &self,
        stream: S,
    ) -> io::Result<(futures_rustls::server::TlsStream<S>, Option<String>)>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let tls = TlsAcceptor::from(self.current()).accept(stream).await?;
        let username = if self.options.cn_as_username {
            tls.get_ref()
                .1
                .peer_certificates()
                .and_then(|chain| chain.first())
                .and_then(|cert| common_name(cert))
        } else {
            None
        };
        Ok((tls, username))
    }
}

/// The first subject common name of a DER certificate.
pub(crate) fn common_name(cert: &CertificateDer<'_>) -> Option<String> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    let cn = parsed.subject().iter_common_name().next()?;
    cn.as_str().ok().map(str::to_owned)
}

fn file_error(path: &Path, error: impl std::fmt::Display) -> TransportError {
    TransportError::File {
        path: path.to_owned(),
        reason: error.to_string(),
    }
}

fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TransportError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| file_error(path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_error(path, e))?;
    if certs.is_empty() {
        return Err(TransportError::NoCertificate(path.to_owned()));
    }
    Ok(certs)
}

/// The rustls configuration of `options`: TLS 1.2 and 1.3 only, on the
/// `ring` provider.
fn server_config(options: &TlsOptions) -> Result<Arc<ServerConfig>, TransportError> {
    let chain = certificates(&options.cert_chain)?;
    let key =
        PrivateKeyDer::from_pem_file(&options.key).map_err(|e| file_error(&options.key, e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| TransportError::Config(e.to_string()))?;
    let builder = match &options.client_ca {
        None if options.require_client_cert => return Err(TransportError::MissingClientCa),
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for cert in certificates(ca)? {
                roots
                    .add(cert)
                    .map_err(|e| TransportError::Config(format!("{}: {e}", ca.display())))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let verifier = if options.require_client_cert {
                verifier
            } else {
                verifier.allow_unauthenticated()
            };
            let verifier = verifier
                .build()
                .map_err(|e| TransportError::Config(e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let config = builder
        .with_single_cert(chain, key)
        .map_err(|e| TransportError::Config(e.to_string()))?;
    Ok(Arc::new(config))
}
