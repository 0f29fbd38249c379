//! The proxy's own HTTP/2 server: `pp_h2::server::Connection` (the
//! protocol's state, no I/O) driven by one task per connection.
//!
//! Each poll of the task is a turn, as nginx and HAProxy serve HTTP/2: it
//! reads what the socket has, hands new requests to the pipeline and
//! request bytes to their bodies, polls the streams' pipeline futures and
//! answer bodies that were woken, and writes everything the turn produced
//! in one write. A stream's work runs in this task, not a task of its own:
//! the proxy's work on a request is short and its waits do not hold the
//! worker, so one client's streams sharing a worker costs them nothing,
//! and every answer that is ready leaves in the turn that found it.
//!
//! Why not hyper's: its server runs on `h2`, whose HPACK encoder
//! Huffman-codes and indexes every literal and whose maps are built and
//! dropped per stream; the profile put a third of an HTTP/2 request's
//! instructions there (docs/performance.md, seventeenth session).

mod answer;
mod body;

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::BytesMut;
use futures_util::future::{AbortHandle, Abortable, Aborted, CatchUnwind};
use futures_util::stream::FuturesUnordered;
use futures_util::{FutureExt, StreamExt};
use http::header::EXPECT;
use http::{HeaderMap, Response};
use pp_h2::frame::Reason;
use pp_h2::server::{Config, Connection, Event};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::{Instant, Sleep};
use tokio_util::sync::CancellationToken;

use self::answer::{Blocked, NextFrame};
pub use self::body::{H2Body, StreamReset};
use self::body::{Inbound, Shared};
use crate::body::ProxyBody;
use crate::headers::spare;
use crate::pipeline::{ConnInfo, Proxy};
use crate::server::stall::Stall;
use crate::server::ClientBody;

/// Output past this stops the turn's reading and answer bodies until the
/// client has taken some: a client that does not read cannot make the
/// proxy hold more than this of its answers (or of `PING` answers).
const OUT_HIGH: usize = 256 * 1024;

/// Reads a turn makes before it lets other tasks run.
const READS_A_TURN: usize = 16;

/// A connection with nothing read for this long is sent a `PING`; with
/// nothing read for as long again after it, it is closed.
const KEEP_ALIVE: Duration = Duration::from_secs(30);

/// A connection with no stream open and nothing read for this long lets
/// its buffers go (about 20 KiB) until its next frame.
const IDLE_SHRINK: Duration = Duration::from_secs(1);

/// The room a read asks for.
const READ_CHUNK: usize = 16 * 1024;

type Answer = Result<Response<ProxyBody>, Infallible>;

/// A stream's pipeline future, its panics caught and its reset able to
/// drop it.
type Work = Abortable<CatchUnwind<AssertUnwindSafe<Pin<Box<dyn Future<Output = Answer> + Send>>>>>;

/// A stream's work, tagged with its stream.
struct Tagged<F> {
    stream: u32,
    fut: F,
}

impl<F: Future + Unpin> Future for Tagged<F> {
    type Output = (u32, F::Output);

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let stream = self.stream;
        Pin::new(&mut self.fut).poll(cx).map(|out| (stream, out))
    }
}

/// What the connection keeps of a stream beside the protocol's state.
#[derive(Default)]
struct Slot {
    work: Option<AbortHandle>,
    body: Option<AbortHandle>,
    inbound: Option<Arc<Inbound>>,
}

/// A request's map: a kept one when the thread has one (`headers::spare`).
fn new_map() -> HeaderMap {
    spare::map_for(16)
}

