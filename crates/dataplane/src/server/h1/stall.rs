//! The client's idle timers: the body-read timeout (no request body bytes
//! for a while) and the send timeout (the client reads nothing of its
//! answer for a while). Each measures the time between two moves, not a
//! whole transfer, and costs nothing while no operation has to wait: the
//! timer is made at the first wait and reset at the next one after a move.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use tokio::io::AsyncWrite;
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};

use super::socket::WriteHalf;

/// One idle timer.
pub(crate) struct Stall {
    timer: Option<Pin<Box<Sleep>>>,
    armed: bool,
    limit: Duration,
}

impl Stall {
    pub(crate) fn new(limit: Duration) -> Self {
        Self {
            timer: None,
            armed: false,
            limit,
        }
    }

    pub(crate) fn limit(&self) -> Duration {
        self.limit
    }

    /// An operation has to wait: resolves once nothing has moved for the
    /// limit since the wait began.
    pub(crate) fn poll_expired(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let deadline = Instant::now() + self.limit;
        let timer = match &mut self.timer {
            Some(t) if self.armed => t,
            Some(t) => {
                t.as_mut().reset(deadline);
                t
            }
            None => self
                .timer
                .insert(Box::pin(tokio::time::sleep_until(deadline))),
        };
        self.armed = true;
        timer.as_mut().poll(cx)
    }

    /// Something moved: the wait, if any, is over.
    pub(crate) fn moved(&mut self) {
        self.armed = false;
    }

    /// Polls `op`; while it waits, the timer runs, and an `op` that waits
    /// for the whole limit fails with `TimedOut`.
    pub(crate) fn poll_op<T>(
        &mut self,
        cx: &mut Context<'_>,
        what: &'static str,
        op: impl FnOnce(&mut Context<'_>) -> Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        match op(cx) {
            Poll::Ready(r) => {
                self.moved();
                Poll::Ready(r)
            }
            Poll::Pending => {
                ready!(self.poll_expired(cx));
                Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("{what}: nothing moved for {:?}", self.limit),
                )))
            }
        }
    }
}

/// The client connection's writing half under the send timeout.
pub(crate) struct Writer {
    io: WriteHalf,
    stall: Stall,
}

impl Writer {
    pub(crate) fn new(io: WriteHalf, send_timeout: Duration) -> Self {
        Self {
            io,
            stall: Stall::new(send_timeout),
        }
    }

    /// The half without the timer: a tunnel has idle rules of its own.
    pub(crate) fn into_inner(self) -> WriteHalf {
        self.io
    }

    /// The socket (where the connection is plain TCP) and the timer, for
    /// writing past the stream (a spliced body).
    pub(crate) fn tcp(&mut self) -> Option<(&TcpStream, &mut Stall)> {
        let tcp = self.io.tcp()?;
        Some((tcp, &mut self.stall))
    }
}

const SENDING: &str = "sending the answer";

impl AsyncWrite for Writer {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let io = &mut this.io;
        this.stall
            .poll_op(cx, SENDING, |cx| Pin::new(io).poll_write(cx, buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let io = &mut this.io;
        this.stall
            .poll_op(cx, SENDING, |cx| Pin::new(io).poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let io = &mut this.io;
        this.stall
            .poll_op(cx, SENDING, |cx| Pin::new(io).poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let io = &mut this.io;
        this.stall
            .poll_op(cx, SENDING, |cx| Pin::new(io).poll_shutdown(cx))
    }
}
