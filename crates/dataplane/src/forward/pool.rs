//! The upstream connection pool: HTTP/1.1 keep-alive connections driven in
//! the task of the request that uses them.
//!
//! A pooled client that spawns one task per upstream connection (as
//! hyper-util's legacy client does) hands every request and every body
//! chunk across a channel to that task and back: two task switches per
//! request on top of the socket work. Here a checked-out connection travels
//! with the request instead (`h1.rs` is its client side): the request's
//! future polls it while waiting for the response head, and the response
//! body polls it while streaming, so the client connection's task does all
//! the work of one exchange, as nginx's event loop does. An idle connection
//! sits in the pool unpolled; checkout looks at its socket's readiness,
//! which notices an upstream that closed it meanwhile, and a reaper drops
//! connections idle past the timeout.
//!
//! A WebSocket handshake gets a fresh connection of its own, driven by
//! hyper's client with upgrades enabled: after the 101 the socket belongs
//! to the tunnel and is never pooled.

use std::collections::HashMap;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, Weak};
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Method;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::h1::{Conn, Framing, Head, UpstreamError};
use crate::body::ProxyBody;
use crate::lock;
use crate::splice::{Moved, Pipe, Source, SpliceFrom, MIN_SPLICE};

/// Opens upstream connections.
#[derive(Debug, Clone, Copy)]
pub(super) struct Dialer {
    pub(super) connect_timeout: Duration,
}

/// Why a connection could not be opened.
#[derive(Debug, thiserror::Error)]
pub(super) enum DialError {
    #[error("connecting to the upstream timed out")]
    Timeout,
    #[error("connecting to the upstream failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("upstream handshake failed: {0}")]
    Handshake(#[from] hyper::Error),
}

impl Dialer {
    async fn stream(&self, authority: &str) -> Result<TcpStream, DialError> {
        let tcp = tokio::time::timeout(self.connect_timeout, TcpStream::connect(authority))
            .await
            .map_err(|_| DialError::Timeout)??;
        tcp.set_nodelay(true)?;
        Ok(tcp)
    }

    /// A fresh connection for pooled use.
    pub(super) async fn dial(&self, authority: &str) -> Result<Box<Conn>, DialError> {
        Ok(Conn::new(self.stream(authority).await?, authority))
    }

    /// A fresh connection for a WebSocket handshake, driven by a task of
    /// its own with upgrades enabled.
    pub(super) async fn dial_upgradable(
        &self,
        authority: &str,
    ) -> Result<http1::SendRequest<ProxyBody>, DialError> {
        let io = TokioIo::new(self.stream(authority).await?);
        let (sender, conn) = http1::Builder::new().handshake(io).await?;
        tokio::spawn(async move {
            if let Err(e) = conn.with_upgrades().await {
                tracing::debug!(error = %e, "upstream upgrade connection ended with an error");
            }
        });
        Ok(sender)
    }
}

/// A connection resting in the pool.
struct Idle {
    conn: Box<Conn>,
    since: Instant,
}

/// Idle connections by upstream authority, most recently used last.
pub(super) struct Pool {
    idle: Mutex<HashMap<Box<str>, Vec<Idle>, foldhash::quality::RandomState>>,
    idle_timeout: Duration,
    max_idle_per_authority: usize,
    /// Started by the first checkin, which runs on the runtime.
    reaper: std::sync::Once,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("idle", &self.idle_count())
            .field("idle_timeout", &self.idle_timeout)
            .finish_non_exhaustive()
    }
}

impl Pool {
    pub(super) fn new(idle_timeout: Duration, max_idle_per_authority: usize) -> Arc<Self> {
        Arc::new(Self {
            idle: Mutex::new(HashMap::default()),
            idle_timeout,
            max_idle_per_authority,
            reaper: std::sync::Once::new(),
        })
    }

    fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<Box<str>, Vec<Idle>, foldhash::quality::RandomState>>
    {
        // A panic while holding the lock leaves only connections behind.
        lock(&self.idle)
    }

