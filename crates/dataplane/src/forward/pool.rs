//! The upstream connection pool: HTTP/1.1 keep-alive connections driven in
//! the task of the request that uses them.
//!
//! A pooled client that spawns one task per upstream connection (as
//! hyper-util's legacy client does) hands every request and every body
//! chunk across a channel to that task and back: two task switches per
//! request on top of the socket work. Here a checked-out connection travels
//! with the request instead. The request's future polls it while waiting
//! for the response head, and the response body polls it while streaming,
//! so the client connection's task does all the work of one exchange, as
//! nginx's event loop does. An idle connection sits in the pool unpolled;
//! checkout polls it once, which notices an upstream that closed it
//! meanwhile, and a reaper drops connections idle past the timeout.
//!
//! A WebSocket handshake gets a fresh connection of its own, spawned with
//! upgrades enabled: after the 101 the socket belongs to the tunnel and is
//! never pooled.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::body::ProxyBody;

type Connection = http1::Connection<TokioIo<TcpStream>, ProxyBody>;

/// One upstream HTTP/1.1 connection: the handle requests are sent on and
/// the connection state machine that does the socket work. Always boxed:
/// it is large (hyper's buffers and parser state) and moves between the
/// pool, the request and the response body several times per request.
pub(super) struct Conn {
    sender: http1::SendRequest<ProxyBody>,
    conn: Connection,
    /// Whether this connection came out of the pool (and so may have been
    /// closed by the upstream while idle) rather than being just opened.
    pub(super) reused: bool,
    /// The upstream it is connected to: the pool key it goes back under.
    authority: Box<str>,
}

