//! In-memory connections into a running server: [`ServerHandle::connect_local`]
//! hands out one end of a [`LocalStream`] pair and serves the other end with
//! the same connection task as a TCP socket. The MQTT-SN gateway inside
//! `midged` reaches the broker this way, so its clients share topics,
//! retained messages and sessions with TCP clients, without a socket.

use std::collections::VecDeque;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::task::{Context, Poll, Waker};

use async_channel::Sender;
use futures_lite::{AsyncRead, AsyncWrite};
use midge_broker::ConnId;
use midge_runtime::Runtime;

use crate::conn::Conn;
use crate::shard::ToShard;
use crate::stats::Shared;
use crate::transport::ServerStream;
use crate::{ServerHandle, ServerOptions};

/// Bytes one direction of a [`LocalStream`] holds before the writer waits.
const PIPE_CAPACITY: usize = 64 * 1024;

/// The peer address local connections report (in logs): none, really.
const LOCAL_PEER: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0);

/// One direction of a pipe.
#[derive(Debug, Default)]
struct Pipe {
    buf: VecDeque<u8>,
    /// The writing end closed or was dropped: the reader sees the end once
    /// `buf` is empty.
    write_closed: bool,
    /// The reading end was dropped: writes fail.
    read_closed: bool,
    reader: Option<Waker>,
    writer: Option<Waker>,
}

type PipeRef = Arc<Mutex<Pipe>>;

fn lock(pipe: &Mutex<Pipe>) -> MutexGuard<'_, Pipe> {
    // No code path panics while holding the lock; a poisoned pipe is
    // still consistent.
    pipe.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One end of an in-memory, full-duplex byte stream (futures-io
/// [`AsyncRead`] + [`AsyncWrite`]), as a TCP socket would be. Each direction
/// buffers up to 64 KiB; a writer beyond that waits for the reader.
/// Closing or dropping an end makes the other end read the end of the
/// stream after what was written, and fail its writes (`BrokenPipe`).
#[derive(Debug)]
pub struct LocalStream {
    incoming: PipeRef,
    outgoing: PipeRef,
}

impl LocalStream {
    /// Two connected ends: what one writes, the other reads.
    #[must_use]
    pub fn pair() -> (Self, Self) {
        let a_to_b = PipeRef::default();
        let b_to_a = PipeRef::default();
        (
            Self {
                incoming: Arc::clone(&b_to_a),
                outgoing: Arc::clone(&a_to_b),
            },
            Self {
                incoming: a_to_b,
                outgoing: b_to_a,
            },
        )
    }

    fn close_write(&self) {
        let mut out = lock(&self.outgoing);
        out.write_closed = true;
        if let Some(w) = out.reader.take() {
            w.wake();
        }
    }
}

impl Drop for LocalStream {
    fn drop(&mut self) {
        self.close_write();
        let mut inc = lock(&self.incoming);
        inc.read_closed = true;
        inc.buf.clear();
        if let Some(w) = inc.writer.take() {
            w.wake();
        }
    }
}

impl AsyncRead for LocalStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let mut inc = lock(&self.incoming);
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        if inc.buf.is_empty() {
            if inc.write_closed {
                return Poll::Ready(Ok(0));
            }
            inc.reader = Some(cx.waker().clone());
            return Poll::Pending;
        }
        let mut n = 0;
        for (slot, byte) in buf.iter_mut().zip(inc.buf.drain(..)) {
            *slot = byte;
            n += 1;
        }
        if let Some(w) = inc.writer.take() {
            w.wake();
        }
        Poll::Ready(Ok(n))
    }
}

impl AsyncWrite for LocalStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let mut out = lock(&self.outgoing);
        if out.read_closed || out.write_closed {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        let room = PIPE_CAPACITY.saturating_sub(out.buf.len());
        if room == 0 {
            out.writer = Some(cx.waker().clone());
            return Poll::Pending;
        }
        let n = room.min(buf.len());
        out.buf.extend(buf.iter().take(n));
        if let Some(w) = out.reader.take() {
            w.wake();
        }
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.close_write();
        Poll::Ready(Ok(()))
    }
}

type Spawn = Box<dyn Fn(LocalStream) -> io::Result<()> + Send + Sync>;

/// Where [`ServerHandle::connect_local`] finds the running server: set by
/// [`Server::run`](crate::Server::run) once its shards run, cleared when it
/// shuts down.
#[derive(Default)]
pub(crate) struct LocalEntry {
    spawn: Mutex<Option<Spawn>>,
}

impl std::fmt::Debug for LocalEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalEntry").finish_non_exhaustive()
    }
}

