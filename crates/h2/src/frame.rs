//! HTTP/2 frames (RFC 9113 §4 and §6): the nine-byte head, each type's
//! payload as a server reads it, and the frames a server writes.
//!
//! Parsing checks what the frame alone can tell (lengths, padding, zero
//! increments) and says whether a fault is the connection's or one
//! stream's, as §5.4 asks; what needs the connection's state (which
//! streams are open, the windows) is the connection's to check.

mod settings;

pub use settings::{
    Settings, SETTING_ENABLE_CONNECT_PROTOCOL, SETTING_ENABLE_PUSH, SETTING_HEADER_TABLE_SIZE,
    SETTING_INITIAL_WINDOW_SIZE, SETTING_MAX_CONCURRENT_STREAMS, SETTING_MAX_FRAME_SIZE,
    SETTING_MAX_HEADER_LIST_SIZE,
};

/// What a client sends first (§3.4).
pub const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// A frame's head.
pub const HEAD_LEN: usize = 9;

/// `SETTINGS_MAX_FRAME_SIZE` until the peer says otherwise, and the least
/// it may say (§6.5.2).
pub const DEFAULT_MAX_FRAME: u32 = 16_384;

/// The most `SETTINGS_MAX_FRAME_SIZE` may say.
pub const MAX_FRAME_LIMIT: u32 = (1 << 24) - 1;

/// A flow-control window's size until settings or updates change it.
pub const DEFAULT_WINDOW: u32 = 65_535;

/// The largest a flow-control window may grow (§6.9.1).
pub const MAX_WINDOW: u32 = (1 << 31) - 1;

/// Frame types (§6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Data,
    Headers,
    Priority,
    RstStream,
    Settings,
    PushPromise,
    Ping,
    GoAway,
    WindowUpdate,
    Continuation,
}

impl Kind {
    /// `None` for a type this side does not know, which is ignored
    /// (§4.1), except inside a header block (§6.10).
    #[must_use]
    pub fn from_u8(t: u8) -> Option<Self> {
        Some(match t {
            0 => Self::Data,
            1 => Self::Headers,
            2 => Self::Priority,
            3 => Self::RstStream,
            4 => Self::Settings,
            5 => Self::PushPromise,
            6 => Self::Ping,
            7 => Self::GoAway,
            8 => Self::WindowUpdate,
            9 => Self::Continuation,
            _ => return None,
        })
    }

    #[must_use]
    pub fn code(self) -> u8 {
        match self {
            Self::Data => 0,
            Self::Headers => 1,
            Self::Priority => 2,
            Self::RstStream => 3,
            Self::Settings => 4,
            Self::PushPromise => 5,
            Self::Ping => 6,
            Self::GoAway => 7,
            Self::WindowUpdate => 8,
            Self::Continuation => 9,
        }
    }
}

/// Frame flags; which apply depends on the type.
pub mod flags {
    pub const END_STREAM: u8 = 0x1;
    pub const ACK: u8 = 0x1;
    pub const END_HEADERS: u8 = 0x4;
    pub const PADDED: u8 = 0x8;
    pub const PRIORITY: u8 = 0x20;
}

/// An error code (§7), sent in `RST_STREAM` and `GOAWAY`. Codes this
/// side does not know are kept as sent and mean nothing special.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reason(pub u32);

impl Reason {
    pub const NO_ERROR: Self = Self(0x0);
    pub const PROTOCOL_ERROR: Self = Self(0x1);
    pub const INTERNAL_ERROR: Self = Self(0x2);
    pub const FLOW_CONTROL_ERROR: Self = Self(0x3);
    pub const SETTINGS_TIMEOUT: Self = Self(0x4);
    pub const STREAM_CLOSED: Self = Self(0x5);
    pub const FRAME_SIZE_ERROR: Self = Self(0x6);
    pub const REFUSED_STREAM: Self = Self(0x7);
    pub const CANCEL: Self = Self(0x8);
    pub const COMPRESSION_ERROR: Self = Self(0x9);
    pub const CONNECT_ERROR: Self = Self(0xa);
    pub const ENHANCE_YOUR_CALM: Self = Self(0xb);
    pub const INADEQUATE_SECURITY: Self = Self(0xc);
    pub const HTTP_1_1_REQUIRED: Self = Self(0xd);