/// Serves one HTTP/2 connection until it ends, or until `shutdown` fires
/// and the streams open then have been answered.
pub(crate) async fn serve<S>(io: S, proxy: Arc<Proxy>, info: ConnInfo, shutdown: &CancellationToken)
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let s = proxy.settings();
    let config = Config {
        max_concurrent_streams: 256,
        stream_window: 1 << 20,
        connection_window: 1 << 20,
        // Twice the pipeline's limit, so heads over it still reach the
        // pipeline and get its envelope (as over HTTP/1.1).
        max_header_list: u32::try_from(s.max_header_bytes * 2).unwrap_or(u32::MAX),
        max_resets: 256,
        new_map,
    };
    let body_read_timeout = s.body_read_timeout;
    let send_timeout = s.send_timeout;
    let mut d = Driver {
        io,
        conn: Connection::new(config),
        read: BytesMut::with_capacity(READ_CHUNK),
        events: Vec::new(),
        proxy,
        info,
        body_read_timeout,
        slots: HashMap::default(),
        work: FuturesUnordered::new(),
        bodies: FuturesUnordered::new(),
        blocked: HashMap::default(),
        shared: Arc::new(Shared::default()),
        released: Vec::new(),
        continues: Vec::new(),
        read_closed: false,
        failed: false,
        peer_gone: false,
        draining: false,
        send: Stall::new(send_timeout),
        keep_alive: Box::pin(tokio::time::sleep(IDLE_SHRINK)),
        last_read: Instant::now(),
        ping_sent: false,
        shrunk: false,
    };
    let stop = shutdown.cancelled();
    tokio::pin!(stop);
    std::future::poll_fn(|cx| {
        if !d.draining && stop.as_mut().poll(cx).is_ready() {
            d.draining = true;
            d.conn.go_away();
        }
        d.poll(cx)
    })
    .await;
}

struct Driver<S> {
    io: S,
    conn: Connection,
    read: BytesMut,
    events: Vec<Event>,
    proxy: Arc<Proxy>,
    info: ConnInfo,
    body_read_timeout: Duration,
    slots: HashMap<u32, Slot>,
    work: FuturesUnordered<Tagged<Work>>,
    bodies: FuturesUnordered<Tagged<Abortable<NextFrame>>>,
    blocked: HashMap<u32, Blocked>,
    shared: Arc<Shared>,
    released: Vec<(u32, usize)>,
    continues: Vec<u32>,
    /// The client closed its side or the read failed.
    read_closed: bool,
    /// A connection error was found; its `GOAWAY` is being written.
    failed: bool,
    /// The client sent `GOAWAY`.
    peer_gone: bool,
    /// This side sent `GOAWAY` for shutdown.
    draining: bool,
    /// The send timeout: output the client does not take.
    send: Stall,
    keep_alive: Pin<Box<Sleep>>,
    last_read: Instant,
    ping_sent: bool,
    /// The buffers were let go for idleness ([`IDLE_SHRINK`]).
    shrunk: bool,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Driver<S> {
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        self.shared.begin_poll();
        loop {
            self.read_turn(cx);
            self.run_streams(cx);
            if !self.shared.end_poll(cx.waker()) {
                break;
            }
            self.shared.begin_poll();
        }
        let flushed = self.write(cx);
        if self.is_done(flushed) {
            return Poll::Ready(());
        }
        if self.keep_alive(cx) {
            return Poll::Ready(());
        }
        Poll::Pending
    }

    /// Reads what the socket has and acts on it.
    fn read_turn(&mut self, cx: &mut Context<'_>) {
        for n in 0.. {
            if self.read_closed || self.failed || self.conn.output().len() >= OUT_HIGH {
                return;
            }
            if n == READS_A_TURN {
                cx.waker().wake_by_ref();
                return;
            }
            if self.read.capacity() - self.read.len() < READ_CHUNK / 4 {
                self.read.reserve(READ_CHUNK);
            }
            match tokio_util::io::poll_read_buf(Pin::new(&mut self.io), cx, &mut self.read) {
                Poll::Pending => return,
                Poll::Ready(Ok(0)) => {
                    self.read_closed = true;
                    return;
                }
                Poll::Ready(Ok(_)) => {
                    self.last_read = Instant::now();
                    self.ping_sent = false;
                    if self.shrunk {
                        self.shrunk = false;
                        self.keep_alive.as_mut().reset(self.last_read + IDLE_SHRINK);
                    }
                    if let Err(e) = self.conn.receive(&mut self.read, &mut self.events) {
                        tracing::debug!(error = %e, remote = %self.info.remote, "HTTP/2 connection error");
                        self.failed = true;
                    }
                    let mut events = std::mem::take(&mut self.events);
                    for ev in events.drain(..) {
                        self.event(ev, cx);
                    }
                    self.events = events;
                }
                Poll::Ready(Err(e)) => {
                    tracing::debug!(error = %e, remote = %self.info.remote, "HTTP/2 read failed");
                    self.read_closed = true;
                    return;
                }
            }
        }
    }