    /// Connections resting in the pool, over every authority.
    pub(super) fn idle_count(&self) -> usize {
        self.lock().values().map(Vec::len).sum()
    }

    /// The most recently used live connection to `authority`, if any. A
    /// candidate the upstream closed while it rested, or that it sent
    /// anything unasked, is dropped.
    pub(super) fn checkout(&self, authority: &str) -> Option<Box<Conn>> {
        loop {
            // An emptied list stays (the reaper removes it): the next
            // checkin then costs no key and no vector.
            let mut idle = self.lock().get_mut(authority)?.pop()?;
            if idle.since.elapsed() < self.idle_timeout && idle.conn.is_usable() {
                idle.conn.reused = true;
                return Some(idle.conn);
            }
        }
    }

    /// Takes back a connection whose response has been read to the end
    /// and that may carry another exchange. If its request has not been
    /// sent in full, the upstream answered before reading the whole upload
    /// (nginx's `return 200` does): the upload is still flowing, and a task
    /// of its own sends the rest, then pools the connection, as the client
    /// would expect of any proxy.
    pub(super) fn release(self: &Arc<Self>, mut conn: Box<Conn>) {
        if !conn.is_reusable() {
            return;
        }
        if conn.is_sent() {
            self.checkin(conn);
            return;
        }
        let pool = Arc::clone(self);
        tokio::spawn(async move {
            let sent = std::future::poll_fn(|cx| conn.poll_send(cx)).await;
            if sent.is_ok() && conn.is_reusable() {
                pool.checkin(conn);
            }
        });
    }

    /// Returns a connection whose exchange has completed.
    fn checkin(self: &Arc<Self>, mut conn: Box<Conn>) {
        conn.settle();
        self.reaper.call_once(|| {
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(reap(Arc::downgrade(self)));
            }
        });
        let idle = Idle {
            conn,
            since: Instant::now(),
        };
        // Whatever is dropped (a connection over the bound) closes its
        // socket after the lock is released.
        let mut refused = None;
        {
            let mut map = self.lock();
            match map.get_mut(&idle.conn.authority) {
                Some(list) if list.len() >= self.max_idle_per_authority => refused = Some(idle),
                Some(list) => list.push(idle),
                None => {
                    map.insert(idle.conn.authority.clone(), vec![idle]);
                }
            }
        }
        drop(refused);
    }

    /// Drops every connection idle for the timeout or longer, and the
    /// lists left empty; the sockets close after the lock is released.
    fn reap_expired(&self) {
        let now = Instant::now();
        let mut expired = Vec::new();
        {
            let mut map = self.lock();
            map.retain(|_, list| {
                // Most recently used last: the expired ones lead.
                let fresh = list
                    .iter()
                    .position(|i| now.duration_since(i.since) < self.idle_timeout)
                    .unwrap_or(list.len());
                expired.extend(list.drain(..fresh));
                !list.is_empty()
            });
        }
        drop(expired);
    }
}

/// Drops expired idle connections until the pool itself is gone, so an
/// upstream nobody calls any more does not keep sockets open.
async fn reap(pool: Weak<Pool>) {
    let period = match pool.upgrade() {
        Some(p) => (p.idle_timeout / 2).max(Duration::from_secs(1)),
        None => return,
    };
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        match pool.upgrade() {
            Some(p) => p.reap_expired(),
            None => return,
        }
    }
}

