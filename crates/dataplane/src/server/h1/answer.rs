//! The answer's side of a connection: its head written into the
//! connection's buffer with the framing the body calls for, the body
//! streamed after it (coalesced into few writes, flushed whenever the body
//! waits), and the `Date` field.

use std::io;
use std::pin::Pin;

use futures_util::FutureExt;
use http::header;
use http::{Response, StatusCode, Version};
use http_body::Body;
use tokio::io::AsyncWriteExt;

use super::writer::SENDING;
use super::Writer;
use crate::body::ProxyBody;
use crate::codec::{parse_length, push_decimal, push_field, push_hex};
use crate::headers::spare;
use crate::headers::verbatim::Verbatim;
use crate::splice::{Moved, Pipe, SpliceFrom};

/// Body bytes copied into the head's buffer to go out in one write; a
/// larger frame is written on its own.
const COALESCE: usize = 16 * 1024;

/// Writes the answer's status line and fields into `out`, with the
/// framing field `framing` calls for and `Connection: close` when the
/// connection ends after it. Fields passed on `verbatim` (the answer's
/// [`Verbatim`], looked up once by the caller) go first, as they came,
/// then the map's (the proxy's own, for such an answer).
pub(super) fn encode_head(
    out: &mut Vec<u8>,
    resp: &Response<ProxyBody>,
    verbatim: Option<&Verbatim>,
    framing: Option<Out>,
    close: bool,
) {
    let status = resp.status();
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("Unknown").as_bytes());
    out.extend_from_slice(b"\r\n");
    // The proxy's own framing replaces a length; a HEAD or 304 answer
    // keeps the one the full answer would have (RFC 9110 §8.6), and 1xx
    // and 204 answers carry none.
    let no_length = matches!(framing, Some(Out::Length(_) | Out::Chunked | Out::Close))
        || status.is_informational()
        || status == StatusCode::NO_CONTENT;
    let mut dated = false;
    if let Some(verbatim) = verbatim {
        // A length among them is the one `respond` frames by (`Declared`),
        // and the upstream client passes no 204 on this way.
        debug_assert!(verbatim.length().is_none() || !no_length);
        out.extend_from_slice(verbatim.lines());
        dated = verbatim.dated();
    }
    for (name, value) in resp.headers() {
        if *name == header::CONTENT_LENGTH && no_length {
            continue;
        }
        dated |= *name == header::DATE;
        push_field(out, name, value);
    }
    if !dated {
        date::push(out);
    }
    match framing {
        Some(Out::Length(n)) => {
            out.extend_from_slice(b"content-length: ");
            push_decimal(out, n);
            out.extend_from_slice(b"\r\n");
        }
        Some(Out::Chunked) => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
        Some(Out::Declared | Out::Close | Out::None) | None => {}
    }
    if close {
        out.extend_from_slice(b"connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// How an answer's body goes on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Out {
    /// No body (HEAD, 1xx, 204, 304): nothing written after the head.
    None,
    /// The answer's own `Content-Length`, kept.
    Declared,
    /// A length the proxy declares.
    Length(u64),
    Chunked,
    /// Until the connection closes (an HTTP/1.0 client, length unknown).
    Close,
}

/// Writes one answer; `Ok(true)` when the connection may carry another.
pub(super) async fn respond(
    write: &mut Writer,
    out: &mut Vec<u8>,
    resp: Response<ProxyBody>,
    head_request: bool,
    version: Version,
    keep: bool,
) -> io::Result<bool> {
    let status = resp.status();
    let verbatim = resp.extensions().get::<Verbatim>();
    let declared = match verbatim {
        Some(verbatim) => verbatim.length(),
        None => resp
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| parse_length(v.as_bytes())),
    };
    let bodiless = head_request
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    let hint = resp.body().size_hint().exact();
    let framing = if bodiless {
        Out::None
    } else if declared.is_some() {
        Out::Declared
    } else if resp.body().is_end_stream() {
        Out::Length(0)
    } else if let Some(n) = hint {
        Out::Length(n)
    } else if version == Version::HTTP_11 {
        Out::Chunked
    } else {
        Out::Close
    };
    let mut keep = keep && framing != Out::Close;
    keep &= !resp
        .headers()
        .get_all(header::CONNECTION)
        .iter()
        .any(|v| v.as_bytes().eq_ignore_ascii_case(b"close"));
    out.clear();
    encode_head(out, &resp, verbatim, Some(framing), !keep);
    let (parts, mut body) = resp.into_parts();
    let splice = parts.extensions.get::<SpliceFrom>().cloned();
    // Written into the head: the map and the extensions are kept for the
    // next answer.
    spare::recycle(parts.headers);
    spare::recycle_extensions(parts.extensions);
    let mut left = match framing {
        Out::Declared => declared,
        Out::Length(n) => Some(n),
        _ => None,
    };
    if matches!(framing, Out::None) || left == Some(0) {
        write_out(write, out).await?;
        return Ok(keep);
    }
    if let (Some(from), Some(l)) = (splice, left.as_mut()) {
        if write.tcp().is_some() {
            write_out(write, out).await?;
            out.clear();
            if !splice_body(write, &from, l).await? {
                return Ok(false);
            }
            if *l == 0 {
                // The body has ended (its connection is back in the pool);
                // dropping it ends the route's hold on it.
                drop(body);
                return Ok(keep);
            }
        }
    }
    loop {
        let next =
            match std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).now_or_never() {
                Some(f) => f,
                None => {
                    // Nothing more right now: what is buffered goes out first.
                    if !out.is_empty() {
                        write_out(write, out).await?;
                        out.clear();
                    }
                    std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await
                }
            };
        let frame = match next {
            None => break,
            Some(Ok(frame)) => frame,
            Some(Err(e)) => {
                // A status already sent cannot change: the answer is cut off.
                tracing::debug!(error = %e, "the answer's body failed while streaming");
                write_out(write, out).await?;
                return Ok(false);
            }
        };
        let data = match frame.into_data() {
            Ok(d) => d,
            Err(frame) => {
                if let (Out::Chunked, Ok(trailers)) = (framing, frame.into_trailers()) {
                    out.extend_from_slice(b"0\r\n");
                    for (name, value) in &trailers {
                        push_field(out, name, value);
                    }
                    out.extend_from_slice(b"\r\n");
                    write_out(write, out).await?;
                    return Ok(keep);
                }
                continue;
            }
        };
        if data.is_empty() {
            continue;
        }
        if let Some(l) = left.as_mut() {
            let n = data.len() as u64;
            if n > *l {
                tracing::debug!("the answer's body is longer than its Content-Length; cut off");
                write_out(write, out).await?;
                return Ok(false);
            }
            *l -= n;
        }
        if framing == Out::Chunked {
            push_hex(out, data.len() as u64);
            out.extend_from_slice(b"\r\n");
        }
        if data.len() <= COALESCE {
            out.extend_from_slice(&data);
        } else {
            write_out(write, out).await?;
            out.clear();
            write.write_all(&data).await?;
        }
        if framing == Out::Chunked {
            out.extend_from_slice(b"\r\n");
        }
        if left == Some(0) {
            break;
        }
        if out.len() >= 4 * COALESCE {
            // A burst of small frames: out it goes before it grows on.
            write.write_all(out).await?;
            out.clear();
        }
    }
    if framing == Out::Chunked {
        out.extend_from_slice(b"0\r\n\r\n");
    }
    write_out(write, out).await?;
    out.clear();
    if out.capacity() > 4 * COALESCE {
        *out = Vec::with_capacity(1024);
    }
    // A body shorter than its declared length leaves the client waiting
    // for the rest: only closing the connection ends it.
    Ok(keep && left.is_none_or(|l| l == 0))
}