impl Conn {
    /// Polls the connection state machine; `true` once it has ended (the
    /// upstream closed it, an I/O error, or hyper decided not to keep it).
    fn poll_ended(&mut self, cx: &mut Context<'_>) -> bool {
        match Pin::new(&mut self.conn).poll(cx) {
            Poll::Pending => false,
            Poll::Ready(Ok(())) => true,
            Poll::Ready(Err(e)) => {
                tracing::debug!(error = %e, "upstream connection ended with an error");
                true
            }
        }
    }
}

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
    async fn stream(&self, authority: &str) -> Result<TokioIo<TcpStream>, DialError> {
        let tcp = tokio::time::timeout(self.connect_timeout, TcpStream::connect(authority))
            .await
            .map_err(|_| DialError::Timeout)??;
        tcp.set_nodelay(true)?;
        Ok(TokioIo::new(tcp))
    }

    /// A fresh connection for pooled use.
    pub(super) async fn dial(&self, authority: &str) -> Result<Box<Conn>, DialError> {
        let io = self.stream(authority).await?;
        let (sender, conn) = http1::Builder::new().handshake(io).await?;
        Ok(Box::new(Conn {
            sender,
            conn,
            reused: false,
            authority: authority.into(),
        }))
    }

    /// A fresh connection for a WebSocket handshake, driven by a task of
    /// its own with upgrades enabled.
    pub(super) async fn dial_upgradable(
        &self,
        authority: &str,
    ) -> Result<http1::SendRequest<ProxyBody>, DialError> {
        let io = self.stream(authority).await?;
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
        self.idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Connections resting in the pool, over every authority.
    pub(super) fn idle_count(&self) -> usize {
        self.lock().values().map(Vec::len).sum()
    }

    /// The most recently used live connection to `authority`, if any.
    /// Each candidate is polled once: one the upstream closed while it
    /// rested, or that is not ready for another request, is dropped.
    pub(super) async fn checkout(&self, authority: &str) -> Option<Box<Conn>> {
        loop {
            // An emptied list stays (the reaper removes it): the next
            // checkin then costs no key and no vector.
            let mut idle = self.lock().get_mut(authority)?.pop()?;
            if idle.since.elapsed() >= self.idle_timeout {
                continue;
            }
            let ended = std::future::poll_fn(|cx| Poll::Ready(idle.conn.poll_ended(cx))).await;
            if !ended && idle.conn.sender.is_ready() {
                idle.conn.reused = true;
                return Some(idle.conn);
            }
        }
    }

    /// Takes back a connection whose response has been read to the end.
    /// Polled once, it is ready for the next request if its request has
    /// been sent too. If not, the upstream answered before reading the
    /// whole upload (nginx's `return 200` does): the upload is still
    /// flowing, and a task of its own drives the connection until it is
    /// sent, then pools it, as the client would expect of any proxy.
    pub(super) fn release(self: &Arc<Self>, mut conn: Box<Conn>, cx: &mut Context<'_>) {
        if conn.poll_ended(cx) {
            return;
        }
        if conn.sender.is_ready() {
            self.checkin(conn);
            return;
        }
        let pool = Arc::clone(self);
        tokio::spawn(async move {
            let ready = std::future::poll_fn(|cx| {
                if conn.poll_ended(cx) {
                    return Poll::Ready(false);
                }
                conn.sender.poll_ready(cx).map(|r| r.is_ok())
            })
            .await;
            if ready {
                pool.checkin(conn);
            }
        });
    }

    /// [`Pool::release`] from async code without a context at hand: for a
    /// response without a body, whose exchange is over at once.
    pub(super) async fn give_back(self: &Arc<Self>, conn: Box<Conn>) {
        let mut conn = Some(conn);
        std::future::poll_fn(|cx| {
            if let Some(c) = conn.take() {
                self.release(c, cx);
            }
            Poll::Ready(())
        })
        .await;
    }

    /// Returns a connection whose exchange has completed.
    fn checkin(self: &Arc<Self>, conn: Box<Conn>) {
        if conn.sender.is_closed() {
            return;
        }
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

/// Sends `req` on `conn` and drives the connection until the response head
/// has arrived. The connection comes back unless it ended meanwhile. On
/// failure the request comes back when it was never written (a pooled
/// connection the upstream had just closed), so the caller may send it
/// again on a fresh connection.
pub(super) async fn exchange(
    mut conn: Box<Conn>,
    req: Request<ProxyBody>,
) -> (
    Option<Box<Conn>>,
    Result<Response<Incoming>, hyper::client::conn::TrySendError<Request<ProxyBody>>>,
) {
    let mut response = std::pin::pin!(conn.sender.try_send_request(req));
    let mut conn = Some(conn);
    let result = std::future::poll_fn(|cx| {
        if let Some(c) = conn.as_mut() {
            if c.poll_ended(cx) {
                // Dropped at once, not merely no longer polled: a request
                // still queued on it is answered (with its message back)
                // only when the connection is gone.
                conn = None;
            }
        }
        response.as_mut().poll(cx)
    })
    .await;
    (conn, result)
}

/// A response body that drives its upstream connection while it streams
/// and, once it has streamed to the end, returns the connection to the
/// pool. A body dropped before its end takes the connection with it:
/// HTTP/1.1 cannot abandon a response and keep the connection.
pub struct UpstreamBody {
    inner: Incoming,
    conn: Option<Box<Conn>>,
    /// The pool the connection goes back to.
    home: Option<Arc<Pool>>,
}

impl std::fmt::Debug for UpstreamBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamBody")
            .field("pooled", &self.conn.is_some())
            .finish_non_exhaustive()
    }
}

impl UpstreamBody {
    /// A body whose connection is driven elsewhere (upgrade connections)
    /// or was released already (responses without a body).
    pub(super) fn detached(inner: Incoming) -> Self {
        Self {
            inner,
            conn: None,
            home: None,
        }
    }

    pub(super) fn pooled(inner: Incoming, conn: Option<Box<Conn>>, pool: Arc<Pool>) -> Self {
        Self {
            inner,
            conn,
            home: Some(pool),
        }
    }

    fn release(&mut self, cx: &mut Context<'_>) {
        if let (Some(conn), Some(pool)) = (self.conn.take(), self.home.as_ref()) {
            pool.release(conn, cx);
        }
    }
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = &mut *self;
        if let Some(c) = this.conn.as_mut() {
            if c.poll_ended(cx) {
                this.conn = None;
            }
        }
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(None) => this.release(cx),
            Poll::Ready(Some(Ok(_))) if this.inner.is_end_stream() => this.release(cx),
            Poll::Ready(Some(Err(_))) => this.conn = None,
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
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
