//! What the server sends on a stream: the answer's head, its body as
//! the client's windows allow, its trailers; and the connection's own
//! resets, close and pings.

use http::HeaderMap;

use super::{Connection, Phase};
use crate::frame::{self, Reason};
use crate::hpack::{encode_field, encode_status};

impl Connection {
    /// Writes an answer's head. `false`: the stream is gone (reset).
    pub fn send_headers(
        &mut self,
        stream: u32,
        status: u16,
        headers: &HeaderMap,
        end_stream: bool,
    ) -> bool {
        if !self.streams.get(&stream).is_some_and(|s| s.send_open) {
            return false;
        }
        self.scratch.clear();
        encode_status(&mut self.scratch, status);
        encode_map(&mut self.scratch, headers);
        self.write_block(stream, end_stream);
        if end_stream {
            self.end_send(stream);
        }
        true
    }

    /// Writes an answer's trailers, which end it. `false`: the stream is
    /// gone.
    pub fn send_trailers(&mut self, stream: u32, trailers: &HeaderMap) -> bool {
        if !self.streams.get(&stream).is_some_and(|s| s.send_open) {
            return false;
        }
        self.scratch.clear();
        encode_map(&mut self.scratch, trailers);
        self.write_block(stream, true);
        self.end_send(stream);
        true
    }

    /// Writes the block in `scratch` as the stream's `HEADERS` (and
    /// `CONTINUATION`s, by the client's frame size).
    pub(super) fn write_block(&mut self, stream: u32, end_stream: bool) {
        let max_frame = self.peer.max_frame_size as usize;
        frame::write_headers(&mut self.out, stream, &self.scratch, end_stream, max_frame);
    }

    /// Body bytes the windows let a stream send now.
    #[must_use]
    pub fn send_capacity(&self, stream: u32) -> usize {
        match self.streams.get(&stream) {
            Some(s) if s.send_open => {
                usize::try_from(s.send_window.min(self.conn_send_window).max(0)).unwrap_or(0)
            }
            _ => 0,
        }
    }

    /// Writes as much of `data` as the windows allow, in frames of the
    /// client's largest size, and returns how much that was. The stream
    /// ends with the last byte when `end_stream` and all of it fit (an
    /// empty `data` with `end_stream` just ends it).
    pub fn send_data(&mut self, stream: u32, data: &[u8], end_stream: bool) -> usize {
        if !self.streams.get(&stream).is_some_and(|s| s.send_open) {
            return 0;
        }
        let n = self.send_capacity(stream).min(data.len());
        let max_frame = self.peer.max_frame_size as usize;
        let ends = end_stream && n == data.len();
        if n == 0 {
            if ends {
                frame::write_data_head(&mut self.out, stream, 0, true);
                self.end_send(stream);
            }
            return 0;
        }
        let mut chunks = data[..n].chunks(max_frame).peekable();
        while let Some(chunk) = chunks.next() {
            let last = chunks.peek().is_none();
            frame::write_data_head(&mut self.out, stream, chunk.len(), ends && last);
            self.out.extend_from_slice(chunk);
        }
        self.conn_send_window -= n as i64;
        if let Some(s) = self.streams.get_mut(&stream) {
            s.send_window -= n as i64;
        }
        if ends {
            self.end_send(stream);
        }
        n
    }

    fn end_send(&mut self, stream: u32) {
        let Some(s) = self.streams.get_mut(&stream) else {
            return;
        };
        s.send_open = false;
        if s.recv_open {
            // The answer is whole before the request: the client is told
            // to stop sending it (§8.1).
            frame::write_rst_stream(&mut self.out, stream, Reason::NO_ERROR);
            s.recv_open = false;
        }
        self.maybe_close(stream);
    }

    /// Ends a stream from this side (its answer failed, say).
    pub fn reset(&mut self, stream: u32, reason: Reason) {
        if self.streams.remove(&stream).is_some() {
            frame::write_rst_stream(&mut self.out, stream, reason);
        }
    }

    /// Starts a graceful close: a `GOAWAY` naming the last stream opened,
    /// after which new streams are ignored and the open ones finish.
    pub fn go_away(&mut self) {
        if !self.going_away && self.phase != Phase::Failed {
            self.going_away = true;
            frame::write_go_away(&mut self.out, self.last_stream, Reason::NO_ERROR, &[]);
        }
    }

    /// Sends a `PING`; the client's answer comes as [`Event::PingAck`].
    pub fn ping(&mut self, data: [u8; 8]) {
        frame::write_ping(&mut self.out, false, data);
    }
}

/// `:status` alone, for an answer this layer makes itself.
pub(super) fn encode_status_only(dst: &mut Vec<u8>, status: u16) {
    dst.clear();
    encode_status(dst, status);
}

/// A map's fields, minus those HTTP/2 has no place for (§8.2.2).
fn encode_map(dst: &mut Vec<u8>, headers: &HeaderMap) {
    use http::header::{CONNECTION, TRANSFER_ENCODING, UPGRADE};
    for (name, value) in headers {
        if name == CONNECTION
            || name == TRANSFER_ENCODING
            || name == UPGRADE
            || name.as_str() == "keep-alive"
            || name.as_str() == "proxy-connection"
        {
            continue;
        }
        encode_field(
            dst,
            name.as_str().as_bytes(),
            value.as_bytes(),
            value.is_sensitive(),
        );
    }
}
