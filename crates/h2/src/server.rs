//! An HTTP/2 server connection (RFC 9113) as a state machine without
//! I/O: the driver hands it the bytes it read and writes the bytes it
//! leaves in its output; in between, [`Event`]s say what the client asked
//! and the `send_*` calls answer.
//!
//! What it keeps: the streams and their states (§5.1), both directions'
//! flow-control windows (§5.2, §6.9), the peer's settings, the HPACK
//! decoder, and the limits that keep a hostile client from costing more
//! than its share: concurrent streams, the header list and block sizes,
//! resets of open streams (the "rapid reset" attack) and empty frames.
//! What it leaves to the driver: timers, reading and writing, running a
//! request's work, and taking the body bytes it was given off its hands
//! ([`Connection::release`], which opens the windows again).

mod recv;
mod request;
mod send;

pub(crate) use request::regular_field;

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use bytes::{Buf, Bytes, BytesMut};
use http::{HeaderMap, Request};

use crate::frame::{
    self, flags, FrameError, Head, Kind, Reason, Settings, DEFAULT_MAX_FRAME, DEFAULT_WINDOW,
    HEAD_LEN, MAX_WINDOW, PREFACE,
};
use crate::hpack::{Decoder, DEFAULT_TABLE_SIZE};

/// A server's own limits, sent in its `SETTINGS` where the protocol has
/// a setting for them.
#[derive(Debug, Clone, Copy)]
pub struct Config {
    /// `SETTINGS_MAX_CONCURRENT_STREAMS`: a stream past it is refused.
    pub max_concurrent_streams: u32,
    /// `SETTINGS_INITIAL_WINDOW_SIZE`: request body bytes a stream may
    /// have in flight before the driver releases them.
    pub stream_window: u32,
    /// The same for the whole connection: the most request body a client
    /// can make the proxy hold.
    pub connection_window: u32,
    /// `SETTINGS_MAX_HEADER_LIST_SIZE`: a request over it is answered
    /// `431` here, without an event.
    pub max_header_list: u32,
    /// Resets of streams still being answered that a client may send
    /// before the connection is closed with `ENHANCE_YOUR_CALM`; each
    /// stream answered in full earns one back.
    pub max_resets: u32,
    /// Where a request's header map comes from: a server that keeps
    /// written maps for reuse hands one over here instead of a new one.
    pub new_map: fn() -> HeaderMap,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            max_concurrent_streams: 256,
            stream_window: 1 << 20,
            connection_window: 1 << 20,
            max_header_list: 64 << 10,
            max_resets: 256,
            new_map: HeaderMap::new,
        }
    }
}

/// What the client did, for the driver to act on.
#[derive(Debug)]
pub enum Event {
    /// A new request's head; `end_stream`: it has no body.
    Request {
        stream: u32,
        request: Request<()>,
        end_stream: bool,
        /// The request's `Content-Length`, checked against its `DATA`.
        content_length: Option<u64>,
    },
    /// Request body bytes. Each must be given back with
    /// [`Connection::release`] once passed on.
    Data {
        stream: u32,
        data: Bytes,
        end_stream: bool,
    },
    /// A request's trailers, which end it.
    Trailers { stream: u32, trailers: HeaderMap },
    /// The stream is gone: reset by the client, or by this side for a
    /// protocol error. Its work should be dropped.
    Reset { stream: u32, reason: Reason },
    /// Flow-control windows grew: answers waiting for room may go on.
    WindowOpened,
    /// The client answered a `PING`.
    PingAck([u8; 8]),
    /// The client will open no more streams.
    GoAway { last_stream: u32, reason: Reason },
}

/// The connection has failed; a `GOAWAY` naming the reason is in the
/// output, which the driver should write before closing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("HTTP/2 connection error {reason}: {why}")]
pub struct ConnError {
    pub reason: Reason,
    pub why: &'static str,
}

fn conn_err(reason: Reason, why: &'static str) -> ConnError {
    ConnError { reason, why }
}

#[derive(Debug)]
struct Stream {
    /// The client may still send on it (no `END_STREAM` yet).
    recv_open: bool,
    /// This side may still send on it.
    send_open: bool,
    send_window: i64,
    recv_window: i64,
    /// Bytes released by the driver and not yet given back to the client.
    unreleased: u32,
    content_length: Option<u64>,
    received: u64,
}

