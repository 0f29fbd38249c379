//! The HTTP/1.1 message codec both sides of the proxy share (RFC 9112):
//! body framing by length, chunks or the connection's end, chunked decoding
//! with its trailer section, and the small writers heads are built with.
//! The upstream client (`forward/h1.rs`) and the client-facing server
//! (`server/h1.rs`) each own their buffers and call into this.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http_body::Frame;
use tokio::io::AsyncRead;

/// The most header fields a head (or a trailer section) may have.
pub(crate) const MAX_HEADERS: usize = 100;
/// The most bytes a chunk-size line (size and extensions) may take.
pub(crate) const MAX_CHUNK_LINE: usize = 4 * 1024;
/// The most bytes a trailer section may take.
pub(crate) const MAX_TRAILERS: usize = 64 * 1024;

/// The field names of a connection's last head, in order, as sent and
/// parsed. A peer sends the same names in the same order head after head,
/// so a name where the last head had it is compared and its parsed form
/// lent out, where `HeaderName::from_bytes` would lower-case it and match
/// it against the standard names again, and allocate for one outside them
/// (about 90 instructions a standard name). A name elsewhere is parsed
/// and takes the place. What is kept is at most the head's own name bytes,
/// so the head limit bounds it; the server lets it go with an idle
/// connection's buffers.
///
/// Each name is kept with a mark, the answer of the caller's `mark` for
/// it (which the caller keeps the same for the connection's life): the
/// server marks the names no step reads (`headers::passed`), the upstream
/// client those an answer step acts on (`headers::verbatim`), so that
/// question too is asked once a place rather than once a field.
#[derive(Debug, Default)]
pub(crate) struct Names {
    kept: Vec<Known>,
    /// The last name read past [`Names::MAX`], lent out as the kept ones
    /// are.
    past: Option<Known>,
}

#[derive(Debug)]
struct Known {
    raw: Box<[u8]>,
    name: HeaderName,
    marked: bool,
}

/// A field name for the caller: as parsed, and its mark.
pub(crate) type Name<'a> = (&'a HeaderName, bool);

impl Names {
    /// Names kept at most; a head's fields past it are parsed every time.
    const MAX: usize = 32;

    /// The name bytes kept at place `i` (empty when none): the scanner's
    /// hint (`pp_h1::Fields::next`), which spares a line with this name a
    /// second look at its bytes.
    #[inline]
    pub(crate) fn hint(&self, i: usize) -> &[u8] {
        self.kept.get(i).map_or(&[], |k| &k.raw)
    }

    /// The name kept at place `i`, which the scanner found there (a hinted
    /// line), and its mark.
    #[inline]
    pub(crate) fn known(&self, i: usize) -> Name<'_> {
        let k = &self.kept[i];
        (&k.name, k.marked)
    }

    /// Parses a name not met at its place before (a line the hint did not
    /// match), and keeps it there, with `mark`'s answer for it.
    #[inline(never)]
    pub(crate) fn learn(
        &mut self,
        i: usize,
        raw: &[u8],
        mark: fn(&HeaderName) -> bool,
    ) -> Result<Name<'_>, header::InvalidHeaderName> {
        let name = HeaderName::from_bytes(raw)?;
        let known = Known {
            raw: Box::from(raw),
            marked: mark(&name),
            name,
        };
        let slot = if i < self.kept.len() {
            self.kept[i] = known;
            &self.kept[i]
        } else if i == self.kept.len() && i < Self::MAX {
            self.kept.push(known);
            &self.kept[i]
        } else {
            self.past.insert(known)
        };
        Ok((&slot.name, slot.marked))
    }
}

/// What a head's framing and connection fields say (RFC 9112 §6, §9.6),
/// gathered field by field as the head is read.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Fields {
    /// `Content-Length`, its repeats agreeing.
    pub(crate) length: Option<u64>,
    /// A `Transfer-Encoding` field was present, and whether its last
    /// coding is `chunked`.
    pub(crate) coded: bool,
    pub(crate) chunked: bool,
    /// `Connection` tokens.
    pub(crate) close: bool,
    pub(crate) keep_alive: bool,
    pub(crate) upgrade: bool,
}

/// Which of the fields [`Fields::note`] took in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Field {
    Length,
    Coding,
    /// `Connection`; `names_others` when it names a field besides the
    /// `close`, `keep-alive` and `upgrade` tokens, `upgrade` when it holds
    /// that token.
    Connection {
        names_others: bool,
        upgrade: bool,
    },
    Other,
}

