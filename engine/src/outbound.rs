//! Our own messages (spec/node.md §3): signing and staging them for the group commit, sending
//! what the outbox says is due, and the answers and failures that end or delay delivery.

use std::sync::Arc;

use rand::RngCore as _;
use rapport_protocol::relationship::Policy;
use rapport_protocol::{envelope, Body, Code, Header, Message, MessageId, Payload, RelationshipId};
use tracing::{debug, info, warn};

use crate::commit::Pending;
use crate::outbox::Place;
use crate::relationships::transient;
use crate::{
    refused, CommandId, Draft, Error, Failure, NodeId, OutboxEntry, Output, RequestId, State, Submitted, Topic, Write,
    MAX_PUBLIC,
};

/// A message of ours, signed and staged for the next group commit.
#[derive(Debug)]
pub(crate) struct Staged {
    pub entry: OutboxEntry,
    pub peer: NodeId,
    pub place: Option<Place>,
    pub submitted: Submitted,
    pub bytes: Arc<[u8]>,
}

impl State {
    /// A command to send: a public message is published, anything else staged for delivery.
    pub(crate) fn on_send(&mut self, command: CommandId, draft: Draft) {
        if draft.relationship.is_none() && draft.to.is_none() {
            return match self.publish(draft.body) {
                Ok((message, topic)) => {
                    self.commit.stage(Write::Message {
                        relationship: None,
                        id: message.id(),
                        bytes: message.bytes_arc(),
                    });
                    self.commit.wait(Pending::Published { message, topic, command });
                }
                Err(e) => self.output(Output::Reply { command, result: Err(e) }),
            };
        }
        match self.stage(draft) {
            Ok(staged) => self.commit.wait(Pending::Sent { staged, command }),
            Err(e) => self.output(Output::Reply { command, result: Err(e) }),
        }
    }

    /// Signs `draft`, applies it to our own view of the relationship and stages it with its
    /// outbox entry for the next group commit.
    fn stage(&mut self, draft: Draft) -> Result<Staged, Error> {
        let me = self.me;
        let at = self.now;
        let header = match draft.relationship {
            Some(id) => {
                let rel =
                    self.relationships.get(&id).ok_or_else(|| Error::BadRequest(format!("no relationship {id}")))?;
                let role = rel.role(&me).ok_or_else(|| Error::BadRequest("this node is not a party".into()))?;
                if let Some(r) = self.relationships.refusal(&id).filter(|r| r.sender == me) {
                    return Err(Error::Refused {
                        code: Code::Fork,
                        detail: format!(
                            "relationship {id} takes no more messages from this node: the counterparty refused \
                             message {} ({}) for good, and every later message would chain on it",
                            r.message, r.code
                        ),
                    });
                }
                rel.next_header(role, at)
            }
            None => {
                let to = draft.to.ok_or_else(|| Error::BadRequest("a new relationship needs a recipient".into()))?;
                // A new relationship's recipient comes from the caller and is checked; a
                // relationship's counterparty was checked when it began.
                if rapport_protocol::cose::public_key(to.as_bytes()).is_err() {
                    return Err(Error::BadRequest("recipient is not an Ed25519 key".into()));
                }
                let mut id = [0u8; 16];
                self.rng.fill_bytes(&mut id);
                Header::opening(RelationshipId::from_bytes(id), me, to, at)
            }
        };
        let to = header.to.ok_or_else(|| Error::BadRequest("no recipient".into()))?;
        let peer = NodeId::of_key(&to);
        let message = Message::seal(Payload { header, body: draft.body }, &self.key).map_err(|e| refused(&e, &e))?;
        self.relationships.apply(&message, at, Policy::LIVE).map_err(|e| refused(&e, &e))?;
        let rel = message.header().relationship;
        // The owner has spoken: a stranger's relationship is hers now, outside the quotas.
        if let Some(rel) = &rel {
            self.quotas.answered(rel);
        }
        let entry =
            OutboxEntry { id: message.id(), peer: peer.to_string(), attempts: 0, next_attempt: at, queued_at: at };
        self.commit.stage(Write::Message { relationship: rel, id: message.id(), bytes: message.bytes_arc() });
        self.commit.stage(Write::Outbox(entry.clone()));
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
        Ok(Staged { entry, peer, place: rel.map(|r| (r, message.header().seq)), submitted, bytes: message.bytes_arc() })
    }

    /// A staged message of ours is written: it joins the outbox and goes out when due (now,
    /// unless its recipient is backing off).
    pub(crate) fn sent(&mut self, staged: Staged) {
        self.outbox.insert(staged.entry, staged.peer, staged.place, staged.bytes);
        self.metrics.sent.inc();
        self.update_gauges();
    }

    /// Signs a public `offer` or `intent` for its gossip topic.
    fn publish(&mut self, body: Body) -> Result<(Message, Topic), Error> {
        let topic = match body {
            Body::Offer(_) => Topic::Offers,
            Body::Intent(_) => Topic::Intents,
            other => {
                return Err(Error::BadRequest(format!("{} needs a relationship or a recipient", other.kind())));
            }
        };
        let header = Header::public(self.me, self.now);
        let message = Message::seal(Payload { header, body }, &self.key).map_err(|e| refused(&e, &e))?;
        Ok((message, topic))
    }