/// Stream identifiers hash by a multiply: they are small and distinct.
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8 | u64::from(b)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }
    fn write_u32(&mut self, n: u32) {
        self.0 = u64::from(n).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

type Streams = HashMap<u32, Stream, BuildHasherDefault<IdHasher>>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for the client's preface.
    Preface,
    /// The preface came; its `SETTINGS` must be the next frame (§3.4).
    Settings,
    Open,
    /// A connection error was sent: nothing more is read.
    Failed,
}

/// A header block whose `CONTINUATION`s are still coming.
#[derive(Debug, Clone, Copy)]
struct Continuing {
    stream: u32,
    end_stream: bool,
    /// A stream error found in the `HEADERS` frame, applied once the block
    /// is decoded (the table must stay in step).
    error: Option<Reason>,
}

/// Output room kept once it is written out: more is given back.
const OUT_KEEP: usize = 64 * 1024;

/// Zero-length `DATA` frames without `END_STREAM` a client may send
/// before it is told to stop: they cost work and carry nothing.
const MAX_EMPTY_FRAMES: u32 = 1024;

/// One HTTP/2 server connection's protocol state.
pub struct Connection {
    config: Config,
    phase: Phase,
    decoder: Decoder,
    peer: Settings,
    streams: Streams,
    /// The highest stream the client has opened.
    last_stream: u32,
    /// A graceful `GOAWAY` went out: streams opened after it are ignored.
    going_away: bool,
    conn_send_window: i64,
    conn_recv_window: i64,
    conn_unreleased: u32,
    continuing: Option<Continuing>,
    block: Vec<u8>,
    scratch: Vec<u8>,
    out: Vec<u8>,
    out_pos: usize,
    resets_left: u32,
    empty_frames: u32,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("phase", &self.phase)
            .field("streams", &self.streams.len())
            .field("last_stream", &self.last_stream)
            .finish_non_exhaustive()
    }
}

impl Connection {
    /// A connection whose `SETTINGS` (and the connection window's first
    /// update) are already in the output.
    #[must_use]
    pub fn new(config: Config) -> Self {
        let mut c = Self {
            config,
            phase: Phase::Preface,
            decoder: Decoder::new(DEFAULT_TABLE_SIZE),
            peer: Settings::default(),
            streams: Streams::default(),
            last_stream: 0,
            going_away: false,
            conn_send_window: i64::from(DEFAULT_WINDOW),
            conn_recv_window: i64::from(DEFAULT_WINDOW),
            conn_unreleased: 0,
            continuing: None,
            block: Vec::new(),
            scratch: Vec::new(),
            out: Vec::with_capacity(1024),
            out_pos: 0,
            resets_left: config.max_resets,
            empty_frames: 0,
        };
        frame::write_settings(
            &mut c.out,
            &[
                (
                    frame::SETTING_MAX_CONCURRENT_STREAMS,
                    config.max_concurrent_streams,
                ),
                (
                    frame::SETTING_INITIAL_WINDOW_SIZE,
                    config.stream_window.min(MAX_WINDOW),
                ),
                (frame::SETTING_MAX_HEADER_LIST_SIZE, config.max_header_list),
                (frame::SETTING_ENABLE_PUSH, 0),
            ],
        );
        let grow = config
            .connection_window
            .min(MAX_WINDOW)
            .saturating_sub(DEFAULT_WINDOW);
        if grow > 0 {
            frame::write_window_update(&mut c.out, 0, grow);
            c.conn_recv_window += i64::from(grow);
        }
        c
    }

    /// Bytes to write, oldest first.
    #[must_use]
    pub fn output(&self) -> &[u8] {
        &self.out[self.out_pos..]
    }

    /// Marks `n` bytes of [`Connection::output`] written.
    pub fn written(&mut self, n: usize) {
        self.out_pos = (self.out_pos + n).min(self.out.len());
        if self.out_pos == self.out.len() {
            self.out.clear();
            self.out_pos = 0;
            // A burst of large answers grew it: give the room back.
            self.out.shrink_to(OUT_KEEP);
        }
    }

    /// Lets the connection's buffers go while it is idle (no output
    /// pending): they are made again at its next frame.
    pub fn shrink(&mut self) {
        if self.out.is_empty() {
            self.out = Vec::new();
        }
        if self.continuing.is_none() {
            self.block = Vec::new();
        }
        self.scratch = Vec::new();
    }

    /// Streams open in either direction.
    #[must_use]
    pub fn open_streams(&self) -> usize {
        self.streams.len()
    }

