//! The client side of one upstream HTTP/1.1 connection (RFC 9112): the
//! request head written straight into the connection's buffer, the
//! response head parsed with `httparse` out of the bytes read, and the
//! response body framed by length, chunks or the connection's end.
//!
//! A connection is a plain value with no task of its own: the request's
//! future polls it for the response head, and the response body polls it
//! while the body streams, so one exchange is a write, a read and no
//! hand-off between tasks. A request body still being sent when the
//! response head arrives (an upstream may answer an upload before reading
//! it, as nginx's `return` does) keeps flowing as the response streams.
//!
//! Limits: each response head (status line and headers) of at most
//! [`MAX_HEAD`] bytes and [`MAX_HEADERS`] fields, a chunk-size line of at
//! most [`MAX_CHUNK_LINE`](crate::codec::MAX_CHUNK_LINE) bytes; past any of
//! them the answer is a protocol error (502 `upstream_bad_response`), never
//! a larger buffer. Interim 1xx heads are read past one by one, within the
//! response timeout.

use std::future::Future;
use std::io::{self, IoSlice};
use std::ops::Range;
use std::pin::Pin;
use std::task::{ready, Context, Poll, Waker};

use bytes::{Buf, Bytes, BytesMut};
use http::header::HeaderMap;
use http::{request, Method, StatusCode, Version};
use http_body::{Body, Frame};
use tokio::io::AsyncWrite;
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};

use self::head::{encode_head, Kept};
use crate::body::{BoxError, ProxyBody};
use crate::codec::{self, push_field, push_hex, ReadSize};
pub(super) use crate::codec::{Chunk, Framing};
use crate::headers::verbatim::Verbatim;
use crate::headers::Added;
use crate::splice::{self, MoveError, Moved, Pipe, SpliceFrom};

/// The most bytes one response head may take.
pub(super) const MAX_HEAD: usize = 64 * 1024;
/// The largest read: an upstream's large answer goes in few calls.
const MAX_READ: usize = 512 * 1024;

/// The largest read buffer a resting connection keeps: room for a few
/// kilobytes of answer, so mid-sized answers do not let it go and grow it
/// again on every exchange.
const KEEP_READ: usize = 16 * 1024;

