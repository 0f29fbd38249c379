use std::sync::atomic::AtomicUsize;
use std::sync::Mutex;
use std::task::{Wake, Waker};

use super::*;

/// A socket that records each write call it takes.
#[derive(Default)]
struct Socket {
    writes: Vec<Vec<u8>>,
    /// At most this much a write call (0: no bound).
    per_call: usize,
    /// This many write calls answer `Pending` before any is taken.
    full_for: usize,
    shut: bool,
    /// Flushes it was asked for.
    flushed: usize,
    /// Reading gives the end (else `Pending`).
    closed: bool,
    /// Every byte taken, kept where a test can read it after the socket is
    /// dropped.
    wire: Arc<Mutex<Vec<u8>>>,
}

impl Socket {
    fn sent(&self) -> Vec<u8> {
        self.writes.concat()
    }
}

impl AsyncRead for Socket {
    fn poll_read(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        _: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.closed {
            Poll::Ready(Ok(()))
        } else {
            Poll::Pending
        }
    }
}

impl AsyncWrite for Socket {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.full_for > 0 {
            this.full_for -= 1;
            return Poll::Pending;
        }
        let n = if this.per_call == 0 {
            buf.len()
        } else {
            buf.len().min(this.per_call)
        };
        this.writes.push(buf[..n].to_vec());
        this.wire.lock().expect("wire").extend_from_slice(&buf[..n]);
        Poll::Ready(Ok(n))
    }

    /// As a socket does: the slices in order, as far as the bound goes.
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let all: Vec<u8> = bufs.iter().flat_map(|b| b.iter().copied()).collect();
        self.poll_write(cx, &all)
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().flushed += 1;
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().shut = true;
        Poll::Ready(Ok(()))
    }
}

/// Counts the wake-ups asked for.
#[derive(Default)]
struct Wakes(AtomicUsize);

impl Wake for Wakes {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

struct Harness {
    conn: Coalesce<Socket>,
    turns: Turns,
    wakes: Arc<Wakes>,
    waker: Waker,
    /// Another stream's request being answered, as on a busy connection.
    other: Option<Answering>,
}

impl Harness {
    /// A connection with another request still being answered, so that
    /// flushes are put off.
    fn new(socket: Socket) -> Self {
        let turns = Turns::default();
        let wakes = Arc::new(Wakes::default());
        Self {
            conn: Coalesce::new(socket, turns.clone()),
            other: Some(turns.answering()),
            turns,
            waker: Waker::from(Arc::clone(&wakes)),
            wakes,
        }
    }

    fn write(&mut self, bytes: &[u8]) -> Poll<io::Result<usize>> {
        let mut cx = Context::from_waker(&self.waker);
        Pin::new(&mut self.conn).poll_write(&mut cx, bytes)
    }

    /// `h2`'s way: a frame's head and its body as two slices.
    fn write_vectored(&mut self, head: &[u8], body: &[u8]) -> Poll<io::Result<usize>> {
        let mut cx = Context::from_waker(&self.waker);
        let bufs = [io::IoSlice::new(head), io::IoSlice::new(body)];
        Pin::new(&mut self.conn).poll_write_vectored(&mut cx, &bufs)
    }

    fn flush(&mut self) -> Poll<io::Result<()>> {
        let mut cx = Context::from_waker(&self.waker);
        Pin::new(&mut self.conn).poll_flush(&mut cx)
    }

    fn shutdown(&mut self) -> Poll<io::Result<()>> {
        let mut cx = Context::from_waker(&self.waker);
        Pin::new(&mut self.conn).poll_shutdown(&mut cx)
    }

    fn read(&mut self) -> Poll<io::Result<()>> {
        let mut cx = Context::from_waker(&self.waker);
        let mut space = [0u8; 64];
        let mut buf = ReadBuf::new(&mut space);
        Pin::new(&mut self.conn).poll_read(&mut cx, &mut buf)
    }

    fn wakes(&self) -> usize {
        self.wakes.0.load(Ordering::Relaxed)
    }

