//! A connection's timer, moved lazily. A connection waits for one thing
//! after another (the next request head, the next answer), each with a
//! due time later than the one before. Moving the timer at every wait
//! costs a recomputation of the time in the timer wheel's ticks; moving it
//! only when it is set later than the due time leaves a timer set for an
//! earlier wait in place, to fire early and be moved then: about once a
//! timeout rather than once a request.

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::time::{Instant, Sleep};

/// Resolves once `due` has passed, on `timer` wherever it was set.
pub(crate) fn poll_due(mut timer: Pin<&mut Sleep>, due: Instant, cx: &mut Context<'_>) -> Poll<()> {
    if timer.deadline() > due {
        timer.as_mut().reset(due);
    }
    loop {
        ready!(timer.as_mut().poll(cx));
        if Instant::now() >= due {
            return Poll::Ready(());
        }
        // Set for an earlier wait.
        timer.as_mut().reset(due);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    async fn wait(timer: &mut Pin<Box<Sleep>>, due: Instant) {
        std::future::poll_fn(|cx| poll_due(timer.as_mut(), due, cx)).await;
    }

    #[tokio::test]
    async fn a_timer_set_for_an_earlier_wait_does_not_end_a_later_one() {
        let start = Instant::now();
        let mut timer = Box::pin(tokio::time::sleep_until(start + Duration::from_millis(20)));
        let due = start + Duration::from_millis(150);
        wait(&mut timer, due).await;
        assert!(Instant::now() >= due, "resolved before its due time");
        assert_eq!(timer.deadline(), due, "moved once it fired early");
    }

    #[tokio::test]
    async fn a_timer_set_later_is_brought_forward() {
        let start = Instant::now();
        let mut timer = Box::pin(tokio::time::sleep_until(start + Duration::from_secs(60)));
        let due = start + Duration::from_millis(50);
        tokio::time::timeout(Duration::from_secs(5), wait(&mut timer, due))
            .await
            .expect("resolved at its due time, not the timer's later one");
        assert!(Instant::now() >= due);
    }
}
