use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http2 as client;
use hyper_util::rt::TokioExecutor;

use super::*;

/// Every poll of an HTTP/2 connection, the graceful drain's included, is a
/// turn: the writes `Coalesce` holds go out on the next one. Its streams
/// run in the connection's own task (`server/streams.rs`).
#[tokio::test]
async fn each_poll_of_an_http2_connection_is_a_turn_the_drains_too() {
    let (client_io, server_io) = tokio::io::duplex(64 * 1024);
    let (running, streams) = Running::new();
    let mut b = http2::Builder::new(streams);
    b.timer(TokioTimer::new());
    let turns = Turns::default();
    let shutdown = CancellationToken::new();
    let ran_in = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = Arc::clone(&ran_in);
    let svc = service_fn(move |_req: http::Request<hyper::body::Incoming>| {
        let seen = Arc::clone(&seen);
        async move {
            seen.lock().expect("ids").push(tokio::task::id());
            Ok::<_, Infallible>(http::Response::new(crate::body::empty()))
        }
    });
    let server = {
        let (turns, shutdown) = (turns.clone(), shutdown.clone());
        tokio::spawn(async move {
            let io = TokioIo::new(Coalesce::new(server_io, turns.clone()));
            serve_conn(&b, running, io, svc, &turns, &shutdown).await;
        })
    };

    let (mut send, conn) = client::handshake(TokioExecutor::new(), TokioIo::new(client_io))
        .await
        .expect("handshake");
    let client = tokio::spawn(conn);
    let req = http::Request::get("http://x/")
        .body(Empty::<Bytes>::new())
        .expect("request");
    // Held to the turn's end, the answer still comes with nothing to wake
    // the task: the driver ends the turn itself.
    let resp = tokio::time::timeout(Duration::from_secs(5), send.send_request(req))
        .await
        .expect("the turn's end sent the answer")
        .expect("answer");
    assert_eq!(resp.status(), 200);
    let served = turns.now();
    assert_eq!(
        *ran_in.lock().expect("ids"),
        [server.id()],
        "the stream ran in the connection's task"
    );
    assert!(served >= 2, "the connection's polls were counted: {served}");

    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("the drain ends")
        .expect("server task");
    assert!(turns.now() > served, "the drain's polls were counted too");
    drop(send);
    let _ = client.await;
}

/// The server's side of a duplex pipe, counting the writes that reach it.
struct Counted {
    io: tokio::io::DuplexStream,
    writes: Arc<std::sync::atomic::AtomicUsize>,
}