impl Fields {
    /// Takes in one field of a head.
    pub(crate) fn note(&mut self, name: &HeaderName, value: &[u8]) -> Result<Field, Malformed> {
        if *name == header::CONTENT_LENGTH {
            for part in value.split(|b| *b == b',') {
                let n =
                    parse_length(part.trim_ascii()).ok_or(Malformed("invalid Content-Length"))?;
                if self.length.is_some_and(|m| m != n) {
                    return Err(Malformed("conflicting Content-Length values"));
                }
                self.length = Some(n);
            }
            return Ok(Field::Length);
        }
        if *name == header::TRANSFER_ENCODING {
            self.coded = true;
            self.chunked = value
                .rsplit(|b| *b == b',')
                .next()
                .is_some_and(|c| c.trim_ascii().eq_ignore_ascii_case(b"chunked"));
            return Ok(Field::Coding);
        }
        if *name == header::CONNECTION {
            let (mut names_others, mut upgrades) = (false, false);
            for token in value.split(|b| *b == b',').map(<[u8]>::trim_ascii) {
                let close = token.eq_ignore_ascii_case(b"close");
                let keep_alive = token.eq_ignore_ascii_case(b"keep-alive");
                let upgrade = token.eq_ignore_ascii_case(b"upgrade");
                self.close |= close;
                self.keep_alive |= keep_alive;
                self.upgrade |= upgrade;
                upgrades |= upgrade;
                names_others |= !(close || keep_alive || upgrade || token.is_empty());
            }
            return Ok(Field::Connection {
                names_others,
                upgrade: upgrades,
            });
        }
        Ok(Field::Other)
    }
}

/// The size of a connection's next read: it starts at [`ReadSize::FIRST`]
/// and doubles while reads fill it, up to a bound, so a large body goes in
/// few calls while an idle connection holds a small buffer.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ReadSize {
    next: usize,
    max: usize,
}

impl ReadSize {
    /// A page: room for a typical request head (cookies included) or a
    /// small answer with its head. Every keep-alive connection holds one,
    /// client and upstream side alike, so this is most of a connection's
    /// memory; a larger message doubles it within a few reads.
    pub(crate) const FIRST: usize = 4 * 1024;

    pub(crate) const fn new(max: usize) -> Self {
        Self {
            next: Self::FIRST,
            max,
        }
    }

    /// Reads more bytes from `io` into `buf`; `Ok(0)` is the peer's end.
    pub(crate) fn poll_fill<R: AsyncRead + ?Sized>(
        &mut self,
        io: Pin<&mut R>,
        buf: &mut BytesMut,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<usize>> {
        buf.reserve(self.next);
        let room = buf.capacity() - buf.len();
        let n = ready!(tokio_util::io::poll_read_buf(io, cx, buf))?;
        if n == room && self.next < self.max {
            self.next *= 2;
        }
        Poll::Ready(Ok(n))
    }

    /// Reads into the room `buf` has left, growing it only when it has
    /// none. For a read that only watches the connection while a request
    /// is answered: the request's head still shares the buffer, so growing
    /// it would allocate a new one for every request.
    pub(crate) fn poll_fill_spare<R: AsyncRead + ?Sized>(
        &mut self,
        io: Pin<&mut R>,
        buf: &mut BytesMut,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<usize>> {
        if buf.capacity() == buf.len() {
            return self.poll_fill(io, buf, cx);
        }
        tokio_util::io::poll_read_buf(io, cx, buf)
    }

    /// Back to the first size, for a buffer let go.
    pub(crate) fn reset(&mut self) {
        self.next = Self::FIRST;
    }
}

/// A message that breaks the framing rules, and which rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Malformed(pub(crate) &'static str);

/// How the rest of a message body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    /// Nothing (more) to read: the body has ended.
    Done,
    /// `Content-Length`: this many bytes are left.
    Length(u64),
    /// `Transfer-Encoding: chunked`, in this state.
    Chunked(Chunk),
    /// Everything until the upstream closes the connection.
    Close,
}

/// Where a chunked body's decoder stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Chunk {
    /// Before a chunk-size line.
    Size,
    /// Inside a chunk's data, this many bytes left.
    Data(u64),
    /// After a chunk's data, before its CRLF.
    DataEnd,
    /// After the last chunk, before the trailer section's end.
    Trailers,
    /// The trailer section has ended.
    Done,
}

