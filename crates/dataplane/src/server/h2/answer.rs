//! An answer's way out: its head written, then its body's frames as the
//! client's windows and the connection's output allow; a body with no
//! frame ready waits in the driver's set, one with no room waits in
//! `blocked` until the windows grow or the output drains.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use http::Response;
use http_body::{Body, Frame};
use pp_h2::frame::Reason;
use tokio::io::{AsyncRead, AsyncWrite};

use super::{Driver, Tagged, OUT_HIGH};
use crate::body::{BoxError, ProxyBody};
use crate::headers::spare;

/// The next frame of an answer's body.
pub(super) struct NextFrame {
    body: Option<ProxyBody>,
}

type Polled = Option<Result<Frame<Bytes>, BoxError>>;

impl Future for NextFrame {
    type Output = (ProxyBody, Polled);

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let body = self.body.as_mut().expect("polled after it was ready");
        let frame = std::task::ready!(Pin::new(body).poll_frame(cx));
        let body = self.body.take().expect("present until ready");
        Poll::Ready((body, frame))
    }
}

/// What became of one frame of an answer's body.
enum Delivered {
    /// Written whole; the body has more.
    More,
    /// The answer is over (its end, trailers, an error, a reset).
    Done,
    /// Written in part: the rest, and whether it ends the stream.
    Held(Bytes, bool),
}

/// An answer body waiting for the client's windows or for the output to
/// drain: `rest` is what of its last frame is still unsent.
pub(super) struct Blocked {
    body: ProxyBody,
    rest: Bytes,
    end: bool,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Driver<S> {
    /// Writes an answer's head and starts on its body.
    pub(super) fn answer(&mut self, stream: u32, resp: Response<ProxyBody>, cx: &mut Context<'_>) {
        let (parts, body) = resp.into_parts();
        if let Some(slot) = self.slots.get_mut(&stream) {
            slot.work = None;
        }
        let status = parts.status.as_u16();
        let end = body.is_end_stream();
        let sent = self.conn.send_headers(stream, status, &parts.headers, end);
        // Written: the map and extensions are kept for the next head.
        spare::recycle(parts.headers);
        spare::recycle_extensions(parts.extensions);
        if end {
            self.done(stream);
        } else if sent {
            self.pump(stream, body, cx);
        } else {
            self.forget(stream, None);
        }
    }

    /// Sends an answer body's frames while they are ready and the windows
    /// and the output have room. A loop, not a recursion: a body may have
    /// thousands of small frames ready (a chunked answer read in one go),
    /// and the output bound is what ends the run.
    fn pump(&mut self, stream: u32, mut body: ProxyBody, cx: &mut Context<'_>) {
        loop {
            if self.conn.send_capacity(stream) == 0 || self.conn.output().len() >= OUT_HIGH {
                self.block(stream, body, Bytes::new(), false);
                return;
            }
            match Pin::new(&mut body).poll_frame(cx) {
                Poll::Ready(frame) => match self.deliver(stream, &body, frame) {
                    Delivered::More => {}
                    Delivered::Done => return,
                    Delivered::Held(rest, end) => {
                        self.block(stream, body, rest, end);
                        return;
                    }
                },
                Poll::Pending => {
                    let (fut, abort) =
                        futures_util::future::abortable(NextFrame { body: Some(body) });
                    if let Some(slot) = self.slots.get_mut(&stream) {
                        slot.body = Some(abort);
                    }
                    self.bodies.push(Tagged { stream, fut });
                    return;
                }
            }
        }
    }

    /// A frame a waiting body produced: delivered, and the body pumped on
    /// when it has more.
    pub(super) fn on_frame(
        &mut self,
        stream: u32,
        body: ProxyBody,
        frame: Polled,
        cx: &mut Context<'_>,
    ) {
        match self.deliver(stream, &body, frame) {
            Delivered::More => self.pump(stream, body, cx),
            Delivered::Done => {}
            Delivered::Held(rest, end) => self.block(stream, body, rest, end),
        }
    }

    /// Writes one frame of an answer's body: its data as far as the
    /// windows allow, its trailers, or its end.
    fn deliver(&mut self, stream: u32, body: &ProxyBody, frame: Polled) -> Delivered {
        if !self.slots.contains_key(&stream) {
            return Delivered::Done;
        }
        match frame {
            None => {
                self.conn.send_data(stream, &[], true);
                self.done(stream);
                Delivered::Done
            }
            Some(Err(e)) => {
                tracing::debug!(error = %e, stream, "an HTTP/2 answer's body failed; the stream was reset");
                self.conn.reset(stream, Reason::INTERNAL_ERROR);
                self.forget(stream, None);
                Delivered::Done
            }
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) => self.send(stream, data, body.is_end_stream()),
                Err(frame) => match frame.into_trailers() {
                    Ok(trailers) => {
                        self.conn.send_trailers(stream, &trailers);
                        spare::recycle(trailers);
                        self.done(stream);
                        Delivered::Done
                    }
                    // A frame of a kind HTTP/2 does not carry: skipped.
                    Err(_) => Delivered::More,
                },
            },
        }
    }

    /// Sends `data` as far as the windows allow.
    fn send(&mut self, stream: u32, mut data: Bytes, end: bool) -> Delivered {
        let n = self.conn.send_data(stream, &data, end);
        if n < data.len() {
            data.advance(n);
            return Delivered::Held(data, end);
        }
        if end {
            self.done(stream);
            return Delivered::Done;
        }
        Delivered::More
    }

    /// Parks an answer body until the windows or the output have room.
    fn block(&mut self, stream: u32, body: ProxyBody, rest: Bytes, end: bool) {
        self.blocked.insert(stream, Blocked { body, rest, end });
    }

    /// The windows grew or the output drained: blocked answers go on.
    pub(super) fn unblock(&mut self, cx: &mut Context<'_>) {
        if self.blocked.is_empty() {
            return;
        }
        let streams: Vec<u32> = self.blocked.keys().copied().collect();
        for stream in streams {
            if self.conn.send_capacity(stream) == 0 || self.conn.output().len() >= OUT_HIGH {
                continue;
            }
            let Some(b) = self.blocked.remove(&stream) else {
                continue;
            };
            if b.rest.is_empty() && !b.end {
                self.pump(stream, b.body, cx);
                continue;
            }
            match self.send(stream, b.rest, b.end) {
                Delivered::More => self.pump(stream, b.body, cx),
                Delivered::Done => {}
                Delivered::Held(rest, end) => self.block(stream, b.body, rest, end),
            }
        }
    }

    /// A stream's answer is whole.
    pub(super) fn done(&mut self, stream: u32) {
        self.blocked.remove(&stream);
        self.slots.remove(&stream);
    }
}
