//! A minimal HTTP/1.1 responder for the Prometheus endpoint: `GET
//! /metrics` answers the text format 0.0.4, any other path 404, any other
//! method 405, and a request head that is not HTTP, larger than
//! [`MAX_REQUEST`] gets 400, and an exchange slower than [`REQUEST_TIMEOUT`]
//! is cut.
//! One request per connection (`Connection: close`); the request body, if
//! any, is ignored. No TLS, no keep-alive, no other routes: put a reverse
//! proxy in front when more is needed.

use std::net::SocketAddr;
use std::sync::Arc;

use futures_lite::{future, AsyncReadExt, AsyncWriteExt};
use midge_runtime::{Duration, Runtime};

use crate::metrics;
use crate::stats::Shared;
use crate::ServerHandle;

/// The largest request head read (request line and headers).
pub(crate) const MAX_REQUEST: usize = 8 * 1024;

/// How long one exchange may take, from accepting the socket to having
/// written the response.
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Scrapes served at once; a connection beyond it is closed unanswered.
const MAX_CONCURRENT: usize = 64;

/// The Prometheus endpoint of one [`Server`](crate::Server): a listener
/// serving `GET /metrics` until the server's [`ServerHandle::shutdown`].
///
/// `GET /metrics` gets the [`MetricsSnapshot`](crate::MetricsSnapshot) in
/// the text format 0.0.4; another path gets 404, another method 405, a
/// request head that is not HTTP/1.x or is over 8 KiB 400. One request per
/// connection, each exchange cut after 5 s, at most 64 at once. No TLS and
/// no authentication: bind it to loopback or a private network.
///
/// ```no_run
/// # async fn demo<R: midge_runtime::Runtime>(rt: R) -> std::io::Result<()> {
/// use midge_server::{MetricsEndpoint, Server, ServerOptions};
/// let server = Server::bind(rt.clone(), ServerOptions::default()).await?;
/// let addr = "127.0.0.1:9090".parse().expect("an address");
/// let metrics = MetricsEndpoint::bind(rt.clone(), addr, &server.handle()).await?;
/// rt.spawn(metrics.run());
/// server.run().await
/// # }
/// ```
pub struct MetricsEndpoint<R: Runtime> {
    rt: R,
    listener: R::TcpListener,
    addr: SocketAddr,
    shared: Arc<Shared>,
}

impl<R: Runtime> std::fmt::Debug for MetricsEndpoint<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsEndpoint")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

enum Accepted<S> {
    Socket(std::io::Result<(S, SocketAddr)>),
    Shutdown,
}

impl<R: Runtime> MetricsEndpoint<R> {
    /// Binds `addr` (port 0 picks a free port, see
    /// [`local_addr`](Self::local_addr)) for the server `handle` belongs
    /// to. Cancel-safe: dropping the future closes what it bound.
    ///
    /// # Errors
    /// The address cannot be bound.
    pub async fn bind(rt: R, addr: SocketAddr, handle: &ServerHandle) -> std::io::Result<Self> {
        let listener = rt.bind_tcp(addr).await?;
        let addr = R::listener_addr(&listener)?;
        Ok(Self {
            rt,
            listener,
            addr,
            shared: Arc::clone(&handle.shared),
        })
    }

    /// The address the endpoint listens on.
    #[must_use]
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves scrapes until the server shuts down; each scrape runs in a
    /// task of its own, at most 64 at once. Until the server runs, a scrape
    /// gets the connection counters only.
    ///
    /// Cancel-safe: dropping the future stops accepting; scrapes already
    /// accepted finish on their own.
    pub async fn run(self) {
        tracing::info!(addr = %self.addr, "metrics endpoint listening");
        let shutdown = self.shared.shutdown_rx.clone();
        // Each scrape holds one permit; full means too many at once.
        let (permits, held) = async_channel::bounded::<()>(MAX_CONCURRENT);
        loop {
            let accepted = future::or(
                async { Accepted::Socket(self.rt.accept_tcp(&self.listener).await) },
                async {
                    let _ = shutdown.recv().await;
                    Accepted::Shutdown
                },
            )
            .await;
            match accepted {
                Accepted::Shutdown => break,
                Accepted::Socket(Ok((stream, peer))) => {
                    if permits.try_send(()).is_err() {
                        tracing::debug!(%peer, "too many metrics requests at once; closed");
                        continue;
                    }
                    let rt = self.rt.clone();
                    let shared = Arc::clone(&self.shared);
                    let held = held.clone();
                    self.rt.spawn(async move {
                        let timer = rt.clone();
                        let served =
                            future::or(async { serve::<R>(&shared, stream).await.ok() }, async {
                                timer.sleep(REQUEST_TIMEOUT).await;
                                None
                            })
                            .await;
                        if served.is_none() {
                            tracing::debug!(%peer, "metrics request failed or timed out");
                        }
                        let _ = held.try_recv();
                    });
                }
                Accepted::Socket(Err(error)) => {
                    tracing::debug!(addr = %self.addr, %error, "metrics accept failed");
                    let _ = future::or(
                        async {
                            self.rt.sleep(Duration::from_millis(50)).await;
                        },
                        async {
                            let _ = shutdown.recv().await;
                        },
                    )
                    .await;
                }
            }
        }
        tracing::debug!(addr = %self.addr, "metrics endpoint closed");
    }
}

