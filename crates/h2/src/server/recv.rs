//! What a client sends on its streams: header blocks and request bodies,
//! and the windows its body bytes use up and get back.

use bytes::Bytes;

use super::request::Collect;
use super::send::encode_status_only;
use super::{Connection, Continuing, Event, Stream, MAX_EMPTY_FRAMES};
use crate::frame::{self, flags, FrameError, Head, Reason, MAX_WINDOW};

impl Connection {
    pub(super) fn headers(
        &mut self,
        head: Head,
        payload: &[u8],
        events: &mut Vec<Event>,
    ) -> Result<(), FrameError> {
        if head.stream == 0 || head.stream.is_multiple_of(2) {
            return Err(FrameError::Connection(Reason::PROTOCOL_ERROR));
        }
        let (fragment, error) = match frame::headers_fragment(&head, payload) {
            Ok(f) => (f, None),
            Err(FrameError::Stream(reason, _)) => {
                // Self-dependency: the block is still decoded.
                let skip = payload.len().min(usize::from(head.has(flags::PADDED)) + 5);
                (&payload[skip..], Some(reason))
            }
            Err(e) => return Err(e),
        };
        self.block.clear();
        self.append_block(fragment)?;
        let c = Continuing {
            stream: head.stream,
            end_stream: head.has(flags::END_STREAM),
            error,
        };
        if head.has(flags::END_HEADERS) {
            self.end_block(c, events)
        } else {
            self.continuing = Some(c);
            Ok(())
        }
    }

    pub(super) fn continuation(
        &mut self,
        head: Head,
        payload: &[u8],
        events: &mut Vec<Event>,
    ) -> Result<(), FrameError> {
        let Some(c) = self.continuing else {
            return Err(FrameError::Connection(Reason::PROTOCOL_ERROR));
        };
        self.append_block(payload)?;
        if head.has(flags::END_HEADERS) {
            self.continuing = None;
            return self.end_block(c, events);
        }
        Ok(())
    }

    /// Gathers a block's fragments, up to twice the list's limit: HPACK
    /// seldom grows a list, and a block past that is a flood of
    /// `CONTINUATION`s.
    fn append_block(&mut self, fragment: &[u8]) -> Result<(), FrameError> {
        let max = 2 * self.config.max_header_list as usize;
        if self.block.len() + fragment.len() > max {
            return Err(FrameError::Connection(Reason::ENHANCE_YOUR_CALM));
        }
        self.block.extend_from_slice(fragment);
        Ok(())
    }

    fn end_block(&mut self, c: Continuing, events: &mut Vec<Event>) -> Result<(), FrameError> {
        let block = std::mem::take(&mut self.block);
        let res = self.decode_block(c, &block, events);
        self.block = block;
        res
    }

    fn decode_block(
        &mut self,
        c: Continuing,
        block: &[u8],
        events: &mut Vec<Event>,
    ) -> Result<(), FrameError> {
        let stream = c.stream;
        let max = self.config.max_header_list as usize;
        let compression = |_| FrameError::Connection(Reason::COMPRESSION_ERROR);
        if let Some(s) = self.streams.get_mut(&stream) {
            // Trailers: the stream's last frame from the client.
            let mut trailers = (self.config.new_map)();
            let mut bad = false;
            let size = self
                .decoder
                .decode(block, max, |f| {
                    match (
                        http::HeaderName::from_bytes(f.name),
                        http::HeaderValue::from_bytes(f.value),
                    ) {
                        (Ok(n), Ok(v))
                            if !f.name.starts_with(b":")
                                && !f.name.iter().any(u8::is_ascii_uppercase) =>
                        {
                            trailers.append(n, v);
                        }
                        _ => bad = true,
                    }
                })
                .map_err(compression)?;
            if !s.recv_open {
                return Err(FrameError::Stream(Reason::STREAM_CLOSED, stream));
            }
            let length_short = s.content_length.is_some_and(|n| n != s.received);
            if bad || !c.end_stream || size > max || length_short || c.error.is_some() {
                return Err(FrameError::Stream(
                    c.error.unwrap_or(Reason::PROTOCOL_ERROR),
                    stream,
                ));
            }
            s.recv_open = false;
            events.push(Event::Trailers { stream, trailers });
            self.maybe_close(stream);
            return Ok(());
        }
        let mut collect = Collect::new((self.config.new_map)());
        let size = self
            .decoder
            .decode(block, max, |f| collect.field(f))
            .map_err(compression)?;
        if stream <= self.last_stream {
            // A closed stream's: the client cannot open it again.
            return Err(FrameError::Connection(Reason::STREAM_CLOSED));
        }
        self.last_stream = stream;
        if self.going_away {
            // Past our GOAWAY's last stream: ignored (§6.8).
            return Ok(());
        }
        if let Some(reason) = c.error {
            return Err(FrameError::Stream(reason, stream));
        }
        if size > max {
            // Too large to pass on: answered here (§10.5.1), 431.
            encode_status_only(&mut self.scratch, 431);
            self.write_block(stream, true);
            if !c.end_stream {
                frame::write_rst_stream(&mut self.out, stream, Reason::NO_ERROR);
            }
            return Ok(());
        }
        if self.streams.len() >= self.config.max_concurrent_streams as usize {
            return Err(FrameError::Stream(Reason::REFUSED_STREAM, stream));
        }
        let content_length = collect.content_length;
        let request = collect
            .finish(c.end_stream)
            .map_err(|_| FrameError::Stream(Reason::PROTOCOL_ERROR, stream))?;
        self.streams.insert(
            stream,
            Stream {
                recv_open: !c.end_stream,
                send_open: true,
                send_window: i64::from(self.peer.initial_window_size),
                recv_window: i64::from(self.config.stream_window.min(MAX_WINDOW)),
                unreleased: 0,
                content_length,
                received: 0,
            },
        );
        events.push(Event::Request {
            stream,
            request,
            end_stream: c.end_stream,
            content_length,
        });
        Ok(())
    }

