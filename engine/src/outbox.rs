//! Our messages waiting for their recipients' receipts (spec/node.md §3), indexed so that no
//! step scans the whole outbox: by next attempt, by relationship (only the earliest undelivered
//! message of a relationship is ever in flight, so a recipient never sees a later one first) and
//! by recipient.
//!
//! Retries towards a recipient that cannot be reached are made once per recipient, not once
//! per message: while one message probes an unreachable peer, the others wait beside it, and
//! when the probe fails they all wait for the peer's next attempt. A vendor with thousands of
//! messages for customers who are offline therefore makes one attempt per customer per backoff.
//!
//! Every operation is O(log n) in the outbox's size, or O(messages of one recipient).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use rand::Rng;
use rapport_protocol::{MessageId, RelationshipId, Timestamp};

use crate::backoff::{backoff, backoff_unknown};
use crate::id::{NodeId, RequestId};
use crate::store::OutboxEntry;
use crate::Failure;

/// Where a message of ours sits in its relationship: the relationship and the `seq`.
pub type Place = (RelationshipId, u64);

#[derive(Debug)]
struct Entry {
    stored: OutboxEntry,
    peer: NodeId,
    place: Option<Place>,
    bytes: Arc<[u8]>,
    /// The request carrying it, while one is in flight.
    request: Option<RequestId>,
    /// Its key in [`Outbox::due`], while it is scheduled.
    due: Option<Timestamp>,
}

/// What the outbox knows of one recipient.
#[derive(Debug, Default)]
struct Recipient {
    messages: HashSet<MessageId>,
    /// The one message trying to reach the peer while it is not connected.
    probe: Option<MessageId>,
    /// Messages due that wait for the probe's outcome.
    parked: Vec<MessageId>,
    /// Attempts that could not reach the peer since it was last reached.
    failures: u32,
    /// No attempt before this time, unless the peer connects.
    retry_at: Timestamp,
}

/// The outbox.
#[derive(Debug, Default)]
pub struct Outbox {
    entries: HashMap<MessageId, Entry>,
    due: BTreeSet<(Timestamp, MessageId)>,
    by_rel: HashMap<RelationshipId, BTreeMap<u64, MessageId>>,
    by_peer: HashMap<NodeId, Recipient>,
    in_flight: HashMap<RequestId, MessageId>,
}

impl Outbox {
    /// An empty outbox.
    pub fn new() -> Outbox {
        Outbox::default()
    }

    /// An empty outbox with room for `n` messages (to as many recipients) before it grows.
    pub fn with_capacity(n: usize) -> Outbox {
        Outbox {
            entries: HashMap::with_capacity(n),
            by_rel: HashMap::with_capacity(n),
            by_peer: HashMap::with_capacity(n),
            ..Outbox::default()
        }
    }

    /// Adds a message to deliver to `peer`. The earliest undelivered message of its
    /// relationship is scheduled at `stored.next_attempt`; later ones wait for it.
    pub fn insert(&mut self, stored: OutboxEntry, peer: NodeId, place: Option<Place>, bytes: Arc<[u8]>) {
        let id = stored.id;
        if self.entries.contains_key(&id) {
            return;
        }
        let at = stored.next_attempt;
        self.entries.insert(id, Entry { stored, peer, place, bytes, request: None, due: None });
        self.by_peer.entry(peer).or_default().messages.insert(id);
        if let Some((rel, seq)) = place {
            self.by_rel.entry(rel).or_default().insert(seq, id);
        }
        if self.is_head(&id) {
            // A later message queued before an earlier one (at load) hands the turn back.
            if let Some((rel, _)) = place {
                let later: Vec<MessageId> = self.by_rel[&rel].values().skip(1).copied().collect();
                for other in later {
                    self.unschedule(&other);
                }
            }
            self.schedule(id, at);
        }
    }

    /// Messages waiting for a receipt.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether message `id` waits.
    pub fn contains(&self, id: &MessageId) -> bool {
        self.entries.contains_key(id)
    }

