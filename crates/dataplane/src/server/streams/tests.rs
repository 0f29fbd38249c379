use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use hyper::rt::Executor;
use tokio::sync::oneshot;

use super::*;

/// Polls `running` in a task of its own until no stream is left.
fn drive(mut running: Running) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move { std::future::poll_fn(|cx| running.poll(cx)).await })
}

async fn within<T>(what: &str, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(5), f)
        .await
        .unwrap_or_else(|_| panic!("{what} did not happen in time"))
}

#[tokio::test]
async fn work_handed_over_runs_in_the_polling_task_and_the_set_ends_with_it() {
    let (running, streams) = Running::new();
    let (tx, rx) = oneshot::channel::<()>();
    let (seen_tx, seen_rx) = oneshot::channel();
    streams.execute(async move {
        let waited = rx.await.is_ok();
        let _ = seen_tx.send((waited, tokio::task::id()));
    });
    let driver = drive(running);
    let driver_id = driver.id();
    // The stream waits on the channel: the set is pending, not ended.
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        !driver.is_finished(),
        "a waiting stream keeps the set alive"
    );
    tx.send(()).expect("the stream still waits");
    let (waited, ran_in) = within("the stream's end", seen_rx)
        .await
        .expect("stream ran");
    assert!(waited, "the stream was woken by its channel");
    assert_eq!(ran_in, driver_id, "the stream ran in the polling task");
    within("the set's end", driver).await.expect("driver");
}

#[tokio::test]
async fn a_stream_that_panics_ends_alone() {
    let (running, streams) = Running::new();
    let done = Arc::new(AtomicUsize::new(0));
    for i in 0..4 {
        let done = Arc::clone(&done);
        streams.execute(async move {
            tokio::task::yield_now().await;
            assert_ne!(i, 1, "stream 1 fails");
            done.fetch_add(1, Ordering::SeqCst);
        });
    }
    within("the set's end", drive(running))
        .await
        .expect("the polling task itself does not panic");
    assert_eq!(done.load(Ordering::SeqCst), 3, "the other streams finished");
}

#[tokio::test]
async fn work_handed_over_by_a_running_stream_is_taken_in_at_once() {
    let (mut running, streams) = Running::new();
    let inner = streams.clone();
    let (tx, rx) = oneshot::channel();
    streams.execute(async move {
        inner.execute(async move {
            let _ = tx.send(());
        });
    });
    // One poll: the first stream hands over the second, which runs in the
    // same poll (no wake would come for it), and both are done.
    let polled = std::future::poll_fn(|cx| Poll::Ready(running.poll(cx))).await;
    assert!(polled.is_ready(), "both streams ended in one poll");
    assert_eq!(running.len(), 0);
    rx.await.expect("the second stream ran");
}

#[tokio::test]
async fn work_handed_over_once_the_set_is_gone_still_runs() {
    let (running, streams) = Running::new();
    drop(running);
    let (tx, rx) = oneshot::channel();
    streams.execute(async move {
        let _ = tx.send(());
    });
    within("the late stream", rx).await.expect("it was spawned");
}

#[tokio::test]
async fn dropping_the_set_drops_its_streams() {
    let (mut running, streams) = Running::new();
    let (tx, rx) = oneshot::channel::<()>();
    streams.execute(async move {
        let _held = tx;
        std::future::pending::<()>().await;
    });
    let polled = std::future::poll_fn(|cx| Poll::Ready(running.poll(cx))).await;
    assert!(polled.is_pending());
    assert_eq!(running.len(), 1);
    drop(running);
    assert!(
        rx.await.is_err(),
        "the stream's future was dropped with the set"
    );
}
