//! WebSocket tunnels (RFC 6455): after the upstream answers 101 the two
//! upgraded connections are joined by a relay that forwards frames byte for
//! byte (so subprotocols, extensions such as permessage-deflate, masking and
//! close codes pass unchanged) while tracking frame boundaries. Knowing the
//! boundaries lets the proxy end a tunnel *properly*: on idle timeout, hard
//! lifetime or shutdown it lets the frame in flight finish, then sends each
//! side a Close frame with a code and a reason instead of cutting TCP
//! mid-message.
//!
//! Bytes are relayed as they arrive, never held back to assemble a frame:
//! each read goes through the runtime thread's one scratch buffer and is
//! written on in the same poll, so a message costs one read and one write
//! and an idle tunnel holds no buffer.
//!
//! Each end is its socket's two halves apart ([`End`]): the relay reads one
//! and writes the other from the same task, so a plain TCP connection is
//! read and written straight, with no lock between the halves and no
//! layers of the HTTP library that switched it.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::{Buf, Bytes};
use futures_util::task::AtomicWaker;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::server::h1::socket::{Reader, WriteHalf};

/// One end of a tunnel: what to read (the bytes read past the switch's
/// head first, then the connection) and what to write, held apart.
pub struct End {
    read: Incoming,
    write: WriteHalf,
}

impl End {
    pub(crate) fn new(read: Reader, prefix: Bytes, write: WriteHalf) -> Self {
        Self {
            read: Incoming {
                prefix: Incoming::held(prefix),
                read,
            },
            write,
        }
    }

    /// Any byte stream, split by tokio (which takes a lock on every read
    /// and write): TLS connections, in-memory pipes.
    pub fn stream<S>(s: S) -> Self
    where
        S: AsyncRead + AsyncWrite + Send + 'static,
    {
        let (r, w) = tokio::io::split(s);
        Self::new(
            Reader::Stream(Box::new(r)),
            Bytes::new(),
            WriteHalf::Stream(Box::new(w)),
        )
    }

    /// A connection hyper switched: its TCP socket where it is one, after
    /// the bytes hyper read past the `101`'s head; any other through
    /// hyper's own reads and writes.
    #[must_use]
    pub fn from_hyper(upgraded: hyper::upgrade::Upgraded) -> Self {
        match upgraded.downcast::<TokioIo<TcpStream>>() {
            Ok(parts) => {
                let (r, w) = parts.io.into_inner().into_split();
                Self::new(Reader::Tcp(r), parts.read_buf, WriteHalf::Tcp(w))
            }
            Err(upgraded) => Self::stream(TokioIo::new(upgraded)),
        }
    }
}

impl std::fmt::Debug for End {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("End")
            .field("prefix", &self.read.prefix.len())
            .field("tcp", &self.write.tcp().is_some())
            .finish_non_exhaustive()
    }
}

/// An end's reading side: `prefix` first, then the connection.
struct Incoming {
    prefix: Bytes,
    read: Reader,
}

impl Incoming {
    /// `prefix`, or nothing once it is empty: a slice of a read buffer,
    /// even an empty one, keeps the whole buffer (hyper's is 8 KiB and
    /// more) for the tunnel's life.
    fn held(prefix: Bytes) -> Bytes {
        if prefix.is_empty() {
            Bytes::new()
        } else {
            prefix
        }
    }
}

impl AsyncRead for Incoming {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        if !this.prefix.is_empty() {
            let n = this.prefix.len().min(buf.remaining());
            buf.put_slice(&this.prefix[..n]);
            this.prefix.advance(n);
            this.prefix = Incoming::held(std::mem::take(&mut this.prefix));
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.read).poll_read(cx, buf)
    }
}

/// Why the proxy ended a tunnel. Each maps to a close code and reason the
/// browser sees (RFC 6455 §7.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    Idle,
    Lifetime,
    Shutdown,
    /// The session or access behind the tunnel was revoked; the text says
    /// which (session, user, route, platform session).
    Revoked(&'static str),
}

