//! Write batching for one connection.
//!
//! HTTP/2 (the `h2` crate) flushes its transport after every DATA frame, so a
//! connection carrying thousands of watch streams would make one TLS record and
//! one `writev` per event per watcher. [`BatchedIo`] gathers the writes of one
//! turn of the connection's task instead: a flush only writes once
//! [`FLUSH_AT`] bytes are waiting, and [`Driven`], the future that runs the
//! connection, writes the rest when the turn ends. Clients see the same bytes,
//! sooner and in fewer, larger TLS records.
//!
//! Bounded: at most [`MAX_BUFFERED`] bytes wait; beyond that a write waits for
//! the socket, so a slow reader pushes back on its connection as before.
//!
//! A connection that only streams watches may hold its writes a little
//! longer: when its [`Pacing`] says no answer is waiting, a write that follows
//! the last one within [`MAX_HOLD`] waits until then (or until [`FLUSH_AT`]
//! bytes are waiting). Under a flood of events each write then carries more
//! of them: fewer TLS records, system calls and TCP segments for the same
//! bytes (measured with 10,000 watchers: 2.5 times fewer `writev` calls, the
//! delivery p99 ~12% lower). A watch whose events come further apart than
//! [`MAX_HOLD`] is never held, and an answer to a request always goes out at
//! the end of the turn. A new stream's head may wait up to [`MAX_HOLD`] when
//! the connection's task writes on another core between the stream's start
//! and the head's queueing.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{ready, Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

/// A flush writes at once when this many bytes are waiting.
pub const FLUSH_AT: usize = 64 * 1024;
/// Most bytes a connection buffers before writes wait for the socket.
pub const MAX_BUFFERED: usize = 256 * 1024;
/// Longest a streaming-only connection holds a write after its last one.
pub const MAX_HOLD: Duration = Duration::from_millis(2);

/// Tells whether a connection's writes may be held (see the module doc).
pub trait Pacing: Send + Sync {
    /// True when something must go out now: an answer to a request (or the
    /// head of a new stream) is among the buffered bytes. Each `true`
    /// concerns the bytes buffered so far: a caller asks once per write.
    fn write_now(&self) -> bool;
}

/// Never holds a write.
pub struct Eager;

impl Pacing for Eager {
    fn write_now(&self) -> bool {
        true
    }
}

struct Shared<S> {
    io: S,
    out: Vec<u8>,
    written: usize,
    /// Bytes went to the transport since its last flush.
    dirty: bool,
}

impl<S: AsyncWrite + Unpin> Shared<S> {
    /// Bytes buffered and not yet written.
    fn buffered(&self) -> usize {
        self.out.len() - self.written
    }

    /// Writes everything buffered, then flushes the transport.
    fn drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.write_buffered(cx))?;
        if !self.dirty {
            return Poll::Ready(Ok(()));
        }
        ready!(Pin::new(&mut self.io).poll_flush(cx))?;
        self.dirty = false;
        Poll::Ready(Ok(()))
    }

    /// Writes everything buffered (without flushing the transport).
    fn write_buffered(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.written < self.out.len() {
            let pending = &self.out[self.written..];
            let wrote = if self.io.is_write_vectored() {
                // In short pieces: rustls copies each into its record on its own.
                let (slices, used) = crate::copy::io_slices(pending);
                Pin::new(&mut self.io).poll_write_vectored(cx, &slices[..used])
            } else {
                Pin::new(&mut self.io).poll_write(cx, pending)
            };
            match wrote {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => {
                    self.written += n;
                    self.dirty = true;
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => {
                    // Keep only what is still unwritten, so that the buffer stays bounded.
                    self.out.drain(..self.written);
                    self.written = 0;
                    return Poll::Pending;
                }
            }
        }
        self.out.clear();
        self.written = 0;
        if self.out.capacity() > MAX_BUFFERED {
            self.out.shrink_to(FLUSH_AT);
        }
        Poll::Ready(Ok(()))
    }

    /// How many more bytes may be buffered, writing out first when none may.
    fn room(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        if self.out.len() - self.written >= MAX_BUFFERED {
            ready!(self.write_buffered(cx))?;
        }
        Poll::Ready(Ok(MAX_BUFFERED.saturating_sub(self.out.len() - self.written)))
    }
}

/// The connection's transport as hyper sees it: writes are buffered until the
/// end of the task's turn (see the module documentation).
pub struct BatchedIo<S> {
    shared: Arc<Mutex<Shared<S>>>,
}