    /// The code's name in §7, for logs.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self.0 {
            0x0 => "NO_ERROR",
            0x1 => "PROTOCOL_ERROR",
            0x2 => "INTERNAL_ERROR",
            0x3 => "FLOW_CONTROL_ERROR",
            0x4 => "SETTINGS_TIMEOUT",
            0x5 => "STREAM_CLOSED",
            0x6 => "FRAME_SIZE_ERROR",
            0x7 => "REFUSED_STREAM",
            0x8 => "CANCEL",
            0x9 => "COMPRESSION_ERROR",
            0xa => "CONNECT_ERROR",
            0xb => "ENHANCE_YOUR_CALM",
            0xc => "INADEQUATE_SECURITY",
            0xd => "HTTP_1_1_REQUIRED",
            _ => "unknown",
        }
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({:#x})", self.name(), self.0)
    }
}

/// A frame that breaks the protocol: the whole connection's fault (a
/// `GOAWAY` follows) or one stream's (an `RST_STREAM`), §5.4.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("connection error {0}")]
    Connection(Reason),
    #[error("stream {1} error {0}")]
    Stream(Reason, u32),
}

/// A frame's head (§4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    pub len: u32,
    pub kind: u8,
    pub flags: u8,
    /// The stream identifier, its reserved bit dropped.
    pub stream: u32,
}

impl Head {
    #[must_use]
    pub fn parse(b: &[u8; HEAD_LEN]) -> Self {
        Self {
            len: u32::from_be_bytes([0, b[0], b[1], b[2]]),
            kind: b[3],
            flags: b[4],
            stream: u32::from_be_bytes([b[5], b[6], b[7], b[8]]) & MAX_WINDOW,
        }
    }

    #[must_use]
    pub fn new(kind: Kind, flags: u8, stream: u32, len: usize) -> Self {
        debug_assert!(len <= MAX_FRAME_LIMIT as usize);
        Self {
            len: len as u32,
            kind: kind.code(),
            flags,
            stream,
        }
    }

    pub fn write(&self, dst: &mut Vec<u8>) {
        let len = self.len.to_be_bytes();
        dst.extend_from_slice(&[len[1], len[2], len[3], self.kind, self.flags]);
        dst.extend_from_slice(&(self.stream & MAX_WINDOW).to_be_bytes());
    }

    #[must_use]
    pub fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }
}

fn connection(reason: Reason) -> FrameError {
    FrameError::Connection(reason)
}

/// A `DATA` or `HEADERS` payload without its padding (§6.1, §6.2).
///
/// # Errors
/// The padding's length is not less than the payload's: a connection
/// `PROTOCOL_ERROR`.
pub fn unpad<'a>(head: &Head, payload: &'a [u8]) -> Result<&'a [u8], FrameError> {
    if !head.has(flags::PADDED) {
        return Ok(payload);
    }
    let (&pad, rest) = payload
        .split_first()
        .ok_or(connection(Reason::PROTOCOL_ERROR))?;
    let keep = rest
        .len()
        .checked_sub(usize::from(pad))
        .ok_or(connection(Reason::PROTOCOL_ERROR))?;
    Ok(&rest[..keep])
}

/// A `HEADERS` frame's header block fragment, its padding and priority
/// fields dropped (priority signals are deprecated, §5.3.2, but a stream
/// made to depend on itself is still an error, §5.3.1).
///
/// # Errors
/// Bad padding (connection `PROTOCOL_ERROR`), a priority field cut short
/// (connection `FRAME_SIZE_ERROR`), a self-dependency (stream
/// `PROTOCOL_ERROR`).
pub fn headers_fragment<'a>(head: &Head, payload: &'a [u8]) -> Result<&'a [u8], FrameError> {
    let rest = unpad(head, payload)?;
    if !head.has(flags::PRIORITY) {
        return Ok(rest);
    }
    let Some((priority, fragment)) = rest.split_first_chunk::<5>() else {
        return Err(connection(Reason::FRAME_SIZE_ERROR));
    };
    let depends_on =
        u32::from_be_bytes([priority[0], priority[1], priority[2], priority[3]]) & MAX_WINDOW;
    if depends_on == head.stream {
        return Err(FrameError::Stream(Reason::PROTOCOL_ERROR, head.stream));
    }
    Ok(fragment)
}