impl CloseReason {
    #[must_use]
    pub fn code(self) -> u16 {
        match self {
            Self::Idle | Self::Lifetime | Self::Shutdown => 1001,
            // 1008 "Policy Violation": the peer may not go on (RFC 6455
            // §7.4.1); the reason text names the revocation.
            Self::Revoked(_) => 1008,
        }
    }

    #[must_use]
    pub fn text(self) -> &'static str {
        match self {
            Self::Idle => "idle timeout",
            Self::Lifetime => "maximum connection lifetime reached",
            Self::Shutdown => "proxy shutting down",
            Self::Revoked(why) => why,
        }
    }
}

/// Limits of one tunnel.
#[derive(Debug, Clone, Copy)]
pub struct TunnelLimits {
    pub idle: Duration,
    pub max_lifetime: Duration,
}

/// How a tunnel ended, for the access log.
#[derive(Debug, Clone, Copy, Default)]
pub struct TunnelStats {
    /// Whole frames relayed each way.
    pub frames_to_upstream: u64,
    pub frames_to_client: u64,
    /// Bytes relayed each way as they went on the wire (frame headers
    /// included).
    pub bytes_to_upstream: u64,
    pub bytes_to_client: u64,
    pub closed_by_proxy: Option<CloseReason>,
}

const OP_CLOSE: u8 = 0x8;
/// Close code sent to the browser when the upstream vanished without a
/// Close frame (IANA registry: 1014 "Bad Gateway").
const CODE_UPSTREAM_GONE: u16 = 1014;
/// Close code sent upstream when the browser vanished without a Close frame.
const CODE_CLIENT_GONE: u16 = 1001;
/// Largest copy buffer a frame is relayed through.
const COPY_BUF: usize = 16 * 1024;
/// After the proxy decides to close, each side gets this long to finish.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// The longest between two looks at a tunnel's idleness: the default 15
/// minutes' timeout closes an idle tunnel within a minute of it, and 5,000
/// idle tunnels wake their watchers 170 times a second, not 5,000.
const MAX_IDLE_TICK: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dir {
    /// Browser → upstream: frames are masked, and so must ours be.
    ToUpstream,
    /// Upstream → browser: frames are unmasked.
    ToClient,
}

struct Shared {
    /// Reads forwarded so far, both ways. The watcher looks for a change
    /// each tick: a count kept, not the clock read on every message.
    activity: AtomicU64,
    /// Set once the proxy decided to close; the pumps look at it each time
    /// they are polled, and the relay polls them right after setting it.
    stop: AtomicBool,
    reason: Mutex<Option<CloseReason>>,
    /// The relay, woken when `stop` is set or a direction is.
    relay: AtomicWaker,
    /// Whether each direction (by [`Dir`]) was woken since the relay last
    /// polled it: a frame one way polls that way's pump only, not the
    /// other's socket as well.
    woken: [AtomicBool; 2],
}

/// A pump's waker: marks its direction woken and wakes the relay.
struct PumpWaker {
    shared: Arc<Shared>,
    dir: Dir,
}

impl std::task::Wake for PumpWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.shared.woken[self.dir as usize].store(true, Ordering::Release);
        self.shared.relay.wake();
    }
}

impl Shared {
    /// Counts a forwarded read. Only the relay's task writes the count
    /// (both pumps run in it), so a load and a store do, without a locked
    /// add.
    fn touch(&self) {
        let n = self.activity.load(Ordering::Relaxed);
        self.activity.store(n.wrapping_add(1), Ordering::Relaxed);
    }

    fn activity(&self) -> u64 {
        self.activity.load(Ordering::Relaxed)
    }

    fn stop_with(&self, r: CloseReason) {
        if let Ok(mut g) = self.reason.lock() {
            g.get_or_insert(r);
        }
        self.stop.store(true, Ordering::Release);
        self.relay.wake();
    }

    /// Takes `dir`'s woken mark: whether its pump is to be polled.
    fn take_woken(&self, dir: Dir) -> bool {
        self.woken[dir as usize].swap(false, Ordering::AcqRel)
    }

