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
    use futures::FutureExt as _;

    use super::*;

    /// Whether `delay` has completed, polled once.
    fn done(delay: &mut Delay) -> bool {
        delay.now_or_never().is_some()
    }

    #[tokio::test(start_paused = true)]
    async fn completes_when_its_duration_has_elapsed_and_not_before() {
        let mut delay = Delay::new(Duration::from_millis(30));
        assert!(!done(&mut delay));
        tokio::time::advance(Duration::from_millis(29)).await;
        assert!(!done(&mut delay), "a millisecond early");
        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(done(&mut delay));
    }

    #[tokio::test(start_paused = true)]
    async fn reset_moves_the_deadline_either_way() {
        let mut delay = Delay::new(Duration::from_secs(3600));
        delay.reset(Duration::from_millis(20));
        tokio::time::advance(Duration::from_millis(19)).await;
        assert!(!done(&mut delay));
        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(done(&mut delay), "brought forward");
        // A completed delay runs again after a reset, later; an enormous duration does not
        // overflow.
        delay.reset(Duration::from_secs(10));
        tokio::time::advance(Duration::from_secs(9)).await;
        assert!(!done(&mut delay), "pushed back");
        delay.reset(Duration::MAX);
        tokio::time::advance(Duration::from_secs(86_400)).await;
        assert!(!done(&mut delay));
    }

    #[test]
    fn works_without_a_runtime() {
        let mut long = Delay::new(Duration::from_secs(3600));
        assert!(!done(&mut long));
        // Served by the background runtime: this returns once it fires.
        futures::executor::block_on(Delay::new(Duration::from_millis(1)));
        assert!(format!("{long:?}").starts_with("Delay { deadline:"));
    }
}