    fn socket(&self) -> &Socket {
        &self.conn.io
    }
}

/// Compares bytes, naming the first difference rather than printing them.
fn same(got: &[u8], want: &[u8]) {
    let first = got.iter().zip(want).position(|(a, b)| a != b);
    assert!(
        got.len() == want.len() && first.is_none(),
        "{} bytes sent, {} wanted, first difference at {first:?}",
        got.len(),
        want.len()
    );
}

fn ready<T: std::fmt::Debug>(p: Poll<io::Result<T>>) -> T {
    match p {
        Poll::Ready(Ok(v)) => v,
        other => panic!("expected Ready(Ok), got {other:?}"),
    }
}

#[test]
fn a_flush_is_put_off_to_the_next_turn_which_sends_everything_in_one_write() {
    let mut h = Harness::new(Socket::default());
    h.turns.next();
    assert_eq!(ready(h.write_vectored(b"head-a ", b"body-a ")), 14);
    ready(h.flush());
    assert!(h.socket().writes.is_empty(), "the first flush holds");
    assert!(h.turns.holding(), "and asks the driver to end the turn");
    // Another stream's answer in the same turn joins the batch.
    assert_eq!(ready(h.write(b"b ")), 2);
    ready(h.flush());
    assert!(h.socket().writes.is_empty());

    h.turns.next();
    ready(h.write(b"c"));
    ready(h.flush());
    assert_eq!(h.socket().writes, vec![b"head-a body-a b c".to_vec()]);
    // Nothing is held now: a flush passes straight on, with no turn asked.
    assert!(!h.turns.holding());
    ready(h.flush());
    assert!(!h.turns.holding());
    assert_eq!(h.socket().writes.len(), 1);
    assert_eq!(h.socket().flushed, 2, "both flushes reached the socket");
    assert_eq!(
        h.wakes(),
        0,
        "the driver ends turns; nothing wakes the task"
    );
}

#[test]
fn a_large_write_with_nothing_held_goes_straight_to_the_socket() {
    let mut h = Harness::new(Socket::default());
    let frame = vec![7u8; DIRECT];
    assert_eq!(ready(h.write_vectored(&frame[..9], &frame[9..])), DIRECT);
    assert_eq!(h.socket().writes.len(), 1, "not copied, not held");
    assert!(h.conn.held.is_empty());
    ready(h.flush());
    assert!(!h.turns.holding(), "nothing held, no turn to end");
}

#[test]
fn a_large_write_behind_held_bytes_keeps_their_order() {
    let mut h = Harness::new(Socket::default());
    ready(h.write(b"small"));
    ready(h.flush());
    // Same turn: the large one may not overtake what is held.
    let big = vec![1u8; DIRECT];
    ready(h.write(&big));
    assert!(h.socket().writes.is_empty());
    h.turns.next();
    ready(h.flush());
    let mut want = b"small".to_vec();
    want.extend_from_slice(&big);
    same(&h.socket().sent(), &want);
}

#[test]
fn crossing_the_hold_limit_sends_what_is_held_first() {
    let mut h = Harness::new(Socket::default());
    let piece = vec![3u8; 1024];
    let mut want = Vec::new();
    for i in 0..HOLD_MAX / 1024 {
        let mut p = piece.clone();
        p[0] = u8::try_from(i % 251).expect("small");
        ready(h.write(&p));
        want.extend_from_slice(&p);
    }
    ready(h.flush());
    assert!(
        h.socket().writes.is_empty(),
        "exactly at the limit: still held"
    );
    assert_eq!(h.conn.held.len(), HOLD_MAX);
    // One byte more would cross it: the held bytes go first, in one write.
    ready(h.write(b"x"));
    want.push(b'x');
    assert_eq!(h.socket().writes.len(), 1);
    assert_eq!(h.socket().writes[0].len(), HOLD_MAX);
    assert_eq!(h.conn.held, b"x");
    ready(h.flush());
    h.turns.next();
    ready(h.flush());
    same(&h.socket().sent(), &want);
}

#[test]
fn a_full_socket_keeps_the_bytes_until_it_takes_them_in_order() {
    let mut h = Harness::new(Socket {
        per_call: 1000,
        full_for: 1,
        ..Socket::default()
    });
    let bytes: Vec<u8> = (0..4000u32).map(|i| (i % 256) as u8).collect();
    ready(h.write(&bytes));
    ready(h.flush());
    h.turns.next();
    assert!(h.flush().is_pending(), "the socket is full");
    ready(h.flush());
    assert_eq!(
        h.socket().writes.len(),
        4,
        "the socket's own bound, 1000 a call"
    );
    same(&h.socket().sent(), &bytes);
    assert!(h.conn.held.is_empty());
}

#[test]
fn shutting_down_sends_what_is_held_first() {
    let mut h = Harness::new(Socket::default());
    ready(h.write(b"goaway"));
    ready(h.flush());
    ready(h.shutdown());
    assert_eq!(h.socket().sent(), b"goaway");
    assert!(h.socket().shut);
}

#[test]
fn dropping_the_connection_with_bytes_held_tries_once_to_send_them() {
    let wire = Arc::new(Mutex::new(Vec::new()));
    let mut h = Harness::new(Socket {
        wire: Arc::clone(&wire),
        ..Socket::default()
    });
    ready(h.write(b"last answer"));
    ready(h.flush());
    assert!(h.socket().writes.is_empty());
    drop(h);
    assert_eq!(*wire.lock().expect("wire"), b"last answer");
}

#[test]
fn dropping_the_connection_on_a_full_socket_gives_up_at_once() {
    let wire = Arc::new(Mutex::new(Vec::new()));
    let mut h = Harness::new(Socket {
        wire: Arc::clone(&wire),
        full_for: usize::MAX,
        ..Socket::default()
    });
    ready(h.write(b"nowhere to go"));
    ready(h.flush());
    drop(h);
    assert!(wire.lock().expect("wire").is_empty());
}

#[test]
fn the_peer_closing_its_side_is_read_as_the_end_with_the_batch_kept() {
    let mut h = Harness::new(Socket {
        closed: true,
        ..Socket::default()
    });
    ready(h.write(b"held"));
    ready(h.flush());
    ready(h.read());
    assert!(h.socket().writes.is_empty(), "h2's shutdown sends it");
    ready(h.shutdown());
    assert_eq!(h.socket().sent(), b"held");
}

#[test]
fn crossing_the_hold_limit_on_a_full_socket_takes_nothing_until_there_is_room() {
    let mut h = Harness::new(Socket {
        full_for: 1,
        ..Socket::default()
    });
    for _ in 0..HOLD_MAX / 1024 {
        ready(h.write(&[5u8; 1024]));
    }
    assert!(h.write(b"more").is_pending(), "the held bytes could not go");
    assert_eq!(
        h.conn.held.len(),
        HOLD_MAX,
        "and the new ones were not taken"
    );
    assert_eq!(ready(h.write(b"more")), 4);
    assert_eq!(h.socket().writes.len(), 1);
    ready(h.flush());
    h.turns.next();
    ready(h.flush());
    let mut want = vec![5u8; HOLD_MAX];
    want.extend_from_slice(b"more");
    same(&h.socket().sent(), &want);
}

#[test]
fn shutting_down_on_a_full_socket_waits_and_then_sends_everything() {
    let mut h = Harness::new(Socket {
        full_for: 1,
        ..Socket::default()
    });
    ready(h.write(b"goaway"));
    ready(h.flush());
    assert!(h.shutdown().is_pending());
    assert!(!h.socket().shut, "not shut before the bytes are out");
    ready(h.shutdown());
    assert_eq!(h.socket().sent(), b"goaway");
    assert!(h.socket().shut);
}

#[test]
fn reading_with_the_peer_open_leaves_the_batch_alone() {
    let mut h = Harness::new(Socket::default());
    ready(h.write(b"held"));
    ready(h.flush());
    assert!(h.read().is_pending());
    assert!(h.socket().writes.is_empty());
}

#[test]
fn a_burst_gives_its_buffer_back_and_a_small_batch_keeps_it() {
    let mut h = Harness::new(Socket::default());
    ready(h.write(&[0u8; 1024]));
    ready(h.flush());
    h.turns.next();
    ready(h.flush());
    assert!(
        h.conn.held.capacity() >= 1024,
        "a small batch's room is kept"
    );

    for _ in 0..40 {
        ready(h.write(&[1u8; 1024]));
    }
    ready(h.flush());
    assert!(h.conn.held.capacity() > KEEP_MAX);
    h.turns.next();
    ready(h.flush());
    assert_eq!(h.conn.held.capacity(), 0, "a burst's buffer is given back");
    assert_eq!(h.socket().sent().len(), 41 * 1024);
}

#[test]
fn a_turn_of_many_flushes_sends_once_the_bound_is_reached() {
    let mut h = Harness::new(Socket::default());
    for _ in 0..FLUSHES_MAX {
        ready(h.write(b"answer "));
        ready(h.flush());
    }
    assert!(h.socket().writes.is_empty(), "up to the bound, all held");
    ready(h.write(b"one more"));
    ready(h.flush());
    assert_eq!(
        h.socket().writes.len(),
        1,
        "past it, written in the same turn"
    );
    assert_eq!(h.socket().sent().len(), 7 * FLUSHES_MAX as usize + 8);
    // And the next batch starts afresh.
    ready(h.write(b"next"));
    ready(h.flush());
    assert_eq!(h.socket().writes.len(), 1);
}

#[test]
fn a_lone_answer_is_held_to_the_end_of_its_turn_too() {
    let mut h = Harness::new(Socket::default());
    h.other = None;
    ready(h.write_vectored(b"head ", b"body"));
    ready(h.flush());
    assert!(h.socket().writes.is_empty(), "held, with no other request");
    assert!(h.turns.holding());
    // The driver's next poll is the turn's end: one write, nothing woken.
    h.turns.next();
    ready(h.flush());
    assert_eq!(h.socket().writes, vec![b"head body".to_vec()]);
    assert!(!h.turns.holding());
    assert_eq!(h.wakes(), 0);
}

#[test]
fn bytes_on_a_full_socket_leave_the_turn_to_the_sockets_wake() {
    let mut h = Harness::new(Socket {
        full_for: 1,
        ..Socket::default()
    });
    ready(h.write(b"answer"));
    ready(h.flush());
    assert!(h.turns.holding());
    h.turns.next();
    assert!(h.flush().is_pending(), "the socket is full");
    assert!(
        !h.turns.holding(),
        "the driver does not poll again: the socket's readiness will"
    );
    h.turns.next();
    ready(h.flush());
    assert_eq!(h.socket().sent(), b"answer");
}

#[test]
fn an_answering_guard_counts_until_dropped() {
    let turns = Turns::default();
    assert!(!turns.others_answering());
    let a = turns.answering();
    let b = turns.answering();
    drop(a);
    assert!(turns.others_answering());
    drop(b);
    assert!(!turns.others_answering());
}

#[test]
fn a_quiet_connection_keeps_a_small_buffer_only() {
    let mut h = Harness::new(Socket::default());
    h.other = None;
    // A turn's writes still go out as one.
    ready(h.write_vectored(b"head ", b"body"));
    ready(h.write(b" next"));
    ready(h.flush());
    h.turns.next();
    ready(h.flush());
    assert_eq!(h.socket().writes, vec![b"head body next".to_vec()]);
    assert!(h.conn.held.capacity() > 0, "a small answer's room is kept");

    // A batch made while busy is cut down once the connection is quiet.
    let busy = h.turns.answering();
    for _ in 0..8 {
        ready(h.write(&[9u8; 1024]));
    }
    ready(h.flush());
    assert!(h.conn.held.capacity() > KEEP_QUIET);
    drop(busy);
    h.turns.next();
    ready(h.flush());
    assert_eq!(h.socket().sent().len(), 14 + 8 * 1024);
    assert_eq!(
        h.conn.held.capacity(),
        0,
        "the quiet connection gave it back"
    );
}