/// Splices the answer's body from its upstream socket into the client's
/// (`write` is plain TCP), counting `left` down. `Ok(false)` when the body
/// failed and the answer is cut off; a body left with bytes to come (no
/// pipe to be had) goes on as frames.
async fn splice_body(write: &mut Writer, from: &SpliceFrom, left: &mut u64) -> io::Result<bool> {
    let mut pipe = match Pipe::new() {
        Ok(p) => p,
        Err(e) => {
            tracing::debug!(error = %e, "no pipe for a splice; the body is copied");
            return Ok(true);
        }
    };
    while *left > 0 {
        let moved = std::future::poll_fn(|cx| from.0.poll_move(&mut pipe, cx)).await;
        let n = match moved {
            Ok(Moved::Bytes(data)) => {
                write.write_all(&data).await?;
                data.len()
            }
            Ok(Moved::Spliced(n)) => {
                let Some((tcp, stall)) = write.tcp() else {
                    return Ok(false);
                };
                while !pipe.is_empty() {
                    std::future::poll_fn(|cx| {
                        stall.poll_op(cx, SENDING, |cx| pipe.poll_drain_some(tcp, cx))
                    })
                    .await?;
                }
                n
            }
            Ok(Moved::End) => break,
            Err(e) => {
                tracing::debug!(error = %e, "the answer's body failed while spliced");
                return Ok(false);
            }
        };
        *left = left.saturating_sub(n as u64);
    }
    Ok(*left == 0)
}

/// Writes `bytes` and flushes them: a TLS stream may keep written bytes in
/// its own buffer until flushed, and the loop waits for the client next.
pub(super) async fn write_out(write: &mut Writer, bytes: &[u8]) -> io::Result<()> {
    write.write_all(bytes).await?;
    write.flush().await
}

/// The `Date` field, formatted once a second.
mod date {
    use std::cell::RefCell;
    use std::time::{SystemTime, UNIX_EPOCH};

    thread_local! {
        static CACHED: RefCell<(u64, String)> = const { RefCell::new((0, String::new())) };
    }

    /// Appends `date: <now>\r\n`.
    pub(super) fn push(out: &mut Vec<u8>) {
        let now = SystemTime::now();
        let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        CACHED.with(|c| {
            let mut c = c.borrow_mut();
            if c.0 != secs || c.1.is_empty() {
                *c = (secs, httpdate::fmt_http_date(now));
            }
            out.extend_from_slice(b"date: ");
            out.extend_from_slice(c.1.as_bytes());
            out.extend_from_slice(b"\r\n");
        });
    }
}
