//! What a node stores for peers it has not answered (spec/node.md §3.1): per-key and per-peer
//! quotas on relationships awaiting the owner's first answer, a byte quota on each of them, a
//! rate per relationship, and the owner's block list. Pure bookkeeping: the engine asks
//! [`Quotas::check`] before a peer's message reaches the state machine and calls
//! [`Quotas::charge`] once it is accepted, passing the time in, so that the same code runs in
//! the daemon and in a simulation with its own clock.
//!
//! A relationship is *unanswered* while every chained message in it comes from the other
//! party: a stranger opened it and this node's owner has not sent a message in it yet
//! (receipts, which the node sends by itself, do not count). That is the state in which a
//! stranger can make a node store things nobody asked for; once the owner answers, the
//! relationship is hers and only the rate applies.

use std::collections::{HashMap, HashSet};
use std::hash::Hash;

use rapport_protocol::{Code, KeyId, RelationshipId, Timestamp};

/// The quotas on what peers may make a node store (spec/node.md §3.1). A relationship is
/// *unanswered* while its owner has sent no message in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    /// Unanswered relationships, at most, opened by one key.
    pub max_unanswered_per_key: u32,
    /// Unanswered relationships, at most, delivered by one peer (whatever keys signed them).
    pub max_unanswered_per_peer: u32,
    /// Bytes of the other party's messages stored, at most, in one unanswered relationship.
    pub max_unanswered_bytes: u64,
    /// Messages a minute, at most, into one unanswered relationship (a minute's worth may come
    /// at once).
    pub max_unanswered_per_minute: u32,
    /// Messages a minute, at most, into one answered relationship.
    pub max_messages_per_minute: u32,
}

impl Default for Quota {
    fn default() -> Quota {
        Quota {
            max_unanswered_per_key: 16,
            max_unanswered_per_peer: 64,
            max_unanswered_bytes: 256 * 1024,
            max_unanswered_per_minute: 10,
            max_messages_per_minute: 12_000,
        }
    }
}

/// A refusal: the code for the problem report and its detail.
pub type Refusal = (Code, String);

/// One relationship awaiting the owner's first answer.
#[derive(Debug, Clone)]
struct Unanswered<P> {
    /// The stranger who opened it.
    key: KeyId,
    /// The peer that delivered its first message, when this process saw it (not after a
    /// restart: peers are not stored).
    peer: Option<P>,
    /// Bytes of the stranger's messages stored in it.
    bytes: u64,
}

/// A token bucket of `units`, [`UNIT`] to a message: at `n` messages a minute it earns `n`
/// units a millisecond, exactly, and holds at most a minute's worth.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    units: u64,
    at: Timestamp,
}

/// Units a message costs: a minute in milliseconds, so that refilling needs no division.
const UNIT: u64 = 60_000;

/// The quotas of one node, and its block list. `P` is the transport's peer id.
#[derive(Debug)]
pub struct Quotas<P> {
    limits: Quota,
    blocked: HashSet<KeyId>,
    unanswered: HashMap<RelationshipId, Unanswered<P>>,
    per_key: HashMap<KeyId, usize>,
    per_peer: HashMap<P, usize>,
    buckets: HashMap<RelationshipId, Bucket>,
}

/// At most this many rate buckets are kept; beyond it, the full ones (which hold nothing a
/// fresh bucket would not) are dropped.
const MAX_BUCKETS: usize = 65_536;

/// What the engine knows of the relationship a peer's message names, before applying it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// No such relationship here: the message would open one.
    New,
    /// A relationship this node holds.
    Held,
}

impl<P: Clone + Eq + Hash> Quotas<P> {
    /// Quotas under `limits`, with `blocked` keys refused.
    pub fn new(limits: Quota, blocked: impl IntoIterator<Item = KeyId>) -> Quotas<P> {
        Quotas {
            limits,
            blocked: blocked.into_iter().collect(),
            unanswered: HashMap::new(),
            per_key: HashMap::new(),
            per_peer: HashMap::new(),
            buckets: HashMap::new(),
        }
    }

    /// Counts a stored relationship, found unanswered when the node starts: opened by `key`,
    /// holding `bytes` of its messages.
    pub fn restore(&mut self, rel: RelationshipId, key: KeyId, bytes: u64) {
        if self.unanswered.insert(rel, Unanswered { key, peer: None, bytes }).is_none() {
            *self.per_key.entry(key).or_default() += 1;
        }
    }

