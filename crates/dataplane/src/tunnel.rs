//! WebSocket tunnels (RFC 6455): after the upstream answers 101 the two
//! upgraded connections are joined by a relay that forwards frames byte for
//! byte (so subprotocols, extensions such as permessage-deflate, masking and
//! close codes pass unchanged) while tracking frame boundaries. Knowing the
//! boundaries lets the proxy end a tunnel *properly*: on idle timeout, hard
//! lifetime or shutdown it sends each side a Close frame with a code and a
//! reason instead of cutting TCP mid-message.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

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
    pub frames_to_upstream: u64,
    pub frames_to_client: u64,
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dir {
    /// Browser → upstream: frames are masked, and so must ours be.
    ToUpstream,
    /// Upstream → browser: frames are unmasked.
    ToClient,
}

struct Shared {
    start: Instant,
    /// Milliseconds since `start` of the last frame bytes in either direction.
    last_activity_ms: AtomicU64,
    stop: CancellationToken,
    reason: Mutex<Option<CloseReason>>,
}

impl Shared {
    fn touch(&self) {
        let ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_activity_ms.store(ms, Ordering::Relaxed);
    }

    fn idle_for(&self) -> Duration {
        let last = Duration::from_millis(self.last_activity_ms.load(Ordering::Relaxed));
        self.start.elapsed().saturating_sub(last)
    }

    fn stop_with(&self, r: CloseReason) {
        if let Ok(mut g) = self.reason.lock() {
            g.get_or_insert(r);
        }
        self.stop.cancel();
    }

    fn reason(&self) -> Option<CloseReason> {
        self.reason.lock().ok().and_then(|g| *g)
    }
}