    /// Reads every whole frame in `buf`, leaving a partial one there, and
    /// pushes what they mean onto `events`.
    ///
    /// # Errors
    /// A connection error: its `GOAWAY` is in the output, and nothing
    /// more should be read.
    pub fn receive(
        &mut self,
        buf: &mut BytesMut,
        events: &mut Vec<Event>,
    ) -> Result<(), ConnError> {
        let res = self.receive_frames(buf, events);
        if let Err(e) = res {
            if self.phase != Phase::Failed {
                self.phase = Phase::Failed;
                frame::write_go_away(&mut self.out, self.last_stream, e.reason, e.why.as_bytes());
            }
        }
        res
    }

    fn receive_frames(
        &mut self,
        buf: &mut BytesMut,
        events: &mut Vec<Event>,
    ) -> Result<(), ConnError> {
        match self.phase {
            Phase::Failed => {
                return Err(conn_err(
                    Reason::PROTOCOL_ERROR,
                    "the connection has failed",
                ))
            }
            Phase::Preface => {
                let n = buf.len().min(PREFACE.len());
                if buf[..n] != PREFACE[..n] {
                    return Err(conn_err(Reason::PROTOCOL_ERROR, "no client preface"));
                }
                if n < PREFACE.len() {
                    return Ok(());
                }
                buf.advance(PREFACE.len());
                self.phase = Phase::Settings;
            }
            Phase::Settings | Phase::Open => {}
        }
        while let Some(h) = buf.first_chunk::<HEAD_LEN>() {
            let head = Head::parse(h);
            if head.len > DEFAULT_MAX_FRAME {
                return Err(conn_err(
                    Reason::FRAME_SIZE_ERROR,
                    "a frame over SETTINGS_MAX_FRAME_SIZE",
                ));
            }
            let total = HEAD_LEN + head.len as usize;
            if buf.len() < total {
                buf.reserve(total - buf.len());
                break;
            }
            buf.advance(HEAD_LEN);
            let payload = buf.split_to(head.len as usize).freeze();
            self.frame(head, payload, events)?;
        }
        Ok(())
    }

    fn frame(
        &mut self,
        head: Head,
        payload: Bytes,
        events: &mut Vec<Event>,
    ) -> Result<(), ConnError> {
        let kind = Kind::from_u8(head.kind);
        if let Some(c) = self.continuing {
            if kind != Some(Kind::Continuation) || head.stream != c.stream {
                return Err(conn_err(
                    Reason::PROTOCOL_ERROR,
                    "a frame inside a header block",
                ));
            }
        }
        if self.phase == Phase::Settings {
            if kind != Some(Kind::Settings) || head.has(flags::ACK) {
                return Err(conn_err(
                    Reason::PROTOCOL_ERROR,
                    "the preface's SETTINGS missing",
                ));
            }
            self.phase = Phase::Open;
        }
        match self.dispatch(kind, head, &payload, events) {
            Ok(()) => Ok(()),
            Err(FrameError::Stream(reason, stream)) => {
                self.reset_stream(stream, reason, events);
                Ok(())
            }
            Err(FrameError::Connection(reason)) => Err(conn_err(reason, describe(kind))),
        }
    }

    fn dispatch(
        &mut self,
        kind: Option<Kind>,
        head: Head,
        payload: &Bytes,
        events: &mut Vec<Event>,
    ) -> Result<(), FrameError> {
        match kind {
            // Unknown types are ignored (§4.1).
            None => Ok(()),
            Some(Kind::Data) => self.data(head, payload, events),
            Some(Kind::Headers) => self.headers(head, payload, events),
            Some(Kind::Continuation) => self.continuation(head, payload, events),
            Some(Kind::Priority) => frame::priority(&head, payload),
            Some(Kind::RstStream) => {
                let reason = frame::rst_stream(&head, payload)?;
                self.peer_reset(head.stream, reason, events)
            }
            Some(Kind::Settings) => self.settings(head, payload, events),
            Some(Kind::PushPromise) => Err(FrameError::Connection(Reason::PROTOCOL_ERROR)),
            Some(Kind::Ping) => {
                let data = frame::ping(&head, payload)?;
                if head.has(flags::ACK) {
                    events.push(Event::PingAck(data));
                } else {
                    frame::write_ping(&mut self.out, true, data);
                }
                Ok(())
            }
            Some(Kind::GoAway) => {
                let g = frame::go_away(&head, payload)?;
                events.push(Event::GoAway {
                    last_stream: g.last_stream,
                    reason: g.reason,
                });
                Ok(())
            }
            Some(Kind::WindowUpdate) => self.window_update(head, payload, events),
        }
    }

