//! The proxy's HTTP/1.1 server (RFC 9112): one task a connection, which
//! reads a request head, hands the request to the pipeline, writes the
//! answer, and goes on to the next request.
//!
//! The request body is read by whoever holds it (the upstream client, as
//! it uploads) from the connection's read side, shared with this loop:
//! both run in the connection's task, so the lock is never contended.
//! Once the answer has been written the loop waits for the body to end (an
//! upstream may answer an upload before reading it, and the rest still
//! goes through) or to be dropped unread, which closes the connection: its
//! unread bytes cannot be told from the next request.
//!
//! Heads are bounded: at most `max_head` bytes (431 beyond, bare, as a
//! head that large is not parsed at all; the pipeline answers heads over
//! its own limit with the envelope) and [`MAX_HEADERS`] fields. A head
//! that does not parse, or frames its body ambiguously (a
//! `Transfer-Encoding` without `chunked` last, or beside a
//! `Content-Length`; `Content-Length` values that disagree), gets a bare
//! 400 and the connection is closed: such a request is how smuggling
//! starts. A connection with no complete head within the header-read
//! timeout (idle keep-alive connections included) is closed.

use std::io;
use std::ops::Range;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll, Waker};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use http::header::HeaderName;
use http::{Method, Request, StatusCode};
use http_body::{Body, Frame, SizeHint};
use tokio::io::AsyncWriteExt;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use self::answer::{encode_head, respond, write_out};
use self::head::{parse_head, Head, HeadError};
use super::ClientBody;
use crate::body::{BodyTimeout, BoxError};
use crate::codec::{self, Framing, ReadSize};
use crate::headers::passed::Passed;
use crate::lock;
use crate::pipeline::{ConnInfo, Proxy};
use crate::splice::{self, MoveError, Moved, Pipe, MIN_SPLICE};
use crate::tunnel::End;

/// The largest read of a client's connection (a large upload).
const MAX_READ: usize = 256 * 1024;

pub(crate) use self::socket::{Reader, WriteHalf};
use self::writer::Writer;
use super::stall::Stall;

/// What the server takes from the settings.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub(crate) header_read_timeout: Duration,
    /// The longest wait for the next bytes of a request body.
    pub(crate) body_read_timeout: Duration,
    /// The longest wait for the client to take more of its answer.
    pub(crate) send_timeout: Duration,
    /// The largest head read at all.
    pub(crate) max_head: usize,
}

/// The connection's read side: its bytes and the current request body's
/// framing, shared by the loop and the body.
struct ReadSide {
    io: Reader,
    buf: BytesMut,
    reads: ReadSize,
    body: Framing,
    /// The body failed (the client closed, or sent a malformed chunk).
    failed: bool,
    /// The body was dropped.
    gone: bool,
    /// Which request the framing and flags are for. A body outliving its
    /// request (an upload still being sent after its answer) must never
    /// read the next request's bytes.
    generation: u64,
    /// The loop, waiting for the body to end or go.
    waiter: Option<Waker>,
    /// The body-read timeout: runs while a read of the body has to wait.
    stall: Stall,
}

impl ReadSide {
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        self.reads
            .poll_fill(Pin::new(&mut self.io), &mut self.buf, cx)
    }

    /// Reads while the request is answered, into the room the buffer has
    /// (see [`ReadSize::poll_fill_spare`]).
    fn poll_watch(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        self.reads
            .poll_fill_spare(Pin::new(&mut self.io), &mut self.buf, cx)
    }

    fn wake(&mut self) {
        if let Some(w) = self.waiter.take() {
            w.wake();
        }
    }

    /// A read of the body had to wait: resolves once the client has sent
    /// nothing for the body-read timeout, which fails the body.
    fn poll_stalled(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        ready!(self.stall.poll_expired(cx));
        self.failed = true;
        self.wake();
        Poll::Ready(io::Error::new(
            io::ErrorKind::TimedOut,
            BodyTimeout(self.stall.limit()),
        ))
    }

    /// Bytes of the body arrived: the wait, if any, is over.
    fn unstalled(&mut self) {
        self.stall.moved();
    }

    fn settled(&self) -> bool {
        self.body == Framing::Done || self.failed || self.gone
    }
}

type Shared = Arc<Mutex<ReadSide>>;

/// A request body, read from the connection as its holder polls it.
pub struct RequestBody {
    side: Shared,
    generation: u64,
    /// The head's fields no step reads, until the pipeline takes them
    /// (`headers::passed`): they ride here, where the request already
    /// carries the server's own state, rather than in its extensions.
    passed: Passed,
}

impl std::fmt::Debug for RequestBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestBody").finish_non_exhaustive()
    }
}