    /// Whether a message of `len` bytes from `from`, delivered by `peer` into relationship
    /// `rel`, may be stored at `now`. Changes nothing but the refill of a rate bucket.
    pub fn check(
        &mut self,
        peer: &P,
        from: &KeyId,
        rel: RelationshipId,
        target: Target,
        len: usize,
        now: Timestamp,
    ) -> Result<(), Refusal> {
        if self.blocked.contains(from) {
            return Err((Code::Blocked, "this node's owner has blocked the sending key".into()));
        }
        let l = &self.limits;
        match (target, self.unanswered.get(&rel)) {
            (Target::New, _) => {
                let by_key = (self.per_key.get(from).copied().unwrap_or(0), l.max_unanswered_per_key, "this key has");
                let by_peer =
                    (self.per_peer.get(peer).copied().unwrap_or(0), l.max_unanswered_per_peer, "this peer delivered");
                for (held, max, who) in [by_key, by_peer] {
                    if held >= max as usize {
                        return Err((
                            Code::QuotaExceeded,
                            format!("{who} {held} relationships awaiting this node's first answer (at most {max})"),
                        ));
                    }
                }
                if len as u64 > l.max_unanswered_bytes {
                    return Err((Code::QuotaExceeded, over_bytes(0, len, l.max_unanswered_bytes)));
                }
            }
            (Target::Held, Some(u)) => {
                if u.bytes + len as u64 > l.max_unanswered_bytes {
                    return Err((Code::QuotaExceeded, over_bytes(u.bytes, len, l.max_unanswered_bytes)));
                }
            }
            (Target::Held, None) => {}
        }
        let per_minute = self.per_minute(rel, target);
        let bucket = self.refilled(rel, per_minute, now);
        if bucket.units < UNIT {
            return Err((
                Code::RateLimited,
                format!("more than {per_minute} messages a minute into this relationship; retry later"),
            ));
        }
        Ok(())
    }

    /// Records a message [`check`](Quotas::check) let through and the state machine accepted.
    pub fn charge(&mut self, peer: &P, from: &KeyId, rel: RelationshipId, target: Target, len: usize, now: Timestamp) {
        let per_minute = self.per_minute(rel, target);
        let bucket = self.refilled(rel, per_minute, now);
        bucket.units = bucket.units.saturating_sub(UNIT);
        match target {
            Target::New => {
                self.unanswered.insert(rel, Unanswered { key: *from, peer: Some(peer.clone()), bytes: len as u64 });
                *self.per_key.entry(*from).or_default() += 1;
                *self.per_peer.entry(peer.clone()).or_default() += 1;
            }
            Target::Held => {
                if let Some(u) = self.unanswered.get_mut(&rel) {
                    u.bytes += len as u64;
                }
            }
        }
        if self.buckets.len() > MAX_BUCKETS {
            self.prune(now);
        }
    }

    /// The owner sent a message in `rel`: it is no longer a stranger's.
    pub fn answered(&mut self, rel: &RelationshipId) {
        let Some(u) = self.unanswered.remove(rel) else { return };
        decrement(&mut self.per_key, &u.key);
        if let Some(peer) = &u.peer {
            decrement(&mut self.per_peer, peer);
        }
    }

    /// Blocks `key`; whether it was not blocked before.
    pub fn block(&mut self, key: KeyId) -> bool {
        self.blocked.insert(key)
    }

    /// Unblocks `key`; whether it was blocked.
    pub fn unblock(&mut self, key: &KeyId) -> bool {
        self.blocked.remove(key)
    }

    /// Whether `key` is blocked.
    pub fn is_blocked(&self, key: &KeyId) -> bool {
        self.blocked.contains(key)
    }

    /// The blocked keys, in byte order.
    pub fn blocked(&self) -> Vec<KeyId> {
        let mut keys: Vec<KeyId> = self.blocked.iter().copied().collect();
        keys.sort_by_key(|k| *k.as_bytes());
        keys
    }

    /// Relationships awaiting the owner's first answer.
    pub fn unanswered(&self) -> usize {
        self.unanswered.len()
    }

    /// Drops the rate buckets that have refilled, which a fresh bucket would replace exactly.
    pub fn prune(&mut self, now: Timestamp) {
        let answered = self.limits.max_messages_per_minute;
        let unanswered = self.limits.max_unanswered_per_minute;
        let strangers = &self.unanswered;
        self.buckets.retain(|rel, b| {
            let per_minute = if strangers.contains_key(rel) { unanswered } else { answered };
            fill(b, per_minute, now).units < u64::from(per_minute) * UNIT
        });
    }

