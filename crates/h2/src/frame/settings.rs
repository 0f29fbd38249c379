//! `SETTINGS` (RFC 9113 §6.5).

use super::{
    flags, FrameError, Head, Reason, DEFAULT_MAX_FRAME, DEFAULT_WINDOW, MAX_FRAME_LIMIT, MAX_WINDOW,
};

pub const SETTING_HEADER_TABLE_SIZE: u16 = 0x1;
pub const SETTING_ENABLE_PUSH: u16 = 0x2;
pub const SETTING_MAX_CONCURRENT_STREAMS: u16 = 0x3;
pub const SETTING_INITIAL_WINDOW_SIZE: u16 = 0x4;
pub const SETTING_MAX_FRAME_SIZE: u16 = 0x5;
pub const SETTING_MAX_HEADER_LIST_SIZE: u16 = 0x6;
/// RFC 8441 §3: extended `CONNECT` (WebSocket over HTTP/2).
pub const SETTING_ENABLE_CONNECT_PROTOCOL: u16 = 0x8;

/// One side's settings as its `SETTINGS` frames leave them; the initial
/// values are §6.5.2's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    pub header_table_size: u32,
    pub enable_push: bool,
    /// `None`: no limit was sent.
    pub max_concurrent_streams: Option<u32>,
    pub initial_window_size: u32,
    pub max_frame_size: u32,
    /// `None`: no limit was sent.
    pub max_header_list_size: Option<u32>,
    pub enable_connect_protocol: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            header_table_size: 4096,
            enable_push: true,
            max_concurrent_streams: None,
            initial_window_size: DEFAULT_WINDOW,
            max_frame_size: DEFAULT_MAX_FRAME,
            max_header_list_size: None,
            enable_connect_protocol: false,
        }
    }
}

impl Settings {
    /// Applies a `SETTINGS` frame that is not an acknowledgement. Unknown
    /// identifiers are ignored (§6.5.2).
    ///
    /// # Errors
    /// All are the connection's: a stream other than 0 or a value out of
    /// range (`PROTOCOL_ERROR`), a length not a multiple of 6
    /// (`FRAME_SIZE_ERROR`), an initial window over 2³¹ − 1
    /// (`FLOW_CONTROL_ERROR`).
    pub fn apply(&mut self, head: &Head, payload: &[u8]) -> Result<(), FrameError> {
        let conn = FrameError::Connection;
        if head.stream != 0 {
            return Err(conn(Reason::PROTOCOL_ERROR));
        }
        if !payload.len().is_multiple_of(6) {
            return Err(conn(Reason::FRAME_SIZE_ERROR));
        }
        for setting in payload.chunks_exact(6) {
            let id = u16::from_be_bytes([setting[0], setting[1]]);
            let value = u32::from_be_bytes([setting[2], setting[3], setting[4], setting[5]]);
            match id {
                SETTING_HEADER_TABLE_SIZE => self.header_table_size = value,
                SETTING_ENABLE_PUSH => {
                    self.enable_push = flag(value).ok_or(conn(Reason::PROTOCOL_ERROR))?;
                }
                SETTING_MAX_CONCURRENT_STREAMS => self.max_concurrent_streams = Some(value),
                SETTING_INITIAL_WINDOW_SIZE => {
                    if value > MAX_WINDOW {
                        return Err(conn(Reason::FLOW_CONTROL_ERROR));
                    }
                    self.initial_window_size = value;
                }
                SETTING_MAX_FRAME_SIZE => {
                    if !(DEFAULT_MAX_FRAME..=MAX_FRAME_LIMIT).contains(&value) {
                        return Err(conn(Reason::PROTOCOL_ERROR));
                    }
                    self.max_frame_size = value;
                }
                SETTING_MAX_HEADER_LIST_SIZE => self.max_header_list_size = Some(value),
                SETTING_ENABLE_CONNECT_PROTOCOL => {
                    self.enable_connect_protocol =
                        flag(value).ok_or(conn(Reason::PROTOCOL_ERROR))?;
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Checks a `SETTINGS` acknowledgement (§6.5).
    ///
    /// # Errors
    /// A payload (`FRAME_SIZE_ERROR`) or a stream other than 0
    /// (`PROTOCOL_ERROR`), both the connection's.
    pub fn check_ack(head: &Head) -> Result<(), FrameError> {
        debug_assert!(head.has(flags::ACK));
        if head.stream != 0 {
            return Err(FrameError::Connection(Reason::PROTOCOL_ERROR));
        }
        if head.len != 0 {
            return Err(FrameError::Connection(Reason::FRAME_SIZE_ERROR));
        }
        Ok(())
    }
}

fn flag(value: u32) -> Option<bool> {
    match value {
        0 => Some(false),
        1 => Some(true),
        _ => None,
    }
}
