//! When to try a message again (spec/node.md §3): exponential backoff with full jitter, so that
//! many senders retrying after an outage do not arrive in step.

use std::time::Duration;

use rand::Rng;

/// The first retry waits up to this long.
pub const BASE: Duration = Duration::from_millis(500);
/// No retry waits longer than this.
pub const MAX: Duration = Duration::from_secs(5 * 60);

/// A recipient for whom no address is known waits at least half this long before its next
/// attempt, unless a connection or an address turns up first. Trying again cannot reach a peer
/// no address is known for; only news can (a connection, a lookup's answer, identify, mDNS),
/// and news ends the wait at once. The timer is the fallback for news missed, so it is long:
/// a vendor with 100,000 offline customers makes no attempt at all in the minutes after its
/// offers, and at most one per customer every 15 to 30 minutes later.
pub const UNKNOWN_BASE: Duration = Duration::from_secs(5 * 60);
/// ... and at most this long.
pub const UNKNOWN_MAX: Duration = Duration::from_secs(30 * 60);

/// The delay before attempt `attempts + 1`: uniformly drawn from `[cap/2, cap]`, where `cap`
/// doubles from [`BASE`] with each failed attempt up to [`MAX`].
pub fn backoff(attempts: u32, rng: &mut impl Rng) -> Duration {
    jittered(BASE, MAX, attempts, rng)
}

/// The delay before the next attempt towards a recipient for whom no address is known, after
/// `failures` such attempts: as [`backoff`], from [`UNKNOWN_BASE`] up to [`UNKNOWN_MAX`]. An
/// attempt can only succeed once an address is known, and a connection from the peer or an
/// address found for it ends the wait at once, so these attempts are rare.
pub fn backoff_unknown(failures: u32, rng: &mut impl Rng) -> Duration {
    jittered(UNKNOWN_BASE, UNKNOWN_MAX, failures, rng)
}

fn jittered(base: Duration, max: Duration, attempts: u32, rng: &mut impl Rng) -> Duration {
    let cap = base.saturating_mul(1u32 << attempts.min(20)).min(max);
    let half = cap / 2;
    half + rng.gen_range(Duration::ZERO..=half)
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng as _;

    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_is_capped() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for attempts in 0..40 {
            let cap = BASE.saturating_mul(1u32 << attempts.min(20)).min(MAX);
            let delays: Vec<Duration> = (0..200).map(|_| backoff(attempts, &mut rng)).collect();
            assert!(delays.iter().all(|d| *d >= cap / 2 && *d <= cap), "attempt {attempts}");
            // Jitter: the 200 draws are not all the same.
            assert!(delays.iter().any(|d| *d != delays[0]), "attempt {attempts}");
        }
        assert!(backoff(100, &mut rng) <= MAX);
        assert!(backoff(0, &mut rng) <= BASE);
        let unknown: Vec<Duration> = (0..200).map(|_| backoff_unknown(0, &mut rng)).collect();
        assert!(unknown.iter().all(|d| *d >= UNKNOWN_BASE / 2 && *d <= UNKNOWN_BASE));
        assert!((0..200).all(|_| backoff_unknown(100, &mut rng) >= UNKNOWN_MAX / 2));
        assert!(backoff_unknown(100, &mut rng) <= UNKNOWN_MAX);
    }
}
