//! Our own messages (spec/node.md §3): staging them for the group commit, the outbox and its
//! retries, delivery in order within a relationship, and the answers that end delivery.

use libp2p::{Multiaddr, PeerId};
use rapport_protocol::relationship::Policy;
use rapport_protocol::{Body, Code, Header, Message, MessageId, Payload, RelationshipId};
use tracing::{debug, info, warn};

use super::{outbox, refused, Draft, Engine, Error, Place, Submitted, MAX_PUBLIC};

/// A message of ours, signed and staged for the next group commit.
pub(super) struct Staged {
    pub entry: OutboxEntry,
    pub place: Place,
    pub submitted: Submitted,
    pub bytes: std::sync::Arc<[u8]>,
}
use crate::identity;
use crate::network::codec::{Envelope, Request};
use crate::store::{OutboxEntry, Write};

impl Engine {
    /// Signs `draft`, applies it to our own view of the relationship, stores it with its
    /// outbox entry durably, and starts delivery.
    pub(super) fn stage(&mut self, draft: Draft) -> Result<Staged, Error> {
        let me = self.identity.key_id();
        let at = self.now();
        let header = match draft.relationship {
            Some(id) => {
                let rel =
                    self.relationships.get(&id).ok_or_else(|| Error::BadRequest(format!("no relationship {id}")))?;
                let role = rel.role(&me).ok_or_else(|| Error::BadRequest("this node is not a party".into()))?;
                rel.next_header(role, at)
            }
            None => {
                let to = draft.to.ok_or_else(|| Error::BadRequest("a new relationship needs a recipient".into()))?;
                let mut id = [0u8; 16];
                rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut id);
                Header::opening(RelationshipId::from_bytes(id), me, to, at)
            }
        };
        let to = header.to.ok_or_else(|| Error::BadRequest("no recipient".into()))?;
        // A new relationship's recipient comes from the caller and is checked; a relationship's
        // counterparty was checked when it began.
        let peer = match draft.relationship {
            None => identity::peer_of(&to),
            Some(_) => identity::peer_of_valid(&to),
        }
        .ok_or_else(|| Error::BadRequest("recipient is not an Ed25519 key".into()))?;
        let message =
            Message::seal(Payload { header, body: draft.body }, &self.identity.key).map_err(|e| refused(&e, &e))?;
        self.relationships.apply(&message, at, Policy::LIVE).map_err(|e| refused(&e, &e))?;
        let rel = message.header().relationship;
        // The owner has spoken: a stranger's relationship is hers now, outside the quotas.
        if let Some(rel) = &rel {
            self.quotas.answered(rel);
        }
        let entry =
            OutboxEntry { id: message.id(), peer: peer.to_string(), attempts: 0, next_attempt: at, queued_at: at };
        // Written, with the outbox entry, by the next group commit.
        self.writes.push(Write::Message { relationship: rel, id: message.id(), bytes: message.bytes_arc() });
        self.writes.push(Write::Outbox(entry.clone()));
        info!(
            to = %to,
            rel = %rel.map(|r| r.to_hex()).unwrap_or_default(),
            seq = message.header().seq,
            kind = %message.kind(),
            id = %message.id(),
            "queued"
        );
        let submitted = Submitted {
            id: message.id().to_hex(),
            relationship: rel.map(|r| r.to_hex()).unwrap_or_default(),
            kind: message.kind().as_str(),
        };
        Ok(Staged { entry, place: rel.map(|r| (r, message.header().seq)), submitted, bytes: message.bytes_arc() })
    }

    /// A staged message of ours is durable: it joins the outbox and goes out.
    pub(super) fn sent(&mut self, entry: OutboxEntry, place: Place, bytes: std::sync::Arc<[u8]>) {
        let id = entry.id;
        self.payloads.insert(id, bytes);
        if let Some(place) = place {
            self.order.insert(id, place);
        }
        self.outbox.insert(id, entry);
        self.metrics.sent.inc();
        self.update_gauges();
        self.deliver(id);
    }

    /// Signs a public `offer` or `intent`, stores it and publishes it on its gossip topic.
    pub(super) fn publish(&mut self, body: Body) -> Result<Submitted, Error> {
        let topic = match body {
            Body::Offer(_) => self.topics.offers.clone(),
            Body::Intent(_) => self.topics.intents.clone(),
            other => {
                return Err(Error::BadRequest(format!("{} needs a relationship or a recipient", other.kind())));
            }
        };
        let header = Header::public(self.identity.key_id(), self.now());
        let message = Message::seal(Payload { header, body }, &self.identity.key).map_err(|e| refused(&e, &e))?;
        self.store.put_message(None, message.id(), message.bytes())?;
        self.store.flush()?;
        self.remember_public(message.clone());
        if let Err(e) = self.swarm.behaviour_mut().gossipsub.publish(topic, message.bytes().to_vec()) {
            // No peer subscribed yet: the message is stored and listed; it is not retried.
            debug!(error = %e, "publish");
        }
        Ok(Submitted { id: message.id().to_hex(), relationship: String::new(), kind: message.kind().as_str() })
    }

    pub(super) fn remember_public(&mut self, m: Message) {
        if self.public.iter().any(|p| p.id() == m.id()) {
            return;
        }
        if self.public.len() == MAX_PUBLIC {
            self.public.pop_front();
        }
        self.public.push_back(m);
    }

    /// Sends outbox message `id` now, unless it is already on its way.
    pub(super) fn deliver(&mut self, id: MessageId) {
        if self.sending.contains(&id) || self.waits_for_earlier(&id) {
            return;
        }
        let Some(entry) = self.outbox.get(&id) else { return };
        let Ok(peer) = entry.peer.parse::<PeerId>() else {
            warn!(%id, peer = %entry.peer, "outbox entry with an invalid peer id");
            return;
        };
        let stored = match self.payloads.get(&id) {
            Some(bytes) => Ok(Some(bytes.to_vec())),
            None => self.store.message(&id),
        };
        let bytes = match stored {
            Ok(Some(bytes)) => bytes,
            Ok(None) => {
                warn!(%id, "outbox entry without its message; dropped");
                self.outbox.remove(&id);
                self.writes.push(Write::Delivered(id));
                return;
            }
            Err(e) => {
                warn!(%id, error = %e, "cannot read an outbox message");
                return;
            }
        };
        // A peer not connected is dialed at the addresses it was last seen at, as well as those
        // the swarm knows: the routing table holds only some peers, and libp2p's address cache
        // only the most recent.
        let addresses = if self.connected.contains_key(&peer) { Vec::new() } else { self.remembered(&peer) };
        let request = self.swarm.behaviour_mut().messages.send_request_with_addresses(
            &peer,
            Request::Envelope(Envelope::Raw(bytes)),
            addresses,
        );
        self.in_flight.insert(request, id);
        self.sending.insert(id);
    }

    /// The addresses `peer` was last seen at, as the store remembers them.
    fn remembered(&self, peer: &PeerId) -> Vec<Multiaddr> {
        match self.store.peer(&peer.to_string()) {
            Ok(found) => found.unwrap_or_default().iter().filter_map(|a| a.parse().ok()).collect(),
            Err(e) => {
                warn!(%peer, error = %e, "cannot read a peer's addresses");
                Vec::new()
            }
        }
    }

    /// Whether an earlier message of the same relationship is still undelivered.
    pub(super) fn waits_for_earlier(&self, id: &MessageId) -> bool {
        let Some((rel, seq)) = self.order.get(id) else { return false };
        self.order.iter().any(|(other, (r, s))| r == rel && s < seq && other != id)
    }

    /// The earliest undelivered message of `rel`, if any.
    pub(super) fn next_of(&self, rel: &RelationshipId) -> Option<MessageId> {
        self.order.iter().filter(|(_, (r, _))| r == rel).min_by_key(|(_, (_, s))| *s).map(|(id, _)| *id)
    }

    pub(super) fn send_due(&mut self) {
        let at = self.now();
        let due: Vec<MessageId> = self
            .outbox
            .values()
            .filter(|e| e.next_attempt <= at && !self.sending.contains(&e.id))
            .map(|e| e.id)
            .collect();
        for id in due {
            self.deliver(id);
        }
    }

    /// A delivery attempt failed: try again after the backoff.
    pub(super) fn retry_later(&mut self, id: MessageId) {
        self.sending.remove(&id);
        let now = self.now();
        let Some(entry) = self.outbox.get_mut(&id) else { return };
        entry.attempts = entry.attempts.saturating_add(1);
        entry.next_attempt = now + outbox::backoff(entry.attempts, &mut rand::thread_rng()).as_millis() as u64;
        // Written with the next group commit; lost in a crash, it only costs an early retry.
        self.writes.push(Write::Outbox(entry.clone()));
    }

    /// The recipient holds message `id`: it leaves the outbox.
    pub(super) fn delivered(&mut self, id: MessageId) {
        self.sending.remove(&id);
        if let Some((rel, _)) = self.order.remove(&id) {
            if let Some(next) = self.next_of(&rel) {
                self.deliver(next);
            }
        }
        if let Some(tx) = &self.delivered_tx {
            let _ = tx.try_send(id);
        }
        self.payloads.remove(&id);
        if let Some(entry) = self.outbox.remove(&id) {
            info!(%id, peer = %entry.peer, "delivered");
            self.metrics.receipt_latency.observe(self.now().saturating_sub(entry.queued_at) as f64 / 1000.0);
            self.update_gauges();
            // Written with the next group commit; lost in a crash, the message is sent again and
            // the recipient answers the repeat with another receipt.
            self.writes.push(Write::Delivered(id));
        }
    }

    /// The answer to a message we sent: a receipt ends its delivery, a problem report ends it
    /// too unless the problem is transient, and anything else is a failed attempt.
    pub(super) fn on_answer(
        &mut self,
        peer: PeerId,
        sent: MessageId,
        opened: Result<Message, rapport_protocol::envelope::Error>,
    ) {
        let answer = match opened {
            // Its signature was verified under `from`, so the key is valid.
            Ok(a) if identity::is_peer_of(&peer, &a.header().from) => a,
            Ok(_) => {
                warn!(%sent, %peer, "answer signed by another key; will retry");
                return self.retry_later(sent);
            }
            Err(e) => {
                warn!(%sent, %peer, error = %e, "unverifiable answer; will retry");
                return self.retry_later(sent);
            }
        };
        let done = match answer.body() {
            Body::Receipt(r) if r.message == sent => true,
            Body::ProblemReport(p) if p.message == Some(sent) => {
                warn!(%sent, %peer, code = %p.code, text = %p.text, "message refused");
                // `internal` (the peer could not store it), `chain-gap` (an earlier message has
                // not reached it yet), `rate-limited` and `quota-exceeded` (its owner may answer,
                // or its quota refill) may clear up; anything else is final.
                ![Code::Internal, Code::ChainGap, Code::RateLimited, Code::QuotaExceeded]
                    .iter()
                    .any(|c| p.code == c.as_str())
            }
            _ => {
                warn!(%sent, %peer, "answer names another message; will retry");
                false
            }
        };
        if !done {
            return self.retry_later(sent);
        }
        if let Some(rel) = answer.header().relationship {
            if self.relationships.get(&rel).is_some() {
                match self.relationships.apply(&answer, self.now(), Policy::LIVE) {
                    // Stored with the next group commit, like the outbox entry's removal.
                    Ok(_) => self.writes.push(Write::Message {
                        relationship: Some(rel),
                        id: answer.id(),
                        bytes: answer.bytes_arc(),
                    }),
                    Err(e) => warn!(error = %e, "answer refused by the state machine"),
                }
            }
        }
        self.delivered(sent);
    }
}
