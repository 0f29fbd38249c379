//! The two heads of an exchange: the request's, written straight into the
//! connection's buffer, and the answer's, parsed out of the bytes read,
//! with what its fields say about its framing and the connection.

use std::ops::Range;

use bytes::Buf;

use pp_h1::Stop;

use http::header::{self, HeaderName, HeaderValue};
use http::{request, Method, StatusCode, Version};
use http_body::Body;

use super::{Chunk, Conn, Framing, Head, Sending, UpstreamError, MAX_HEAD};
use crate::body::ProxyBody;
use crate::codec::{self, parse_length, push_decimal, push_field, Field, MAX_HEADERS};
use crate::headers::verbatim::Verbatim;
use crate::headers::{spare, Added};

impl Conn {
    pub(super) fn parse_head(&mut self, method: &Method) -> Result<Option<Head>, UpstreamError> {
        let stopped = |stop: Stop, read: usize| match stop {
            Stop::Partial if read >= MAX_HEAD => {
                Err(UpstreamError::Protocol("response head too large"))
            }
            Stop::Partial => Ok(None),
            Stop::Malformed(why) => Err(UpstreamError::Protocol(why)),
        };
        loop {
            let line = match pp_h1::status_line(&self.rbuf) {
                Ok(line) => line,
                Err(stop) => return stopped(stop, self.rbuf.len()),
            };
            let status = StatusCode::from_u16(line.code)
                .map_err(|_| UpstreamError::Protocol("invalid status code"))?;
            if status.is_informational() {
                if status == StatusCode::SWITCHING_PROTOCOLS {
                    return Err(UpstreamError::Protocol("switched protocols unasked"));
                }
                let mut lines = pp_h1::Fields::new(&self.rbuf, line.fields);
                let mut count = 0;
                let len = loop {
                    match lines.next(b"") {
                        Ok(Some(_)) if count == MAX_HEADERS => {
                            return Err(UpstreamError::Protocol("too many response header fields"));
                        }
                        Ok(Some(_)) => count += 1,
                        Ok(None) => break lines.end(),
                        Err(stop) => return stopped(stop, self.rbuf.len()),
                    }
                };
                if len > MAX_HEAD {
                    return Err(UpstreamError::Protocol("response head too large"));
                }
                self.rbuf.advance(len);
                if self.rbuf.is_empty() {
                    return Ok(None);
                }
                continue;
            }
            let version = if line.minor == 0 {
                Version::HTTP_10
            } else {
                Version::HTTP_11
            };
            let mut facts = Facts::default();
            self.fields.clear();
            // A 204 may not carry the `Content-Length` it sometimes does,
            // which only the map's writer leaves out.
            let mut passing = self.verbatim && status != StatusCode::NO_CONTENT;
            let mut dated = false;
            // Fields are taken in as they are read: a head cut short is
            // read again from its start when more comes.
            let buf = &self.rbuf[..];
            let mut lines = pp_h1::Fields::new(buf, line.fields);
            let mut i = 0;
            let len = loop {
                let l = match lines.next(self.names.hint(i)) {
                    Ok(Some(l)) => l,
                    Ok(None) => break lines.end(),
                    Err(stop) => return stopped(stop, buf.len()),
                };
                if i == MAX_HEADERS {
                    return Err(UpstreamError::Protocol("too many response header fields"));
                }
                let (name, acted_on) = if l.hinted {
                    self.names.known(i)
                } else {
                    self.names
                        .learn(i, l.name(buf), Verbatim::is_acted_on)
                        .map_err(|_| UpstreamError::Protocol("invalid header name"))?
                };
                i += 1;
                if facts.note(name, l.value(buf))? {
                    continue;
                }
                let line = if passing {
                    passing = !acted_on;
                    dated |= name == header::DATE;
                    let whole = l.whole();
                    passing &= whole.is_some();
                    whole.unwrap_or_default()
                } else {
                    0..0
                };
                self.fields.push(Kept {
                    name: name.clone(),
                    value: l.value_range(),
                    line,
                });
            };
            if len > MAX_HEAD {
                return Err(UpstreamError::Protocol("response head too large"));
            }
            let (framing, framed_keep_alive) = facts.framing(method, status)?;
            let (headers, verbatim) = if passing {
                // The kept lines moved together over those left out, and
                // passed on as one slice of the head.
                let lines = self.close_ranks();
                let frozen = self.rbuf.split_to(len).freeze();
                let lines = frozen.slice(lines);
                (
                    spare::map_for(1),
                    Some(Verbatim::new(lines, facts.0.length, dated)),
                )
            } else {
                let frozen = self.rbuf.split_to(len).freeze();
                let mut headers = spare::map_for(self.fields.len());
                for kept in self.fields.drain(..) {
                    // A slice of the head, not a copy of it.
                    let value = HeaderValue::from_maybe_shared(frozen.slice(kept.value))
                        .map_err(|_| UpstreamError::Protocol("invalid header value"))?;
                    headers.append(kept.name, value);
                }
                (headers, None)
            };
            let keep_alive = framed_keep_alive
                && if version == Version::HTTP_10 {
                    facts.0.keep_alive
                } else {
                    !facts.0.close
                };
            return Ok(Some(Head {
                status,
                version,
                headers,
                verbatim,
                framing,
                keep_alive,
            }));
        }
    }
}

