//! The client-facing side of a connection as the pipeline sees it: the
//! request body and the protocol switch, whichever server parsed the
//! request. HTTP/2 (prior knowledge or ALPN) is hyper's server; HTTP/1.1
//! is the proxy's own (`h1.rs`), which reads the head with `httparse`,
//! writes the answer's head straight into the connection's buffer and
//! shares its framing code with the upstream client.

pub(crate) mod coalesce;
pub(crate) mod h1;
mod stall;
pub(crate) mod streams;

use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};

use self::stall::Stall;
use crate::body::{BodyTimeout, BoxError};
use crate::headers::passed::Passed;

/// A request's body, from either server.
#[derive(Debug)]
pub enum ClientBody {
    H2(H2Body),
    H1(h1::RequestBody),
}

/// An HTTP/2 request body under the body-read timeout.
pub struct H2Body {
    body: Incoming,
    stall: Stall,
}

impl H2Body {
    pub(crate) fn new(body: Incoming, body_read_timeout: Duration) -> Self {
        Self {
            body,
            stall: Stall::new(body_read_timeout),
        }
    }
}

impl std::fmt::Debug for H2Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("H2Body").finish_non_exhaustive()
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
        match Pin::new(&mut this.body).poll_frame(cx) {
            Poll::Ready(frame) => {
                this.stall.moved();
                Poll::Ready(frame.map(|f| f.map_err(Into::into)))
            }
            Poll::Pending => {
                ready!(this.stall.poll_expired(cx));
                Poll::Ready(Some(Err(BodyTimeout(this.stall.limit()).into())))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl ClientBody {
    /// The head's passed fields (`headers::passed`), which the header
    /// scan takes in with the map's; none over HTTP/2.
    #[must_use]
    pub fn passed(&self) -> Option<&Passed> {
        match self {
            Self::H2(_) => None,
            Self::H1(b) => Some(b.passed()),
        }
    }

    /// Takes the head's passed fields (none over HTTP/2, whose fields are
    /// all in the map): written after the map's into an upstream head, or
    /// merged into the map for a request that travels as one.
    pub fn take_passed(&mut self) -> Passed {
        match self {
            Self::H2(_) => Passed::default(),
            Self::H1(b) => b.take_passed(),
        }
    }
}

impl Body for ClientBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            Self::H2(b) => Pin::new(b).poll_frame(cx),
            Self::H1(b) => Pin::new(b).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::H2(b) => b.is_end_stream(),
            Self::H1(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::H2(b) => b.size_hint(),
            Self::H1(b) => b.size_hint(),
        }
    }
}

/// A byte stream both ways: what a protocol switch leaves of a connection.
pub trait Tunnelled: AsyncRead + AsyncWrite + Send + Unpin {}

impl<T: AsyncRead + AsyncWrite + Send + Unpin> Tunnelled for T {}

/// Where a protocol switch's client side comes from once the `101` has
/// been written.
#[derive(Debug)]
pub enum ClientUpgrade {
    Hyper(hyper::upgrade::OnUpgrade),
    H1(tokio::sync::oneshot::Receiver<h1::Upgraded>),
}

impl ClientUpgrade {
    /// Takes the request's handle on its connection's switch.
    pub fn on(req: &mut Request<ClientBody>) -> Self {
        match req
            .extensions_mut()
            .remove::<h1::UpgradeSlot>()
            .and_then(|slot| slot.take())
        {
            Some(rx) => Self::H1(rx),
            None => Self::Hyper(hyper::upgrade::on(req)),
        }
    }

    /// The client's connection, once the switch has been answered.
    ///
    /// # Errors
    /// The connection closed or failed before the switch was written.
    pub async fn connected(self) -> Result<Box<dyn Tunnelled>, BoxError> {
        match self {
            Self::Hyper(on) => Ok(Box::new(TokioIo::new(on.await?))),
            Self::H1(rx) => Ok(Box::new(rx.await?)),
        }
    }
}