/// Reads one request head and writes the answer.
async fn serve<R: Runtime>(shared: &Shared, mut stream: R::TcpStream) -> std::io::Result<()> {
    let head = read_head(&mut stream).await?;
    let (status, body) = match route(head.as_deref()) {
        Route::Metrics => {
            let snapshot = metrics::collect(shared).await;
            ("200 OK", snapshot.to_prometheus())
        }
        Route::NotFound => ("404 Not Found", "not found\n".to_string()),
        Route::NotAllowed => ("405 Method Not Allowed", "GET only\n".to_string()),
        Route::Bad => ("400 Bad Request", "bad request\n".to_string()),
    };
    let mut response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    if status.starts_with("405") {
        response.push_str("Allow: GET\r\n");
    }
    response.push_str("\r\n");
    response.push_str(&body);
    stream.write_all(response.as_bytes()).await?;
    stream.flush().await?;
    stream.close().await
}

/// The request head up to its blank line; `None` when it is larger than
/// [`MAX_REQUEST`] or the peer closed before its end.
async fn read_head<S: futures_lite::AsyncRead + Unpin>(
    stream: &mut S,
) -> std::io::Result<Option<Vec<u8>>> {
    let mut head = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    while head.len() < MAX_REQUEST {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        head.extend_from_slice(chunk.get(..n).unwrap_or_default());
        if head.windows(4).any(|w| w == b"\r\n\r\n") || head.windows(2).any(|w| w == b"\n\n") {
            return Ok(Some(head));
        }
    }
    Ok(None)
}

#[derive(Debug, PartialEq, Eq)]
enum Route {
    Metrics,
    NotFound,
    NotAllowed,
    Bad,
}

/// Decides the answer from the request line.
fn route(head: Option<&[u8]>) -> Route {
    let Some(line) = head.and_then(|h| h.split(|b| *b == b'\n').next()) else {
        return Route::Bad;
    };
    let Ok(line) = std::str::from_utf8(line) else {
        return Route::Bad;
    };
    let mut parts = line.trim_end_matches('\r').split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Route::Bad;
    };
    if !version.starts_with("HTTP/1.") {
        return Route::Bad;
    }
    let path = target.split('?').next().unwrap_or(target);
    if path != "/metrics" {
        Route::NotFound
    } else if method == "GET" {
        Route::Metrics
    } else {
        Route::NotAllowed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        let r = |s: &str| route(Some(s.as_bytes()));
        assert_eq!(
            r("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"),
            Route::Metrics
        );
        assert_eq!(r("GET /metrics?x=1 HTTP/1.0\r\n\r\n"), Route::Metrics);
        assert_eq!(r("GET / HTTP/1.1\r\n\r\n"), Route::NotFound);
        assert_eq!(r("POST /metrics HTTP/1.1\r\n\r\n"), Route::NotAllowed);
        assert_eq!(r("GET /metrics\r\n\r\n"), Route::Bad);
        assert_eq!(r("GET /metrics SPDY/3\r\n\r\n"), Route::Bad);
        assert_eq!(r("\u{0}\u{1}\r\n\r\n"), Route::Bad);
        assert_eq!(route(None), Route::Bad);
    }

    #[test]
    fn read_head_stops_at_the_blank_line_and_bounds_the_size() {
        let mut ok: &[u8] = b"GET /metrics HTTP/1.1\r\n\r\nbody";
        let head = future::block_on(read_head(&mut ok)).ok().flatten();
        assert!(head.is_some_and(|h| h.starts_with(b"GET /metrics")));
        let huge = vec![b'a'; MAX_REQUEST * 2];
        let mut big: &[u8] = &huge;
        assert_eq!(future::block_on(read_head(&mut big)).ok(), Some(None));
        let mut cut: &[u8] = b"GET /metrics HTTP/1.1\r\n";
        assert_eq!(future::block_on(read_head(&mut cut)).ok(), Some(None));
    }
}