impl LocalEntry {
    fn slot(&self) -> MutexGuard<'_, Option<Spawn>> {
        self.spawn.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Opens the entry: connections are served by tasks on `rt`. The
    /// entry holds `done` (the server waits for it at shutdown) until
    /// [`close`](Self::close).
    pub(crate) fn open<R: Runtime>(
        &self,
        rt: R,
        options: Arc<ServerOptions>,
        links: Arc<[Sender<ToShard>]>,
        shared: &Arc<Shared>,
        done: Sender<()>,
    ) {
        // Weak: the entry lives inside `shared`.
        let shared = Arc::downgrade(shared);
        let spawn: Spawn =
            Box::new(move |stream| spawn_local(&rt, &options, &links, &shared, &done, stream));
        *self.slot() = Some(spawn);
    }

    /// Closes the entry: later [`ServerHandle::connect_local`] calls fail.
    pub(crate) fn close(&self) {
        *self.slot() = None;
    }

    fn connect(&self) -> io::Result<LocalStream> {
        let slot = self.slot();
        let Some(spawn) = slot.as_ref() else {
            return Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "the server is not running",
            ));
        };
        let (ours, theirs) = LocalStream::pair();
        spawn(theirs)?;
        Ok(ours)
    }
}

/// Serves one local connection like an accepted socket: the same
/// connection limit, counters and task.
fn spawn_local<R: Runtime>(
    rt: &R,
    options: &Arc<ServerOptions>,
    links: &Arc<[Sender<ToShard>]>,
    shared: &Weak<Shared>,
    done: &Sender<()>,
    stream: LocalStream,
) -> io::Result<()> {
    let Some(shared) = shared.upgrade() else {
        return Err(io::Error::new(
            io::ErrorKind::NotConnected,
            "the server is not running",
        ));
    };
    let counters = &shared.stats;
    let open = counters.connections_open.fetch_add(1, Ordering::Relaxed);
    if usize::try_from(open).unwrap_or(usize::MAX) >= options.max_connections {
        counters.connections_open.fetch_sub(1, Ordering::Relaxed);
        counters
            .connections_rejected
            .fetch_add(1, Ordering::Relaxed);
        return Err(io::Error::new(
            io::ErrorKind::ConnectionRefused,
            "the server's connection limit is reached",
        ));
    }
    counters.connections_total.fetch_add(1, Ordering::Relaxed);
    let id = ConnId(shared.next_conn.fetch_add(1, Ordering::Relaxed));
    tracing::debug!(conn = id.0, "local connection");
    let conn = Conn::new(
        rt.clone(),
        id,
        LOCAL_PEER,
        ServerStream::Local(stream),
        options,
        Arc::clone(links),
        Arc::clone(&shared),
    );
    let done = done.clone();
    rt.spawn(async move {
        conn.run().await;
        drop(done);
    });
    Ok(())
}

impl ServerHandle {
    /// Opens an in-memory MQTT connection into the running server and
    /// returns the client's end. The server serves the other end exactly as
    /// a TCP socket (same limits, counters, back-pressure, will and
    /// session rules); the reported peer address is `0.0.0.0:0`. Nothing
    /// is read until the caller writes a CONNECT.
    ///
    /// # Errors
    /// `NotConnected` before [`Server::run`](crate::Server::run) has
    /// started or once it is shutting down; `ConnectionRefused` at
    /// [`ServerOptions::max_connections`].
    pub fn connect_local(&self) -> io::Result<LocalStream> {
        if self.is_shutting_down() {
            return Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "the server is shutting down",
            ));
        }
        self.shared.local.connect()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use futures_lite::future::block_on;
    use futures_lite::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    #[test]
    fn what_one_end_writes_the_other_reads_and_close_ends_the_stream() {
        block_on(async {
            let (mut a, mut b) = LocalStream::pair();
            a.write_all(b"hello").await.unwrap();
            b.write_all(b"back").await.unwrap();
            let mut buf = [0u8; 16];
            let n = b.read(&mut buf).await.unwrap();
            assert_eq!(buf.get(..n), Some(&b"hello"[..]));
            let n = a.read(&mut buf).await.unwrap();
            assert_eq!(buf.get(..n), Some(&b"back"[..]));
            a.close().await.unwrap();
            assert_eq!(b.read(&mut buf).await.unwrap(), 0);
            // The other direction still works after a half close.
            b.write_all(b"x").await.unwrap();
            assert_eq!(a.read(&mut buf).await.unwrap(), 1);
        });
    }

    #[test]
    fn a_dropped_reader_fails_writes_and_a_full_pipe_waits_for_the_reader() {
        block_on(async {
            let (mut a, b) = LocalStream::pair();
            let big = vec![7u8; PIPE_CAPACITY + 10];
            // Only what fits is taken by one write.
            let n = futures_lite::future::poll_once(a.write(&big))
                .await
                .expect("room in the pipe")
                .unwrap();
            assert_eq!(n, PIPE_CAPACITY);
            assert!(futures_lite::future::poll_once(a.write(&big))
                .await
                .is_none());
            drop(b);
            let err = a.write(&big).await.unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
            let mut buf = [0u8; 4];
            assert_eq!(a.read(&mut buf).await.unwrap(), 0);
        });
    }
}