impl tokio::io::AsyncRead for Counted {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for Counted {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.writes
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        std::pin::Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// Answers that become ready together leave together: eight streams whose
/// answers (each with a body, which `h2` flushes one by one) are released
/// at once reach the socket in one write, made at the end of the turn.
#[tokio::test]
async fn answers_ready_in_one_turn_leave_in_one_write() {
    const STREAMS: usize = 8;
    let (client_io, server_io) = tokio::io::duplex(256 * 1024);
    let writes = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (running, streams) = Running::new();
    let mut b = http2::Builder::new(streams);
    b.timer(TokioTimer::new());
    let turns = Turns::default();
    let shutdown = CancellationToken::new();
    let (release, released) = tokio::sync::watch::channel(false);
    let arrived = Arc::new(tokio::sync::Semaphore::new(0));
    let svc = {
        let arrived = Arc::clone(&arrived);
        service_fn(move |_req: http::Request<hyper::body::Incoming>| {
            let mut released = released.clone();
            let arrived = Arc::clone(&arrived);
            async move {
                arrived.add_permits(1);
                let _ = released.wait_for(|go| *go).await;
                Ok::<_, Infallible>(http::Response::new(crate::body::full(vec![b'x'; 1024])))
            }
        })
    };
    let server = {
        let (turns, shutdown) = (turns.clone(), shutdown.clone());
        let io = Counted {
            io: server_io,
            writes: Arc::clone(&writes),
        };
        tokio::spawn(async move {
            let io = TokioIo::new(Coalesce::new(io, turns.clone()));
            serve_conn(&b, running, io, svc, &turns, &shutdown).await;
        })
    };
    let (send, conn) = client::handshake(TokioExecutor::new(), TokioIo::new(client_io))
        .await
        .expect("handshake");
    let client = tokio::spawn(conn);
    let mut calls = Vec::new();
    for i in 0..STREAMS {
        let mut send = send.clone();
        let req = http::Request::get(format!("http://x/{i}"))
            .body(Empty::<Bytes>::new())
            .expect("request");
        calls.push(tokio::spawn(async move {
            let resp = send.send_request(req).await.expect("answer");
            resp.into_body()
                .collect()
                .await
                .expect("body")
                .to_bytes()
                .len()
        }));
    }
    let all = u32::try_from(STREAMS).expect("count");
    let _ = tokio::time::timeout(Duration::from_secs(5), arrived.acquire_many(all))
        .await
        .expect("every request reached the service");
    let before = writes.load(std::sync::atomic::Ordering::Relaxed);
    release.send(true).expect("streams wait");
    for call in calls {
        let len = tokio::time::timeout(Duration::from_secs(5), call)
            .await
            .expect("answered in time")
            .expect("call");
        assert_eq!(len, 1024);
    }
    let answers = writes.load(std::sync::atomic::Ordering::Relaxed) - before;
    assert_eq!(answers, 1, "{STREAMS} answers left in {answers} writes");

    shutdown.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(5), server).await;
    drop(send);
    let _ = client.await;
}

/// Counts the wakes a poll asks for.
#[derive(Default)]
struct Wakes(std::sync::atomic::AtomicUsize);

impl std::task::Wake for Wakes {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// A turn that leaves bytes held is ended by polling the connection
/// again; a connection that holds more bytes at every one of those polls
/// (an answer that never stops coming) is polled [`END_TURNS_MAX`] more
/// times, then its task is woken so the worker can run others first.
#[test]
fn ending_a_turn_polls_at_most_end_turns_max_times_then_wakes_the_task() {
    let (_client, server_io) = tokio::io::duplex(1 << 20);
    let turns = Turns::default();
    let mut conn = Coalesce::new(server_io, turns.clone());
    let wakes = Arc::new(Wakes::default());
    let waker = std::task::Waker::from(Arc::clone(&wakes));
    let mut cx = std::task::Context::from_waker(&waker);
    let polls = std::cell::Cell::new(0u32);
    let more = std::cell::Cell::new(true);
    // One poll of a connection: its flush sends what the turn before held,
    // and while `more`, it writes and flushes again, which is held.
    let mut poll = |cx: &mut std::task::Context<'_>| -> Poll<()> {
        use tokio::io::AsyncWrite;
        polls.set(polls.get() + 1);
        let mut io = std::pin::Pin::new(&mut conn);
        assert!(io.as_mut().poll_flush(cx).is_ready());
        if more.get() {
            assert!(io.as_mut().poll_write(cx, b"more").is_ready());
            assert!(io.as_mut().poll_flush(cx).is_ready());
        }
        Poll::Pending
    };

    turns.next();
    let first = poll(&mut cx);
    assert!(turns.holding(), "the turn left bytes held");
    assert!(end_turn(&turns, &mut cx, first, &mut poll).is_pending());
    assert_eq!(polls.get(), 1 + END_TURNS_MAX, "ended at the bound");
    assert!(turns.holding(), "still holding");
    assert_eq!(wakes.0.load(std::sync::atomic::Ordering::Relaxed), 1);

    // A connection whose next poll only sends what was held: one more
    // poll ends the turn, and nothing is woken.
    more.set(false);
    polls.set(0);
    let first = Poll::Pending;
    assert!(end_turn(&turns, &mut cx, first, &mut poll).is_pending());
    assert_eq!(polls.get(), 1);
    assert!(!turns.holding());
    assert_eq!(wakes.0.load(std::sync::atomic::Ordering::Relaxed), 1);
}
