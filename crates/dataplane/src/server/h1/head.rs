//! Parsing a request head: its fields as `pp_h1` reads them, which
//! of them pass to the upstream as written (`headers::passed`) and which go
//! into the request's map, and what they say about the body and the
//! connection. A head that frames its body ambiguously is refused here.

use std::ops::Range;

use bytes::BytesMut;
use pp_h1::Stop;

use http::header::{self, HeaderName, HeaderValue};
use http::{Method, Request, Uri, Version};

use crate::codec::{self, Framing, MAX_HEADERS};
use crate::headers::passed::{self, Passed};
use crate::headers::spare;

/// Why no request came of a head.
#[derive(Debug)]
pub(super) enum HeadError {
    /// The client closed (or failed) between requests.
    Closed,
    TooLarge,
    Malformed(&'static str),
}

/// A parsed request head and what it says about its connection.
pub(super) struct Head {
    pub(super) parts: http::request::Parts,
    pub(super) passed: Passed,
    pub(super) body: Framing,
    pub(super) keep_alive: bool,
    pub(super) expect_continue: bool,
    pub(super) upgrade: bool,
}

pub(super) fn parse_head(
    buf: &mut BytesMut,
    max_head: usize,
    fields: &mut Vec<(HeaderName, Range<usize>)>,
    names: &mut codec::Names,
) -> Result<Option<Head>, HeadError> {
    let stopped = |stop: Stop, read: usize| match stop {
        Stop::Partial if read >= max_head => Err(HeadError::TooLarge),
        Stop::Partial => Ok(None),
        Stop::Malformed(why) => Err(HeadError::Malformed(why)),
    };
    let line = match pp_h1::request_line(buf) {
        Ok(line) => line,
        Err(stop) => return stopped(stop, buf.len()),
    };
    let method = Method::from_bytes(&buf[line.method])
        .map_err(|_| HeadError::Malformed("invalid method"))?;
    let version = if line.minor == 0 {
        Version::HTTP_10
    } else {
        Version::HTTP_11
    };
    let mut facts = Facts::default();
    let mut passed = Passed::default();
    fields.clear();
    // Fields are taken in as they are read: a head cut short is read
    // again from its start when more comes, as any parser would.
    let mut lines = pp_h1::Fields::new(buf, line.fields);
    let mut i = 0;
    let len = loop {
        let l = match lines.next(names.hint(i)) {
            Ok(Some(l)) => l,
            Ok(None) => break lines.end(),
            Err(stop) => return stopped(stop, buf.len()),
        };
        if i == MAX_HEADERS {
            return Err(HeadError::TooLarge);
        }
        let (name, pass) = if l.hinted {
            names.known(i)
        } else {
            names
                .learn(i, l.name(buf), passed::is_passed)
                .map_err(|_| HeadError::Malformed("invalid header name"))?
        };
        i += 1;
        let value = l.value(buf);
        if pass {
            // A passed name frames nothing and says nothing of the
            // connection: `Facts` has no need to see it.
            let counted = l.name(buf).len() + value.len() + 4;
            let html = crate::error::asks_html(name, value);
            if l.whole()
                .is_some_and(|whole| passed.take(whole, counted, html))
            {
                continue;
            }
        }
        if !facts.note(name, value)? {
            fields.push((name.clone(), l.value_range()));
        }
    };
    if len > max_head {
        return Err(HeadError::TooLarge);
    }
    let frozen = buf.split_to(len).freeze();
    let uri = Uri::from_maybe_shared(frozen.slice(line.target))
        .map_err(|_| HeadError::Malformed("invalid request target"))?;
    // Origin-form, absolute-form, or `*` for OPTIONS; the proxy is no
    // tunnel for CONNECT.
    let origin = uri.scheme().is_none() && uri.path().starts_with('/');
    let absolute = uri.scheme().is_some() && uri.authority().is_some();
    let asterisk = method == Method::OPTIONS && uri.path() == "*";
    if method == Method::CONNECT || !(origin || absolute || asterisk) {
        return Err(HeadError::Malformed("unsupported request target"));
    }
    let mut headers = spare::map_for(fields.len());
    for (name, range) in fields.drain(..) {
        let value = HeaderValue::from_maybe_shared(frozen.slice(range))
            .map_err(|_| HeadError::Malformed("invalid header value"))?;
        headers.append(name, value);
    }
    passed.seal(&frozen);
    if facts.nominates {
        // `Connection` names fields to drop at this hop (RFC 9110 §7.6.1),
        // which the hop-by-hop step removes from the map: any of them
        // must be there.
        std::mem::take(&mut passed).merge_into(&mut headers);
    }
    let body = facts.framing()?;
    let keep_alive = if version == Version::HTTP_10 {
        facts.fields.keep_alive && !facts.fields.close
    } else {
        !facts.fields.close
    };
    let (mut parts, ()) = Request::new(()).into_parts();
    parts.method = method;
    parts.uri = uri;
    parts.version = version;
    parts.headers = headers;
    Ok(Some(Head {
        parts,
        passed,
        expect_continue: facts.expect_continue
            && version == Version::HTTP_11
            && body != Framing::Done,
        upgrade: facts.fields.upgrade && facts.upgrade_field && version == Version::HTTP_11,
        body,
        keep_alive,
    }))
}

/// What a request head's fields say about its body and connection.
#[derive(Debug, Default)]
struct Facts {
    fields: codec::Fields,
    upgrade_field: bool,
    expect_continue: bool,
    /// `Transfer-Encoding` fields, and whether any says more than
    /// `chunked`: the proxy decodes chunked and no other coding.
    codings: usize,
    other_coding: bool,
    hosts: usize,
    /// A `Connection` field names a field besides its own tokens.
    nominates: bool,
}

impl Facts {
    /// Takes in one field; `true` when it is taken in whole, so the map
    /// need not hold it: a `Connection` field of `close` and `keep-alive`
    /// alone says only how this connection goes on, which is noted here,
    /// and the hop-by-hop step would drop it (a browser sends one with
    /// every request). One that asks for an upgrade, or names fields to
    /// drop, stays for the steps that read it.
    fn note(&mut self, name: &HeaderName, value: &[u8]) -> Result<bool, HeadError> {
        let field = self
            .fields
            .note(name, value)
            .map_err(|m| HeadError::Malformed(m.0))?;
        if let codec::Field::Connection {
            names_others,
            upgrade,
        } = field
        {
            self.nominates |= names_others;
            return Ok(!(names_others || upgrade));
        }
        if field == codec::Field::Coding {
            self.codings += 1;
            self.other_coding |= !value.trim_ascii().eq_ignore_ascii_case(b"chunked");
        }
        if field == codec::Field::Other {
            if *name == header::HOST {
                self.hosts += 1;
            } else if *name == header::UPGRADE {
                self.upgrade_field = true;
            } else if *name == header::EXPECT {
                self.expect_continue = value.trim_ascii().eq_ignore_ascii_case(b"100-continue");
            }
        }
        Ok(false)
    }

    /// The body's framing (RFC 9112 §6.3); ambiguity is refused.
    fn framing(&self) -> Result<Framing, HeadError> {
        let f = &self.fields;
        if self.hosts > 1 {
            return Err(HeadError::Malformed("more than one Host field"));
        }
        if f.coded {
            if self.other_coding || self.codings > 1 {
                return Err(HeadError::Malformed(
                    "a Transfer-Encoding other than one chunked",
                ));
            }
            if !f.chunked {
                return Err(HeadError::Malformed(
                    "a Transfer-Encoding without chunked last",
                ));
            }
            if f.length.is_some() {
                return Err(HeadError::Malformed(
                    "Transfer-Encoding beside Content-Length",
                ));
            }
            return Ok(Framing::Chunked(codec::Chunk::Size));
        }
        Ok(match f.length {
            None | Some(0) => Framing::Done,
            Some(n) => Framing::Length(n),
        })
    }
}