    fn settings(
        &mut self,
        head: Head,
        payload: &[u8],
        events: &mut Vec<Event>,
    ) -> Result<(), FrameError> {
        if head.has(flags::ACK) {
            return Settings::check_ack(&head);
        }
        let before = self.peer.initial_window_size;
        self.peer.apply(&head, payload)?;
        // A new initial window moves every stream's window by the change,
        // below zero too (§6.9.2).
        let delta = i64::from(self.peer.initial_window_size) - i64::from(before);
        if delta != 0 {
            for s in self.streams.values_mut() {
                s.send_window += delta;
                if s.send_window > i64::from(MAX_WINDOW) {
                    return Err(FrameError::Connection(Reason::FLOW_CONTROL_ERROR));
                }
            }
            if delta > 0 {
                events.push(Event::WindowOpened);
            }
        }
        frame::write_settings_ack(&mut self.out);
        Ok(())
    }

    fn window_update(
        &mut self,
        head: Head,
        payload: &[u8],
        events: &mut Vec<Event>,
    ) -> Result<(), FrameError> {
        let inc = i64::from(frame::window_update(&head, payload)?);
        if head.stream == 0 {
            self.conn_send_window += inc;
            if self.conn_send_window > i64::from(MAX_WINDOW) {
                return Err(FrameError::Connection(Reason::FLOW_CONTROL_ERROR));
            }
        } else if let Some(s) = self.streams.get_mut(&head.stream) {
            s.send_window += inc;
            if s.send_window > i64::from(MAX_WINDOW) {
                return Err(FrameError::Stream(Reason::FLOW_CONTROL_ERROR, head.stream));
            }
        } else if self.is_idle(head.stream) {
            return Err(FrameError::Connection(Reason::PROTOCOL_ERROR));
        } else {
            // A closed stream's: may arrive after it ended (§5.1).
            return Ok(());
        }
        events.push(Event::WindowOpened);
        Ok(())
    }

    /// A stream the client has not opened yet (§5.1.1).
    fn is_idle(&self, stream: u32) -> bool {
        stream > self.last_stream
    }

    fn peer_reset(
        &mut self,
        stream: u32,
        reason: Reason,
        events: &mut Vec<Event>,
    ) -> Result<(), FrameError> {
        if self.is_idle(stream) {
            return Err(FrameError::Connection(Reason::PROTOCOL_ERROR));
        }
        let Some(s) = self.streams.remove(&stream) else {
            return Ok(());
        };
        if s.send_open {
            // Reset before its answer was done: the work it started is
            // thrown away. A client doing that without end is an attack.
            if self.resets_left == 0 {
                return Err(FrameError::Connection(Reason::ENHANCE_YOUR_CALM));
            }
            self.resets_left -= 1;
        }
        events.push(Event::Reset { stream, reason });
        Ok(())
    }

    /// Ends a stream with `RST_STREAM` for an error this side found.
    fn reset_stream(&mut self, stream: u32, reason: Reason, events: &mut Vec<Event>) {
        frame::write_rst_stream(&mut self.out, stream, reason);
        if self.streams.remove(&stream).is_some() {
            events.push(Event::Reset { stream, reason });
        }
    }

    /// Forgets a stream both sides have ended.
    fn maybe_close(&mut self, stream: u32) {
        if self
            .streams
            .get(&stream)
            .is_some_and(|s| !s.recv_open && !s.send_open)
        {
            self.streams.remove(&stream);
            self.resets_left = (self.resets_left + 1).min(self.config.max_resets);
        }
    }
}

fn describe(kind: Option<Kind>) -> &'static str {
    match kind {
        None => "in a frame of an unknown type",
        Some(Kind::Data) => "in a DATA frame",
        Some(Kind::Headers) => "in a HEADERS frame",
        Some(Kind::Priority) => "in a PRIORITY frame",
        Some(Kind::RstStream) => "in an RST_STREAM frame",
        Some(Kind::Settings) => "in a SETTINGS frame",
        Some(Kind::PushPromise) => "in a PUSH_PROMISE frame",
        Some(Kind::Ping) => "in a PING frame",
        Some(Kind::GoAway) => "in a GOAWAY frame",
        Some(Kind::WindowUpdate) => "in a WINDOW_UPDATE frame",
        Some(Kind::Continuation) => "in a CONTINUATION frame",
    }
}

#[cfg(test)]
mod tests;
