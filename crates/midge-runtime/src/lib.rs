//! The runtime seam of Midge's async layer: the [`Runtime`] trait that
//! `midge-client` and `midge-server` are written against, and
//! [`BrokerUrl`], the parser for broker addresses.
//!
//! The protocol lives in the sans-IO cores (`midge-session`,
//! `midge-broker`); the async drivers that move bytes, deadlines and events
//! between sockets and those cores live in `midge-client` and
//! `midge-server`, written once. What differs between tokio and smol is only
//! how to spawn a task, read the clock, sleep, and open TCP sockets: that is
//! this trait, implemented by `midge-tokio` and `midge-smol`. So both
//! runtimes offer the same surface by construction, and one test suite runs
//! over both.
//!
//! What it deliberately does not do: speak MQTT, or choose a runtime.
//!
//! Time is [`midge_time::Instant`], microseconds since the runtime value was
//! created ([`Runtime::now`]), so the cores see the runtime's clock — a
//! paused tokio clock in tests included.
//!
//! Key types: [`Runtime`], [`BrokerUrl`], [`Scheme`].
#![forbid(unsafe_code)]

mod url;
#[cfg(feature = "websocket")]
pub mod ws;

use std::future::Future;
use std::io;
use std::net::SocketAddr;

pub use futures_lite::{AsyncRead, AsyncWrite};
pub use midge_time::{Duration, Instant};
pub use url::{BrokerUrl, Scheme, UrlError};

/// What an async runtime gives the Midge drivers: tasks, a clock, timers and
/// TCP. Implemented by `midge_tokio::TokioRuntime` and
/// `midge_smol::SmolRuntime`.
///
/// A runtime value is cheap to clone; clones share one clock origin, so
/// instants from clones compare.
pub trait Runtime: Clone + Send + Sync + 'static {
    /// A connected TCP stream.
    type TcpStream: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    /// A bound TCP listener.
    type TcpListener: Send + Sync + 'static;
    /// A bound UDP socket (MQTT-SN). Sending and receiving take it by
    /// shared reference, so one task may wait for a datagram while another
    /// sends.
    type UdpSocket: Send + Sync + 'static;

    /// The runtime the caller is running on (tokio: the current runtime's
    /// handle; smol: the process-wide executor). Clones share the clock
    /// origin of the first call in this process.
    ///
    /// # Panics
    /// An implementation may panic when called outside its runtime, as
    /// `tokio::spawn` does.
    fn current() -> Self;

    /// Runs `future` to completion in the background. The task is detached:
    /// it ends when the future does.
    fn spawn<F>(&self, future: F)
    where
        F: Future<Output = ()> + Send + 'static;

    /// The runtime's monotonic clock, as time since this runtime value's
    /// origin. Never goes backwards.
    fn now(&self) -> Instant;

    /// Completes at `deadline` (at once if it has passed).
    fn sleep_until(&self, deadline: Instant) -> impl Future<Output = ()> + Send + 'static;

    /// Completes after `duration`.
    fn sleep(&self, duration: Duration) -> impl Future<Output = ()> + Send + 'static {
        self.sleep_until(self.now().saturating_add(duration))
    }

    /// Opens a TCP connection to `addr`, with Nagle's algorithm off (MQTT
    /// packets are small and latency matters).
    fn connect_tcp(
        &self,
        addr: SocketAddr,
    ) -> impl Future<Output = io::Result<Self::TcpStream>> + Send + 'static;

    /// Binds a TCP listener on `addr` (port 0 picks a free port).
    fn bind_tcp(
        &self,
        addr: SocketAddr,
    ) -> impl Future<Output = io::Result<Self::TcpListener>> + Send + 'static;

    /// Accepts one connection (with Nagle's algorithm off) and its peer's
    /// address.
    fn accept_tcp<'a>(
        &self,
        listener: &'a Self::TcpListener,
    ) -> impl Future<Output = io::Result<(Self::TcpStream, SocketAddr)>> + Send + 'a;

    /// The address a listener is bound to.
    ///
    /// # Errors
    /// As the operating system reports it.
    fn listener_addr(listener: &Self::TcpListener) -> io::Result<SocketAddr>;

    /// Resolves a host name and port to addresses (IPv4 and IPv6).
    fn resolve(
        &self,
        host: &str,
        port: u16,
    ) -> impl Future<Output = io::Result<Vec<SocketAddr>>> + Send + 'static;

    /// Binds a UDP socket on `addr` (port 0 picks a free port).
    fn bind_udp(
        &self,
        addr: SocketAddr,
    ) -> impl Future<Output = io::Result<Self::UdpSocket>> + Send + 'static;

    /// Sends one datagram to `to`.
    fn send_to<'a>(
        &self,
        socket: &'a Self::UdpSocket,
        datagram: &'a [u8],
        to: SocketAddr,
    ) -> impl Future<Output = io::Result<usize>> + Send + 'a;

    /// Receives one datagram into `buf` (a longer one is truncated, as the
    /// operating system does) and its sender's address.
    fn recv_from<'a>(
        &self,
        socket: &'a Self::UdpSocket,
        buf: &'a mut [u8],
    ) -> impl Future<Output = io::Result<(usize, SocketAddr)>> + Send + 'a;

    /// The address a UDP socket is bound to.
    ///
    /// # Errors
    /// As the operating system reports it.
    fn udp_local_addr(socket: &Self::UdpSocket) -> io::Result<SocketAddr>;

    /// Allows sending to broadcast addresses.
    ///
    /// # Errors
    /// As the operating system reports it.
    fn set_udp_broadcast(socket: &Self::UdpSocket, on: bool) -> io::Result<()>;

    /// Joins a multicast group (IPv4 or IPv6) on the interface the system
    /// picks, for SEARCHGW/ADVERTISE discovery.
    ///
    /// # Errors
    /// As the operating system reports it.
    fn join_multicast(socket: &Self::UdpSocket, group: std::net::IpAddr) -> io::Result<()>;
}