    pub(crate) fn remember_public(&mut self, m: Message) {
        if self.public.iter().any(|p| p.id() == m.id()) {
            return;
        }
        if self.public.len() == MAX_PUBLIC {
            self.public.pop_front();
        }
        self.public.push_back(m);
    }

    /// Sends what the outbox says is due now, at most a turn's worth.
    pub(crate) fn send_due(&mut self) {
        let connected = &self.connected;
        let due = self.outbox.take_due(self.now, self.config.max_due_per_turn, |p| connected.contains(p));
        for id in due {
            let Some((peer, bytes)) = self.outbox.payload(&id) else { continue };
            let request = RequestId(self.next_request);
            self.next_request += 1;
            self.outbox.sending(id, request);
            self.output(Output::Send { peer, request, bytes });
        }
    }

    /// A request of ours failed: the message, or its recipient, backs off.
    pub(crate) fn on_send_failed(&mut self, request: RequestId, peer: NodeId, failure: Failure) {
        let Some((id, entry)) = self.outbox.failed(request, self.now, failure, &mut self.rng) else { return };
        debug!(%id, %peer, ?failure, "delivery failed; will retry");
        // Written with the next group commit; lost in a crash, it only costs an early retry.
        // While the recipient is away its own backoff rules, so the message's record is
        // written at its 1st, 2nd, 4th, 8th… attempt only.
        if failure == Failure::NoAnswer || entry.attempts.is_power_of_two() {
            self.commit.stage(Write::Outbox(entry));
        }
        if failure != Failure::NoAnswer {
            let outbox = &self.outbox;
            if self.lookups.allow(peer, self.now, |p| outbox.has_waiting(p)) {
                self.output(Output::LookUp(peer));
            }
        }
    }

    /// The answer to a request of ours: a receipt ends its delivery, a problem report ends it
    /// too unless the problem is transient, and anything else is a failed attempt.
    pub(crate) fn on_answer(&mut self, request: RequestId, peer: NodeId, opened: Result<Message, envelope::Error>) {
        let Some(sent) = self.outbox.answered(request) else { return };
        let answer = match opened {
            // Its signature was verified under `from`, so the key is valid.
            Ok(a) if peer.is_of(&a.header().from) => a,
            Ok(_) => {
                warn!(%sent, %peer, "answer signed by another key; will retry");
                return self.retry(sent);
            }
            Err(e) => {
                warn!(%sent, %peer, error = %e, "unverifiable answer; will retry");
                return self.retry(sent);
            }
        };
        let mut refused = false;
        let done = match answer.body() {
            Body::Receipt(r) if r.message == sent => true,
            Body::ProblemReport(p) if p.message == Some(sent) => {
                warn!(%sent, %peer, code = %p.code, text = %p.text, "message refused");
                // A `chain-gap` clears up once the earlier message arrives, unless the
                // recipient refused that one for good: then it never will.
                refused = !transient(&p.code) || (p.code == Code::ChainGap.as_str() && self.follows_refusal(&sent));
                refused
            }
            _ => {
                warn!(%sent, %peer, "answer names another message; will retry");
                false
            }
        };
        if !done {
            return self.retry(sent);
        }
        if let Some(rel) = answer.header().relationship {
            if self.relationships.get(&rel).is_some() {
                match self.relationships.apply(&answer, self.now, Policy::LIVE) {
                    // Stored with the next group commit, like the outbox entry's removal.
                    Ok(_) => self.commit.stage(Write::Message {
                        relationship: Some(rel),
                        id: answer.id(),
                        bytes: answer.bytes_arc(),
                    }),
                    Err(e) => warn!(error = %e, "answer refused by the state machine"),
                }
            }
        }
        // The recipient will never hold this message, so it can never accept the ones that
        // chain on it: they are given up too, rather than retried for ever as `chain-gap`.
        if refused {
            if let Some((rel, seq)) = self.outbox.place(&sent) {
                for entry in self.outbox.remove_after(&rel, seq) {
                    warn!(id = %entry.id, %rel, "given up: it follows a message the recipient refused for good");
                    self.update_gauges();
                    self.output(Output::Delivered(entry.id));
                    self.commit.stage(Write::Delivered(entry.id));
                }
            }
        }
        self.delivered(sent);
    }

    /// Whether our message `id` comes after one of ours in its relationship that the
    /// recipient refused for good.
    fn follows_refusal(&self, id: &MessageId) -> bool {
        let Some((rel, seq)) = self.outbox.place(id) else { return false };
        self.relationships.refusal(&rel).is_some_and(|r| r.sender == self.me && r.seq < seq)
    }

    fn retry(&mut self, id: MessageId) {
        if let Some(entry) = self.outbox.retry(id, self.now, &mut self.rng) {
            self.commit.stage(Write::Outbox(entry));
        }
    }

    /// The recipient holds message `id`: it leaves the outbox, and the next message of its
    /// relationship goes.
    fn delivered(&mut self, id: MessageId) {
        let Some(entry) = self.outbox.remove(&id) else { return };
        info!(%id, peer = %entry.peer, "delivered");
        self.metrics.receipt_latency.observe(self.now.saturating_sub(entry.queued_at) as f64 / 1000.0);
        self.update_gauges();
        self.output(Output::Delivered(id));
        // Written with the next group commit; lost in a crash, the message is sent again and the
        // recipient answers the repeat with another receipt.
        self.commit.stage(Write::Delivered(id));
        self.send_due();
    }
}