/// Decodes what `rbuf` holds: a frame, or `None` when more must be
/// read (or the body is done). After a data frame the framing is
/// carried past whatever follows it in the buffer, so a body whose
/// end has arrived reports it at once.
pub(crate) fn decode(
    rbuf: &mut BytesMut,
    framing: &mut Framing,
) -> Result<Option<Frame<Bytes>>, Malformed> {
    let frame = match framing {
        Framing::Done => return Ok(None),
        Framing::Length(left) => {
            if rbuf.is_empty() {
                return Ok(None);
            }
            let take = clamp(*left, rbuf.len());
            *left -= take as u64;
            if *left == 0 {
                *framing = Framing::Done;
            }
            Frame::data(rbuf.split_to(take).freeze())
        }
        Framing::Close => {
            if rbuf.is_empty() {
                return Ok(None);
            }
            Frame::data(rbuf.split().freeze())
        }
        Framing::Chunked(state) => {
            let mut at = *state;
            let frame = decode_chunked(rbuf, &mut at, true)?;
            if frame.is_some() {
                // Past the chunk's end, and the last chunk, if they
                // are here already; never another frame.
                decode_chunked(rbuf, &mut at, false)?;
            }
            *framing = if at == Chunk::Done {
                Framing::Done
            } else {
                Framing::Chunked(at)
            };
            return Ok(frame);
        }
    };
    Ok(Some(frame))
}

/// Steps a chunked body's decoder over what `rbuf` holds. With
/// `frames` false it only moves past framing (a chunk's CRLF, size
/// lines, an empty trailer section) and yields nothing.
fn decode_chunked(
    rbuf: &mut BytesMut,
    state: &mut Chunk,
    frames: bool,
) -> Result<Option<Frame<Bytes>>, Malformed> {
    loop {
        match *state {
            Chunk::Done => return Ok(None),
            // A size line starts with a digit: httparse would read a bare
            // CRLF (or `;ext`) as the last chunk.
            Chunk::Size if rbuf.first().is_some_and(|b| !b.is_ascii_hexdigit()) => {
                return Err(Malformed("invalid chunk size"));
            }
            Chunk::Size => match httparse::parse_chunk_size(rbuf) {
                Ok(httparse::Status::Complete((n, _))) if n > MAX_CHUNK_LINE => {
                    return Err(Malformed("chunk-size line too long"));
                }
                Ok(httparse::Status::Complete((n, size))) => {
                    rbuf.advance(n);
                    *state = if size == 0 {
                        Chunk::Trailers
                    } else {
                        Chunk::Data(size)
                    };
                }
                Ok(httparse::Status::Partial) if rbuf.len() > MAX_CHUNK_LINE => {
                    return Err(Malformed("chunk-size line too long"));
                }
                Ok(httparse::Status::Partial) => return Ok(None),
                Err(_) => return Err(Malformed("invalid chunk size")),
            },
            Chunk::Data(left) => {
                if !frames || rbuf.is_empty() {
                    return Ok(None);
                }
                let take = clamp(left, rbuf.len());
                let rest = left - take as u64;
                *state = if rest == 0 {
                    Chunk::DataEnd
                } else {
                    Chunk::Data(rest)
                };
                return Ok(Some(Frame::data(rbuf.split_to(take).freeze())));
            }
            Chunk::DataEnd => {
                if rbuf.len() < 2 {
                    return Ok(None);
                }
                if rbuf[..2] != *b"\r\n" {
                    return Err(Malformed("chunk data not ended by CRLF"));
                }
                rbuf.advance(2);
                *state = Chunk::Size;
            }
            Chunk::Trailers => {
                if rbuf.starts_with(b"\r\n") {
                    rbuf.advance(2);
                    *state = Chunk::Done;
                    return Ok(None);
                }
                if !frames || rbuf.len() < 2 {
                    return Ok(None);
                }
                return decode_trailers(rbuf, state);
            }
        }
    }
}