    fn stopping(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }

    fn reason(&self) -> Option<CloseReason> {
        self.reason.lock().ok().and_then(|g| *g)
    }
}

/// Relays WebSocket frames between `client` and `upstream` until both sides
/// are done, a limit is reached, `drain` fires (graceful shutdown) or
/// `revoked` resolves (the session behind the tunnel was revoked).
///
/// The limits and signals are watched by a task of their own
/// ([`watch_limits`]), so a frame wakes only the relay and the pump of its
/// direction (each pump has a waker of its own, [`PumpWaker`]), never the
/// other direction's socket or the tunnel's timers and subscriptions; the
/// watcher sets the stop flag and wakes the relay, which then polls both.
pub async fn relay<R>(
    client: End,
    upstream: End,
    limits: TunnelLimits,
    drain: CancellationToken,
    revoked: R,
) -> TunnelStats
where
    R: std::future::Future<Output = &'static str> + Send + 'static,
{
    let shared = Arc::new(Shared {
        activity: AtomicU64::new(0),
        stop: AtomicBool::new(false),
        reason: Mutex::new(None),
        relay: AtomicWaker::new(),
        // Both polled first.
        woken: [AtomicBool::new(true), AtomicBool::new(true)],
    });
    let _watcher = AbortOnDrop(tokio::spawn(watch_limits(
        Arc::clone(&shared),
        limits,
        drain,
        revoked,
    )));
    let up = pump(client.read, upstream.write, Dir::ToUpstream, &shared);
    let down = pump(upstream.read, client.write, Dir::ToClient, &shared);
    tokio::pin!(up, down);
    let waker = |dir| {
        Waker::from(Arc::new(PumpWaker {
            shared: Arc::clone(&shared),
            dir,
        }))
    };
    let (up_waker, down_waker) = (waker(Dir::ToUpstream), waker(Dir::ToClient));
    let mut up_done: Option<(u64, u64)> = None;
    let mut down_done: Option<(u64, u64)> = None;
    let mut grace: Option<Pin<Box<tokio::time::Sleep>>> = None;
    let mut stop_seen = false;
    // Nothing may follow a Close (RFC 6455 §5.5.1) and the server closes
    // TCP after the handshake (§7.1.1): once one direction is finished the
    // other gets a bounded time to finish too, so a peer that keeps its
    // socket open cannot hold the tunnel (and its route slot) forever.
    let start_grace = |grace: &mut Option<Pin<Box<tokio::time::Sleep>>>| {
        grace.get_or_insert_with(|| Box::pin(tokio::time::sleep(CLOSE_GRACE)));
    };
    std::future::poll_fn(|cx| {
        // Before the marks are read: a wake after this finds it.
        shared.relay.register(cx.waker());
        if !stop_seen && shared.stopping() {
            // The pumps see the flag when next polled: both are, now.
            stop_seen = true;
            shared.woken[Dir::ToUpstream as usize].store(true, Ordering::Release);
            shared.woken[Dir::ToClient as usize].store(true, Ordering::Release);
            start_grace(&mut grace);
        }
        if up_done.is_none() && shared.take_woken(Dir::ToUpstream) {
            if let Poll::Ready(r) = up.as_mut().poll(&mut Context::from_waker(&up_waker)) {
                up_done = Some(r);
                start_grace(&mut grace);
            }
        }
        if down_done.is_none() && shared.take_woken(Dir::ToClient) {
            if let Poll::Ready(r) = down.as_mut().poll(&mut Context::from_waker(&down_waker)) {
                down_done = Some(r);
                start_grace(&mut grace);
            }
        }
        if up_done.is_some() && down_done.is_some() {
            return Poll::Ready(());
        }
        // A side that does not finish in time loses the connection;
        // dropping the pumps closes both sockets.
        match grace.as_mut() {
            Some(g) => g.as_mut().poll(cx),
            None => Poll::Pending,
        }
    })
    .await;
    let (up_frames, up_bytes) = up_done.unwrap_or_default();
    let (down_frames, down_bytes) = down_done.unwrap_or_default();
    TunnelStats {
        frames_to_upstream: up_frames,
        frames_to_client: down_frames,
        bytes_to_upstream: up_bytes,
        bytes_to_client: down_bytes,
        closed_by_proxy: shared.reason(),
    }
}