/// Sends the request started on `conn` and reads the response head. The
/// upstream has `timeout` to answer once the request has been sent in
/// full: an upload of gigabytes over a slow link may take far longer than
/// the upstream needs to answer it. With `verbatim` the answer's fields
/// may come as the upstream wrote them (see [`Head::verbatim`]).
pub(super) async fn exchange(
    conn: &mut Conn,
    method: &Method,
    verbatim: bool,
    timeout: Duration,
) -> Result<Head, UpstreamError> {
    conn.verbatim = verbatim;
    // When the upstream's answer is due: set once the request is out.
    let mut due = None;
    std::future::poll_fn(|cx| {
        if due.is_none() {
            match conn.poll_send(cx) {
                Poll::Ready(Ok(())) => due = Some(tokio::time::Instant::now() + timeout),
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => {}
            }
        }
        if let Poll::Ready(head) = conn.poll_head(cx, method) {
            return Poll::Ready(head);
        }
        match due {
            Some(due) if conn.poll_timeout(due, cx).is_ready() => {
                Poll::Ready(Err(UpstreamError::Timeout))
            }
            _ => Poll::Pending,
        }
    })
    .await
}

/// A response body. A pooled one drives its upstream connection while it
/// streams and, once it has streamed to the end, returns the connection to
/// the pool. A body dropped before its end takes the connection with it:
/// HTTP/1.1 cannot abandon a response and keep the connection.
pub struct UpstreamBody(Inner);

enum Inner {
    /// Nothing to stream: the connection has been released already.
    Empty,
    /// A protocol switch's answer, on a connection hyper drives.
    Upgrade(Incoming),
    Pooled(Streaming),
    /// A large `Content-Length` body, shared with the [`SpliceFrom`] of
    /// its response so the client's side may splice it instead.
    Shared(Arc<Mutex<Streaming>>),
}

/// A response body streaming off its upstream connection.
struct Streaming {
    /// `None` once the body has ended or failed.
    conn: Option<Box<Conn>>,
    framing: Framing,
    keep_alive: bool,
    /// The pool the connection goes back to.
    home: Arc<Pool>,
}

/// The connection, once an upload still being sent has had its turn (an
/// upstream answering before the whole upload may wait for it).
fn driven<'a>(slot: &'a mut Option<Box<Conn>>, cx: &mut Context<'_>) -> Option<&'a mut Conn> {
    let conn = slot.as_mut()?;
    if !conn.is_sent() {
        if let Poll::Ready(Err(e)) = conn.poll_send(cx) {
            // The response may still be whole; the connection is not
            // reused (the failed upload marked it).
            tracing::debug!(error = %e, "the upload ended while its response streamed");
        }
    }
    Some(conn)
}

impl Streaming {
    /// Gives the connection back once the body is complete.
    fn end(&mut self) {
        if let Some(conn) = self.conn.take() {
            if self.keep_alive {
                self.home.release(conn);
            }
        }
    }

    fn poll_frame(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, UpstreamError>>> {
        let Some(conn) = driven(&mut self.conn, cx) else {
            return Poll::Ready(None);
        };
        let polled = conn.poll_body(cx, &mut self.framing);
        match &polled {
            Poll::Ready(Ok(None)) => self.end(),
            Poll::Ready(Ok(Some(_))) if self.framing == Framing::Done => self.end(),
            Poll::Ready(Err(_)) => self.conn = None,
            _ => {}
        }
        polled.map(Result::transpose)
    }

    fn poll_move(&mut self, pipe: &mut Pipe, cx: &mut Context<'_>) -> Poll<io::Result<Moved>> {
        if self.framing == Framing::Done {
            return Poll::Ready(Ok(Moved::End));
        }
        let Some(conn) = driven(&mut self.conn, cx) else {
            return Poll::Ready(Err(io::Error::other("the upstream connection is gone")));
        };
        let moved = ready!(conn.poll_move_body(pipe, &mut self.framing, cx));
        match moved {
            Ok(moved) => {
                if self.framing == Framing::Done {
                    self.end();
                }
                Poll::Ready(Ok(moved))
            }
            Err(e) => {
                self.conn = None;
                Poll::Ready(Err(io::Error::other(e)))
            }
        }
    }
}

/// The splice source of a shared response body.
struct SharedBody(Arc<Mutex<Streaming>>);

impl Source for SharedBody {
    fn poll_move(&self, pipe: &mut Pipe, cx: &mut Context<'_>) -> Poll<io::Result<Moved>> {
        lock(&self.0).poll_move(pipe, cx)
    }
}

impl std::fmt::Debug for UpstreamBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match &self.0 {
            Inner::Empty => "empty",
            Inner::Upgrade(_) => "upgrade",
            Inner::Pooled(_) => "pooled",
            Inner::Shared(_) => "shared",
        };
        f.debug_tuple("UpstreamBody").field(&kind).finish()
    }
}

