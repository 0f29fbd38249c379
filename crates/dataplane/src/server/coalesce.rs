//! An HTTP/2 connection's writes, gathered across its streams into one
//! system call.
//!
//! hyper's HTTP/2 connection writes and flushes whatever its streams have
//! queued each time it is polled, and `h2` flushes once for every answer
//! with a body: its encoder holds at most one DATA frame past its 16 KiB
//! buffer, so it must flush before it takes the next answer's body. Left
//! alone that is one `writev` an answer, where HAProxy sends one buffer
//! for several (`bench/run.sh h2`). The streams run in the connection's
//! own task (`server/streams.rs`), so the answers of every stream woken
//! by one poll of the reactor are queued within one poll of the
//! connection; they only need to leave in one write.
//!
//! [`Coalesce`] sits between hyper and the socket and takes the bytes in.
//! A flush with bytes held is put off to the end of the connection's
//! turn: the connection's driver (`listener::serve_conn`) polls the
//! connection once more whenever a turn leaves bytes held
//! ([`Turns::holding`]), and that poll's flush sends everything in one
//! write. A turn is one poll of the connection's future, counted by
//! [`Turns`]. So the answers of every stream that ran in the turn leave
//! together, and a lone answer leaves in the same run of the task, with
//! no trip through the scheduler. Held bytes go out before a shutdown, and
//! with one last try when the connection is dropped without one.
//!
//! What was tried first, and measured (`bench/ab.sh … auth h2` and the
//! proxy's system calls under `perf stat`): putting a flush off to the
//! next turn, asked for with a wake, and only while other requests on the
//! connection were still waiting for their answers' heads. With streams
//! run as tasks of their own that gave about two answers a write. Once the
//! streams ran in the connection's task, all of a connection's answers
//! were often made by the time its task ran, no request was left
//! waiting, and every `h2` flush (one an answer with a body) wrote at
//! once: one write an answer. Ending the turn instead sends 0.11 writes to
//! the client a request (HAProxy 0.16), 2.23 system calls a request in all
//! (HAProxy 2.37, before 3.10), and served 1.19× the requests a second
//! with 0.89× the user and 0.72× the system time a request.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Bytes held at most: a write that would take the held bytes past this
/// sends them first. HAProxy's buffers are 16 KiB; a batch of this size is
/// a handful of segments and keeps a slow reader from growing it further
/// (the socket's backpressure reaches hyper through the write that drains).
const HOLD_MAX: usize = 64 * 1024;

/// A write this large, with nothing held, goes straight to the socket: it
/// fills segments on its own, and copying it would only cost (the DATA
/// frames of a download are 16 KiB).
const DIRECT: usize = 16 * 1024;

/// Room kept for the next batch once the held bytes are out, while other
/// requests are being answered; a larger buffer (after a burst) is given
/// back.
const KEEP_MAX: usize = 16 * 1024;

/// Room kept once no other request is being answered: enough for a small
/// answer's frames, so sequential requests reuse it, and little for a
/// connection left idle (`h2`'s own write buffer is 16 KiB).
const KEEP_QUIET: usize = 4 * 1024;

/// Flushes put off within one turn at most: past this the held bytes go
/// out anyway. A turn of many streams flushes once per answer with a body,
/// so a batch of this many is already a large one; and should the turn
/// count ever stand still, the connection still writes.
const FLUSHES_MAX: u32 = 64;

/// One connection's turns and the requests it is answering, shared by
/// its driver ([`Turns::next`] at each poll, [`Turns::holding`] after it),
/// its streams ([`Turns::answering`] while each makes its answer's head)
/// and its socket.
#[derive(Debug, Clone, Default)]
pub(crate) struct Turns(Arc<Counts>);

#[derive(Debug, Default)]
struct Counts {
    turns: AtomicU64,
    answering: AtomicUsize,
    /// A flush was put off and its bytes are still held.
    holding: AtomicBool,
}