/// Drives a connection future and writes what it buffered at the end of each turn.
pub struct Driven<F, S> {
    conn: Pin<Box<F>>,
    shared: Arc<Mutex<Shared<S>>>,
    /// Set while the write waits one round of the scheduler (see `poll`).
    yielding: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
    pacing: Arc<dyn Pacing>,
    /// When bytes last went out.
    last_write: Instant,
    /// The timer of a held write (kept, re-armed for the next one).
    hold: Option<Pin<Box<tokio::time::Sleep>>>,
}

/// Wraps `io`; serve the connection with the first half and run it with [`drive`].
pub fn batched<S>(io: S) -> (BatchedIo<S>, Handle<S>) {
    let shared = Arc::new(Mutex::new(Shared { io, out: Vec::new(), written: 0, dirty: false }));
    (BatchedIo { shared: shared.clone() }, Handle { shared })
}

/// The driver's half of a [`BatchedIo`].
pub struct Handle<S> {
    shared: Arc<Mutex<Shared<S>>>,
}

/// Runs `conn` (which owns the matching [`BatchedIo`]) so that buffered writes
/// go out at the end of every turn, or are held as `pacing` allows.
pub fn drive<F: Future, S>(conn: F, handle: &Handle<S>, pacing: Arc<dyn Pacing>) -> Driven<F, S> {
    Driven {
        conn: Box::pin(conn),
        shared: handle.shared.clone(),
        yielding: None,
        pacing,
        // The first write is never held.
        last_write: Instant::now().checked_sub(MAX_HOLD).unwrap_or_else(Instant::now),
        hold: None,
    }
}

impl<S: AsyncRead + Unpin> Handle<S> {
    /// After the connection's end: reads and drops what the peer still
    /// sends, until it closes or `limit` passes. Closing a socket with unread
    /// bytes makes the kernel reset the connection, and a reset can destroy
    /// the last answers before the peer read them (a "lingering close").
    pub async fn linger(&self, limit: std::time::Duration) {
        let mut buf = vec![0u8; 8192];
        let drain = std::future::poll_fn(|cx| loop {
            let mut shared = lock(&self.shared);
            let mut read = ReadBuf::new(&mut buf);
            match Pin::new(&mut shared.io).poll_read(cx, &mut read) {
                Poll::Ready(Ok(())) if !read.filled().is_empty() => continue,
                Poll::Ready(_) => return Poll::Ready(()),
                Poll::Pending => return Poll::Pending,
            }
        });
        let _ = tokio::time::timeout(limit, drain).await;
    }
}

