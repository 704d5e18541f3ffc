//! How the gateway reaches the broker: [`BrokerConnector`] and its two
//! implementations, [`TcpConnector`] and [`LocalConnector`].

use std::future::Future;
use std::io;

use midge_runtime::{AsyncRead, AsyncWrite, BrokerUrl, Runtime, Scheme};
use midge_server::{LocalStream, ServerHandle};

/// Opens one byte stream to an MQTT broker per call; the gateway opens one
/// for each SN client (and one for QoS −1 publishes).
pub trait BrokerConnector: Send + Sync + 'static {
    /// A connected stream, carrying MQTT both ways.
    type Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static;

    /// Opens a connection. The gateway bounds how long it waits for the
    /// broker's CONNACK, connection included.
    fn connect(&self) -> impl Future<Output = io::Result<Self::Stream>> + Send;

    /// Whether a failure to connect means the broker is unreachable (the
    /// gateway then stops advertising until a connection succeeds, spec
    /// 6.1). Default true.
    fn failure_means_unreachable(&self) -> bool {
        true
    }
}

/// TCP to a broker named by a [`BrokerUrl`] (`mqtt://host:port`): the
/// standalone gateway in front of any MQTT broker. The host name is resolved
/// at every connection; each address is tried in turn.
#[derive(Debug, Clone)]
pub struct TcpConnector<R: Runtime> {
    rt: R,
    url: BrokerUrl,
}

impl<R: Runtime> TcpConnector<R> {
    /// A connector to `url`.
    ///
    /// # Errors
    /// A URL whose scheme is not plain MQTT over TCP (kind `InvalidInput`).
    pub fn new(rt: R, url: BrokerUrl) -> io::Result<Self> {
        if url.scheme != Scheme::Mqtt {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the gateway reaches brokers over plain TCP (mqtt://) only",
            ));
        }
        Ok(Self { rt, url })
    }

    /// The broker's URL.
    #[must_use]
    pub fn url(&self) -> &BrokerUrl {
        &self.url
    }
}

impl<R: Runtime> BrokerConnector for TcpConnector<R> {
    type Stream = R::TcpStream;

    async fn connect(&self) -> io::Result<R::TcpStream> {
        let addrs = self.rt.resolve(&self.url.host, self.url.port).await?;
        let mut last = io::Error::new(io::ErrorKind::NotFound, "the broker's host has no address");
        for addr in addrs {
            match self.rt.connect_tcp(addr).await {
                Ok(stream) => return Ok(stream),
                Err(error) => last = error,
            }
        }
        Err(last)
    }
}

/// In-memory connections into a running `midge_server::Server`
/// ([`ServerHandle::connect_local`]), served by the same connection driver
/// as its TCP clients: the gateway inside `midged`.
#[derive(Debug, Clone)]
pub struct LocalConnector {
    server: ServerHandle,
}

impl LocalConnector {
    /// A connector into the server behind `server`.
    #[must_use]
    pub fn new(server: ServerHandle) -> Self {
        Self { server }
    }
}

impl BrokerConnector for LocalConnector {
    type Stream = LocalStream;

    async fn connect(&self) -> io::Result<LocalStream> {
        self.server.connect_local()
    }

    fn failure_means_unreachable(&self) -> bool {
        // Only a server that is shutting down refuses.
        false
    }
}