impl Turns {
    pub(crate) fn next(&self) {
        self.0.turns.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn now(&self) -> u64 {
        self.0.turns.load(Ordering::Relaxed)
    }

    /// A request is being answered until the guard is dropped: when its
    /// head is made, or when the stream is reset and its future dropped.
    pub(crate) fn answering(&self) -> Answering {
        self.0.answering.fetch_add(1, Ordering::Relaxed);
        Answering(self.clone())
    }

    /// A flush of this turn was put off and its bytes are held: the
    /// connection's driver must poll it once more, as a turn of its own,
    /// to send them.
    pub(crate) fn holding(&self) -> bool {
        self.0.holding.load(Ordering::Relaxed)
    }

    /// Other requests are still being answered: the connection is busy,
    /// and keeps a larger buffer between batches.
    fn others_answering(&self) -> bool {
        self.0.answering.load(Ordering::Relaxed) > 0
    }
}

/// See [`Turns::answering`].
#[derive(Debug)]
pub(crate) struct Answering(Turns);

impl Drop for Answering {
    fn drop(&mut self) {
        (self.0).0.answering.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The connection's socket, with writes held until the end of the turn
/// whose flush would have sent them.
#[derive(Debug)]
pub(crate) struct Coalesce<S: AsyncWrite + Unpin> {
    io: S,
    held: Vec<u8>,
    /// How much of `held` the socket has taken.
    sent: usize,
    /// The turn whose flush put the held bytes off.
    put_off: Option<u64>,
    /// Flushes put off since then.
    flushes: u32,
    turns: Turns,
}

impl<S: AsyncWrite + Unpin> Coalesce<S> {
    pub(crate) fn new(io: S, turns: Turns) -> Self {
        Self {
            io,
            held: Vec::new(),
            sent: 0,
            put_off: None,
            flushes: 0,
            turns,
        }
    }

    /// Sends everything held; `Pending` (with the socket's waker set) while
    /// the socket is full. The driver need not end the turn for these
    /// bytes any more: the socket's readiness brings the next poll.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.turns.0.holding.store(false, Ordering::Relaxed);
        while self.sent < self.held.len() {
            let n = ready!(Pin::new(&mut self.io).poll_write(cx, &self.held[self.sent..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.sent += n;
        }
        self.sent = 0;
        self.put_off = None;
        self.flushes = 0;
        // A connection gone quiet keeps a small buffer only: it may stay
        // open, idle, for hours (a browser's tab).
        let keep = if self.turns.others_answering() {
            KEEP_MAX
        } else {
            KEEP_QUIET
        };
        if self.held.capacity() > keep {
            self.held = Vec::new();
        } else {
            self.held.clear();
        }
        Poll::Ready(Ok(()))
    }

    /// Makes room for `len` more bytes. `true`: they go to the socket
    /// directly (nothing is held before them, and they are large).
    ///
    /// Small writes are taken in even on a quiet connection: `h2` writes
    /// each queued answer's body apart from the next answer's frames, and
    /// taken in, a flush's writes still go out as one.
    fn poll_room(&mut self, cx: &mut Context<'_>, len: usize) -> Poll<io::Result<bool>> {
        if !self.held.is_empty() && self.held.len() + len > HOLD_MAX {
            ready!(self.poll_drain(cx))?;
        }
        Poll::Ready(Ok(self.held.is_empty() && len >= DIRECT))
    }
}

/// Reads pass straight through. A clean end from the peer needs nothing
/// here: `h2` then closes the connection through its shutdown, which
/// sends what is held ([`AsyncWrite::poll_shutdown`]).
impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for Coalesce<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

/// A connection can also end with bytes held and no shutdown: a read error
/// (a TLS client gone without `close_notify`), or hyper ending it at once.
/// Those bytes were flushed as far as hyper knows, so one last try sends
/// what the socket takes without waiting; the peer is usually gone anyway.
impl<S: AsyncWrite + Unpin> Drop for Coalesce<S> {
    fn drop(&mut self) {
        if self.held.is_empty() {
            return;
        }
        let mut cx = Context::from_waker(std::task::Waker::noop());
        if let Poll::Ready(Ok(())) = self.poll_drain(&mut cx) {
            let _ = Pin::new(&mut self.io).poll_flush(&mut cx);
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Coalesce<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if ready!(this.poll_room(cx, buf.len()))? {
            return Pin::new(&mut this.io).poll_write(cx, buf);
        }
        this.held.extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let len = bufs.iter().map(|b| b.len()).sum();
        if ready!(this.poll_room(cx, len))? {
            return Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        }
        for b in bufs {
            this.held.extend_from_slice(b);
        }
        Poll::Ready(Ok(len))
    }

    /// Vectored, so that `h2` hands its frames over without first copying
    /// bodies of up to 1 KiB into its own buffer; they are copied here once.
    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.held.is_empty() {
            let now = this.turns.now();
            match this.put_off {
                Some(turn) if turn != now || this.flushes >= FLUSHES_MAX => {
                    ready!(this.poll_drain(cx))?;
                }
                _ => {
                    // Put off to the end of the turn, which the driver
                    // makes because bytes are held: a flush is reported
                    // done with that poll promised.
                    this.put_off.get_or_insert(now);
                    this.flushes += 1;
                    this.turns.0.holding.store(true, Ordering::Relaxed);
                    return Poll::Ready(Ok(()));
                }
            }
        }
        Pin::new(&mut this.io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests;
