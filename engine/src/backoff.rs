//! When to try a message again (spec/node.md §3): exponential backoff with full jitter, so that
//! many senders retrying after an outage do not arrive in step.

use std::time::Duration;

use rand::Rng;

/// The first retry waits up to this long.
pub const BASE: Duration = Duration::from_millis(500);
/// No retry waits longer than this.
pub const MAX: Duration = Duration::from_secs(5 * 60);

/// The delay before attempt `attempts + 1`: uniformly drawn from `[cap/2, cap]`, where `cap`
/// doubles from [`BASE`] with each failed attempt up to [`MAX`].
pub fn backoff(attempts: u32, rng: &mut impl Rng) -> Duration {
    let cap = BASE.saturating_mul(1u32 << attempts.min(20)).min(MAX);
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
    }
}