    fn event(&mut self, ev: Event, cx: &mut Context<'_>) {
        match ev {
            Event::Request {
                stream,
                request,
                end_stream,
                content_length,
            } => self.start(stream, request, end_stream, content_length),
            Event::Data {
                stream,
                data,
                end_stream,
            } => {
                let n = data.len();
                let taken = self
                    .slots
                    .get(&stream)
                    .and_then(|s| s.inbound.as_ref())
                    .is_some_and(|i| i.push(data, end_stream));
                if !taken {
                    self.conn.release(stream, n);
                }
            }
            Event::Trailers { stream, trailers } => {
                if let Some(i) = self.slots.get(&stream).and_then(|s| s.inbound.as_ref()) {
                    i.trailers(trailers);
                }
            }
            Event::Reset { stream, reason } => self.forget(stream, Some(reason)),
            Event::WindowOpened => self.unblock(cx),
            Event::PingAck(_) => {}
            Event::GoAway { .. } => self.peer_gone = true,
        }
    }

    /// Hands a new request to the pipeline.
    fn start(
        &mut self,
        stream: u32,
        request: http::Request<()>,
        end_stream: bool,
        content_length: Option<u64>,
    ) {
        let mut slot = Slot::default();
        let body = if end_stream {
            H2Body::empty()
        } else {
            let expect = request
                .headers()
                .get(EXPECT)
                .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
            let inbound = Inbound::new(stream, Arc::clone(&self.shared), expect);
            slot.inbound = Some(Arc::clone(&inbound));
            H2Body::new(inbound, content_length, self.body_read_timeout)
        };
        let req = request.map(|()| ClientBody::H2(body));
        let fut: Pin<Box<dyn Future<Output = Answer> + Send>> =
            Box::pin(Arc::clone(&self.proxy).handle(req, self.info.clone(), ()));
        let (fut, abort) = futures_util::future::abortable(AssertUnwindSafe(fut).catch_unwind());
        slot.work = Some(abort);
        self.slots.insert(stream, slot);
        self.work.push(Tagged { stream, fut });
    }

    /// Drops what is kept for a stream: its work, its answer body, its
    /// request body (failed with the reset's reason when there is one).
    fn forget(&mut self, stream: u32, reset: Option<Reason>) {
        self.blocked.remove(&stream);
        let Some(slot) = self.slots.remove(&stream) else {
            return;
        };
        if let Some(w) = slot.work {
            w.abort();
        }
        if let Some(b) = slot.body {
            b.abort();
        }
        if let (Some(i), Some(reason)) = (slot.inbound, reset) {
            i.reset(reason);
        }
    }

