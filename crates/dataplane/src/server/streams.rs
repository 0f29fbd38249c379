//! The streams of one HTTP/2 connection, run inside the connection's own
//! task rather than as tasks of their own.
//!
//! hyper's HTTP/2 server hands each stream's work (the service's future,
//! then the answer's body) to an executor. Spawned, every stream costs a
//! task (an allocation the size of the future, a trip through the
//! scheduler), and every answer two task runs: the stream's task, woken by
//! its upstream, queues the answer's frames, which wakes the connection's
//! task to write them. [`Streams`] is an executor that hands the stream
//! futures to the connection's task instead, where [`Running`] polls them
//! beside the connection: an upstream's answer wakes one task, which queues
//! the frames and writes them in the same run. This is how nginx and
//! HAProxy serve HTTP/2: one event loop turn drives a connection and all of
//! its streams.
//!
//! What it gives up: the streams of one connection run on one worker at a
//! time. They are one client's, and the proxy's work on a request is short
//! (the wait for the upstream does not hold the worker), so a client with
//! many streams is not held back by it; connections still spread over the
//! workers. A stream that panics ends alone, as a spawned task would: its
//! future is dropped and the connection's other streams go on.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};

use futures_util::future::CatchUnwind;
use futures_util::stream::FuturesUnordered;
use futures_util::{FutureExt, StreamExt};

/// A stream's work as hyper hands it over.
type Work = Pin<Box<dyn Future<Output = ()> + Send>>;

/// A stream's work as it runs: a panic in it ends that stream alone.
type Guarded = CatchUnwind<AssertUnwindSafe<Work>>;

/// Stream futures handed over and not yet taken in by [`Running`].
#[derive(Default)]
struct Inbox {
    new: Vec<Work>,
    /// The connection's task has stopped polling: work handed over now is
    /// spawned instead, so it is neither lost nor kept alive by the inbox
    /// it holds a handle to.
    closed: bool,
}

/// The executor hyper's HTTP/2 connection is built with: one per
/// connection, handing its streams to that connection's [`Running`].
#[derive(Clone)]
pub(crate) struct Streams(Arc<Mutex<Inbox>>);

impl std::fmt::Debug for Streams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Streams").finish_non_exhaustive()
    }
}

fn lock(inbox: &Mutex<Inbox>) -> MutexGuard<'_, Inbox> {
    inbox.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<F> hyper::rt::Executor<F> for Streams
where
    F: Future<Output = ()> + Send + 'static,
{
    /// Called by hyper from inside the connection's poll (a new stream)
    /// or a stream's (the rare protocol-switch task), both within
    /// [`Running::poll`]'s caller, which takes the work in before it
    /// returns: no wake is needed.
    fn execute(&self, fut: F) {
        let mut inbox = lock(&self.0);
        if inbox.closed {
            drop(inbox);
            tokio::spawn(fut);
            return;
        }
        inbox.new.push(Box::pin(fut));
    }
}

/// The stream futures of one connection, polled by its task.
pub(crate) struct Running {
    inbox: Arc<Mutex<Inbox>>,
    set: FuturesUnordered<Guarded>,
}

impl std::fmt::Debug for Running {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Running")
            .field("streams", &self.set.len())
            .finish_non_exhaustive()
    }
}

impl Running {
    /// A connection's set and the executor that feeds it.
    pub(crate) fn new() -> (Self, Streams) {
        let inbox = Arc::new(Mutex::new(Inbox::default()));
        let running = Self {
            inbox: Arc::clone(&inbox),
            set: FuturesUnordered::new(),
        };
        (running, Streams(inbox))
    }

    /// Streams taken in and not yet finished.
    pub(crate) fn len(&self) -> usize {
        self.set.len()
    }

    /// Takes in the work handed over since the last poll and polls every
    /// stream that was woken; `Ready` once no stream is left. Each
    /// woken stream wakes the caller's task.
    pub(crate) fn poll(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            self.take_new();
            match self.set.poll_next_unpin(cx) {
                Poll::Ready(Some(Ok(()))) => {}
                Poll::Ready(Some(Err(_))) => {
                    tracing::error!("an HTTP/2 stream panicked; it was dropped");
                }
                Poll::Ready(None) if self.has_new() => {}
                Poll::Ready(None) => return Poll::Ready(()),
                // A stream may have handed over work while it was polled.
                Poll::Pending if self.has_new() => {}
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    fn take_new(&mut self) {
        let mut inbox = lock(&self.inbox);
        for work in inbox.new.drain(..) {
            self.set.push(AssertUnwindSafe(work).catch_unwind());
        }
    }

    fn has_new(&self) -> bool {
        !lock(&self.inbox).new.is_empty()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let mut inbox = lock(&self.inbox);
        inbox.closed = true;
        inbox.new.clear();
    }
}

#[cfg(test)]
mod tests;