/// A field the answer keeps: its name, and where its value and (for an
/// answer passed on verbatim) its whole line are in the read buffer.
#[derive(Debug)]
pub(super) struct Kept {
    pub(super) name: HeaderName,
    pub(super) value: Range<usize>,
    pub(super) line: Range<usize>,
}

/// What a response head's fields say about its framing and connection.
#[derive(Debug, Default)]
struct Facts(codec::Fields);

impl Facts {
    /// Takes in one field; `true` when it only framed this message or
    /// described this connection, so it is not kept for the answer (which
    /// drops every hop-by-hop field anyway: this spares the insert and the
    /// removal). A `Connection` field naming other fields is kept, for the
    /// answer's hop-by-hop pass to drop them by it.
    fn note(&mut self, name: &HeaderName, value: &[u8]) -> Result<bool, UpstreamError> {
        let field = self
            .0
            .note(name, value)
            .map_err(|m| UpstreamError::Protocol(m.0))?;
        Ok(match field {
            Field::Coding
            | Field::Connection {
                names_others: false,
                ..
            } => true,
            Field::Length
            | Field::Connection {
                names_others: true, ..
            } => false,
            Field::Other => name.as_str() == "keep-alive",
        })
    }

    /// The body's framing (RFC 9112 §6.3) and whether it leaves the
    /// connection fit for another exchange.
    fn framing(
        &self,
        method: &Method,
        status: StatusCode,
    ) -> Result<(Framing, bool), UpstreamError> {
        if *method == Method::HEAD
            || status == StatusCode::NO_CONTENT
            || status == StatusCode::NOT_MODIFIED
        {
            return Ok((Framing::Done, true));
        }
        let f = &self.0;
        if f.coded {
            // Chunked wins over a Content-Length beside it, and such a
            // message is a smuggling attempt or a broken upstream: the
            // connection is not trusted with another exchange.
            if f.chunked {
                return Ok((Framing::Chunked(Chunk::Size), f.length.is_none()));
            }
            return Ok((Framing::Close, false));
        }
        Ok(match f.length {
            Some(0) => (Framing::Done, true),
            Some(n) => (Framing::Length(n), true),
            None => (Framing::Close, false),
        })
    }
}

/// Writes the request head: origin-form target, the fields as they are,
/// the client's passed lines, the proxy's added fields and rendered lines,
/// and the body's framing when the fields do not declare it.
pub(super) fn encode_head(
    parts: &request::Parts,
    added: &Added,
    body: &ProxyBody,
    out: &mut Vec<u8>,
) -> Result<Option<Sending>, UpstreamError> {
    out.extend_from_slice(parts.method.as_str().as_bytes());
    out.push(b' ');
    let target = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    let mut declared = None;
    for (name, value) in &parts.headers {
        if *name == header::CONTENT_LENGTH {
            let n = parse_length(value.as_bytes())
                .ok_or(UpstreamError::BadRequest("invalid Content-Length"))?;
            if declared.is_some_and(|m| m != n) {
                return Err(UpstreamError::BadRequest(
                    "conflicting Content-Length values",
                ));
            }
            if declared.replace(n).is_some() {
                continue;
            }
        }
        push_field(out, name, value);
    }
    for run in added.passed_runs() {
        out.extend_from_slice(run);
    }
    for (name, value) in added.iter() {
        push_field(out, name, value);
    }
    out.extend_from_slice(added.lines());
    let framing = if body.is_end_stream() {
        None
    } else if let Some(n) = declared {
        (n > 0).then_some(Sending::Length(n))
    } else if let Some(n) = body.size_hint().exact() {
        out.extend_from_slice(b"content-length: ");
        push_decimal(out, n);
        out.extend_from_slice(b"\r\n");
        (n > 0).then_some(Sending::Length(n))
    } else {
        out.extend_from_slice(b"transfer-encoding: chunked\r\n");
        Some(Sending::Chunked { open: false })
    };
    out.extend_from_slice(b"\r\n");
    Ok(framing)
}