    /// Polls the streams' work and answer bodies that were woken, until
    /// none is ready; gives back the request bytes bodies handed on.
    fn run_streams(&mut self, cx: &mut Context<'_>) {
        loop {
            let mut progressed = false;
            while let Poll::Ready(Some((stream, out))) = self.work.poll_next_unpin(cx) {
                progressed = true;
                match out {
                    Err(Aborted) => {}
                    Ok(Err(_)) => {
                        tracing::error!(
                            stream,
                            "an HTTP/2 stream's work panicked; the stream was reset"
                        );
                        self.conn.reset(stream, Reason::INTERNAL_ERROR);
                        self.forget(stream, None);
                    }
                    Ok(Ok(Ok(resp))) => self.answer(stream, resp, cx),
                }
            }
            while let Poll::Ready(Some((stream, out))) = self.bodies.poll_next_unpin(cx) {
                progressed = true;
                if let Ok((body, frame)) = out {
                    if let Some(slot) = self.slots.get_mut(&stream) {
                        slot.body = None;
                    }
                    self.on_frame(stream, body, frame, cx);
                }
            }
            self.shared.take(&mut self.released, &mut self.continues);
            for (stream, n) in self.released.drain(..) {
                self.conn.release(stream, n);
            }
            for stream in self.continues.drain(..) {
                self.conn
                    .send_headers(stream, 100, &HeaderMap::new(), false);
            }
            if !progressed {
                return;
            }
        }
    }

    /// Writes the output; `true` once all of it is written.
    fn write(&mut self, cx: &mut Context<'_>) -> bool {
        let mut wrote = false;
        while !self.conn.output().is_empty() {
            match Pin::new(&mut self.io).poll_write(cx, self.conn.output()) {
                Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => {
                    self.read_closed = true;
                    self.failed = true;
                    let n = self.conn.output().len();
                    self.conn.written(n);
                    return true;
                }
                Poll::Ready(Ok(n)) => {
                    wrote = true;
                    self.conn.written(n);
                    self.send.moved();
                }
                Poll::Pending => break,
            }
        }
        if wrote {
            let _ = Pin::new(&mut self.io).poll_flush(cx);
            if !self.blocked.is_empty() && self.conn.output().len() < OUT_HIGH {
                // Room again: the bodies held back for the output go on,
                // and what they send is written by the next turn.
                cx.waker().wake_by_ref();
                self.unblock(cx);
            }
        }
        if self.conn.output().is_empty() {
            return true;
        }
        if self.send.poll_expired(cx).is_ready() {
            tracing::debug!(remote = %self.info.remote, "HTTP/2 client took nothing for the send timeout; closed");
            self.read_closed = true;
            self.failed = true;
            return true;
        }
        false
    }

    /// Whether the connection is over: read side closed or failed (once
    /// the output is out), or drained after a `GOAWAY` either way.
    fn is_done(&self, flushed: bool) -> bool {
        if self.read_closed {
            return true;
        }
        let idle = self.slots.is_empty() && self.conn.open_streams() == 0;
        flushed && (self.failed || ((self.draining || self.peer_gone) && idle))
    }

    /// Lets an idle connection's buffers go after [`IDLE_SHRINK`]; pings a
    /// connection with nothing read for [`KEEP_ALIVE`] and closes it when
    /// nothing comes back; `true` when it should close.
    fn keep_alive(&mut self, cx: &mut Context<'_>) -> bool {
        loop {
            if self.keep_alive.as_mut().poll(cx).is_pending() {
                return false;
            }
            if !self.shrunk {
                let now = Instant::now();
                let due = self.last_read + IDLE_SHRINK;
                if due > now {
                    self.keep_alive.as_mut().reset(due);
                    continue;
                }
                if !(self.slots.is_empty() && self.read.is_empty() && self.conn.output().is_empty())
                {
                    self.keep_alive.as_mut().reset(now + IDLE_SHRINK);
                    continue;
                }
                self.read = BytesMut::new();
                self.conn.shrink();
                self.shrunk = true;
            }
            let due = self.last_read + KEEP_ALIVE;
            if due > Instant::now() {
                self.keep_alive.as_mut().reset(due);
                continue;
            }
            if self.ping_sent {
                tracing::debug!(remote = %self.info.remote, "HTTP/2 client answered no PING; closed");
                return true;
            }
            self.ping_sent = true;
            self.conn.ping(*b"pp-alive");
            self.last_read = Instant::now();
            self.keep_alive.as_mut().reset(self.last_read + KEEP_ALIVE);
            cx.waker().wake_by_ref();
        }
    }
}