/// Relays WebSocket frames between `client` and `upstream` until both sides
/// are done, a limit is reached, `drain` fires (graceful shutdown) or
/// `revoked` resolves (the session behind the tunnel was revoked).
pub async fn relay<C, U, R>(
    client: C,
    upstream: U,
    limits: TunnelLimits,
    drain: CancellationToken,
    revoked: R,
) -> TunnelStats
where
    C: AsyncRead + AsyncWrite + Send + Unpin,
    U: AsyncRead + AsyncWrite + Send + Unpin,
    R: std::future::Future<Output = &'static str> + Send,
{
    tokio::pin!(revoked);
    let shared = Arc::new(Shared {
        start: Instant::now(),
        last_activity_ms: AtomicU64::new(0),
        stop: CancellationToken::new(),
        reason: Mutex::new(None),
    });
    let (cr, cw) = tokio::io::split(client);
    let (ur, uw) = tokio::io::split(upstream);
    let up = pump(cr, uw, Dir::ToUpstream, &shared);
    let down = pump(ur, cw, Dir::ToClient, &shared);
    tokio::pin!(up, down);
    let mut up_done: Option<(u64, u64)> = None;
    let mut down_done: Option<(u64, u64)> = None;
    // A lifetime too large for the clock means "no deadline worth having":
    // a year is as far as any tunnel may go.
    let deadline = Instant::now()
        .checked_add(limits.max_lifetime)
        .unwrap_or_else(|| Instant::now() + Duration::from_secs(365 * 24 * 3600));
    let tick = (limits.idle / 4).clamp(Duration::from_millis(50), Duration::from_secs(1));
    let mut idle_check = tokio::time::interval(tick);
    let mut grace_end: Option<Instant> = None;
    // Nothing may follow a Close (RFC 6455 §5.5.1) and the server closes
    // TCP after the handshake (§7.1.1): once one direction is finished the
    // other gets a bounded time to finish too, so a peer that keeps its
    // socket open cannot hold the tunnel (and its route slot) forever.
    while up_done.is_none() || down_done.is_none() {
        tokio::select! {
            r = &mut up, if up_done.is_none() => {
                up_done = Some(r);
                grace_end.get_or_insert_with(|| Instant::now() + CLOSE_GRACE);
            }
            r = &mut down, if down_done.is_none() => {
                down_done = Some(r);
                grace_end.get_or_insert_with(|| Instant::now() + CLOSE_GRACE);
            }
            () = drain.cancelled(), if !shared.stop.is_cancelled() => {
                shared.stop_with(CloseReason::Shutdown);
                grace_end = Some(Instant::now() + CLOSE_GRACE);
            }
            why = &mut revoked, if !shared.stop.is_cancelled() => {
                shared.stop_with(CloseReason::Revoked(why));
                grace_end = Some(Instant::now() + CLOSE_GRACE);
            }
            () = tokio::time::sleep_until(deadline), if !shared.stop.is_cancelled() => {
                shared.stop_with(CloseReason::Lifetime);
                grace_end = Some(Instant::now() + CLOSE_GRACE);
            }
            _ = idle_check.tick(), if !shared.stop.is_cancelled() => {
                if shared.idle_for() >= limits.idle {
                    shared.stop_with(CloseReason::Idle);
                    grace_end = Some(Instant::now() + CLOSE_GRACE);
                }
            }
            () = sleep_until_opt(grace_end) => {
                // A side that does not finish in time loses the connection;
                // dropping the pumps closes both sockets.
                break;
            }
        }
    }
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

async fn sleep_until_opt(t: Option<Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

/// A parsed frame header: the raw bytes (forwarded verbatim), the opcode and
/// the payload length that follows.
struct FrameHead {
    raw: Vec<u8>,
    opcode: u8,
    payload_len: u64,
}

#[derive(Debug)]
enum ReadHead {
    Eof,
    Frame,
}

async fn read_head<R: AsyncRead + Unpin>(
    r: &mut R,
    head: &mut FrameHead,
) -> std::io::Result<ReadHead> {
    let mut b = [0u8; 2];
    // EOF before the first byte is a clean end at a frame boundary.
    if r.read(&mut b[..1]).await? == 0 {
        return Ok(ReadHead::Eof);
    }
    r.read_exact(&mut b[1..]).await?;
    head.raw.clear();
    head.raw.extend_from_slice(&b);
    head.opcode = b[0] & 0x0f;
    let masked = b[1] & 0x80 != 0;
    let len7 = b[1] & 0x7f;
    head.payload_len = match len7 {
        126 => {
            let mut e = [0u8; 2];
            r.read_exact(&mut e).await?;
            head.raw.extend_from_slice(&e);
            u64::from(u16::from_be_bytes(e))
        }
        127 => {
            let mut e = [0u8; 8];
            r.read_exact(&mut e).await?;
            head.raw.extend_from_slice(&e);
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
    if masked {
        let mut m = [0u8; 4];
        r.read_exact(&mut m).await?;
        head.raw.extend_from_slice(&m);
    }
    Ok(ReadHead::Frame)
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

/// Forwards frames from `r` to `w` until EOF, error or stop. Returns
/// `(frames, bytes)` forwarded.
async fn pump<R, W>(mut r: R, mut w: W, dir: Dir, shared: &Shared) -> (u64, u64)
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut frames = 0u64;
    let mut bytes = 0u64;
    let mut close_sent = false;
    let mut head = FrameHead {
        raw: Vec::with_capacity(14),
        opcode: 0,
        payload_len: 0,
    };
    loop {
        let read = tokio::select! {
            biased;
            () = shared.stop.cancelled() => {
                if !close_sent {
                    let reason = shared.reason().unwrap_or(CloseReason::Shutdown);
                    let _ = w.write_all(&close_frame(dir, reason.code(), reason.text())).await;
                    let _ = w.flush().await;
                }
                let _ = w.shutdown().await;
                return (frames, bytes);
            }
            r = read_head(&mut r, &mut head) => r,
        };
        match read {
            Ok(ReadHead::Eof) => {
                // The sending side vanished without finishing the close
                // handshake: tell the other side why, then close.
                if !close_sent {
                    let (code, text) = match dir {
                        Dir::ToClient => (CODE_UPSTREAM_GONE, "upstream closed the connection"),
                        Dir::ToUpstream => (CODE_CLIENT_GONE, "client went away"),
                    };
                    let _ = w.write_all(&close_frame(dir, code, text)).await;
                }
                let _ = w.shutdown().await;
                return (frames, bytes);
            }
            Err(_) => {
                let _ = w.shutdown().await;
                return (frames, bytes);
            }
            Ok(ReadHead::Frame) => {}
        }
        shared.touch();
        let mut remaining = head.payload_len;
        let mut first = true;
        // A buffer for this frame only: an idle tunnel (the common case:
        // thousands of open notebooks) holds no copy buffer at all.
        let size = usize::try_from(remaining.min(COPY_BUF as u64)).unwrap_or(COPY_BUF);
        let mut buf = vec![0u8; size];
        loop {
            let want = usize::try_from(remaining.min(buf.len() as u64)).unwrap_or(buf.len());
            let n = if want == 0 {
                0
            } else {
                let copied = tokio::select! {
                    biased;
                    // Stopped mid-frame: no clean Close is possible on this
                    // stream any more; drop the connection.
                    () = shared.stop.cancelled() => None,
                    n = r.read(&mut buf[..want]) => Some(n),
                };
                match copied {
                    Some(Ok(0) | Err(_)) | None => {
                        let _ = w.shutdown().await;
                        return (frames, bytes);
                    }
                    Some(Ok(n)) => n,
                }
            };
            let res = if first {
                first = false;
                let mut out = Vec::with_capacity(head.raw.len() + n);
                out.extend_from_slice(&head.raw);
                out.extend_from_slice(&buf[..n]);
                w.write_all(&out).await
            } else {
                w.write_all(&buf[..n]).await
            };
            if res.is_err() {
                return (frames, bytes);
            }
            remaining -= n as u64;
            bytes += n as u64;
            shared.touch();
            if remaining == 0 {
                break;
            }
        }
        if w.flush().await.is_err() {
            return (frames, bytes);
        }
        frames += 1;
        if head.opcode == OP_CLOSE {
            close_sent = true;
        }
    }
}

#[cfg(test)]
mod tests;