/// Checks a `PRIORITY` frame (§6.3), which is otherwise ignored.
///
/// # Errors
/// Stream 0 (connection `PROTOCOL_ERROR`), a length other than 5 or a
/// self-dependency (stream errors).
pub fn priority(head: &Head, payload: &[u8]) -> Result<(), FrameError> {
    if head.stream == 0 {
        return Err(connection(Reason::PROTOCOL_ERROR));
    }
    let Ok(p) = <[u8; 5]>::try_from(payload) else {
        return Err(FrameError::Stream(Reason::FRAME_SIZE_ERROR, head.stream));
    };
    if u32::from_be_bytes([p[0], p[1], p[2], p[3]]) & MAX_WINDOW == head.stream {
        return Err(FrameError::Stream(Reason::PROTOCOL_ERROR, head.stream));
    }
    Ok(())
}

/// An `RST_STREAM`'s error code (§6.4).
///
/// # Errors
/// Stream 0 (`PROTOCOL_ERROR`) or a length other than 4
/// (`FRAME_SIZE_ERROR`), both the connection's.
pub fn rst_stream(head: &Head, payload: &[u8]) -> Result<Reason, FrameError> {
    if head.stream == 0 {
        return Err(connection(Reason::PROTOCOL_ERROR));
    }
    let code = <[u8; 4]>::try_from(payload).map_err(|_| connection(Reason::FRAME_SIZE_ERROR))?;
    Ok(Reason(u32::from_be_bytes(code)))
}

/// A `PING`'s opaque data (§6.7).
///
/// # Errors
/// A stream other than 0 (`PROTOCOL_ERROR`) or a length other than 8
/// (`FRAME_SIZE_ERROR`), both the connection's.
pub fn ping(head: &Head, payload: &[u8]) -> Result<[u8; 8], FrameError> {
    if head.stream != 0 {
        return Err(connection(Reason::PROTOCOL_ERROR));
    }
    <[u8; 8]>::try_from(payload).map_err(|_| connection(Reason::FRAME_SIZE_ERROR))
}

/// A `GOAWAY` (§6.8): the last stream the peer processed, its code and
/// debug data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GoAway<'a> {
    pub last_stream: u32,
    pub reason: Reason,
    pub debug: &'a [u8],
}

/// Reads a `GOAWAY` (§6.8).
///
/// # Errors
/// A stream other than 0 (`PROTOCOL_ERROR`) or fewer than 8 bytes
/// (`FRAME_SIZE_ERROR`), both the connection's.
pub fn go_away<'a>(head: &Head, payload: &'a [u8]) -> Result<GoAway<'a>, FrameError> {
    if head.stream != 0 {
        return Err(connection(Reason::PROTOCOL_ERROR));
    }
    let Some((fixed, debug)) = payload.split_first_chunk::<8>() else {
        return Err(connection(Reason::FRAME_SIZE_ERROR));
    };
    Ok(GoAway {
        last_stream: u32::from_be_bytes([fixed[0], fixed[1], fixed[2], fixed[3]]) & MAX_WINDOW,
        reason: Reason(u32::from_be_bytes([fixed[4], fixed[5], fixed[6], fixed[7]])),
        debug,
    })
}

/// A `WINDOW_UPDATE`'s increment (§6.9), 1 to 2³¹ − 1.
///
/// # Errors
/// A length other than 4 (connection `FRAME_SIZE_ERROR`); an increment
/// of 0 (`PROTOCOL_ERROR`, the stream's when on a stream).
pub fn window_update(head: &Head, payload: &[u8]) -> Result<u32, FrameError> {
    let b = <[u8; 4]>::try_from(payload).map_err(|_| connection(Reason::FRAME_SIZE_ERROR))?;
    match u32::from_be_bytes(b) & MAX_WINDOW {
        0 if head.stream == 0 => Err(connection(Reason::PROTOCOL_ERROR)),
        0 => Err(FrameError::Stream(Reason::PROTOCOL_ERROR, head.stream)),
        n => Ok(n),
    }
}