impl Drop for RequestBody {
    fn drop(&mut self) {
        let mut side = lock(&self.side);
        if side.generation == self.generation {
            side.gone = true;
            side.wake();
        }
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let mut side = lock(&self.side);
        if side.failed || side.generation != self.generation {
            return Poll::Ready(None);
        }
        loop {
            let mut framing = side.body;
            let decoded = codec::decode(&mut side.buf, &mut framing);
            side.body = framing;
            match decoded {
                Ok(Some(frame)) => {
                    if side.body == Framing::Done {
                        side.wake();
                    }
                    return Poll::Ready(Some(Ok(frame)));
                }
                Ok(None) if side.body == Framing::Done => {
                    side.wake();
                    return Poll::Ready(None);
                }
                Ok(None) => {}
                Err(m) => {
                    side.failed = true;
                    side.wake();
                    return Poll::Ready(Some(Err(
                        io::Error::new(io::ErrorKind::InvalidData, m.0).into()
                    )));
                }
            }
            let filled = match side.poll_fill(cx) {
                Poll::Ready(filled) => filled,
                Poll::Pending => {
                    let stalled = ready!(side.poll_stalled(cx));
                    return Poll::Ready(Some(Err(stalled.into())));
                }
            };
            side.unstalled();
            let err: BoxError = match filled {
                Ok(0) => "the client closed the connection before the end of the body".into(),
                Ok(_) => continue,
                Err(e) => e.into(),
            };
            side.failed = true;
            side.wake();
            return Poll::Ready(Some(Err(err)));
        }
    }

    fn is_end_stream(&self) -> bool {
        let side = lock(&self.side);
        side.generation != self.generation || side.body == Framing::Done
    }

    fn size_hint(&self) -> SizeHint {
        let side = lock(&self.side);
        if side.generation != self.generation {
            return SizeHint::with_exact(0);
        }
        match side.body {
            Framing::Done => SizeHint::with_exact(0),
            Framing::Length(n) => SizeHint::with_exact(n),
            Framing::Chunked(_) | Framing::Close => SizeHint::default(),
        }
    }
}

impl RequestBody {
    pub(crate) fn passed(&self) -> &Passed {
        &self.passed
    }

    pub(crate) fn take_passed(&mut self) -> Passed {
        std::mem::take(&mut self.passed)
    }

    /// The body's unread rest as a splice source, where it is worth one:
    /// a `Content-Length` body of at least [`MIN_SPLICE`] bytes still to
    /// come on a plain TCP connection.
    pub(crate) fn splice_source(&self) -> Option<SpliceBody> {
        let side = lock(&self.side);
        let Framing::Length(left) = side.body else {
            return None;
        };
        let worth = side.generation == self.generation
            && !side.failed
            && side.io.tcp().is_some()
            && left.saturating_sub(side.buf.len() as u64) >= MIN_SPLICE;
        worth.then(|| SpliceBody {
            side: Arc::clone(&self.side),
            generation: self.generation,
        })
    }
}

/// A request body's rest, spliced from the client's socket by the upstream
/// client instead of read as frames. It keeps the body's framing true, so
/// the connection's loop sees the body end as it would have.
#[derive(Clone)]
pub(crate) struct SpliceBody {
    side: Shared,
    generation: u64,
}

impl std::fmt::Debug for SpliceBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpliceBody").finish_non_exhaustive()
    }
}

impl splice::Source for SpliceBody {
    fn poll_move(&self, pipe: &mut Pipe, cx: &mut Context<'_>) -> Poll<io::Result<Moved>> {
        let mut guard = lock(&self.side);
        let side = &mut *guard;
        if side.generation != self.generation || side.failed {
            return Poll::Ready(Err(io::Error::other("the request body is gone")));
        }
        let Some(tcp) = side.io.tcp() else {
            return Poll::Ready(Err(io::Error::other("a spliced body is on TCP")));
        };
        let moved = match splice::poll_move_length(&mut side.buf, &mut side.body, tcp, pipe, cx) {
            Poll::Pending => return side.poll_stalled(cx).map(Err),
            Poll::Ready(moved) => moved,
        };
        side.unstalled();
        let moved = moved.map_err(|e| match e {
            MoveError::Closed => io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the client closed the connection before the end of the body",
            ),
            MoveError::NotLength => io::Error::other("a spliced body has a length"),
            MoveError::Io(e) => e,
        });
        if moved.is_err() {
            side.failed = true;
        }
        if moved.is_err() || side.body == Framing::Done {
            side.wake();
        }
        Poll::Ready(moved)
    }
}

/// The request extension a protocol switch's connection arrives through
/// (extensions must be `Clone`: the receiver is shared, and taken once).
#[derive(Clone)]
pub(crate) struct UpgradeSlot(Arc<Mutex<Option<oneshot::Receiver<End>>>>);

impl UpgradeSlot {
    pub(crate) fn take(&self) -> Option<oneshot::Receiver<End>> {
        lock(&self.0).take()
    }
}

