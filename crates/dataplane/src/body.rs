//! Body plumbing: one boxed body type for everything the proxy sends, and a
//! counting wrapper that enforces a byte limit on a streaming request body
//! without buffering it.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::{BodyExt, Empty, Full};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The body type of every request and response the data plane produces.
pub type ProxyBody = http_body_util::combinators::UnsyncBoxBody<Bytes, BoxError>;

#[must_use]
pub fn full(b: impl Into<Bytes>) -> ProxyBody {
    Full::new(b.into()).map_err(|e| match e {}).boxed_unsync()
}

#[must_use]
pub fn empty() -> ProxyBody {
    Empty::new().map_err(|e| match e {}).boxed_unsync()
}

/// Boxes any body whose error converts into [`BoxError`].
pub fn boxed<B>(b: B) -> ProxyBody
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    b.map_err(Into::into).boxed_unsync()
}

/// The error a [`Limited`] body yields once more than its limit has passed.
#[derive(Debug, thiserror::Error)]
#[error("request body exceeds {limit} bytes")]
pub struct BodyTooLarge {
    pub limit: u64,
}

/// Streams the inner body and fails once more than `limit` bytes passed.
#[derive(Debug)]
pub struct Limited<B> {
    inner: B,
    remaining: u64,
    limit: u64,
}

impl<B> Limited<B> {
    pub fn new(inner: B, limit: u64) -> Self {
        Self {
            inner,
            remaining: limit,
            limit,
        }
    }
}

impl<B> Body for Limited<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    let n = data.len() as u64;
                    if n > this.remaining {
                        return Poll::Ready(Some(Err(Box::new(BodyTooLarge {
                            limit: this.limit,
                        }))));
                    }
                    this.remaining -= n;
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A body that runs `done` exactly once: when the stream ends, fails, or
/// is dropped unfinished. Used to release a route permit as soon as a
/// response has streamed, and to tell the forwarder an upload is complete.
pub struct OnDone<B, F: FnOnce()> {
    inner: B,
    done: Option<F>,
}

impl<B, F: FnOnce()> OnDone<B, F> {
    pub fn new(inner: B, done: F) -> Self {
        Self {
            inner,
            done: Some(done),
        }
    }

    fn fire(&mut self) {
        if let Some(f) = self.done.take() {
            f();
        }
    }
}

impl<B, F: FnOnce()> Drop for OnDone<B, F> {
    fn drop(&mut self) {
        self.fire();
    }
}

impl<B, F> Body for OnDone<B, F>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
    F: FnOnce() + Unpin,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx).map_err(Into::into);
        if matches!(polled, Poll::Ready(None | Some(Err(_)))) {
            self.fire();
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The error a request body yields when its client sent no byte of it for
/// the body-read timeout (`server.body_read_timeout_secs`).
#[derive(Debug, thiserror::Error)]
#[error("the client sent no request body bytes for {0:?}")]
pub struct BodyTimeout(pub std::time::Duration);

/// Whether `err` (or anything in its source chain) is a [`BodyTimeout`].
#[must_use]
pub fn is_body_timeout(err: &(dyn std::error::Error + 'static)) -> bool {
    cause::<BodyTimeout>(err).is_some()
}

/// The limit, if `err` (or anything in its source chain) is a
/// [`BodyTooLarge`].
#[must_use]
pub fn is_body_too_large(err: &(dyn std::error::Error + 'static)) -> Option<u64> {
    cause::<BodyTooLarge>(err).map(|b| b.limit)
}

/// The first `T` in `err`'s source chain. An `io::Error` carrying an error
/// of its own is looked into: its `source()` skips that error and goes on
/// to the error's own source.
fn cause<'a, T: std::error::Error + 'static>(
    err: &'a (dyn std::error::Error + 'static),
) -> Option<&'a T> {
    let mut cur = Some(err);
    while let Some(e) = cur {
        if let Some(t) = e.downcast_ref::<T>() {
            return Some(t);
        }
        let inner = e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref());
        if let Some(t) = inner.and_then(|i| i.downcast_ref::<T>()) {
            return Some(t);
        }
        cur = e.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::stream;
    use http_body_util::StreamBody;

    fn chunks(
        sizes: &[usize],
    ) -> StreamBody<stream::Iter<std::vec::IntoIter<Result<Frame<Bytes>, std::io::Error>>>> {
        let frames: Vec<_> = sizes
            .iter()
            .map(|n| Ok(Frame::data(Bytes::from(vec![b'x'; *n]))))
            .collect();
        StreamBody::new(stream::iter(frames))
    }

    #[tokio::test]
    async fn limit_exactly_reached_passes() {
        let b = Limited::new(chunks(&[4, 6]), 10);
        assert_eq!(b.collect().await.expect("ok").to_bytes().len(), 10);
    }

    #[tokio::test]
    async fn on_done_fires_once_at_the_end_or_on_drop() {
        let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let h = std::sync::Arc::clone(&hits);
        let b = OnDone::new(chunks(&[3, 3]), move || {
            h.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        });
        assert_eq!(b.collect().await.expect("ok").to_bytes().len(), 6);
        assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 1);
        let h = std::sync::Arc::clone(&hits);
        drop(OnDone::new(chunks(&[3]), move || {
            h.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }));
        assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn one_byte_over_fails_with_body_too_large() {
        let b = Limited::new(chunks(&[4, 7]), 10);
        let err = b.collect().await.expect_err("over");
        assert_eq!(is_body_too_large(err.as_ref()), Some(10));
    }
}
