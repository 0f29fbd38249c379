//! Reading an HTTP/1.1 head (RFC 9112 §2.2–5) without I/O: the start
//! line, then one field line at a time, each found and checked in a single
//! pass over its bytes. The proxy's HTTP/1.1 server reads requests with it
//! and its upstream client reads answers (and chunked trailers).
//!
//! The rules are httparse's with its default settings (the crate the proxy
//! used before, and what the differential test holds this to): a bare LF
//! ends a line as CRLF does, empty lines before the start line are skipped,
//! no whitespace before a field's colon, no obsolete line folding, a
//! value's leading and trailing blanks are not part of it.
//!
//! Why our own: a value (most of a head's bytes) is checked eight bytes a
//! step, in safe code, and the caller may name the field it expects at a
//! line (the name the connection's last head had there, already checked):
//! when the line starts with it and a colon, its bytes need no second
//! look. A caller takes each field in as it is read, where httparse fills
//! an array first (`cargo bench -p pp-h1` compares the two).

use std::ops::Range;

/// Why no head (or no field line) came of the bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// A valid beginning: more bytes are needed.
    Partial,
    /// Not a head, and what is wrong with it.
    Malformed(&'static str),
}

pub type Scan<T> = Result<T, Stop>;

/// A request's start line: where its method and target are, and its
/// version's minor digit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestLine {
    pub method: Range<usize>,
    pub target: Range<usize>,
    pub minor: u8,
    /// Where the field lines start.
    pub fields: usize,
}

/// An answer's start line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusLine {
    pub code: u16,
    pub minor: u8,
    /// Where the field lines start.
    pub fields: usize,
}

/// One field line: where its name, its value (blanks left out) and the
/// whole line are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Line {
    start: usize,
    colon: usize,
    value_start: usize,
    value_end: usize,
    /// Past the line's end (its CRLF, or a bare LF).
    end: usize,
    crlf: bool,
    /// The name is the one the caller expected here.
    pub hinted: bool,
}

impl Line {
    pub fn name<'a>(&self, buf: &'a [u8]) -> &'a [u8] {
        &buf[self.start..self.colon]
    }

    pub fn value<'a>(&self, buf: &'a [u8]) -> &'a [u8] {
        &buf[self.value_start..self.value_end]
    }

    pub fn value_range(&self) -> Range<usize> {
        self.value_start..self.value_end
    }

    /// The whole line, trailing blanks and CRLF with it; `None` for a line
    /// ended by a bare LF, which is not passed on as it came.
    pub fn whole(&self) -> Option<Range<usize>> {
        self.crlf.then_some(self.start..self.end)
    }
}

/// The field lines of a head (or a trailer section), read one at a time.
#[derive(Debug)]
pub struct Fields<'a> {
    buf: &'a [u8],
    at: usize,
}

impl<'a> Fields<'a> {
    /// Field lines starting at `at` in `buf`.
    pub fn new(buf: &'a [u8], at: usize) -> Self {
        Fields { buf, at }
    }

    /// Where reading has got to: past the empty line once `next` has
    /// returned `None`, so the head's length.
    pub fn end(&self) -> usize {
        self.at
    }

    /// The next field line, or `None` at the empty line that ends the
    /// section. `hint` is the name expected here (bytes already found
    /// valid), or empty.
    pub fn next(&mut self, hint: &[u8]) -> Scan<Option<Line>> {
        let buf = self.buf;
        let start = self.at;
        match buf.get(start) {
            None => return Err(Stop::Partial),
            Some(b'\r') => {
                self.at = newline(buf, start, "a CR without LF ends the head")?;
                return Ok(None);
            }
            Some(b'\n') => {
                self.at = start + 1;
                return Ok(None);
            }
            Some(_) => {}
        }
        let hinted = !hint.is_empty()
            && buf.get(start + hint.len()) == Some(&b':')
            && same(&buf[start..start + hint.len()], hint);
        let colon = if hinted {
            start + hint.len()
        } else {
            let i = token_end(buf, start);
            match buf.get(i) {
                None => return Err(Stop::Partial),
                Some(b':') if i > start => i,
                Some(_) => return Err(Stop::Malformed("invalid header name")),
            }
        };
        let mut value_start = colon + 1;
        while matches!(buf.get(value_start), Some(b' ' | b'\t')) {
            value_start += 1;
        }
        let stop = value_end(buf, value_start);
        let (end, crlf) = match buf.get(stop) {
            None => return Err(Stop::Partial),
            Some(b'\r') => (newline(buf, stop, "invalid header value")?, true),
            Some(b'\n') => (stop + 1, false),
            Some(_) => return Err(Stop::Malformed("invalid header value")),
        };
        let mut value_end = stop;
        while value_end > value_start && matches!(buf[value_end - 1], b' ' | b'\t') {
            value_end -= 1;
        }
        self.at = end;
        Ok(Some(Line {
            start,
            colon,
            value_start,
            value_end,
            end,
            crlf,
            hinted,
        }))
    }
}