/// Serves HTTP/1.1 requests on one connection until it closes, fails, or
/// `shutdown` fires between requests.
pub(crate) async fn serve(
    read: Reader,
    write: WriteHalf,
    proxy: Arc<Proxy>,
    info: ConnInfo,
    limits: Limits,
    shutdown: CancellationToken,
) {
    let side: Shared = Arc::new(Mutex::new(ReadSide {
        io: read,
        buf: BytesMut::new(),
        reads: ReadSize::new(MAX_READ),
        body: Framing::Done,
        failed: false,
        gone: true,
        generation: 0,
        waiter: None,
        stall: Stall::new(limits.body_read_timeout),
    }));
    let mut write = Writer::new(write, limits.send_timeout);
    let mut out = Vec::with_capacity(ANSWER_HEAD);
    let mut fields = Vec::new();
    let mut names = codec::Names::default();
    // One shutdown waiter and one timer for the connection's life. Each
    // wait for a head has its due time (`due`): a moment in, to let an
    // idle connection's buffers go, then the header-read timeout. The
    // timer is moved lazily (`crate::due`): a busy connection's moves about
    // once a second rather than once a request.
    let cancelled = shutdown.cancelled();
    tokio::pin!(cancelled);
    let deadline = tokio::time::sleep(limits.header_read_timeout.min(IDLE_RELEASE));
    tokio::pin!(deadline);
    loop {
        let waiting = tokio::time::Instant::now();
        let head_due = waiting + limits.header_read_timeout;
        // Whether the idle release is still to come in this wait.
        let mut idle_ahead = limits.header_read_timeout > IDLE_RELEASE;
        let mut due = if idle_ahead {
            waiting + IDLE_RELEASE
        } else {
            head_due
        };
        // The head and the request are done with once the pipeline has
        // answered: in a block of their own, so this task keeps no room for
        // them while the answer is written (rustc keeps a local's room
        // across every await in its scope, moved or not).
        let (resp, switch, head_request, version, keep_alive) = {
            // The head first: the shutdown waiter and the timer are only looked
            // at while it has to wait.
            let head = loop {
                tokio::select! {
                    biased;
                    h = read_head(&side, limits.max_head, &mut fields, &mut names) => break h,
                    () = std::future::poll_fn(|cx| crate::due::poll_due(deadline.as_mut(), due, cx)) => {
                        if std::mem::take(&mut idle_ahead) {
                            release_idle(&side, &mut out, &mut names);
                            due = head_due;
                            continue;
                        }
                        tracing::debug!(remote = %info.remote, "no request head within the header-read timeout");
                        return;
                    }
                    () = &mut cancelled => return,
                }
            };
            let head = match head {
                Ok(h) => h,
                Err(HeadError::Closed) => return,
                Err(e) => {
                    let status = match e {
                        HeadError::TooLarge => "431 Request Header Fields Too Large",
                        _ => "400 Bad Request",
                    };
                    let why = match e {
                        HeadError::Malformed(why) => why,
                        _ => "the head is too large",
                    };
                    tracing::debug!(remote = %info.remote, why, "refused a request head");
                    let bare = format!(
                        "HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                    );
                    let _ = write.write_all(bare.as_bytes()).await;
                    let _ = write.shutdown().await;
                    return;
                }
            };
            if head.expect_continue
                && write_out(&mut write, b"HTTP/1.1 100 Continue\r\n\r\n")
                    .await
                    .is_err()
            {
                return;
            }
            let head_request = head.parts.method == Method::HEAD;
            let version = head.parts.version;
            let mut req = Request::from_parts(
                head.parts,
                ClientBody::H1(RequestBody {
                    side: Arc::clone(&side),
                    generation: lock(&side).generation,
                    passed: head.passed,
                }),
            );
            let switch = head.upgrade.then(|| {
                let (tx, rx) = oneshot::channel();
                req.extensions_mut()
                    .insert(UpgradeSlot(Arc::new(Mutex::new(Some(rx)))));
                tx
            });
            // The pipeline's future (its steps' large parts boxed within) ends
            // with this block, so its room in this task is the answer's next.
            let resp = {
                let handled = Arc::clone(&proxy).handle(req, info.clone(), ());
                tokio::pin!(handled);
                tokio::select! {
                    biased;
                    r = &mut handled => match r {
                        Ok(resp) => resp,
                        Err(never) => match never {},
                    },
                    () = client_gone(&side, limits.max_head) => {
                        // Nobody is left to answer: the upstream exchange is
                        // dropped with the request's future, and its route slot
                        // with it.
                        tracing::debug!(remote = %info.remote, "the client left before its answer");
                        return;
                    }
                }
            };
            (resp, switch, head_request, version, head.keep_alive)
        };
        if let (Some(tx), StatusCode::SWITCHING_PROTOCOLS) = (switch, resp.status()) {
            out.clear();
            // A protocol switch's answer comes from hyper's client: a map.
            encode_head(&mut out, &resp, None, None, false);
            if write_out(&mut write, &out).await.is_err() {
                return;
            }
            let mut s = lock(&side);
            let read = std::mem::replace(&mut s.io, Reader::Stream(Box::new(tokio::io::empty())));
            // Copied, not split off: a slice would keep the whole read
            // buffer alive for the tunnel's life (6 KiB an idle tunnel).
            let prefix = Bytes::copy_from_slice(&s.buf);
            s.buf = BytesMut::new();
            drop(s);
            // The tunnel's end: the bytes read past the request head first,
            // then the socket.
            let _ = tx.send(End::new(read, prefix, write.into_inner()));
            return;
        }
        if out.capacity() == 0 {
            out.reserve(ANSWER_HEAD);
        }
        let keep = keep_alive && !shutdown.is_cancelled();
        let kept = match respond(&mut write, &mut out, resp, head_request, version, keep).await {
            Ok(kept) => kept,
            Err(e) => {
                tracing::debug!(error = %e, "writing the answer failed");
                return;
            }
        };
        // The body ends, fails or is let go; only a body read to its end
        // leaves the connection fit for another request.
        std::future::poll_fn(|cx| {
            let mut s = lock(&side);
            if s.settled() {
                return Poll::Ready(());
            }
            s.waiter = Some(cx.waker().clone());
            Poll::Pending
        })
        .await;
        let clean = {
            let s = lock(&side);
            s.body == Framing::Done && !s.failed
        };
        if !(kept && clean) {
            let _ = write.shutdown().await;
            return;
        }
    }
}

/// A connection waiting this long for its next head is idle: its read
/// buffer (when it holds no bytes) and its answer buffer are let go, and
/// made again when a request comes. A busy connection's next request
/// comes well before, and allocates nothing.
const IDLE_RELEASE: Duration = Duration::from_secs(1);

/// The answer buffer's first room: a head and a small body.
const ANSWER_HEAD: usize = 1024;

/// Lets an idle connection's buffers go (see [`IDLE_RELEASE`]), and the
/// names its last head had. A read buffer with bytes in it (part of the
/// next head) is kept.
fn release_idle(side: &Shared, out: &mut Vec<u8>, names: &mut codec::Names) {
    let mut s = lock(side);
    if s.buf.is_empty() {
        s.buf = BytesMut::new();
        s.reads.reset();
    }
    *out = Vec::new();
    *names = codec::Names::default();
}

/// Resolves when the client closes its connection while its request is
/// being answered. Watched only once the request body has been read (until
/// then the body's reads would see the close); bytes of a next request
/// read meanwhile stay buffered for it, up to a head's limit.
async fn client_gone(side: &Shared, max_head: usize) {
    std::future::poll_fn(|cx| {
        let mut s = lock(side);
        if s.body != Framing::Done || s.buf.len() >= max_head {
            // Woken again when the body ends (the waiter) or never.
            s.waiter = Some(cx.waker().clone());
            return Poll::Pending;
        }
        match s.poll_watch(cx) {
            Poll::Ready(Ok(0) | Err(_)) => Poll::Ready(()),
            Poll::Ready(Ok(_)) => {
                cx.waker().wake_by_ref();
                Poll::Pending
            }
            Poll::Pending => Poll::Pending,
        }
    })
    .await;
}

/// Reads until a request head is complete, and parses it.
async fn read_head(
    side: &Shared,
    max_head: usize,
    fields: &mut Vec<(HeaderName, Range<usize>)>,
    names: &mut codec::Names,
) -> Result<Head, HeadError> {
    std::future::poll_fn(|cx| {
        let mut s = lock(side);
        loop {
            // Blank lines before a request are ignored (RFC 9112 §2.2).
            while s.buf.starts_with(b"\r\n") {
                s.buf.advance(2);
            }
            if !s.buf.is_empty() {
                if let Some(head) = parse_head(&mut s.buf, max_head, fields, names)? {
                    s.body = head.body;
                    s.failed = false;
                    s.gone = false;
                    s.generation += 1;
                    return Poll::Ready(Ok(head));
                }
            }
            match ready!(s.poll_fill(cx)) {
                Ok(0) if s.buf.is_empty() => return Poll::Ready(Err(HeadError::Closed)),
                Ok(0) => return Poll::Ready(Err(HeadError::Malformed("the head was cut off"))),
                Ok(_) => {}
                Err(_) => return Poll::Ready(Err(HeadError::Closed)),
            }
        }
    })
    .await
}

mod answer;
mod head;
pub(crate) mod socket;
#[cfg(test)]
mod tests;
mod writer;