    fn per_minute(&self, rel: RelationshipId, target: Target) -> u32 {
        if target == Target::New || self.unanswered.contains_key(&rel) {
            self.limits.max_unanswered_per_minute
        } else {
            self.limits.max_messages_per_minute
        }
    }

    fn refilled(&mut self, rel: RelationshipId, per_minute: u32, now: Timestamp) -> &mut Bucket {
        let full = u64::from(per_minute) * UNIT;
        let bucket = self.buckets.entry(rel).or_insert(Bucket { units: full, at: now });
        fill(bucket, per_minute, now)
    }
}

/// `bucket` refilled to `now` at `per_minute` messages a minute, up to a minute's worth.
fn fill(bucket: &mut Bucket, per_minute: u32, now: Timestamp) -> &mut Bucket {
    let full = u64::from(per_minute) * UNIT;
    let earned = now.saturating_sub(bucket.at).saturating_mul(u64::from(per_minute));
    bucket.units = bucket.units.saturating_add(earned).min(full);
    // A clock that goes back earns nothing and loses nothing.
    bucket.at = bucket.at.max(now);
    bucket
}

fn decrement<K: Eq + Hash>(counts: &mut HashMap<K, usize>, key: &K) {
    if let Some(n) = counts.get_mut(key) {
        *n -= 1;
        if *n == 0 {
            counts.remove(key);
        }
    }
}