/// Watches a tunnel's limits and signals until one says stop: graceful
/// shutdown, revocation, the hard lifetime, idleness.
async fn watch_limits<R>(
    shared: Arc<Shared>,
    limits: TunnelLimits,
    drain: CancellationToken,
    revoked: R,
) where
    R: std::future::Future<Output = &'static str>,
{
    // A lifetime too large for the clock means "no deadline worth having":
    // a year is as far as any tunnel may go.
    let deadline = Instant::now()
        .checked_add(limits.max_lifetime)
        .unwrap_or_else(|| Instant::now() + Duration::from_secs(365 * 24 * 3600));
    let lifetime = tokio::time::sleep_until(deadline);
    // Idleness is seen a tick late at most: a tick that finds the count
    // moved takes its own time as the last activity (never earlier than
    // the real one, so an active tunnel is never closed early), and the
    // close comes at the first tick a whole `idle` after that. Between
    // `idle` and `idle` + 2 ticks of the last frame bytes.
    let mut idle_check = tokio::time::interval(idle_tick(limits.idle));
    let mut seen = shared.activity();
    let mut quiet_since = Instant::now();
    tokio::pin!(revoked, lifetime);
    let reason = loop {
        tokio::select! {
            () = drain.cancelled() => break CloseReason::Shutdown,
            why = &mut revoked => break CloseReason::Revoked(why),
            () = &mut lifetime => break CloseReason::Lifetime,
            _ = idle_check.tick() => {
                // The clock, not the tick's planned time: a late tick must
                // not date activity it counts before it happened.
                let now = Instant::now();
                let count = shared.activity();
                if count != seen {
                    seen = count;
                    quiet_since = now;
                } else if now.duration_since(quiet_since) >= limits.idle {
                    break CloseReason::Idle;
                }
            }
        }
    };
    shared.stop_with(reason);
}

/// How often a tunnel's watcher looks for activity: an eighth of the idle
/// timeout (so a close comes at most 25% late), at least 50 ms, at most
/// [`MAX_IDLE_TICK`] (an idle tunnel, of thousands of open notebooks, wakes
/// its watcher that seldom).
fn idle_tick(idle: Duration) -> Duration {
    (idle / 8).clamp(Duration::from_millis(50), MAX_IDLE_TICK)
}

/// Aborts the task when dropped: the watcher ends with its tunnel.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Follows frame boundaries through a byte stream that is forwarded as it
/// arrives: the relay never holds a frame back to parse it, it only needs
/// to know where one ends (to count frames, to see a Close go by, and to
/// stop at a boundary).
#[derive(Debug, Default)]
struct Frames {
    /// Header bytes of the frame being read (2 to 14 of them).
    head: [u8; 14],
    /// How many of `head` have arrived; 0 at a boundary.
    have: usize,
    /// Set once the header is complete: payload bytes still to come.
    payload_left: Option<u64>,
    /// Frames passed whole.
    frames: u64,
    /// A whole Close frame has passed.
    closed: bool,
}

impl Frames {
    fn at_boundary(&self) -> bool {
        self.have == 0 && self.payload_left.is_none()
    }

    /// Header length once its first two bytes are known.
    fn head_len(b1: u8) -> usize {
        let ext = match b1 & 0x7f {
            126 => 2,
            127 => 8,
            _ => 0,
        };
        2 + ext + if b1 & 0x80 != 0 { 4 } else { 0 }
    }

