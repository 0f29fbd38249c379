//! Moving a large body from one socket to another without copying it
//! through the proxy: `splice(2)` from the source socket into a pipe, and
//! from the pipe into the destination socket. The kernel moves page
//! references, so a gigabyte upload or download costs the proxy system
//! calls, not copies.
//!
//! Only bodies the proxy passes on unread take this path: a
//! `Content-Length` body of at least [`MIN_SPLICE`] bytes between two plain
//! TCP sockets (TLS needs the bytes in user space). The holder of the
//! body's source ([`Source`]) keeps the body's framing true as bytes move,
//! so the rest of the code sees a body read to its end, as if it had been
//! read frame by frame.
//!
//! Readiness is tokio's, and edge-triggered: a `splice` that would block
//! clears the readiness of the socket it waited on, so a pipe is only ever
//! filled when it is empty and drained until it is empty. A full pipe then
//! cannot be mistaken for a socket with nothing to read.

use std::io;
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::{Bytes, BytesMut};
use rustix::pipe::{
    fcntl_getpipe_size, fcntl_setpipe_size, pipe_with, splice, PipeFlags, SpliceFlags,
};
use tokio::io::Interest;
use tokio::net::TcpStream;

use crate::codec::Framing;

/// The smallest body worth a pipe (two descriptors and its pages); a
/// smaller one is copied in one or two reads.
pub(crate) const MIN_SPLICE: u64 = 256 * 1024;

/// The pipe's capacity asked for. Pipe pages count against the user's
/// `/proc/sys/fs/pipe-user-pages-soft` (64 MiB by default for a process
/// without `CAP_SYS_RESOURCE`), past which the kernel makes new pipes of
/// two pages: 256 KiB lets 256 bodies splice at once before that.
const PIPE_SIZE: usize = 256 * 1024;

/// A pipe smaller than this (the user's pipe pages are spent) is not
/// worth its calls: the body is copied instead.
const MIN_PIPE: usize = 64 * 1024;

/// A pipe between two sockets and how many bytes it holds.
#[derive(Debug)]
pub(crate) struct Pipe {
    read: OwnedFd,
    write: OwnedFd,
    held: usize,
}

/// What a [`Source`] moved.
#[derive(Debug)]
pub(crate) enum Moved {
    /// Body bytes the source had already read into its buffer: they go
    /// out by an ordinary write, before anything spliced.
    Bytes(Bytes),
    /// Bytes spliced into the pipe.
    Spliced(usize),
    /// The body is complete.
    End,
}

/// The unsent rest of a body, moved by its reader into a pipe.
pub(crate) trait Source {
    /// Moves the next part of the body: bytes already buffered first,
    /// then from the socket into `pipe`, which must be empty.
    fn poll_move(&self, pipe: &mut Pipe, cx: &mut Context<'_>) -> Poll<io::Result<Moved>>;
}

impl Pipe {
    pub(crate) fn new() -> io::Result<Self> {
        let (read, write) = pipe_with(PipeFlags::NONBLOCK | PipeFlags::CLOEXEC)?;
        let size = match fcntl_setpipe_size(&write, PIPE_SIZE) {
            Ok(size) => size,
            Err(e) => {
                tracing::debug!(error = %e, "a splice pipe keeps its default size");
                fcntl_getpipe_size(&write)?
            }
        };
        if size < MIN_PIPE {
            return Err(io::Error::other(format!(
                "a pipe of {size} bytes is too small to splice through"
            )));
        }
        Ok(Self {
            read,
            write,
            held: 0,
        })
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.held == 0
    }

