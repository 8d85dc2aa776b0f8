//! Which unreachable recipients to look up in the DHT, and when (spec/node.md §3). A lookup
//! costs the network a few dozen requests, so they are rationed twice: each recipient at
//! most once per [`LOOKUP_INTERVAL_MS`], and the whole node at most [`LOOKUP_BURST`] at once
//! and [`LOOKUPS_PER_SECOND`] on average. A vendor whose 100,000 customers are offline thus
//! asks the DHT about a few of them a second, not about every one it retries.

use std::collections::HashMap;

use rapport_protocol::Timestamp;

use crate::id::NodeId;

/// A recipient is looked up at most this often, ms.
pub const LOOKUP_INTERVAL_MS: u64 = 10_000;
/// Lookups the node may start at once after a quiet spell.
pub const LOOKUP_BURST: u32 = 32;
/// Lookups the node starts per second, on average, at most.
pub const LOOKUPS_PER_SECOND: u32 = 2;

/// The lookups made, and the node's budget for more.
#[derive(Debug)]
pub struct Lookups {
    /// When each recipient was last looked up.
    last: HashMap<NodeId, Timestamp>,
    /// Lookups that may start now.
    tokens: u32,
    /// When the budget was last topped up.
    refilled_at: Timestamp,
}

impl Default for Lookups {
    fn default() -> Self {
        Lookups { last: HashMap::new(), tokens: LOOKUP_BURST, refilled_at: 0 }
    }
}

impl Lookups {
    /// Whether to look `peer` up at `now`; if so, it counts as looked up. `waiting` says
    /// whether a peer still has messages waiting: only those are remembered, so the map
    /// stays within a few times the outbox's recipients.
    pub fn allow(&mut self, peer: NodeId, now: Timestamp, waiting: impl Fn(&NodeId) -> bool) -> bool {
        self.refill(now);
        if self.tokens == 0 {
            return false;
        }
        if self.last.get(&peer).is_some_and(|at| now.saturating_sub(*at) < LOOKUP_INTERVAL_MS) {
            return false;
        }
        if self.last.len() >= 1024 && self.last.len().is_power_of_two() {
            self.last.retain(|p, at| waiting(p) && now.saturating_sub(*at) < LOOKUP_INTERVAL_MS);
        }
        self.tokens -= 1;
        self.last.insert(peer, now);
        true
    }

    fn refill(&mut self, now: Timestamp) {
        let earned = now.saturating_sub(self.refilled_at) * u64::from(LOOKUPS_PER_SECOND) / 1000;
        if earned > 0 {
            self.tokens = (u64::from(self.tokens) + earned).min(u64::from(LOOKUP_BURST)) as u32;
            // The remainder of a token carries over.
            self.refilled_at += earned * 1000 / u64::from(LOOKUPS_PER_SECOND);
        }
        if self.tokens == LOOKUP_BURST {
            self.refilled_at = now;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(n: u32) -> NodeId {
        let mut key = [0u8; 32];
        key[..4].copy_from_slice(&n.to_le_bytes());
        NodeId::of_key(&rapport_protocol::KeyId::from_bytes(key))
    }

    #[test]
    fn a_burst_then_the_average_rate() {
        let mut l = Lookups::default();
        let start = 1_000_000;
        let granted = (0..1000).filter(|n| l.allow(peer(*n), start, |_| true)).count();
        assert_eq!(granted, LOOKUP_BURST as usize, "a burst of distinct peers is cut at the burst");
        // Over the next 60 s, one request every 10 ms, each for a new peer: the rate holds.
        let mut granted = 0;
        for step in 1..=6000u32 {
            if l.allow(peer(10_000 + step), start + u64::from(step) * 10, |_| true) {
                granted += 1;
            }
        }
        assert_eq!(granted, 60 * LOOKUPS_PER_SECOND as usize);
    }

    #[test]
    fn one_peer_at_most_once_per_interval() {
        let mut l = Lookups::default();
        let p = peer(1);
        assert!(l.allow(p, 0, |_| true));
        assert!(!l.allow(p, LOOKUP_INTERVAL_MS - 1, |_| true));
        assert!(l.allow(p, LOOKUP_INTERVAL_MS, |_| true));
    }

    #[test]
    fn only_peers_still_waiting_are_remembered() {
        let mut l = Lookups::default();
        let mut now = 0;
        for n in 0..5000 {
            now += 1000;
            assert!(l.allow(peer(n), now, |_| false));
        }
        assert!(l.last.len() < 1100, "{} remembered", l.last.len());
    }
}