/// Reads a request's start line (`method SP target SP HTTP/1.x`).
pub fn request_line(buf: &[u8]) -> Scan<RequestLine> {
    let m0 = skip_empty_lines(buf)?;
    let m1 = token_end(buf, m0);
    match buf.get(m1) {
        None => return Err(Stop::Partial),
        Some(b' ') if m1 > m0 => {}
        Some(_) => return Err(Stop::Malformed("invalid method")),
    }
    let t0 = m1 + 1;
    let t1 = target_end(buf, t0);
    match buf.get(t1) {
        None => return Err(Stop::Partial),
        Some(b' ') if t1 > t0 => {}
        Some(_) => return Err(Stop::Malformed("invalid request target")),
    }
    let target = &buf[t0..t1];
    if !target.is_ascii() && std::str::from_utf8(target).is_err() {
        return Err(Stop::Malformed("invalid request target"));
    }
    let minor = version(buf, t1 + 1)?;
    let fields = newline(buf, t1 + 9, "no line end after the version")?;
    Ok(RequestLine {
        method: m0..m1,
        target: t0..t1,
        minor,
        fields,
    })
}

/// Reads an answer's start line (`HTTP/1.x SP code [SP reason]`).
pub fn status_line(buf: &[u8]) -> Scan<StatusLine> {
    const BAD: Stop = Stop::Malformed("invalid status line");
    let v = skip_empty_lines(buf)?;
    let minor = version(buf, v)?;
    match buf.get(v + 8) {
        None => return Err(Stop::Partial),
        Some(b' ') => {}
        Some(_) => return Err(BAD),
    }
    let mut code = 0u16;
    for i in v + 9..v + 12 {
        match buf.get(i) {
            None => return Err(Stop::Partial),
            Some(d @ b'0'..=b'9') => code = code * 10 + u16::from(d - b'0'),
            Some(_) => return Err(BAD),
        }
    }
    let after = v + 12;
    let fields = match buf.get(after) {
        None => return Err(Stop::Partial),
        Some(b' ') => {
            // The reason: tab, space, visible and obs-text bytes, which is
            // a value's set.
            let stop = value_end(buf, after + 1);
            match buf.get(stop) {
                None => return Err(Stop::Partial),
                Some(b'\r') => newline(buf, stop, "invalid status line")?,
                Some(b'\n') => stop + 1,
                Some(_) => return Err(BAD),
            }
        }
        Some(b'\r') => newline(buf, after, "invalid status line")?,
        Some(b'\n') => after + 1,
        Some(_) => return Err(BAD),
    };
    Ok(StatusLine {
        code,
        minor,
        fields,
    })
}

/// Past the empty lines a start line may follow (RFC 9112 §2.2).
fn skip_empty_lines(buf: &[u8]) -> Scan<usize> {
    let mut i = 0;
    loop {
        match buf.get(i) {
            None => return Err(Stop::Partial),
            Some(b'\r') => i = newline(buf, i, "a CR without LF before the start line")?,
            Some(b'\n') => i += 1,
            Some(_) => return Ok(i),
        }
    }
}

/// `HTTP/1.0` or `HTTP/1.1` at `at`: the minor digit. A shorter start of
/// it is partial, anything else malformed.
fn version(buf: &[u8], at: usize) -> Scan<u8> {
    const BAD: Stop = Stop::Malformed("not HTTP/1.0 or HTTP/1.1");
    let rest = buf.get(at..).unwrap_or_default();
    match rest.first_chunk::<8>() {
        Some(b"HTTP/1.1") => Ok(1),
        Some(b"HTTP/1.0") => Ok(0),
        Some(_) => Err(BAD),
        None if b"HTTP/1.".starts_with(&rest[..rest.len().min(7)]) => Err(Stop::Partial),
        None => Err(BAD),
    }
}