    /// Moves up to `max` bytes from `from` into the (empty) pipe; `Ok(0)`
    /// is the peer's end of stream.
    pub(crate) fn poll_fill(
        &mut self,
        from: &TcpStream,
        max: usize,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<usize>> {
        debug_assert!(self.is_empty(), "a pipe is filled only when empty");
        let max = max.min(PIPE_SIZE);
        loop {
            ready!(from.poll_read_ready(cx))?;
            let moved = from.try_io(Interest::READABLE, || {
                splice(
                    from,
                    None,
                    &self.write,
                    None,
                    max,
                    SpliceFlags::NONBLOCK | SpliceFlags::MOVE,
                )
                .map_err(io::Error::from)
            });
            match moved {
                Ok(n) => {
                    self.held += n;
                    return Poll::Ready(Ok(n));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }

    /// Moves everything the pipe holds into `to`.
    pub(crate) fn poll_drain(
        &mut self,
        to: &TcpStream,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<()>> {
        while self.held > 0 {
            ready!(self.poll_drain_some(to, cx))?;
        }
        Poll::Ready(Ok(()))
    }

    /// Moves some of what the pipe holds into `to`: ready after one move
    /// (so a caller can tell progress from a wait), or at once if empty.
    pub(crate) fn poll_drain_some(
        &mut self,
        to: &TcpStream,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<usize>> {
        if self.held == 0 {
            return Poll::Ready(Ok(0));
        }
        loop {
            ready!(to.poll_write_ready(cx))?;
            let moved = to.try_io(Interest::WRITABLE, || {
                splice(
                    &self.read,
                    None,
                    to,
                    None,
                    self.held,
                    SpliceFlags::NONBLOCK | SpliceFlags::MOVE,
                )
                .map_err(io::Error::from)
            });
            match moved {
                Ok(0) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Ok(n) => {
                    self.held -= n;
                    return Poll::Ready(Ok(n));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

/// Why a length-framed body could not move on.
#[derive(Debug)]
pub(crate) enum MoveError {
    /// The peer closed its connection before the body's end.
    Closed,
    /// The body is not framed by a length: nothing to splice.
    NotLength,
    Io(io::Error),
}

/// The next part of a `Content-Length` body whose unread bytes are in
/// `buf` and then on `from`: the buffered bytes first, else spliced into
/// `pipe` (which must be empty). `framing` is counted down to
/// [`Framing::Done`]. `Pending` is a wait on `from`.
pub(crate) fn poll_move_length(
    buf: &mut BytesMut,
    framing: &mut Framing,
    from: &TcpStream,
    pipe: &mut Pipe,
    cx: &mut Context<'_>,
) -> Poll<Result<Moved, MoveError>> {
    let left = match *framing {
        Framing::Length(n) => n,
        Framing::Done => return Poll::Ready(Ok(Moved::End)),
        Framing::Chunked(_) | Framing::Close => return Poll::Ready(Err(MoveError::NotLength)),
    };
    let max = usize::try_from(left).unwrap_or(usize::MAX);
    let (moved, n) = if buf.is_empty() {
        match ready!(pipe.poll_fill(from, max, cx)) {
            Ok(0) => return Poll::Ready(Err(MoveError::Closed)),
            Ok(n) => (Moved::Spliced(n), n),
            Err(e) => return Poll::Ready(Err(MoveError::Io(e))),
        }
    } else {
        let n = buf.len().min(max);
        (Moved::Bytes(buf.split_to(n).freeze()), n)
    };
    *framing = match left - n as u64 {
        0 => Framing::Done,
        rest => Framing::Length(rest),
    };
    Poll::Ready(Ok(moved))
}

/// The request extension that hands a body's source to the upstream
/// client: the pipeline sets it on a request whose body it passes on
/// unread. The client sends the body from it instead of as frames.
#[derive(Clone)]
pub(crate) struct SpliceFrom(pub(crate) Arc<dyn Source + Send + Sync>);

impl std::fmt::Debug for SpliceFrom {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpliceFrom").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    async fn pair() -> (TcpStream, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let a = TcpStream::connect(l.local_addr().expect("addr"))
            .await
            .expect("connect");
        let (b, _) = l.accept().await.expect("accept");
        (a, b)
    }

    /// 8 MiB from a writer through `from` → pipe → `to` to a reader that
    /// reads slowly, so both the source's and the destination's
    /// readiness are waited on many times.
    #[tokio::test]
    async fn a_pipe_moves_every_byte_in_order_through_both_waits() {
        let (mut writer, from) = pair().await;
        let (to, mut reader) = pair().await;
        const LEN: usize = 8 * 1024 * 1024;
        let body: Vec<u8> = (0..LEN).map(|i| (i % 253) as u8).collect();
        let sent = body.clone();
        let w = tokio::spawn(async move {
            for piece in sent.chunks(100_003) {
                writer.write_all(piece).await.expect("write");
            }
            // The end of the stream: the source's splice sees 0.
        });
        let r = tokio::spawn(async move {
            let mut got = Vec::with_capacity(LEN);
            let mut buf = vec![0u8; 4096];
            loop {
                let n = reader.read(&mut buf).await.expect("read");
                if n == 0 {
                    return got;
                }
                got.extend_from_slice(&buf[..n]);
                if got.len() % (1024 * 1024) < 4096 {
                    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                }
            }
        });
        let mut pipe = Pipe::new().expect("pipe");
        let mut moved = 0;
        loop {
            let n = std::future::poll_fn(|cx| pipe.poll_fill(&from, LEN, cx))
                .await
                .expect("fill");
            if n == 0 {
                break;
            }
            moved += n;
            assert!(!pipe.is_empty());
            std::future::poll_fn(|cx| pipe.poll_drain(&to, cx))
                .await
                .expect("drain");
            assert!(pipe.is_empty());
        }
        assert_eq!(moved, LEN);
        w.await.expect("writer");
        drop(to);
        let got = r.await.expect("reader");
        assert_eq!(got.len(), LEN);
        assert!(got == body, "the bytes arrive as sent");
    }

    #[tokio::test]
    async fn a_fill_takes_no_more_than_asked() {
        let (mut writer, from) = pair().await;
        writer.write_all(&[7u8; 10_000]).await.expect("write");
        let mut pipe = Pipe::new().expect("pipe");
        let mut total = 0;
        while total < 1000 {
            total += std::future::poll_fn(|cx| pipe.poll_fill(&from, 1000 - total, cx))
                .await
                .expect("fill");
            let (to, mut reader) = pair().await;
            std::future::poll_fn(|cx| pipe.poll_drain(&to, cx))
                .await
                .expect("drain");
            drop(to);
            let mut got = Vec::new();
            reader.read_to_end(&mut got).await.expect("read");
            assert!(got.iter().all(|b| *b == 7));
        }
        assert_eq!(total, 1000, "the rest stays in the socket for its reader");
        let mut rest = vec![0u8; 9000];
        let mut from = from;
        from.read_exact(&mut rest)
            .await
            .expect("the other 9,000 bytes");
    }

    #[tokio::test]
    async fn draining_into_a_closed_peer_fails_rather_than_waits() {
        let (mut writer, from) = pair().await;
        let (to, reader) = pair().await;
        drop(reader);
        // More than any socket buffer holds, so the peer's reset is met.
        tokio::spawn(async move {
            let piece = vec![1u8; 1024 * 1024];
            for _ in 0..64 {
                if writer.write_all(&piece).await.is_err() {
                    return;
                }
            }
        });
        let mut pipe = Pipe::new().expect("pipe");
        let outcome = tokio::time::timeout(std::time::Duration::from_secs(10), async {
            loop {
                match std::future::poll_fn(|cx| pipe.poll_fill(&from, 200_000, cx)).await {
                    Ok(0) => return io::Error::other("the writer ended first"),
                    Ok(_) => {}
                    Err(e) => return e,
                }
                if let Err(e) = std::future::poll_fn(|cx| pipe.poll_drain(&to, cx)).await {
                    return e;
                }
            }
        })
        .await
        .expect("an answer within 10 s");
        let e: io::Error = outcome;
        assert!(
            matches!(
                e.kind(),
                io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
            ),
            "{e}"
        );
    }
}