fn over_bytes(held: u64, len: usize, max: u64) -> String {
    format!(
        "this relationship awaits this node's first answer and holds {held} bytes; {len} more would pass the \
         {max}-byte quota"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: Timestamp = 60_000;

    fn limits() -> Quota {
        Quota {
            max_unanswered_per_key: 3,
            max_unanswered_per_peer: 5,
            max_unanswered_bytes: 10_000,
            max_unanswered_per_minute: 4,
            max_messages_per_minute: 60,
        }
    }

    fn key(n: u8) -> KeyId {
        KeyId::from_bytes([n; 32])
    }

    fn rel(n: u16) -> RelationshipId {
        let mut b = [0u8; 16];
        b[..2].copy_from_slice(&n.to_be_bytes());
        RelationshipId::from_bytes(b)
    }

    /// Checks and, if allowed, charges: what the engine does for an accepted message.
    fn send(
        q: &mut Quotas<u8>,
        peer: u8,
        from: u8,
        r: u16,
        target: Target,
        len: usize,
        now: Timestamp,
    ) -> Result<(), Code> {
        q.check(&peer, &key(from), rel(r), target, len, now).map_err(|(c, _)| c)?;
        q.charge(&peer, &key(from), rel(r), target, len, now);
        Ok(())
    }

    #[test]
    fn a_key_opens_at_most_its_quota_of_unanswered_relationships() {
        let mut q = Quotas::new(limits(), []);
        for r in 0..3 {
            send(&mut q, 1, 1, r, Target::New, 100, 0).unwrap();
        }
        assert_eq!(send(&mut q, 1, 1, 3, Target::New, 100, 0), Err(Code::QuotaExceeded));
        // Another key through the same peer still may, up to the peer's quota.
        send(&mut q, 1, 2, 10, Target::New, 100, 0).unwrap();
        send(&mut q, 1, 2, 11, Target::New, 100, 0).unwrap();
        assert_eq!(send(&mut q, 1, 3, 12, Target::New, 100, 0), Err(Code::QuotaExceeded), "the peer's quota");
        send(&mut q, 2, 3, 12, Target::New, 100, 0).unwrap();
        // The owner answers one: the key may open another.
        q.answered(&rel(0));
        assert_eq!(q.unanswered(), 5);
        send(&mut q, 2, 1, 3, Target::New, 100, 0).unwrap();
        assert_eq!(send(&mut q, 2, 1, 4, Target::New, 100, 0), Err(Code::QuotaExceeded));
    }

    #[test]
    fn an_unanswered_relationship_holds_at_most_its_byte_quota() {
        let mut q = Quotas::new(limits(), []);
        send(&mut q, 1, 1, 0, Target::New, 6_000, 0).unwrap();
        assert_eq!(send(&mut q, 1, 1, 0, Target::Held, 4_001, MINUTE), Err(Code::QuotaExceeded));
        send(&mut q, 1, 1, 0, Target::Held, 4_000, MINUTE).unwrap();
        assert_eq!(send(&mut q, 1, 1, 0, Target::Held, 1, 2 * MINUTE), Err(Code::QuotaExceeded));
        assert_eq!(send(&mut q, 1, 1, 1, Target::New, 10_001, 0), Err(Code::QuotaExceeded), "one message too big");
        // Answered, the relationship is hers: no byte quota.
        q.answered(&rel(0));
        send(&mut q, 1, 1, 0, Target::Held, 50_000, 3 * MINUTE).unwrap();
    }

    #[test]
    fn the_rate_is_a_minute_of_burst_refilled_evenly() {
        let mut q = Quotas::new(limits(), []);
        send(&mut q, 1, 1, 0, Target::New, 10, 0).unwrap();
        for _ in 0..3 {
            send(&mut q, 1, 1, 0, Target::Held, 10, 0).unwrap();
        }
        assert_eq!(send(&mut q, 1, 1, 0, Target::Held, 10, 0), Err(Code::RateLimited), "4 a minute unanswered");
        // A quarter of a minute earns one message.
        assert_eq!(send(&mut q, 1, 1, 0, Target::Held, 10, MINUTE / 4 - 1), Err(Code::RateLimited));
        send(&mut q, 1, 1, 0, Target::Held, 10, MINUTE / 4).unwrap();
        // Answered: 60 a minute.
        q.answered(&rel(0));
        let t = 10 * MINUTE;
        for _ in 0..60 {
            send(&mut q, 1, 1, 0, Target::Held, 10, t).unwrap();
        }
        assert_eq!(send(&mut q, 1, 1, 0, Target::Held, 10, t), Err(Code::RateLimited));
        send(&mut q, 1, 1, 0, Target::Held, 10, t + 1_000).unwrap();
        // A clock that goes back neither earns nor breaks anything.
        assert_eq!(send(&mut q, 1, 1, 0, Target::Held, 10, 0), Err(Code::RateLimited));
    }

    #[test]
    fn a_refused_message_costs_nothing() {
        let mut q = Quotas::new(limits(), []);
        for _ in 0..100 {
            assert!(q.check(&1, &key(1), rel(0), Target::New, 20_000, 0).is_err());
        }
        // Checks without charges: the quota and the bucket are untouched.
        for r in 0..3 {
            send(&mut q, 1, 1, r, Target::New, 100, 0).unwrap();
        }
        assert_eq!(q.unanswered(), 3);
    }

    #[test]
    fn a_blocked_key_is_refused_first_and_unblocking_lets_it_in() {
        let mut q = Quotas::new(limits(), [key(7)]);
        assert!(q.is_blocked(&key(7)));
        assert_eq!(send(&mut q, 1, 7, 0, Target::New, 1, 0), Err(Code::Blocked));
        assert_eq!(send(&mut q, 1, 7, 0, Target::Held, 1, 0), Err(Code::Blocked), "in a held relationship too");
        assert!(q.block(key(8)));
        assert!(!q.block(key(8)), "blocking twice changes nothing");
        assert_eq!(q.blocked(), vec![key(7), key(8)]);
        assert!(q.unblock(&key(7)));
        assert!(!q.unblock(&key(7)));
        send(&mut q, 1, 7, 0, Target::New, 1, 0).unwrap();
    }

    #[test]
    fn restored_relationships_count_against_their_key() {
        let mut q: Quotas<u8> = Quotas::new(limits(), []);
        for r in 0..3 {
            q.restore(rel(r), key(1), 9_000);
        }
        q.restore(rel(0), key(1), 9_000);
        assert_eq!(q.unanswered(), 3, "restoring twice counts once");
        assert_eq!(send(&mut q, 1, 1, 9, Target::New, 1, 0), Err(Code::QuotaExceeded));
        assert_eq!(send(&mut q, 1, 1, 0, Target::Held, 1_001, 0), Err(Code::QuotaExceeded));
        q.answered(&rel(0));
        send(&mut q, 1, 1, 9, Target::New, 1, 0).unwrap();
    }

    #[test]
    fn full_buckets_are_pruned_and_partial_ones_kept() {
        let mut q = Quotas::new(limits(), []);
        // At 4 a minute, one message is earned back in 15 s.
        send(&mut q, 1, 1, 0, Target::New, 1, 0).unwrap();
        send(&mut q, 1, 1, 1, Target::New, 1, 10_000).unwrap();
        q.prune(14_999);
        assert_eq!(q.buckets.len(), 2);
        q.prune(15_000);
        assert_eq!(q.buckets.len(), 1, "the first bucket has refilled");
        q.prune(25_000);
        assert!(q.buckets.is_empty());
    }
}