/// Past the CRLF (or bare LF) at `at`.
fn newline(buf: &[u8], at: usize, why: &'static str) -> Scan<usize> {
    match buf.get(at) {
        None => Err(Stop::Partial),
        Some(b'\n') => Ok(at + 1),
        Some(b'\r') => match buf.get(at + 1) {
            None => Err(Stop::Partial),
            Some(b'\n') => Ok(at + 2),
            Some(_) => Err(Stop::Malformed(why)),
        },
        Some(_) => Err(Stop::Malformed(why)),
    }
}

/// RFC 9110 §5.6.2's `tchar`: what a method and a field name are made of.
static TCHAR: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        t[b] = matches!(b as u8,
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9'
            | b'!' | b'#' | b'$' | b'%' | b'&' | b'\'' | b'*' | b'+'
            | b'-' | b'.' | b'^' | b'_' | b'`' | b'|' | b'~');
        b += 1;
    }
    t
};

/// The first byte at or past `at` that is no `tchar` (or the end).
fn token_end(buf: &[u8], at: usize) -> usize {
    let mut i = at;
    while i < buf.len() && TCHAR[usize::from(buf[i])] {
        i += 1;
    }
    i
}

const ONES: u64 = u64::from_le_bytes([0x01; 8]);
const HIGHS: u64 = u64::from_le_bytes([0x80; 8]);

/// The bytes of `w` below `n` (`n` ≤ 0x80), each marked by its high bit.
/// A borrow can mark a byte above (later than) a marked one falsely,
/// never one before it, so the lowest mark is exact.
const fn below(w: u64, n: u8) -> u64 {
    w.wrapping_sub(ONES * n as u64) & !w & HIGHS
}

/// The bytes of `w` equal to `b`, marked as in [`below`].
const fn equal(w: u64, b: u8) -> u64 {
    below(w ^ (ONES * b as u64), 1)
}

/// Whether two slices of the same length hold the same bytes: a name is
/// a few words long, and two overlapping loads compare it where a call
/// to `memcmp` would cost more than the comparison.
#[inline]
fn same(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    if n < 4 {
        return a == b;
    }
    let word = |s: &[u8], at: usize| -> u64 {
        match s.get(at..).and_then(<[u8]>::first_chunk::<8>) {
            Some(w) => u64::from_le_bytes(*w),
            None => 0,
        }
    };
    let half = |s: &[u8], at: usize| -> u32 {
        match s.get(at..).and_then(<[u8]>::first_chunk::<4>) {
            Some(w) => u32::from_le_bytes(*w),
            None => 0,
        }
    };
    if n <= 8 {
        return half(a, 0) == half(b, 0) && half(a, n - 4) == half(b, n - 4);
    }
    let mut i = 0;
    while i + 8 < n {
        if word(a, i) != word(b, i) {
            return false;
        }
        i += 8;
    }
    word(a, n - 8) == word(b, n - 8)
}

/// The first byte at or past `at` that a field value (or a reason) may
/// not hold: a control other than tab, or DEL (RFC 9110 §5.5); CR and LF
/// among them, so this is where the line ends when it is valid.
fn value_end(buf: &[u8], at: usize) -> usize {
    let mut i = at;
    while let Some(w) = buf.get(i..).and_then(<[u8]>::first_chunk::<8>) {
        let w = u64::from_le_bytes(*w);
        let marks = below(w, 0x20) | equal(w, 0x7f);
        if marks == 0 {
            i += 8;
            continue;
        }
        let j = i + (marks.trailing_zeros() / 8) as usize;
        if buf[j] != b'\t' {
            return j;
        }
        i = j + 1;
    }
    while i < buf.len() && (buf[i] == b'\t' || (buf[i] >= 0x20 && buf[i] != 0x7f)) {
        i += 1;
    }
    i
}

/// The first byte at or past `at` that a request target may not hold
/// (controls, space, DEL): where a valid one ends.
fn target_end(buf: &[u8], at: usize) -> usize {
    let mut i = at;
    while let Some(w) = buf.get(i..).and_then(<[u8]>::first_chunk::<8>) {
        let w = u64::from_le_bytes(*w);
        let marks = below(w, 0x21) | equal(w, 0x7f);
        if marks != 0 {
            return i + (marks.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while i < buf.len() && buf[i] > 0x20 && buf[i] != 0x7f {
        i += 1;
    }
    i
}

#[cfg(test)]
mod tests;