/// Appends a `SETTINGS` frame carrying `values` as (identifier, value).
pub fn write_settings(dst: &mut Vec<u8>, values: &[(u16, u32)]) {
    Head::new(Kind::Settings, 0, 0, values.len() * 6).write(dst);
    for &(id, value) in values {
        dst.extend_from_slice(&id.to_be_bytes());
        dst.extend_from_slice(&value.to_be_bytes());
    }
}

/// Appends the acknowledgement of the peer's `SETTINGS`.
pub fn write_settings_ack(dst: &mut Vec<u8>) {
    Head::new(Kind::Settings, flags::ACK, 0, 0).write(dst);
}

/// Appends a `PING`, or its acknowledgement when `ack`.
pub fn write_ping(dst: &mut Vec<u8>, ack: bool, data: [u8; 8]) {
    Head::new(Kind::Ping, if ack { flags::ACK } else { 0 }, 0, 8).write(dst);
    dst.extend_from_slice(&data);
}

/// Appends a `GOAWAY`.
pub fn write_go_away(dst: &mut Vec<u8>, last_stream: u32, reason: Reason, debug: &[u8]) {
    Head::new(Kind::GoAway, 0, 0, 8 + debug.len()).write(dst);
    dst.extend_from_slice(&(last_stream & MAX_WINDOW).to_be_bytes());
    dst.extend_from_slice(&reason.0.to_be_bytes());
    dst.extend_from_slice(debug);
}

/// Appends an `RST_STREAM`.
pub fn write_rst_stream(dst: &mut Vec<u8>, stream: u32, reason: Reason) {
    Head::new(Kind::RstStream, 0, stream, 4).write(dst);
    dst.extend_from_slice(&reason.0.to_be_bytes());
}

/// Appends a `WINDOW_UPDATE` (stream 0: the connection's window).
pub fn write_window_update(dst: &mut Vec<u8>, stream: u32, increment: u32) {
    debug_assert!((1..=MAX_WINDOW).contains(&increment));
    Head::new(Kind::WindowUpdate, 0, stream, 4).write(dst);
    dst.extend_from_slice(&increment.to_be_bytes());
}

/// Appends a header block as a `HEADERS` frame and as many
/// `CONTINUATION`s as `max_frame` (the peer's `SETTINGS_MAX_FRAME_SIZE`)
/// makes it need; `END_STREAM` on the `HEADERS` when the stream ends with
/// it (§8.1).
pub fn write_headers(
    dst: &mut Vec<u8>,
    stream: u32,
    block: &[u8],
    end_stream: bool,
    max_frame: usize,
) {
    let max_frame = max_frame.max(1);
    let mut chunks = block.chunks(max_frame);
    let first = chunks.next().unwrap_or(&[]);
    let mut flags = if end_stream { flags::END_STREAM } else { 0 };
    let mut rest = chunks.peekable();
    if rest.peek().is_none() {
        flags |= flags::END_HEADERS;
    }
    Head::new(Kind::Headers, flags, stream, first.len()).write(dst);
    dst.extend_from_slice(first);
    while let Some(chunk) = rest.next() {
        let last = rest.peek().is_none();
        let flags = if last { flags::END_HEADERS } else { 0 };
        Head::new(Kind::Continuation, flags, stream, chunk.len()).write(dst);
        dst.extend_from_slice(chunk);
    }
}

/// Appends a `DATA` frame's head; its `len` bytes of payload follow.
pub fn write_data_head(dst: &mut Vec<u8>, stream: u32, len: usize, end_stream: bool) {
    let flags = if end_stream { flags::END_STREAM } else { 0 };
    Head::new(Kind::Data, flags, stream, len).write(dst);
}

#[cfg(test)]
mod tests;