    /// Consumes bytes of `data` up to the end of the current frame at most
    /// and says how many; `at_boundary` afterwards tells whether the frame
    /// ended there.
    fn step(&mut self, data: &[u8]) -> std::io::Result<usize> {
        if let Some(left) = self.payload_left {
            let take = usize::try_from(left).map_or(data.len(), |l| l.min(data.len()));
            let left = left - take as u64;
            if left == 0 {
                self.end_frame();
            } else {
                self.payload_left = Some(left);
            }
            return Ok(take);
        }
        let mut used = 0;
        while used < data.len() {
            let want = if self.have < 2 {
                2
            } else {
                Self::head_len(self.head[1])
            };
            let take = (want - self.have).min(data.len() - used);
            self.head[self.have..self.have + take].copy_from_slice(&data[used..used + take]);
            self.have += take;
            used += take;
            if self.have < want {
                continue;
            }
            if want == 2 && Self::head_len(self.head[1]) > 2 {
                continue;
            }
            let len = match self.head[1] & 0x7f {
                126 => u64::from(u16::from_be_bytes([self.head[2], self.head[3]])),
                127 => {
                    let mut e = [0u8; 8];
                    e.copy_from_slice(&self.head[2..10]);
                    let n = u64::from_be_bytes(e);
                    if n >> 63 != 0 {
                        return Err(std::io::Error::new(
                            std::io::ErrorKind::InvalidData,
                            "websocket frame length has its top bit set",
                        ));
                    }
                    n
                }
                n => u64::from(n),
            };
            if len == 0 {
                self.end_frame();
            } else {
                self.payload_left = Some(len);
            }
            break;
        }
        Ok(used)
    }

    fn end_frame(&mut self) {
        self.frames += 1;
        if self.head[0] & 0x0f == OP_CLOSE {
            self.closed = true;
        }
        self.have = 0;
        self.payload_left = None;
    }
}

/// A Close frame with `code` and `reason`, masked when sent upstream
/// (RFC 6455 §5.3: client-to-server frames must be masked).
fn close_frame(dir: Dir, code: u16, reason: &str) -> Vec<u8> {
    let reason = &reason.as_bytes()[..reason.len().min(123)];
    let mut payload = Vec::with_capacity(2 + reason.len());
    payload.extend_from_slice(&code.to_be_bytes());
    payload.extend_from_slice(reason);
    let len = u8::try_from(payload.len()).unwrap_or(125);
    let mut frame = vec![0x80 | OP_CLOSE];
    match dir {
        Dir::ToClient => {
            frame.push(len);
            frame.extend_from_slice(&payload);
        }
        Dir::ToUpstream => {
            frame.push(0x80 | len);
            let id = uuid::Uuid::new_v4();
            let mask: [u8; 4] = [
                id.as_bytes()[0],
                id.as_bytes()[5],
                id.as_bytes()[10],
                id.as_bytes()[15],
            ];
            frame.extend_from_slice(&mask);
            frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        }
    }
    frame
}

thread_local! {
    /// Each runtime thread reads through one buffer, whatever the number
    /// of tunnels: an idle tunnel (the common case: thousands of open
    /// notebooks) holds no copy buffer at all, and a busy one allocates
    /// nothing per message.
    static SCRATCH: RefCell<Vec<u8>> = RefCell::new(vec![0; COPY_BUF]);
}

/// What one poll of the reading side came to.
enum Step {
    /// The proxy decided to close since the pump last looked.
    Stop,
    /// `n` bytes were forwarded (those the writer did not take at once wait
    /// in the backlog); `broken`: what followed them is not WebSocket.
    Forwarded {
        n: usize,
        broken: bool,
    },
    Eof,
    Failed,
}