/// Why an exchange with the upstream failed.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("upstream I/O failed: {0}")]
    Io(#[from] io::Error),
    #[error("upstream sent an invalid response: {0}")]
    Protocol(&'static str),
    #[error("upstream closed the connection {0}")]
    Closed(&'static str),
    #[error("the request body failed: {0}")]
    Upload(BoxError),
    /// The client's request cannot be written as it stands.
    #[error("the request cannot be forwarded: {0}")]
    BadRequest(&'static str),
    #[error("the upstream did not answer in time")]
    Timeout,
    /// A protocol switch's exchange, which hyper's client carries.
    #[error("upstream exchange failed: {0}")]
    Upgrade(#[from] hyper::Error),
}

/// How the request body is being framed on the wire.
#[derive(Debug, Clone, Copy)]
enum Sending {
    Length(u64),
    /// `open`: a chunk was written and its closing CRLF was not yet.
    Chunked {
        open: bool,
    },
}

/// A request body on its way to the upstream.
struct Upload {
    body: ProxyBody,
    framing: Sending,
    /// Set where the body is spliced from its source rather than polled
    /// for frames (a large `Content-Length` body passed on unread).
    splice: Option<Splicing>,
}

/// A body being spliced, and the pipe (made at its first move).
struct Splicing {
    from: SpliceFrom,
    pipe: Option<Pipe>,
}

/// A parsed response head.
#[derive(Debug)]
pub(super) struct Head {
    pub(super) status: StatusCode,
    pub(super) version: Version,
    /// The fields, or only room for the proxy's own when they pass on
    /// `verbatim`.
    pub(super) headers: HeaderMap,
    /// The field lines as the upstream wrote them, when the exchange
    /// allowed it and no answer step acts on any of them.
    pub(super) verbatim: Option<Verbatim>,
    pub(super) framing: Framing,
    /// Whether the connection may carry another exchange after this one.
    pub(super) keep_alive: bool,
}

/// One upstream connection and the state of its current exchange.
pub(super) struct Conn {
    io: TcpStream,
    /// Bytes read and not yet consumed.
    rbuf: BytesMut,
    reads: ReadSize,
    /// The request head and body framing; `out[out_pos..]` is unwritten.
    /// Kept after it is written so a request the upstream never answered
    /// can be sent again as it was.
    out: Vec<u8>,
    out_pos: usize,
    /// A body chunk, written after `out`.
    data: Bytes,
    upload: Option<Upload>,
    /// Writing failed: the rest of the request is dropped, the response
    /// may still come, and the connection is not reused.
    write_failed: bool,
    /// Whether any byte of a response arrived in this exchange.
    answered: bool,
    /// Whether this exchange's request has no body: only such a request
    /// can be sent again from its head alone.
    bodiless: bool,
    /// Whether this connection came out of the pool (and so may have been
    /// closed by the upstream while idle) rather than being just opened.
    pub(super) reused: bool,
    /// The upstream it is connected to: the pool key it goes back under.
    pub(super) authority: Box<str>,
    /// Whether this exchange's answer may pass its fields on as they came
    /// ([`Verbatim`]) rather than in a map; set for each exchange by
    /// `pool::exchange`.
    pub(super) verbatim: bool,
    /// Reused per response head: the fields kept, before the head is
    /// frozen.
    fields: Vec<Kept>,
    /// The last response's field names, to compare the next one's with.
    names: codec::Names,
    /// The response timer, made at the first exchange that waits and kept
    /// for the connection's life (see [`Conn::poll_timeout`]).
    timer: Option<Pin<Box<Sleep>>>,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn")
            .field("authority", &self.authority)
            .field("reused", &self.reused)
            .finish_non_exhaustive()
    }
}

impl Conn {
    pub(super) fn new(io: TcpStream, authority: &str) -> Box<Self> {
        Box::new(Self {
            io,
            rbuf: BytesMut::new(),
            reads: ReadSize::new(MAX_READ),
            out: Vec::new(),
            out_pos: 0,
            data: Bytes::new(),
            upload: None,
            write_failed: false,
            answered: false,
            bodiless: true,
            reused: false,
            authority: authority.into(),
            verbatim: false,
            fields: Vec::new(),
            names: codec::Names::default(),
            timer: None,
        })
    }

    /// Resolves once `due` has passed. The connection keeps one timer for
    /// all its exchanges (a new one each time cost a registration in the
    /// timer wheel and a removal, a lock each), moved lazily
    /// ([`crate::due`]).
    pub(super) fn poll_timeout(&mut self, due: Instant, cx: &mut Context<'_>) -> Poll<()> {
        let timer = self
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(due)));
        crate::due::poll_due(timer.as_mut(), due, cx)
    }

    /// Whether a resting connection is still good for a request: the
    /// upstream has neither closed it nor sent anything unasked. Costs no
    /// system call unless the socket became readable while it rested.
    pub(super) fn is_usable(&self) -> bool {
        if !self.rbuf.is_empty() {
            return false;
        }
        let mut probe = [0u8; 1];
        matches!(self.io.try_read(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
    }

    /// Whether the connection may go back to the pool now that an
    /// exchange's response has been read to its end.
    pub(super) fn is_reusable(&self) -> bool {
        !self.write_failed && self.rbuf.is_empty()
    }

    /// Whether the request (head and body) has been written in full.
    pub(super) fn is_sent(&self) -> bool {
        self.upload.is_none() && self.out_pos == self.out.len() && self.data.is_empty()
    }

    /// Starts an exchange: writes `parts` and the proxy's `added` fields as
    /// the request head into the connection's buffer and takes `body` to
    /// send after it.
    pub(super) fn start(
        &mut self,
        parts: &request::Parts,
        added: &Added,
        body: ProxyBody,
    ) -> Result<(), UpstreamError> {
        self.out.clear();
        self.out_pos = 0;
        self.answered = false;
        let framing = encode_head(parts, added, &body, &mut self.out)?;
        self.bodiless = framing.is_none();
        let splice = match framing {
            Some(Sending::Length(_)) => parts.extensions.get::<SpliceFrom>(),
            _ => None,
        };
        let splice = splice.map(|from| Splicing {
            from: from.clone(),
            pipe: None,
        });
        self.upload = framing.map(|framing| Upload {
            body,
            framing,
            splice,
        });
        Ok(())
    }

    /// Starts an exchange with a head already written by another
    /// connection (see [`Conn::take_head`]), for a request without a body.
    pub(super) fn start_with(&mut self, head: Vec<u8>) {
        self.out = head;
        self.out_pos = 0;
        self.answered = false;
        self.bodiless = true;
        self.upload = None;
    }

    /// The request head of a bodiless exchange that failed before any
    /// answer, to send again elsewhere.
    pub(super) fn take_head(&mut self) -> Option<Vec<u8>> {
        (self.bodiless && !self.answered).then(|| std::mem::take(&mut self.out))
    }

    /// Whether the failed exchange may be sent again on a fresh
    /// connection: this one had rested in the pool, the upstream answered
    /// nothing, and nothing but the head was sent. The upstream closed it
    /// as the request went out, so the request was most likely never seen.
    pub(super) fn may_retry(&self, err: &UpstreamError) -> bool {
        let stale = match err {
            UpstreamError::Closed(_) => true,
            UpstreamError::Io(e) => matches!(
                e.kind(),
                io::ErrorKind::ConnectionReset
                    | io::ErrorKind::ConnectionAborted
                    | io::ErrorKind::BrokenPipe
            ),
            _ => false,
        };
        stale && self.reused && self.bodiless && !self.answered
    }

    /// Writes what is buffered, then pumps the request body until it has
    /// been sent or must wait. A write failure is remembered rather than
    /// returned: the upstream may have answered before it stopped reading,
    /// and that answer is still worth reading.
    pub(super) fn poll_send(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), UpstreamError>> {
        loop {
            if self.write_failed {
                self.upload = None;
                return Poll::Ready(Ok(()));
            }
            if let Err(e) = ready!(self.poll_flush_out(cx)) {
                tracing::debug!(error = %e, "writing to the upstream failed");
                self.write_failed = true;
                continue;
            }
            if ready!(self.poll_splice(cx))? {
                continue;
            }
            let Some(up) = self.upload.as_mut() else {
                return Poll::Ready(Ok(()));
            };
            let frame = match ready!(Pin::new(&mut up.body).poll_frame(cx)) {
                Some(Ok(frame)) => frame,
                Some(Err(e)) => {
                    self.upload = None;
                    self.write_failed = true;
                    return Poll::Ready(Err(UpstreamError::Upload(e)));
                }
                None => {
                    let Upload { framing, .. } =
                        self.upload.take().unwrap_or_else(|| unreachable!());
                    self.finish_upload(framing, None)?;
                    continue;
                }
            };
            match frame.into_data() {
                Ok(data) if data.is_empty() => {}
                Ok(data) => self.queue_chunk(data)?,
                Err(frame) => {
                    if let Ok(trailers) = frame.into_trailers() {
                        let Upload { framing, .. } =
                            self.upload.take().unwrap_or_else(|| unreachable!());
                        self.finish_upload(framing, Some(&trailers))?;
                    }
                }
            }
        }
    }

    /// One step of a spliced upload: the pipe drained into the upstream,
    /// or the next part moved from the client. `Ok(false)` when the upload
    /// is not spliced (any more: without a pipe it goes on as frames).
    fn poll_splice(&mut self, cx: &mut Context<'_>) -> Poll<Result<bool, UpstreamError>> {
        let Some(up) = self.upload.as_mut() else {
            return Poll::Ready(Ok(false));
        };
        let (Some(sp), Sending::Length(left)) = (up.splice.as_mut(), &mut up.framing) else {
            return Poll::Ready(Ok(false));
        };
        let pipe = match &mut sp.pipe {
            Some(p) => p,
            None => match Pipe::new() {
                Ok(p) => sp.pipe.insert(p),
                Err(e) => {
                    tracing::debug!(error = %e, "no pipe for a splice; the body is copied");
                    up.splice = None;
                    return Poll::Ready(Ok(true));
                }
            },
        };
        if !pipe.is_empty() {
            if let Err(e) = ready!(pipe.poll_drain(&self.io, cx)) {
                tracing::debug!(error = %e, "splicing to the upstream failed");
                self.write_failed = true;
            } else if *left == 0 {
                self.upload = None;
            }
            return Poll::Ready(Ok(true));
        }
        match ready!(sp.from.0.poll_move(pipe, cx)) {
            Ok(Moved::Bytes(data)) => self.queue_chunk(data)?,
            Ok(Moved::Spliced(n)) => *left = left.saturating_sub(n as u64),
            Ok(Moved::End) => {
                let framing = up.framing;
                self.upload = None;
                self.finish_upload(framing, None)?;
            }
            Err(e) => {
                self.upload = None;
                self.write_failed = true;
                return Poll::Ready(Err(UpstreamError::Upload(e.into())));
            }
        }
        Poll::Ready(Ok(true))
    }

    /// Appends to `out`, starting it over when all of it has been written.
    fn out_buf(&mut self) -> &mut Vec<u8> {
        if self.out_pos == self.out.len() {
            self.out.clear();
            self.out_pos = 0;
        }
        &mut self.out
    }

    fn queue_chunk(&mut self, data: Bytes) -> Result<(), UpstreamError> {
        let Some(up) = self.upload.as_mut() else {
            return Ok(());
        };
        let n = data.len() as u64;
        match &mut up.framing {
            Sending::Length(left) => {
                if n > *left {
                    self.upload = None;
                    self.write_failed = true;
                    return Err(UpstreamError::Upload(
                        "the request body is longer than its Content-Length".into(),
                    ));
                }
                *left -= n;
                let done = *left == 0;
                self.data = data;
                if done {
                    // Sent in full: a body that would only now say it has
                    // ended is not waited for.
                    self.upload = None;
                }
            }
            Sending::Chunked { open } => {
                let reopen = std::mem::replace(open, true);
                let out = self.out_buf();
                if reopen {
                    out.extend_from_slice(b"\r\n");
                }
                push_hex(out, n);
                out.extend_from_slice(b"\r\n");
                self.data = data;
            }
        }
        Ok(())
    }

    fn finish_upload(
        &mut self,
        framing: Sending,
        trailers: Option<&HeaderMap>,
    ) -> Result<(), UpstreamError> {
        match framing {
            Sending::Length(0) => Ok(()),
            Sending::Length(_) => {
                self.write_failed = true;
                Err(UpstreamError::Upload(
                    "the request body ended before its Content-Length".into(),
                ))
            }
            Sending::Chunked { open } => {
                let out = self.out_buf();
                if open {
                    out.extend_from_slice(b"\r\n");
                }
                out.extend_from_slice(b"0\r\n");
                for (name, value) in trailers.into_iter().flatten() {
                    push_field(out, name, value);
                }
                out.extend_from_slice(b"\r\n");
                Ok(())
            }
        }
    }

    fn poll_flush_out(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            let head = &self.out[self.out_pos..];
            let n = match (head.is_empty(), self.data.is_empty()) {
                (true, true) => return Poll::Ready(Ok(())),
                (false, true) => ready!(Pin::new(&mut self.io).poll_write(cx, head))?,
                (true, false) => ready!(Pin::new(&mut self.io).poll_write(cx, &self.data))?,
                (false, false) => {
                    let bufs = [IoSlice::new(head), IoSlice::new(&self.data)];
                    ready!(Pin::new(&mut self.io).poll_write_vectored(cx, &bufs))?
                }
            };
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            let from_head = n.min(head.len());
            self.out_pos += from_head;
            self.data.advance(n - from_head);
        }
    }

    /// Reads more bytes into `rbuf`; `Ok(0)` is the upstream's end.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        let n = ready!(self
            .reads
            .poll_fill(Pin::new(&mut self.io), &mut self.rbuf, cx))?;
        if n > 0 {
            self.answered = true;
        }
        Poll::Ready(Ok(n))
    }

    /// A connection about to rest: a large read buffer (grown by a large
    /// body) is let go rather than held while idle, and the response timer
    /// forgets the task of the last exchange. Still armed, it would wake
    /// that task for nothing when it fires, and keep it allocated until
    /// then, however long ago its client left. Polled unconstrained: with
    /// the task's budget spent, a timer's poll returns before it takes the
    /// new waker.
    pub(super) fn settle(&mut self) {
        if self.rbuf.capacity() > KEEP_READ {
            self.rbuf = BytesMut::new();
            self.reads.reset();
        }
        self.data = Bytes::new();
        if let Some(timer) = self.timer.as_mut() {
            let mut forget = tokio::task::unconstrained(timer.as_mut());
            let _ = Pin::new(&mut forget).poll(&mut Context::from_waker(Waker::noop()));
        }
    }

    /// Reads until a final (non-1xx) response head is complete. Interim
    /// 1xx heads (100 Continue, 103 Early Hints) are read past.
    pub(super) fn poll_head(
        &mut self,
        cx: &mut Context<'_>,
        method: &Method,
    ) -> Poll<Result<Head, UpstreamError>> {
        loop {
            if !self.rbuf.is_empty() {
                if let Some(head) = self.parse_head(method)? {
                    return Poll::Ready(Ok(head));
                }
            }
            if ready!(self.poll_fill(cx))? == 0 {
                return Poll::Ready(Err(UpstreamError::Closed("before the response head")));
            }
        }
    }

    /// The next piece of the response body framed by `framing`, which it
    /// advances: `None` once the body has ended.
    pub(super) fn poll_body(
        &mut self,
        cx: &mut Context<'_>,
        framing: &mut Framing,
    ) -> Poll<Result<Option<Frame<Bytes>>, UpstreamError>> {
        loop {
            if let Some(frame) = self.decode(framing)? {
                return Poll::Ready(Ok(Some(frame)));
            }
            if *framing == Framing::Done {
                return Poll::Ready(Ok(None));
            }
            if ready!(self.poll_fill(cx))? == 0 {
                if *framing == Framing::Close {
                    *framing = Framing::Done;
                    return Poll::Ready(Ok(None));
                }
                return Poll::Ready(Err(UpstreamError::Closed("before the end of the body")));
            }
        }
    }

    /// Moves the next part of a `Content-Length` response body: bytes
    /// already read first, then spliced from the socket into `pipe`
    /// (empty), keeping `framing` true.
    pub(super) fn poll_move_body(
        &mut self,
        pipe: &mut Pipe,
        framing: &mut Framing,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Moved, UpstreamError>> {
        let moved = ready!(splice::poll_move_length(
            &mut self.rbuf,
            framing,
            &self.io,
            pipe,
            cx
        ));
        if matches!(moved, Ok(Moved::Spliced(_))) {
            self.answered = true;
        }
        Poll::Ready(moved.map_err(|e| match e {
            MoveError::Closed => UpstreamError::Closed("before the end of the body"),
            MoveError::NotLength => UpstreamError::Protocol("a spliced body has a length"),
            MoveError::Io(e) => UpstreamError::Io(e),
        }))
    }

    /// Moves the kept fields' lines together, in order, over the lines
    /// left out between them (framing and connection fields); the range
    /// of `rbuf` they then fill. Empties `fields`.
    fn close_ranks(&mut self) -> Range<usize> {
        let Some(first) = self.fields.first() else {
            return 0..0;
        };
        let start = first.line.start;
        let mut end = start;
        for kept in self.fields.drain(..) {
            let len = kept.line.len();
            if kept.line.start != end {
                self.rbuf.copy_within(kept.line, end);
            }
            end += len;
        }
        start..end
    }

    /// Decodes what `rbuf` holds (see [`codec::decode`]).
    fn decode(&mut self, framing: &mut Framing) -> Result<Option<Frame<Bytes>>, UpstreamError> {
        codec::decode(&mut self.rbuf, framing).map_err(|m| UpstreamError::Protocol(m.0))
    }
}

mod head;
#[cfg(test)]
mod tests;
