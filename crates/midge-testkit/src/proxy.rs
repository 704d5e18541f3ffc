//! A loopback TCP proxy whose connections can be cut at once, to make a
//! client's connection die without the client saying goodbye (a will test for
//! a client that lives inside the test process).

use std::io::{Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::Duration;

use anyhow::{Context, Result};

/// Forwards every connection made to its own loopback port to `upstream`.
/// [`TcpProxy::cut`] closes every forwarded connection on both sides and
/// refuses new ones; drop does the same.
#[derive(Debug)]
pub struct TcpProxy {
    addr: SocketAddr,
    shared: Arc<ProxyShared>,
}

#[derive(Debug, Default)]
struct ProxyShared {
    cut: AtomicBool,
    streams: Mutex<Vec<TcpStream>>,
}

impl ProxyShared {
    fn remember(&self, stream: &TcpStream) {
        if let Ok(clone) = stream.try_clone() {
            self.streams
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(clone);
        }
    }

    fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        let streams =
            std::mem::take(&mut *self.streams.lock().unwrap_or_else(PoisonError::into_inner));
        for stream in streams {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }
}

impl TcpProxy {
    /// Starts forwarding from a free port on 127.0.0.1 to `upstream`.
    pub fn start(upstream: SocketAddr) -> Result<Self> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .context("could not bind the proxy's listener")?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(ProxyShared::default());
        let accept_shared = Arc::clone(&shared);
        thread::spawn(move || {
            for client in listener.incoming() {
                if accept_shared.cut.load(Ordering::SeqCst) {
                    // Dropping the listener ends this thread; later
                    // connection attempts are refused.
                    break;
                }
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect_timeout(&upstream, Duration::from_secs(5))
                else {
                    continue;
                };
                accept_shared.remember(&client);
                accept_shared.remember(&server);
                if let (Ok(c), Ok(s)) = (client.try_clone(), server.try_clone()) {
                    thread::spawn(move || pipe(c, s));
                    thread::spawn(move || pipe(server, client));
                }
            }
        });
        Ok(Self { addr, shared })
    }

    /// The address clients connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The proxy's port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Closes every forwarded connection, both ways, with no further bytes,
    /// and refuses new connections: to both ends it looks like the network
    /// died.
    pub fn cut(&self) {
        self.shared.cut();
        // Wake the accept loop so it sees the flag and drops the listener.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200));
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.cut();
    }
}

/// Copies `from` to `to` until either side ends, then shuts both down.
fn pipe(mut from: TcpStream, mut to: TcpStream) {
    let mut buf = [0u8; 8192];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let Some(chunk) = buf.get(..n) else { break };
                if to.write_all(chunk).is_err() {
                    break;
                }
            }
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}
