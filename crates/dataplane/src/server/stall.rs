//! The client's idle timers, for both servers: the body-read timeout (no
//! request body bytes for a while) and the send timeout (the client reads
//! nothing of its answer for a while). Each measures the time between two
//! moves, not a whole transfer, and costs nothing while no operation has
//! to wait: the timer is made at the first wait and reset at the next one
//! after a move.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use tokio::time::{Instant, Sleep};

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
        // The clock is read only when a wait begins, not at every poll of
        // one already timed.
        let timer = match &mut self.timer {
            Some(t) if self.armed => t,
            Some(t) => {
                t.as_mut().reset(Instant::now() + self.limit);
                t
            }
            None => self.timer.insert(Box::pin(tokio::time::sleep(self.limit))),
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
