//! `futures_timer::Delay` on the tokio runtime's timer.
//!
//! libp2p 0.57 times its streams with futures-timer: every request-response exchange makes
//! and drops at least four `Delay`s on each side (the outbound stream's upgrade, the inbound
//! stream's upgrade, request-response's own stream timeout, the connection's idle timer). The
//! real futures-timer keeps its timers on one global helper thread, and making or dropping a
//! `Delay` wakes that thread: a futex call and a context switch each time. Profiles of the
//! node's throughput benchmark put 15% of all CPU time there, more than signing messages.
//!
//! This crate replaces futures-timer 3 in the build (`[patch.crates-io]`) with the same API on
//! tokio's timer wheel, which the runtime's workers service as they go: making, resetting or
//! dropping a `Delay` is a few memory operations. A `Delay` made outside a tokio runtime (none
//! of Rapport's code does so) is served by a small runtime of its own on a background thread,
//! as futures-timer's helper thread would serve it.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::runtime::Handle;
use tokio::time::{Instant, Sleep};

/// A future that completes once its duration has elapsed.
pub struct Delay {
    sleep: Pin<Box<Sleep>>,
}

impl Delay {
    /// A delay that completes `dur` from now. A duration too long to represent sleeps for
    /// about thirty years, as tokio's own `sleep` does.
    pub fn new(dur: Duration) -> Delay {
        let sleep = match Handle::try_current() {
            Ok(_) => tokio::time::sleep(dur),
            Err(_) => {
                let _entered = fallback().enter();
                tokio::time::sleep(dur)
            }
        };
        Delay { sleep: Box::pin(sleep) }
    }

    /// Makes the delay complete `dur` from now instead, whether or not it had completed.
    pub fn reset(&mut self, dur: Duration) {
        let now = Instant::now();
        // As tokio's `sleep` does with a deadline past what an `Instant` holds.
        let deadline = now.checked_add(dur).unwrap_or_else(|| now + Duration::from_secs(86_400 * 365 * 30));
        self.sleep.as_mut().reset(deadline);
    }
}

impl Future for Delay {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.sleep.as_mut().poll(cx)
    }
}

impl fmt::Debug for Delay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Delay").field("deadline", &self.sleep.deadline()).finish()
    }
}

/// The runtime that serves delays made outside any tokio runtime: one thread, timers only.
#[allow(clippy::expect_used, reason = "futures-timer, too, panics if it cannot start its thread")]
fn fallback() -> &'static Handle {
    static FALLBACK: OnceLock<Handle> = OnceLock::new();
    FALLBACK.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("cannot build the timer runtime");
        let handle = runtime.handle().clone();
        std::thread::Builder::new()
            .name("futures-timer".into())
            .spawn(move || runtime.block_on(std::future::pending::<()>()))
            .expect("cannot start the timer thread");
        handle
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::time::Instant as StdInstant;

    use super::*;

    #[tokio::test]
    async fn completes_after_its_duration_and_not_before() {
        let start = StdInstant::now();
        Delay::new(Duration::from_millis(30)).await;
        assert!(start.elapsed() >= Duration::from_millis(30));
        let mut pending = Delay::new(Duration::from_secs(3600));
        let waker = futures::task::noop_waker();
        assert!(Pin::new(&mut pending).poll(&mut Context::from_waker(&waker)).is_pending());
    }

    #[tokio::test]
    async fn reset_moves_the_deadline_either_way() {
        let mut delay = Delay::new(Duration::from_secs(3600));
        let start = StdInstant::now();
        delay.reset(Duration::from_millis(20));
        (&mut delay).await;
        assert!(start.elapsed() >= Duration::from_millis(20));
        assert!(start.elapsed() < Duration::from_secs(60));
        // A completed delay runs again after a reset; an enormous duration does not overflow.
        delay.reset(Duration::MAX);
        let waker = futures::task::noop_waker();
        assert!(Pin::new(&mut delay).poll(&mut Context::from_waker(&waker)).is_pending());
    }

    #[test]
    fn works_without_a_runtime() {
        let start = StdInstant::now();
        futures::executor::block_on(Delay::new(Duration::from_millis(20)));
        assert!(start.elapsed() >= Duration::from_millis(20));
        assert!(format!("{:?}", Delay::new(Duration::from_secs(1))).starts_with("Delay"));
    }
}
