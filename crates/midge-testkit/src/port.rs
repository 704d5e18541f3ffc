//! Free loopback ports and waiting until one accepts.

use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// A TCP port on 127.0.0.1 that was free a moment ago: the OS picks it for a
/// listener that is closed again at once. Another process could take it in
/// between; callers that start a server on it retry on a bind failure.
pub fn free_port() -> Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .context("could not bind 127.0.0.1:0 to find a free port")?;
    Ok(listener.local_addr()?.port())
}

/// Waits until `addr` accepts a TCP connection, trying every 25 ms for at most
/// `timeout`. The probe connection is closed at once.
pub fn wait_for_port(addr: SocketAddr, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(250)).is_ok() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!("{addr} did not accept a connection within {timeout:?}");
        }
        thread::sleep(Duration::from_millis(25));
    }
}