fn lock<S>(shared: &Mutex<Shared<S>>) -> MutexGuard<'_, Shared<S>> {
    // Nothing panics while holding the lock; a poisoned lock still holds valid bytes.
    shared.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl<F: Future, S: AsyncWrite + Unpin> Future for Driven<F, S> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = &mut *self;
        let result = this.conn.as_mut().poll(cx);
        if result.is_pending() && this.yielding.is_none() && lock(&this.shared).buffered() > 0 {
            // Let the tasks that are ready to run (other streams of this
            // connection, woken by the same event) add their frames first: the
            // write goes out after one round of the scheduler.
            let mut round: Pin<Box<dyn Future<Output = ()> + Send>> = Box::pin(tokio::task::yield_now());
            if round.as_mut().poll(cx).is_pending() {
                this.yielding = Some(round);
                return Poll::Pending;
            }
        }
        this.yielding = None;
        let mut shared = lock(&this.shared);
        let buffered = shared.buffered();
        if result.is_pending() && buffered > 0 && buffered < FLUSH_AT && !this.pacing.write_now() {
            let until = this.last_write + MAX_HOLD;
            if Instant::now() < until {
                let hold = this.hold.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(until)));
                if hold.deadline() != until {
                    hold.as_mut().reset(until);
                }
                if hold.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
            }
        }
        if buffered > 0 {
            this.last_write = Instant::now();
        }
        // Write what was buffered. An error surfaces on the connection's next
        // read or write; after the connection's end (hyper has already shut the
        // transport down, which drains) this is a last best effort.
        let _ = shared.drain(cx);
        result
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for BatchedIo<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut lock(&self.shared).io).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for BatchedIo<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let mut shared = lock(&self.shared);
        let n = ready!(shared.room(cx))?.min(buf.len());
        crate::copy::extend(&mut shared.out, &buf[..n]);
        Poll::Ready(Ok(n))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let mut shared = lock(&self.shared);
        let mut room = ready!(shared.room(cx))?;
        let mut taken = 0;
        for buf in bufs {
            let n = room.min(buf.len());
            crate::copy::extend(&mut shared.out, &buf[..n]);
            (room, taken) = (room - n, taken + n);
            if room == 0 {
                break;
            }
        }
        Poll::Ready(Ok(taken))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut shared = lock(&self.shared);
        if shared.out.len() >= FLUSH_AT {
            return shared.drain(cx);
        }
        // The rest goes out when the connection's turn ends (see `Driven`).
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut shared = lock(&self.shared);
        ready!(shared.write_buffered(cx))?;
        Pin::new(&mut shared.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn small_writes_go_out_when_the_turn_ends() {
        let (client, mut server) = tokio::io::duplex(1 << 20);
        let (mut io, handle) = batched(client);
        let conn = async move {
            for i in 0..100u8 {
                io.write_all(&[i; 10]).await?;
                io.flush().await?;
            }
            // Nothing has reached the peer yet: still the same turn.
            std::future::pending::<()>().await;
            Ok::<_, io::Error>(())
        };
        tokio::spawn(drive(conn, &handle, Arc::new(Eager)));
        let mut got = vec![0u8; 1000];
        server.read_exact(&mut got).await.expect("all bytes arrive");
        assert!(got.chunks(10).enumerate().all(|(i, c)| c.iter().all(|&b| b as usize == i)));
    }

    /// Holds every write it may.
    struct Hold;

    impl Pacing for Hold {
        fn write_now(&self) -> bool {
            false
        }
    }

    /// A connection driven with `pacing` that writes `first`, then `second`
    /// once the peer has read `first`; the peer's end, past `first`, and when
    /// `second` was written.
    async fn two_writes(pacing: Arc<dyn Pacing>) -> (tokio::io::DuplexStream, tokio::time::Instant) {
        let (client, mut server) = tokio::io::duplex(1 << 20);
        let (mut io, handle) = batched(client);
        let (go, next_write) = tokio::sync::oneshot::channel::<()>();
        let conn = async move {
            io.write_all(b"first").await?;
            io.flush().await?;
            let _ = next_write.await;
            io.write_all(b"second").await?;
            io.flush().await?;
            std::future::pending::<()>().await;
            Ok::<_, io::Error>(())
        };
        tokio::spawn(drive(conn, &handle, pacing));
        let mut got = [0u8; 5];
        server.read_exact(&mut got).await.expect("the first write is never held");
        let second = tokio::time::Instant::now();
        go.send(()).expect("the connection waits");
        (server, second)
    }

    #[tokio::test(start_paused = true)]
    async fn a_streaming_connection_holds_a_write_that_follows_the_last_closely() {
        let (mut server, start) = two_writes(Arc::new(Hold)).await;
        let mut next = [0u8; 6];
        let early = tokio::time::timeout(Duration::from_millis(1), server.read_exact(&mut next)).await;
        assert!(early.is_err(), "a write right after the last is held");
        server.read_exact(&mut next).await.expect("held bytes go out");
        assert_eq!(&next, b"second");
        assert!(start.elapsed() <= MAX_HOLD, "held at most MAX_HOLD after the last write");
    }

    #[tokio::test(start_paused = true)]
    async fn an_answer_is_never_held() {
        let (mut server, start) = two_writes(Arc::new(Eager)).await;
        let mut next = [0u8; 6];
        server.read_exact(&mut next).await.expect("the answer");
        assert_eq!(start.elapsed(), Duration::ZERO, "the answer went out at the end of its turn, not held");
    }

    #[tokio::test]
    async fn a_full_buffer_waits_for_the_reader() {
        let (client, mut server) = tokio::io::duplex(1024);
        let (mut io, handle) = batched(client);
        let total = MAX_BUFFERED * 3;
        let conn = async move {
            io.write_all(&vec![7u8; total]).await?;
            io.shutdown().await
        };
        let task = tokio::spawn(drive(conn, &handle, Arc::new(Eager)));
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(!task.is_finished(), "the writer must wait while the reader does not read");
        let mut got = Vec::new();
        server.read_to_end(&mut got).await.expect("read");
        assert_eq!(got.len(), total);
        task.await.expect("join").expect("writes succeed");
    }
}