    /// Whether any message waits for `peer`.
    pub fn has_waiting(&self, peer: &NodeId) -> bool {
        self.by_peer.contains_key(peer)
    }

    /// The recipient of message `id` and its envelope.
    pub fn payload(&self, id: &MessageId) -> Option<(NodeId, Arc<[u8]>)> {
        self.entries.get(id).map(|e| (e.peer, e.bytes.clone()))
    }

    /// The stored record of message `id`.
    pub fn entry(&self, id: &MessageId) -> Option<&OutboxEntry> {
        self.entries.get(id).map(|e| &e.stored)
    }

    /// Requests in flight and the message each carries.
    pub fn in_flight(&self) -> impl Iterator<Item = (RequestId, MessageId)> + '_ {
        self.in_flight.iter().map(|(r, m)| (*r, *m))
    }

    /// When the next scheduled message is due, if any is.
    pub fn next_due(&self) -> Option<Timestamp> {
        self.due.first().map(|(at, _)| *at)
    }

    /// Takes at most `limit` messages due at `now` to send now. For a peer that is not
    /// `connected`, one message goes as the probe and the others wait for its outcome; none
    /// goes before the peer's backoff ends.
    pub fn take_due(&mut self, now: Timestamp, limit: usize, connected: impl Fn(&NodeId) -> bool) -> Vec<MessageId> {
        let mut out = Vec::new();
        while out.len() < limit {
            let Some(&(at, id)) = self.due.first() else { break };
            if at > now {
                break;
            }
            self.due.pop_first();
            let Some(entry) = self.entries.get_mut(&id) else { continue };
            entry.due = None;
            let peer = entry.peer;
            let Some(recipient) = self.by_peer.get_mut(&peer) else { continue };
            if connected(&peer) {
                out.push(id);
            } else if recipient.probe.is_some() {
                recipient.parked.push(id);
            } else if recipient.retry_at > now {
                let at = recipient.retry_at;
                self.schedule(id, at);
            } else {
                recipient.probe = Some(id);
                out.push(id);
            }
        }
        out
    }

    /// Message `id` went out on `request`.
    pub fn sending(&mut self, id: MessageId, request: RequestId) {
        if !self.entries.contains_key(&id) {
            return;
        }
        self.unschedule_entry(id);
        if let Some(entry) = self.entries.get_mut(&id) {
            entry.request = Some(request);
        }
        self.in_flight.insert(request, id);
    }

    /// Whether message `id` is on its way.
    pub fn is_sending(&self, id: &MessageId) -> bool {
        self.entries.get(id).is_some_and(|e| e.request.is_some())
    }

    /// The peer answered `request`: it is reachable, so the messages that waited for it are
    /// scheduled again. The message is still in the outbox: [`Outbox::remove`] it once the
    /// answer ends its delivery, or [`Outbox::retry`] it.
    pub fn answered(&mut self, request: RequestId) -> Option<MessageId> {
        let id = self.in_flight.remove(&request)?;
        let peer = {
            let entry = self.entries.get_mut(&id)?;
            entry.request = None;
            entry.peer
        };
        let parked = match self.by_peer.get_mut(&peer) {
            Some(r) => {
                r.failures = 0;
                r.retry_at = 0;
                if r.probe == Some(id) {
                    r.probe = None;
                }
                std::mem::take(&mut r.parked)
            }
            None => Vec::new(),
        };
        for other in parked {
            let at = self.entries.get(&other).map_or(0, |e| e.stored.next_attempt);
            self.schedule(other, at);
        }
        Some(id)
    }

    /// `request` failed. If the peer could not be reached ([`Failure::Unreachable`], or
    /// [`Failure::NoAddress`] with a far longer wait), the peer backs off and every message
    /// waiting for it waits as long; otherwise the message alone backs off. Returns the
    /// message and its updated record, to store.
    pub fn failed(
        &mut self,
        request: RequestId,
        now: Timestamp,
        failure: Failure,
        rng: &mut impl Rng,
    ) -> Option<(MessageId, OutboxEntry)> {
        let id = self.in_flight.remove(&request)?;
        let peer = {
            let entry = self.entries.get_mut(&id)?;
            entry.request = None;
            entry.peer
        };
        let (parked, peer_retry) = match self.by_peer.get_mut(&peer) {
            Some(r) => {
                if r.probe == Some(id) {
                    r.probe = None;
                }
                let wait = match failure {
                    Failure::NoAnswer => None,
                    Failure::Unreachable => Some(backoff(r.failures, rng)),
                    Failure::NoAddress => Some(backoff_unknown(r.failures, rng)),
                };
                let retry = wait.map(|wait| {
                    r.failures = r.failures.saturating_add(1);
                    r.retry_at = now + wait.as_millis() as u64;
                    r.retry_at
                });
                (std::mem::take(&mut r.parked), retry)
            }
            None => (Vec::new(), None),
        };
        for other in parked {
            let at = peer_retry.unwrap_or_else(|| self.entries.get(&other).map_or(0, |e| e.stored.next_attempt));
            self.schedule(other, at);
        }
        let entry = self.entries.get_mut(&id)?;
        entry.stored.attempts = entry.stored.attempts.saturating_add(1);
        entry.stored.next_attempt =
            peer_retry.unwrap_or_else(|| now + backoff(entry.stored.attempts, rng).as_millis() as u64);
        let stored = entry.stored.clone();
        self.schedule(id, stored.next_attempt);
        Some((id, stored))
    }

    /// Message `id` was answered but must be tried again after its backoff (the answer was not
    /// a final one). Returns its updated record, to store.
    pub fn retry(&mut self, id: MessageId, now: Timestamp, rng: &mut impl Rng) -> Option<OutboxEntry> {
        let entry = self.entries.get_mut(&id)?;
        entry.stored.attempts = entry.stored.attempts.saturating_add(1);
        entry.stored.next_attempt = now + backoff(entry.stored.attempts, rng).as_millis() as u64;
        let stored = entry.stored.clone();
        if entry.request.is_none() {
            self.schedule(id, stored.next_attempt);
        }
        Some(stored)
    }

    /// Message `id` was delivered (or refused for good): it leaves the outbox, and the next
    /// message of its relationship is scheduled.
    pub fn remove(&mut self, id: &MessageId) -> Option<OutboxEntry> {
        self.unschedule_entry(*id);
        let entry = self.entries.remove(id)?;
        if let Some(request) = entry.request {
            self.in_flight.remove(&request);
        }
        if let Some(r) = self.by_peer.get_mut(&entry.peer) {
            r.messages.remove(id);
            r.parked.retain(|p| p != id);
            if r.probe == Some(*id) {
                r.probe = None;
            }
            if r.messages.is_empty() {
                self.by_peer.remove(&entry.peer);
            }
        }
        if let Some((rel, seq)) = entry.place {
            let next = match self.by_rel.get_mut(&rel) {
                Some(order) => {
                    order.remove(&seq);
                    let next = order.values().next().copied();
                    if order.is_empty() {
                        self.by_rel.remove(&rel);
                    }
                    next
                }
                None => None,
            };
            if let Some(next) = next {
                if !self.is_sending(&next) {
                    let at = self.entries.get(&next).map_or(0, |e| e.stored.next_attempt);
                    self.schedule(next, at);
                }
            }
        }
        Some(entry.stored)
    }

    /// The messages of relationship `rel` after `seq`, taken out of the outbox: they chain on
    /// a message the recipient refused for good, so it can never accept them either.
    pub fn remove_after(&mut self, rel: &RelationshipId, seq: u64) -> Vec<OutboxEntry> {
        let later: Vec<MessageId> = match self.by_rel.get(rel) {
            Some(order) => order.range(seq + 1..).map(|(_, id)| *id).collect(),
            None => Vec::new(),
        };
        later.iter().filter_map(|id| self.remove(id)).collect()
    }

    /// Where message `id` sits in its relationship.
    pub fn place(&self, id: &MessageId) -> Option<Place> {
        self.entries.get(id).and_then(|e| e.place)
    }

    /// `peer` connected, or was found: its backoff ends and its messages are due at `now`.
    pub fn reachable(&mut self, peer: &NodeId, now: Timestamp) {
        let Some(r) = self.by_peer.get_mut(peer) else { return };
        r.failures = 0;
        r.retry_at = 0;
        r.parked.clear();
        let ids: Vec<MessageId> = r.messages.iter().copied().collect();
        for id in ids {
            if self.is_head(&id) && !self.is_sending(&id) {
                self.schedule(id, now);
            }
        }
    }

    /// Every waiting message is due at `now`, as after its backoff; returns how many wait.
    pub fn retry_all(&mut self, now: Timestamp) -> usize {
        for r in self.by_peer.values_mut() {
            r.failures = 0;
            r.retry_at = 0;
            r.parked.clear();
        }
        let ids: Vec<MessageId> = self.entries.keys().copied().collect();
        for id in ids {
            if self.is_head(&id) && !self.is_sending(&id) {
                self.schedule(id, now);
            }
        }
        self.entries.len()
    }

    /// Whether `id` is the earliest undelivered message of its relationship (or in none).
    fn is_head(&self, id: &MessageId) -> bool {
        let Some(entry) = self.entries.get(id) else { return false };
        match entry.place {
            None => true,
            Some((rel, _)) => self.by_rel.get(&rel).and_then(|o| o.values().next()) == Some(id),
        }
    }

    fn schedule(&mut self, id: MessageId, at: Timestamp) {
        self.unschedule_entry(id);
        if let Some(entry) = self.entries.get_mut(&id) {
            entry.due = Some(at);
            self.due.insert((at, id));
        }
    }

    fn unschedule(&mut self, id: &MessageId) {
        self.unschedule_entry(*id);
    }

    fn unschedule_entry(&mut self, id: MessageId) {
        if let Some(entry) = self.entries.get_mut(&id) {
            if let Some(at) = entry.due.take() {
                self.due.remove(&(at, id));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng as _;
    use rand_chacha::ChaCha8Rng;

    use super::*;

    fn id(n: u8) -> MessageId {
        MessageId::of(&[n])
    }

    fn peer(n: u8) -> NodeId {
        NodeId::of_key(&rapport_protocol::KeyId::from_bytes([n; 32]))
    }

    fn rel(n: u8) -> RelationshipId {
        RelationshipId::from_bytes([n; 16])
    }

    fn add(o: &mut Outbox, n: u8, to: u8, place: Option<Place>, at: Timestamp) {
        let stored =
            OutboxEntry { id: id(n), peer: peer(to).to_string(), attempts: 0, next_attempt: at, queued_at: at };
        o.insert(stored, peer(to), place, Arc::from(vec![n]));
    }

    #[test]
    fn only_the_earliest_message_of_a_relationship_is_due() {
        let mut o = Outbox::new();
        add(&mut o, 2, 1, Some((rel(1), 2)), 0);
        add(&mut o, 1, 1, Some((rel(1), 1)), 0);
        add(&mut o, 3, 2, Some((rel(2), 1)), 0);
        let due = o.take_due(10, 100, |_| true);
        assert_eq!(due.len(), 2);
        assert!(due.contains(&id(1)) && due.contains(&id(3)), "{due:?}");
        o.sending(id(1), RequestId(1));
        assert_eq!(o.answered(RequestId(1)), Some(id(1)));
        o.remove(&id(1));
        assert_eq!(o.take_due(10, 100, |_| true), vec![id(2)], "the next of its relationship");
    }

    #[test]
    fn an_unreachable_peer_is_probed_by_one_message_at_a_time() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut o = Outbox::new();
        for n in 0..10 {
            add(&mut o, n, 1, Some((rel(n), 1)), 0);
        }
        let first = o.take_due(0, 100, |_| false);
        assert_eq!(first.len(), 1, "one probe");
        o.sending(first[0], RequestId(7));
        assert!(o.take_due(0, 100, |_| false).is_empty(), "the others are parked");
        let (failed, stored) = o.failed(RequestId(7), 0, Failure::Unreachable, &mut rng).expect("in flight");
        assert_eq!(failed, first[0]);
        assert_eq!(stored.attempts, 1);
        let retry_at = o.next_due().expect("scheduled");
        assert!(retry_at > 0);
        assert!(o.take_due(retry_at - 1, 100, |_| false).is_empty(), "nothing before the backoff");
        let probe = o.take_due(retry_at, 100, |_| false);
        assert_eq!(probe.len(), 1, "one probe again");
        o.sending(probe[0], RequestId(8));
        // The peer connects: everything goes.
        o.reachable(&peer(1), retry_at);
        assert_eq!(o.take_due(retry_at, 100, |_| true).len(), 9, "all but the probe in flight");
    }

    #[test]
    fn a_peer_with_no_address_waits_long_unless_it_turns_up() {
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let mut o = Outbox::new();
        add(&mut o, 1, 1, None, 0);
        add(&mut o, 2, 2, None, 0);
        let due = o.take_due(0, 100, |_| false);
        assert_eq!(due.len(), 2);
        for (n, (msg, failure)) in due.iter().zip([Failure::NoAddress, Failure::Unreachable]).enumerate() {
            let request = RequestId(n as u64);
            o.sending(*msg, request);
            o.failed(request, 0, failure, &mut rng).expect("in flight");
        }
        let unknown = o.entry(&id(1)).unwrap().next_attempt;
        let known = o.entry(&id(2)).unwrap().next_attempt;
        assert!(unknown >= crate::backoff::UNKNOWN_BASE.as_millis() as u64 / 2, "{unknown}");
        assert!(known <= crate::backoff::BASE.as_millis() as u64, "{known}");
        assert_eq!(o.take_due(known, 100, |_| false), vec![id(2)]);
        assert!(o.take_due(unknown - 1, 100, |_| false).is_empty(), "the peer with no address waits");
        // An address turns up: its wait ends.
        o.reachable(&peer(1), 1000);
        assert_eq!(o.take_due(1000, 100, |_| false), vec![id(1)]);
    }

    #[test]
    fn the_messages_after_a_final_refusal_leave_with_it() {
        let mut o = Outbox::new();
        for n in 1..=3 {
            add(&mut o, n, 1, Some((rel(1), u64::from(n))), 0);
        }
        add(&mut o, 9, 1, Some((rel(2), 1)), 0);
        let dropped = o.remove_after(&rel(1), 1);
        assert_eq!(dropped.iter().map(|e| e.id).collect::<Vec<_>>(), vec![id(2), id(3)]);
        assert_eq!(o.len(), 2, "the refused one (removed by its caller) and the other relationship's");
    }

    #[test]
    fn a_tick_takes_at_most_its_limit() {
        let mut o = Outbox::new();
        for n in 0..50 {
            add(&mut o, n, n, Some((rel(n), 1)), 0);
        }
        assert_eq!(o.take_due(0, 16, |_| true).len(), 16);
        assert_eq!(o.take_due(0, 100, |_| true).len(), 34);
    }

    #[test]
    fn removing_every_message_leaves_no_index_behind() {
        let mut o = Outbox::new();
        for n in 0..5 {
            add(&mut o, n, 1, Some((rel(1), u64::from(n))), 0);
        }
        for n in 0..5 {
            assert!(o.remove(&id(n)).is_some());
        }
        assert!(o.is_empty());
        assert!(o.by_rel.is_empty() && o.by_peer.is_empty() && o.due.is_empty() && o.in_flight.is_empty());
        assert!(!o.has_waiting(&peer(1)));
    }
}