    pub(super) fn data(
        &mut self,
        head: Head,
        payload: &Bytes,
        events: &mut Vec<Event>,
    ) -> Result<(), FrameError> {
        let stream = head.stream;
        if stream == 0 {
            return Err(FrameError::Connection(Reason::PROTOCOL_ERROR));
        }
        let len = payload.len();
        // The whole frame, padding too, counts against the windows (§6.9.1).
        if len as i64 > self.conn_recv_window {
            return Err(FrameError::Connection(Reason::FLOW_CONTROL_ERROR));
        }
        self.conn_recv_window -= len as i64;
        let data = frame::unpad(&head, payload)?;
        let start = data.as_ptr() as usize - payload.as_ptr() as usize;
        let data = payload.slice(start..start + data.len());
        let padding = len - data.len();
        let end_stream = head.has(flags::END_STREAM);
        if data.is_empty() && !end_stream {
            self.empty_frames += 1;
            if self.empty_frames > MAX_EMPTY_FRAMES {
                return Err(FrameError::Connection(Reason::ENHANCE_YOUR_CALM));
            }
        }
        let Some(s) = self.streams.get_mut(&stream) else {
            if self.is_idle(stream) {
                return Err(FrameError::Connection(Reason::PROTOCOL_ERROR));
            }
            self.release_connection(len);
            return Err(FrameError::Stream(Reason::STREAM_CLOSED, stream));
        };
        if !s.recv_open {
            self.release_connection(len);
            return Err(FrameError::Stream(Reason::STREAM_CLOSED, stream));
        }
        if len as i64 > s.recv_window {
            self.release_connection(len);
            return Err(FrameError::Stream(Reason::FLOW_CONTROL_ERROR, stream));
        }
        s.recv_window -= len as i64;
        s.received += data.len() as u64;
        if let Some(n) = s.content_length {
            if s.received > n || (end_stream && s.received != n) {
                self.release_connection(len);
                return Err(FrameError::Stream(Reason::PROTOCOL_ERROR, stream));
            }
        }
        if end_stream {
            s.recv_open = false;
        }
        if padding > 0 {
            self.release(stream, padding);
        }
        if !data.is_empty() || end_stream {
            events.push(Event::Data {
                stream,
                data,
                end_stream,
            });
        }
        if end_stream {
            self.maybe_close(stream);
        }
        Ok(())
    }

    /// Gives `n` bytes of a stream's request body back to the client's
    /// windows: the driver has passed them on. Updates go out once half a
    /// window is owed, not for every frame.
    pub fn release(&mut self, stream: u32, n: usize) {
        if let Some(s) = self.streams.get_mut(&stream) {
            if s.recv_open {
                s.unreleased = s
                    .unreleased
                    .saturating_add(u32::try_from(n).unwrap_or(u32::MAX));
                if s.unreleased >= self.config.stream_window / 2 {
                    frame::write_window_update(&mut self.out, stream, s.unreleased);
                    s.recv_window += i64::from(s.unreleased);
                    s.unreleased = 0;
                }
            }
        }
        self.release_connection(n);
    }

    fn release_connection(&mut self, n: usize) {
        self.conn_unreleased = self
            .conn_unreleased
            .saturating_add(u32::try_from(n).unwrap_or(u32::MAX));
        if self.conn_unreleased >= self.config.connection_window / 2 {
            frame::write_window_update(&mut self.out, 0, self.conn_unreleased);
            self.conn_recv_window += i64::from(self.conn_unreleased);
            self.conn_unreleased = 0;
        }
    }
}
