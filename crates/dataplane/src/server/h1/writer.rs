//! The HTTP/1.1 client connection's writing half under the send timeout
//! (`server.send_timeout_secs`).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::AsyncWrite;
use tokio::net::TcpStream;

use super::socket::WriteHalf;
use crate::server::stall::Stall;

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

/// What a send timeout names as the operation that stalled.
pub(super) const SENDING: &str = "sending the answer";

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
