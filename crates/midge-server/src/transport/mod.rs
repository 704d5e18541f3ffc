//! Listener transports: plain TCP, TLS, WebSocket and WebSocket over TLS.
//!
//! Each listener has a [`ListenerKind`]. An accepted TCP socket goes through
//! the kind's handshake (TLS, then the WebSocket upgrade) inside the
//! connection's own task, bounded by
//! [`ServerOptions::handshake_timeout`](crate::ServerOptions::handshake_timeout),
//! and comes out as a [`ServerStream`]: one more byte stream for the
//! connection driver, which never learns which transport it runs on.

mod tls;
mod ws;

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_lite::{AsyncRead, AsyncWrite};

pub(crate) use tls::TlsHolder;
pub(crate) use ws::WsStream;

/// A listener that is not (only) plain TCP: its address and its transport.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    /// Where to listen; port 0 picks a free port.
    pub addr: SocketAddr,
    /// What the accepted sockets speak.
    pub kind: ListenerKind,
}

/// The transport of a [`Listener`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ListenerKind {
    /// MQTT straight over TCP.
    Tcp,
    /// MQTT over TLS 1.2 or 1.3.
    Tls(TlsOptions),
    /// MQTT over WebSocket (the spec's section 6) at this HTTP path.
    Ws {
        /// The request path the upgrade must name, such as `/mqtt`.
        path: String,
    },
    /// MQTT over WebSocket over TLS.
    Wss {
        /// The request path the upgrade must name, such as `/mqtt`.
        path: String,
        /// The TLS settings.
        tls: TlsOptions,
    },
}

/// TLS settings of a listener. The files are read when the server binds and
/// again on [`ServerHandle::reload_tls`](crate::ServerHandle::reload_tls).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsOptions {
    /// PEM file with the server's certificate followed by its chain.
    pub cert_chain: PathBuf,
    /// PEM file with the server's private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// PEM file of the certificate authorities that sign client
    /// certificates. Without it, clients are not asked for a certificate.
    pub client_ca: Option<PathBuf>,
    /// Refuse the handshake of a client without a certificate signed by
    /// `client_ca` (mutual TLS). With `false`, a client may present no
    /// certificate, but one it presents must verify.
    pub require_client_cert: bool,
    /// Use the subject common name (CN) of the client's verified certificate
    /// as the MQTT user name, in place of the one in CONNECT. A client
    /// without a certificate keeps the user name it sent.
    pub cn_as_username: bool,
}

impl TlsOptions {
    /// Certificate chain and key, no client certificates.
    #[must_use]
    pub fn new(cert_chain: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        Self {
            cert_chain: cert_chain.into(),
            key: key.into(),
            client_ca: None,
            require_client_cert: false,
            cn_as_username: false,
        }
    }
}

/// Why a TLS or WebSocket listener could not be set up or reloaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// A PEM file could not be read or parsed.
    #[error("cannot read `{path}`: {reason}")]
    File {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The certificate file holds no certificate.
    #[error("`{0}` holds no certificate")]
    NoCertificate(PathBuf),
    /// rustls refused the certificates or key (a key that does not match
    /// the certificate, say).
    #[error("TLS configuration refused: {0}")]
    Config(String),
    /// `require_client_cert` without a `client_ca` to verify against.
    #[error("a client certificate is required but no client CA file is set")]
    MissingClientCa,
    /// A WebSocket path that does not start with `/`.
    #[error("WebSocket path `{0}` must start with `/`")]
    BadPath(String),
}

/// The handshake to run on each accepted socket of one listener.
#[derive(Debug)]
pub(crate) enum Acceptor {
    Tcp,
    Tls(Arc<TlsHolder>),
    Ws(String),
    Wss(String, Arc<TlsHolder>),
}

impl Acceptor {
    /// Reads the certificate files of `kind`.
    pub(crate) fn new(kind: &ListenerKind) -> Result<Self, TransportError> {
        Ok(match kind {
            ListenerKind::Tcp => Self::Tcp,
            ListenerKind::Tls(tls) => Self::Tls(Arc::new(TlsHolder::load(tls.clone())?)),
            ListenerKind::Ws { path } => Self::Ws(ws_path(path)?),
            ListenerKind::Wss { path, tls } => {
                Self::Wss(ws_path(path)?, Arc::new(TlsHolder::load(tls.clone())?))
            }
        })
    }

    /// The TLS settings to reload, if any.
    pub(crate) fn tls(&self) -> Option<&Arc<TlsHolder>> {
        match self {
            Self::Tls(holder) | Self::Wss(_, holder) => Some(holder),
            Self::Tcp | Self::Ws(_) => None,
        }
    }

    /// The transport's name, for logs.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Self::Tcp => "tcp",
            Self::Tls(_) => "tls",
            Self::Ws(_) => "ws",
            Self::Wss(..) => "wss",
        }
    }

    /// Runs the handshake on `stream`: the stream to speak MQTT on, and the
    /// user name the client certificate stands for (when configured).
    pub(crate) async fn accept<S>(&self, stream: S) -> io::Result<Accepted<S>>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        match self {
            Self::Tcp => Ok(Accepted {
                stream: ServerStream::Plain(stream),
                cert_username: None,
            }),
            Self::Tls(holder) => {
                let (tls, cert_username) = holder.accept(stream).await?;
                Ok(Accepted {
                    stream: ServerStream::Tls(Box::new(tls)),
                    cert_username,
                })
            }
            Self::Ws(path) => Ok(Accepted {
                stream: ServerStream::Ws(Box::new(ws::accept(stream, path).await?)),
                cert_username: None,
            }),
            Self::Wss(path, holder) => {
                let (tls, cert_username) = holder.accept(stream).await?;
                Ok(Accepted {
                    stream: ServerStream::Wss(Box::new(ws::accept(tls, path).await?)),
                    cert_username,
                })
            }
        }
    }
}

fn ws_path(path: &str) -> Result<String, TransportError> {
    if path.starts_with('/') {
        Ok(path.to_owned())
    } else {
        Err(TransportError::BadPath(path.to_owned()))
    }
}

/// A socket after its transport's handshake.
pub(crate) struct Accepted<S> {
    pub(crate) stream: ServerStream<S>,
    /// The client certificate's CN, when the listener uses it as the user
    /// name and the client presented a verified certificate.
    pub(crate) cert_username: Option<String>,
}

type TlsStream<S> = futures_rustls::server::TlsStream<S>;

/// The byte stream a connection speaks MQTT on.
pub(crate) enum ServerStream<S> {
    Plain(S),
    Tls(Box<TlsStream<S>>),
    Ws(Box<WsStream<S>>),
    Wss(Box<WsStream<TlsStream<S>>>),
    /// An in-memory connection ([`crate::ServerHandle::connect_local`]).
    Local(crate::local::LocalStream),
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for ServerStream<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            Self::Ws(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            Self::Wss(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            Self::Local(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for ServerStream<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            Self::Ws(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            Self::Wss(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            Self::Local(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_flush(cx),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
            Self::Ws(s) => Pin::new(s.as_mut()).poll_flush(cx),
            Self::Wss(s) => Pin::new(s.as_mut()).poll_flush(cx),
            Self::Local(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_close(cx),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_close(cx),
            Self::Ws(s) => Pin::new(s.as_mut()).poll_close(cx),
            Self::Wss(s) => Pin::new(s.as_mut()).poll_close(cx),
            Self::Local(s) => Pin::new(s).poll_close(cx),
        }
    }
}
