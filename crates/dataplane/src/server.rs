//! The client-facing side of a connection as the pipeline sees it: the
//! request body and the protocol switch, whichever server parsed the
//! request. Both servers are the proxy's own: HTTP/1.1 (`h1.rs`) reads
//! the head with `pp_h1`, writes the answer's head straight into the
//! connection's buffer and shares its framing code with the upstream
//! client; HTTP/2 (`h2.rs`, prior knowledge or ALPN) drives `pp-h2`'s
//! protocol state machine.

pub(crate) mod h1;
pub(crate) mod h2;
mod stall;

pub use self::h2::{H2Body, StreamReset};

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::Request;
use http_body::{Body, Frame, SizeHint};

use crate::body::BoxError;
use crate::headers::passed::Passed;

/// A request's body, from either server.
#[derive(Debug)]
pub enum ClientBody {
    H2(H2Body),
    H1(h1::RequestBody),
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

/// Where a protocol switch's client side comes from once the `101` has
/// been written.
#[derive(Debug)]
pub enum ClientUpgrade {
    Hyper(hyper::upgrade::OnUpgrade),
    H1(tokio::sync::oneshot::Receiver<crate::tunnel::End>),
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
    pub async fn connected(self) -> Result<crate::tunnel::End, BoxError> {
        match self {
            Self::Hyper(on) => Ok(crate::tunnel::End::from_hyper(on.await?)),
            Self::H1(rx) => Ok(rx.await?),
        }
    }
}
