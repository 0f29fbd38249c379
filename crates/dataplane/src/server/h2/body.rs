//! A request body as the HTTP/2 server hands it to the pipeline: the
//! `DATA` the connection read for the stream, queued until the pipeline
//! takes it, under the body-read timeout.
//!
//! The queue is bounded by flow control, not here: the client may send
//! only what the stream's window allows, and the window opens again only
//! for bytes the body has handed on ([`Shared::released`], which the
//! connection turns into `WINDOW_UPDATE`s). A body dropped before its end
//! gives back what it still held, so the connection's window never leaks.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use pp_h2::frame::Reason;

use crate::body::{BodyTimeout, BoxError};
use crate::lock;
use crate::server::stall::Stall;

/// What the bodies of one connection tell its driver.
#[derive(Debug, Default)]
pub(crate) struct Shared(Mutex<Notes>);

#[derive(Debug, Default)]
pub(crate) struct Notes {
    /// (stream, bytes) handed on since the driver last looked.
    pub(crate) released: Vec<(u32, usize)>,
    /// Streams whose body was first waited on with `Expect: 100-continue`.
    pub(crate) continues: Vec<u32>,
    /// The driver's task, woken when a note is added while it is not
    /// running.
    waker: Option<Waker>,
    /// The driver is polling: notes added now are read before it returns.
    polling: bool,
}

impl Shared {
    fn note(&self, f: impl FnOnce(&mut Notes)) {
        let mut n = lock(&self.0);
        f(&mut n);
        if !n.polling {
            if let Some(w) = n.waker.take() {
                drop(n);
                w.wake();
            }
        }
    }

    /// The driver starts a poll: takes the notes and stops wakes until
    /// [`Shared::end_poll`].
    pub(crate) fn begin_poll(&self) {
        lock(&self.0).polling = true;
    }

    /// Takes the notes added since the last call.
    pub(crate) fn take(&self, released: &mut Vec<(u32, usize)>, continues: &mut Vec<u32>) {
        let mut n = lock(&self.0);
        std::mem::swap(&mut n.released, released);
        std::mem::swap(&mut n.continues, continues);
    }

    /// The driver's poll ends: `true` when notes came in since it last
    /// took them (it should poll again), else its waker is kept.
    pub(crate) fn end_poll(&self, waker: &Waker) -> bool {
        let mut n = lock(&self.0);
        if !n.released.is_empty() || !n.continues.is_empty() {
            return true;
        }
        n.polling = false;
        match &n.waker {
            Some(w) if w.will_wake(waker) => {}
            _ => n.waker = Some(waker.clone()),
        }
        false
    }
}

/// One stream's queue, shared by the driver (which fills it) and the
/// body (which drains it).
#[derive(Debug)]
pub(crate) struct Inbound {
    stream: u32,
    conn: Arc<Shared>,
    state: Mutex<Queue>,
}

#[derive(Debug, Default)]
struct Queue {
    chunks: VecDeque<Bytes>,
    trailers: Option<HeaderMap>,
    ended: bool,
    reset: Option<Reason>,
    /// The client asked for `100 Continue` before it sends the body.
    expect_continue: bool,
    /// The body is gone: what arrives is given back at once.
    dropped: bool,
    waker: Option<Waker>,
}

impl Inbound {
    pub(crate) fn new(stream: u32, conn: Arc<Shared>, expect_continue: bool) -> Arc<Self> {
        Arc::new(Self {
            stream,
            conn,
            state: Mutex::new(Queue {
                expect_continue,
                ..Queue::default()
            }),
        })
    }

    /// Queues bytes the connection read; `false` when the body is gone
    /// (the caller gives them back).
    pub(crate) fn push(&self, data: Bytes, end: bool) -> bool {
        let mut q = lock(&self.state);
        if q.dropped {
            return false;
        }
        if !data.is_empty() {
            q.chunks.push_back(data);
        }
        q.ended |= end;
        q.expect_continue = false;
        wake(&mut q);
        true
    }

    pub(crate) fn trailers(&self, trailers: HeaderMap) {
        let mut q = lock(&self.state);
        q.trailers = Some(trailers);
        q.ended = true;
        wake(&mut q);
    }

    /// The stream was reset: the body fails at its next poll.
    pub(crate) fn reset(&self, reason: Reason) {
        let mut q = lock(&self.state);
        q.reset = Some(reason);
        wake(&mut q);
    }
}

fn wake(q: &mut Queue) {
    if let Some(w) = q.waker.take() {
        w.wake();
    }
}

/// The client reset the stream while its body was being read.
#[derive(Debug, thiserror::Error)]
#[error("the client reset the stream ({0})")]
pub struct StreamReset(Reason);

/// An HTTP/2 request's body.
pub struct H2Body {
    inbound: Option<Arc<Inbound>>,
    /// Bytes the request's `Content-Length` says are still to come.
    remaining: Option<u64>,
    stall: Stall,
}

impl std::fmt::Debug for H2Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("H2Body").finish_non_exhaustive()
    }
}

impl H2Body {
    /// A request with no body (`END_STREAM` on its `HEADERS`).
    pub(crate) fn empty() -> Self {
        Self {
            inbound: None,
            remaining: Some(0),
            stall: Stall::new(Duration::ZERO),
        }
    }

    pub(crate) fn new(
        inbound: Arc<Inbound>,
        content_length: Option<u64>,
        body_read_timeout: Duration,
    ) -> Self {
        Self {
            inbound: Some(inbound),
            remaining: content_length,
            stall: Stall::new(body_read_timeout),
        }
    }
}

impl Body for H2Body {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        let Some(inbound) = &this.inbound else {
            return Poll::Ready(None);
        };
        let mut q = lock(&inbound.state);
        if let Some(chunk) = q.chunks.pop_front() {
            drop(q);
            let n = chunk.len();
            inbound
                .conn
                .note(|notes| notes.released.push((inbound.stream, n)));
            if let Some(r) = &mut this.remaining {
                *r = r.saturating_sub(n as u64);
            }
            this.stall.moved();
            return Poll::Ready(Some(Ok(Frame::data(chunk))));
        }
        if let Some(t) = q.trailers.take() {
            return Poll::Ready(Some(Ok(Frame::trailers(t))));
        }
        if q.ended {
            return Poll::Ready(None);
        }
        if let Some(reason) = q.reset {
            return Poll::Ready(Some(Err(StreamReset(reason).into())));
        }
        if std::mem::take(&mut q.expect_continue) {
            let stream = inbound.stream;
            inbound.conn.note(|notes| notes.continues.push(stream));
        }
        match &q.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => q.waker = Some(cx.waker().clone()),
        }
        drop(q);
        ready!(this.stall.poll_expired(cx));
        Poll::Ready(Some(Err(BodyTimeout(this.stall.limit()).into())))
    }

    fn is_end_stream(&self) -> bool {
        match &self.inbound {
            None => true,
            Some(inbound) => {
                let q = lock(&inbound.state);
                q.ended && q.chunks.is_empty() && q.trailers.is_none()
            }
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self.remaining {
            Some(n) => SizeHint::with_exact(n),
            None => SizeHint::default(),
        }
    }
}

impl Drop for H2Body {
    fn drop(&mut self) {
        let Some(inbound) = &self.inbound else {
            return;
        };
        let mut q = lock(&inbound.state);
        q.dropped = true;
        let held: usize = q.chunks.drain(..).map(|c| c.len()).sum();
        drop(q);
        if held > 0 {
            let stream = inbound.stream;
            inbound
                .conn
                .note(|notes| notes.released.push((stream, held)));
        }
    }
}
