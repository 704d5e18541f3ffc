//! The connection's transport: plain TCP, TLS, WebSocket or WebSocket over
//! TLS, as the broker URL's scheme says. The driver sees one byte stream,
//! [`ClientStream`], whichever it is.

mod tls;
mod ws;

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_lite::{AsyncRead, AsyncWrite};
use futures_rustls::rustls::ClientConfig;
use midge_runtime::BrokerUrl;

use crate::ClientError;

pub(crate) use tls::client_config;
pub use tls::TlsOptions;
use ws::WsStream;

type TlsStream<S> = futures_rustls::client::TlsStream<S>;

/// The byte stream a connection speaks MQTT on.
pub(crate) enum ClientStream<S> {
    Plain(S),
    Tls(Box<TlsStream<S>>),
    Ws(Box<WsStream<S>>),
    Wss(Box<WsStream<TlsStream<S>>>),
}

/// Runs the handshakes `url` asks for over an open TCP stream: TLS with
/// `tls` (built when the client was made) for `mqtts://` and `wss://`, then
/// the WebSocket upgrade for `ws://` and `wss://`.
pub(crate) async fn handshake<S>(
    tcp: S,
    url: &BrokerUrl,
    tls: Option<&Arc<ClientConfig>>,
) -> Result<ClientStream<S>, ClientError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let secure = match (url.scheme.is_tls(), tls) {
        (false, _) => None,
        (true, Some(config)) => Some(config),
        (true, None) => {
            return Err(ClientError::Tls(
                "no TLS configuration for a TLS address".into(),
            ))
        }
    };
    Ok(match (secure, url.scheme.is_websocket()) {
        (None, false) => ClientStream::Plain(tcp),
        (Some(config), false) => ClientStream::Tls(Box::new(tls::connect(tcp, url, config).await?)),
        (None, true) => ClientStream::Ws(Box::new(ws::connect(tcp, url).await?)),
        (Some(config), true) => {
            let tls = tls::connect(tcp, url, config).await?;
            ClientStream::Wss(Box::new(ws::connect(tls, url).await?))
        }
    })
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for ClientStream<S> {
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
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for ClientStream<S> {
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
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_flush(cx),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
            Self::Ws(s) => Pin::new(s.as_mut()).poll_flush(cx),
            Self::Wss(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_close(cx),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_close(cx),
            Self::Ws(s) => Pin::new(s.as_mut()).poll_close(cx),
            Self::Wss(s) => Pin::new(s.as_mut()).poll_close(cx),
        }
    }
}