fn decode_trailers(
    rbuf: &mut BytesMut,
    state: &mut Chunk,
) -> Result<Option<Frame<Bytes>>, Malformed> {
    let too_large = Malformed("trailer section too large");
    let mut lines = pp_h1::Fields::new(rbuf, 0);
    let mut trailers = HeaderMap::new();
    let len = loop {
        let line = match lines.next(b"") {
            Ok(Some(line)) => line,
            Ok(None) => break lines.end(),
            Err(pp_h1::Stop::Partial) if rbuf.len() >= MAX_TRAILERS => return Err(too_large),
            Err(pp_h1::Stop::Partial) => return Ok(None),
            Err(pp_h1::Stop::Malformed(_)) => return Err(Malformed("malformed trailer section")),
        };
        if trailers.len() == MAX_HEADERS {
            return Err(Malformed("too many trailer fields"));
        }
        let name = HeaderName::from_bytes(line.name(rbuf))
            .map_err(|_| Malformed("invalid trailer name"))?;
        let value = HeaderValue::from_bytes(line.value(rbuf))
            .map_err(|_| Malformed("invalid trailer value"))?;
        trailers.append(name, value);
    };
    if len > MAX_TRAILERS {
        return Err(too_large);
    }
    rbuf.advance(len);
    *state = Chunk::Done;
    Ok(Some(Frame::trailers(trailers)))
}

pub(crate) fn push_field(out: &mut Vec<u8>, name: &HeaderName, value: &HeaderValue) {
    out.extend_from_slice(name.as_str().as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value.as_bytes());
    out.extend_from_slice(b"\r\n");
}

pub(crate) fn push_hex(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 16];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b"0123456789abcdef"[(n & 0xf) as usize];
        n >>= 4;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

pub(crate) fn push_decimal(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

/// A `Content-Length` value: one or more digits, nothing else.
pub(crate) fn parse_length(s: &[u8]) -> Option<u64> {
    if s.is_empty() {
        return None;
    }
    s.iter().try_fold(0u64, |n, b| {
        let d = b.checked_sub(b'0').filter(|d| *d < 10)?;
        n.checked_mul(10)?.checked_add(u64::from(d))
    })
}

/// `left` bytes wanted and `have` at hand: how many to take.
pub(crate) fn clamp(left: u64, have: usize) -> usize {
    usize::try_from(left).map_or(have, |l| l.min(have))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Marks names ending in an even digit.
    fn even(name: &HeaderName) -> bool {
        name.as_str()
            .bytes()
            .last()
            .is_some_and(|b| b.is_ascii_digit() && (b - b'0').is_multiple_of(2))
    }

    /// Past [`Names::MAX`] places names are parsed every time and not kept;
    /// every place, kept or not, reads its own name and mark head after
    /// head.
    /// What a head's reader does with a name at place `i`: the kept one
    /// when it is the hint the scanner matched, else learned.
    fn get<'a>(
        names: &'a mut Names,
        i: usize,
        raw: &[u8],
        mark: fn(&HeaderName) -> bool,
    ) -> Result<Name<'a>, header::InvalidHeaderName> {
        if names.hint(i) == raw {
            return Ok(names.known(i));
        }
        names.learn(i, raw, mark)
    }

    #[test]
    fn names_past_the_kept_bound_still_read_right_and_are_not_kept() {
        let mut names = Names::default();
        let head = |tag: &str| -> Vec<String> {
            (0..Names::MAX + 8)
                .map(|i| format!("X-{tag}-{i}"))
                .collect()
        };
        for tag in ["a", "a", "b"] {
            for (i, raw) in head(tag).iter().enumerate() {
                let (name, marked) = get(&mut names, i, raw.as_bytes(), even).expect("a token");
                assert_eq!(name.as_str(), raw.to_ascii_lowercase(), "place {i}");
                assert_eq!(marked, i % 2 == 0, "place {i}");
            }
            assert_eq!(names.kept.len(), Names::MAX);
        }
        assert!(get(&mut names, 3, b"no token", even).is_err());
        let (name, marked) = get(&mut names, 3, b"X-b-3", even).expect("kept");
        assert_eq!((name.as_str(), marked), ("x-b-3", false));
    }

    /// A name met again at its place keeps the mark it was given; one
    /// that takes another's place gets its own.
    #[test]
    fn a_places_mark_follows_its_name() {
        let mut names = Names::default();
        assert!(get(&mut names, 0, b"X-2", even).expect("a token").1);
        assert!(get(&mut names, 0, b"x-2", even).expect("a token").1);
        assert!(!get(&mut names, 0, b"X-3", even).expect("a token").1);
        assert!(!get(&mut names, 0, b"X-3", even).expect("a token").1);
    }
}
