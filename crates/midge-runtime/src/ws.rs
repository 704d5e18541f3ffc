//! MQTT over WebSocket (the spec's section 6), the part client and server
//! share: [`WsStream`], which turns binary messages into a byte stream, and
//! the sub-protocol name. The upgrades themselves (the server's path and
//! sub-protocol checks, the client's request) live in `midge-server` and
//! `midge-client`. Behind the `websocket` feature.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use async_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use async_tungstenite::tungstenite::protocol::CloseFrame;
use async_tungstenite::tungstenite::{Error as WsError, Message};
use async_tungstenite::WebSocketStream;
use bytes::{Buf, Bytes};
use futures_lite::{AsyncRead, AsyncWrite, Stream};
use futures_sink::Sink;

/// The WebSocket sub-protocol MQTT 3.1.1 runs under [MQTT-6.0.0-3].
pub const SUBPROTOCOL: &str = "mqtt";
/// The HTTP header that offers and selects it.
pub const PROTOCOL_HEADER: &str = "Sec-WebSocket-Protocol";

/// A WebSocket connection seen as a byte stream: what binary messages carry,
/// in order, with no regard to where one message ends (MQTT packets may
/// span messages or share one [MQTT-6.0.0-2]); each write goes out as one
/// binary message [MQTT-6.0.0-1]. A text message is a protocol error: the
/// read fails and the connection is to be closed [MQTT-6.0.0-1]. Pings are
/// answered by the WebSocket layer; a close message ends the stream.
pub struct WsStream<S> {
    inner: WebSocketStream<S>,
    /// What is left of the last binary message.
    pending: Bytes,
    ended: bool,
}

impl<S> WsStream<S> {
    /// Wraps a WebSocket connection whose upgrade (with the `mqtt`
    /// sub-protocol) is done.
    pub fn new(inner: WebSocketStream<S>) -> Self {
        Self {
            inner,
            pending: Bytes::new(),
            ended: false,
        }
    }
}

/// A WebSocket error as an I/O error.
pub fn into_io(error: WsError) -> io::Error {
    match error {
        WsError::Io(error) => error,
        WsError::ConnectionClosed | WsError::AlreadyClosed => {
            io::Error::new(io::ErrorKind::BrokenPipe, "websocket closed")
        }
        other => io::Error::new(io::ErrorKind::InvalidData, other.to_string()),
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> WsStream<S> {
    /// Queues a close frame with code 1003 (unsupported data) and pushes it
    /// towards the socket without waiting.
    fn send_close(&mut self, cx: &mut Context<'_>) {
        let mut inner = Pin::new(&mut self.inner);
        if let Poll::Ready(Ok(())) = inner.as_mut().poll_ready(cx) {
            let frame = CloseFrame {
                code: CloseCode::Unsupported,
                reason: "MQTT needs binary frames".into(),
            };
            if inner
                .as_mut()
                .start_send(Message::Close(Some(frame)))
                .is_ok()
            {
                let _ = inner.as_mut().poll_flush(cx);
            }
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for WsStream<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        loop {
            if !this.pending.is_empty() {
                let n = buf.len().min(this.pending.len());
                if let (Some(dst), Some(src)) = (buf.get_mut(..n), this.pending.get(..n)) {
                    dst.copy_from_slice(src);
                }
                this.pending.advance(n);
                return Poll::Ready(Ok(n));
            }
            if this.ended {
                return Poll::Ready(Ok(0));
            }
            match ready!(Pin::new(&mut this.inner).poll_next(cx)) {
                None | Some(Ok(Message::Close(_))) => this.ended = true,
                Some(Ok(Message::Binary(data))) => this.pending = data,
                Some(Ok(Message::Text(_))) => {
                    // [MQTT-6.0.0-1]: only binary frames carry MQTT. Say
                    // why in a close frame (best effort: it fits in the
                    // socket's buffer unless the peer stopped reading),
                    // then fail the read so the connection closes.
                    this.ended = true;
                    this.send_close(cx);
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "websocket text frame (MQTT needs binary frames)",
                    )));
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
                Some(Err(error)) => return Poll::Ready(Err(into_io(error))),
            }
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for WsStream<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let this = self.get_mut();
        ready!(Pin::new(&mut this.inner).poll_ready(cx)).map_err(into_io)?;
        Pin::new(&mut this.inner)
            .start_send(Message::Binary(Bytes::copy_from_slice(buf)))
            .map_err(into_io)?;
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner)
            .poll_flush(cx)
            .map_err(into_io)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner)
            .poll_close(cx)
            .map_err(into_io)
    }
}