impl UpstreamBody {
    pub(super) fn empty() -> Self {
        Self(Inner::Empty)
    }

    pub(super) fn upgrade(inner: Incoming) -> Self {
        Self(Inner::Upgrade(inner))
    }

    /// The body of a pooled connection's response; with the splice source
    /// the client's side may take it from, where splicing is allowed
    /// (`splice`) and the body is worth one (a `Content-Length` of at
    /// least [`MIN_SPLICE`]).
    pub(super) fn pooled(
        conn: Box<Conn>,
        framing: Framing,
        keep_alive: bool,
        home: Arc<Pool>,
        splice: bool,
    ) -> (Self, Option<SpliceFrom>) {
        let streaming = Streaming {
            conn: Some(conn),
            framing,
            keep_alive,
            home,
        };
        if splice && matches!(framing, Framing::Length(n) if n >= MIN_SPLICE) {
            let shared = Arc::new(Mutex::new(streaming));
            let source = SpliceFrom(Arc::new(SharedBody(Arc::clone(&shared))));
            (Self(Inner::Shared(shared)), Some(source))
        } else {
            (Self(Inner::Pooled(streaming)), None)
        }
    }
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = UpstreamError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, UpstreamError>>> {
        match &mut self.0 {
            Inner::Empty => Poll::Ready(None),
            Inner::Upgrade(inner) => Pin::new(inner)
                .poll_frame(cx)
                .map_err(UpstreamError::Upgrade),
            Inner::Pooled(streaming) => streaming.poll_frame(cx),
            Inner::Shared(shared) => lock(shared).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.0 {
            Inner::Empty => true,
            Inner::Upgrade(inner) => inner.is_end_stream(),
            Inner::Pooled(streaming) => streaming.framing == Framing::Done,
            Inner::Shared(shared) => lock(shared).framing == Framing::Done,
        }
    }

    fn size_hint(&self) -> SizeHint {
        let framing = match &self.0 {
            Inner::Empty => return SizeHint::with_exact(0),
            Inner::Upgrade(inner) => return inner.size_hint(),
            Inner::Pooled(streaming) => streaming.framing,
            Inner::Shared(shared) => lock(shared).framing,
        };
        match framing {
            Framing::Done => SizeHint::with_exact(0),
            Framing::Length(n) => SizeHint::with_exact(n),
            Framing::Chunked(_) | Framing::Close => SizeHint::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_pool_keeps_at_most_its_bound_per_authority() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let authority = listener.local_addr().expect("addr").to_string();
        tokio::spawn(async move {
            let mut held = Vec::new();
            for _ in 0..4 {
                if let Ok((s, _)) = listener.accept().await {
                    held.push(s);
                }
            }
            std::future::pending::<()>().await;
        });
        let dialer = Dialer {
            connect_timeout: Duration::from_secs(5),
        };
        let pool = Pool::new(Duration::from_secs(60), 2);
        for _ in 0..3 {
            let conn = dialer.dial(&authority).await.expect("dial");
            pool.checkin(conn);
        }
        assert_eq!(pool.idle_count(), 2, "the third connection is refused");
        // Another authority has a bound of its own.
        let other = "127.0.0.1:1";
        let mut conn = dialer.dial(&authority).await.expect("dial");
        conn.authority = other.into();
        pool.checkin(conn);
        assert_eq!(pool.idle_count(), 3);
    }
}