/// Reads what `r` has into the thread's scratch buffer, follows the frames
/// in it and writes them on to `w` in the same poll; whatever `w` cannot
/// take now is kept in `backlog`. Stopping, nothing past the frame in
/// flight is forwarded.
fn poll_forward<R, W>(
    cx: &mut Context<'_>,
    r: &mut R,
    w: &mut W,
    frames: &mut Frames,
    stopping: bool,
    backlog: &mut Vec<u8>,
) -> Poll<Step>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut forward = |buf: &mut [u8]| {
        let mut rb = ReadBuf::new(buf);
        match Pin::new(&mut *r).poll_read(cx, &mut rb) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Err(_)) => return Poll::Ready(Step::Failed),
            Poll::Ready(Ok(())) => {}
        }
        let data = rb.filled();
        if data.is_empty() {
            return Poll::Ready(Step::Eof);
        }
        let mut end = 0;
        let mut broken = false;
        while end < data.len() {
            match frames.step(&data[end..]) {
                Ok(k) => end += k,
                Err(_) => {
                    broken = true;
                    break;
                }
            }
            if stopping && frames.at_boundary() {
                break;
            }
        }
        let mut written = 0;
        while written < end {
            match Pin::new(&mut *w).poll_write(cx, &data[written..end]) {
                Poll::Ready(Ok(0) | Err(_)) => return Poll::Ready(Step::Failed),
                Poll::Ready(Ok(k)) => written += k,
                Poll::Pending => break,
            }
        }
        backlog.extend_from_slice(&data[written..end]);
        Poll::Ready(Step::Forwarded { n: end, broken })
    };
    SCRATCH.with(|scratch| match scratch.try_borrow_mut() {
        Ok(mut buf) => forward(&mut buf),
        // Only if a reader polled from inside another's read: a buffer of
        // its own then.
        Err(_) => forward(&mut vec![0; COPY_BUF]),
    })
}

/// Forwards bytes from `r` to `w` as they arrive, following frame
/// boundaries, until EOF, error or stop. On stop the frame in flight is
/// finished (within the relay's grace) and a Close frame follows it.
/// Returns `(frames, bytes)` forwarded.
async fn pump<R, W>(mut r: R, mut w: W, dir: Dir, shared: &Shared) -> (u64, u64)
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut frames = Frames::default();
    let mut bytes = 0u64;
    let mut backlog = Vec::new();
    let mut stopping = false;
    loop {
        if !backlog.is_empty() {
            // The writer pushed back: the reader waits until it caught up.
            if w.write_all(&backlog).await.is_err() {
                return (frames.frames, bytes);
            }
            backlog = Vec::new();
        }
        if w.flush().await.is_err() {
            return (frames.frames, bytes);
        }
        if stopping && frames.at_boundary() {
            if !frames.closed {
                let reason = shared.reason().unwrap_or(CloseReason::Shutdown);
                let _ = w
                    .write_all(&close_frame(dir, reason.code(), reason.text()))
                    .await;
                let _ = w.flush().await;
            }
            let _ = w.shutdown().await;
            return (frames.frames, bytes);
        }
        let step = std::future::poll_fn(|cx| {
            if !stopping && shared.stopping() {
                return Poll::Ready(Step::Stop);
            }
            poll_forward(cx, &mut r, &mut w, &mut frames, stopping, &mut backlog)
        })
        .await;
        match step {
            Step::Stop => stopping = true,
            Step::Forwarded { n, broken } => {
                shared.touch();
                bytes += n as u64;
                if broken {
                    let _ = w.write_all(&backlog).await;
                    let _ = w.shutdown().await;
                    return (frames.frames, bytes);
                }
            }
            Step::Eof => {
                // The sending side vanished. Between frames, tell the other
                // side why before closing; mid-frame no clean Close fits.
                if frames.at_boundary() && !frames.closed {
                    let (code, text) = match dir {
                        Dir::ToClient => (CODE_UPSTREAM_GONE, "upstream closed the connection"),
                        Dir::ToUpstream => (CODE_CLIENT_GONE, "client went away"),
                    };
                    let _ = w.write_all(&close_frame(dir, code, text)).await;
                }
                let _ = w.shutdown().await;
                return (frames.frames, bytes);
            }
            Step::Failed => {
                let _ = w.shutdown().await;
                return (frames.frames, bytes);
            }
        }
    }
}

#[cfg(test)]
mod tests;
