//! Peers' messages (spec/node.md §3): each one is accepted, stored and answered with a receipt
//! after the group commit that makes it durable, or refused at once with a signed problem
//! report that changes nothing. A repeat is answered with the stored receipt. Gossiped public
//! messages are kept in memory and forwarded only when valid.

use rapport_protocol::relationship::Policy;
use rapport_protocol::{
    envelope, Body, Class, Code, Event, HasCode as _, Header, KeyId, Message, MessageId, Payload, ProblemReport,
    Receipt, RelationshipId,
};
use tracing::{debug, info, warn};

use crate::commit::Pending;
use crate::quota::Target;
use crate::{ChannelId, GossipId, NodeId, Output, State, Unopened, Verdict, Write, REFUSALS_LOGGED, REFUSAL_WINDOW_MS};

impl State {
    /// A peer's message: stored and receipted after the next flush, or answered at once with a
    /// problem report.
    pub(crate) fn on_request(&mut self, peer: NodeId, channel: ChannelId, opened: Result<Message, Unopened>) {
        let answer = match opened {
            Err(Unopened { id, error }) => {
                self.metrics.rejected(error.code());
                self.log_refusal(&peer, None, error.code(), &id);
                self.problem(&peer, None, error.code(), &error.to_string(), Some(id))
            }
            // Acknowledgements answer requests and are never requests themselves (spec §11.2):
            // one sent as a request is not stored and not answered, since a receipt of a
            // receipt would put a message in the log that its verification refuses, and a
            // problem report in answer to an acknowledgement is forbidden (§5.15).
            Ok(m) if m.kind().class() == Class::Ack => {
                self.metrics.unsolicited_acks.inc();
                debug!(%peer, kind = %m.kind(), "an acknowledgement sent as a request; not stored, not answered");
                return self.output(Output::NoAnswer(channel));
            }
            Ok(m) => match self.accept(&peer, &m) {
                Ok(Some(receipt)) => {
                    let h = m.header();
                    let rel = h.relationship.map(|r| r.to_hex()).unwrap_or_default();
                    info!(from = %h.from, %rel, seq = h.seq, kind = %m.kind(), id = %m.id(), "received");
                    self.metrics.received.inc();
                    self.update_gauges();
                    self.commit.wait(Pending::Receipt { channel, bytes: receipt, rel: m.header().relationship });
                    return;
                }
                // Already held, but perhaps not yet durable: its receipt waits for the next group
                // commit like any other.
                Ok(None) => {
                    let receipt = self.stored_receipt(&m).unwrap_or_else(|| self.receipt(&m));
                    self.commit.wait(Pending::Receipt { channel, bytes: receipt, rel: None });
                    return;
                }
                Err((code, detail)) => {
                    self.metrics.rejected(code);
                    self.log_refusal(&peer, Some(&m.header().from), code, &m.id());
                    self.problem(&peer, m.header().relationship, code, &detail, Some(m.id()))
                }
            },
        };
        self.output(Output::Respond { channel, bytes: answer });
    }

    /// Applies and stages a peer's verified message, delivered by `peer`. `Ok(Some(receipt))`:
    /// staged, the receipt waits for the flush; `Ok(None)`: already held.
    ///
    /// A blocked key is refused before anything else is looked at; a message already held is
    /// answered as before, whatever the quotas; anything new must fit the quotas (spec/node.md
    /// §3.1) before the state machine sees it, and is charged to them once accepted.
    fn accept(&mut self, peer: &NodeId, m: &Message) -> Result<Option<Vec<u8>>, (Code, String)> {
        let from = m.header().from;
        if self.quotas.is_blocked(&from) {
            return Err((Code::Blocked, "this node's owner has blocked the sending key".into()));
        }
        if m.header().to != Some(self.me) {
            return Err((Code::WrongRecipient, "the message is not addressed to this node".into()));
        }
        let now = self.now;
        let quota = match m.header().relationship.map(|id| (id, self.relationships.get(&id))) {
            Some((_, Some(held))) if held.contains(&m.id()) => return Ok(None),
            Some((id, held)) => {
                let target = if held.is_some() { Target::Held } else { Target::New };
                self.quotas.check(peer, &from, id, target, m.bytes().len(), now)?;
                Some((id, target))
            }
            // A public message sent directly: the state machine refuses it.
            None => None,
        };
        let events = self.relationships.apply(m, now, Policy::LIVE).map_err(|e| (e.code(), e.to_string()))?;
        if events.iter().any(|e| matches!(e, Event::Duplicate { .. })) {
            return Ok(None);
        }
        if let Some((id, target)) = quota {
            self.quotas.charge(peer, &from, id, target, m.bytes().len(), now);
        }
        let rel = m.header().relationship;
        let receipt = self.sealed_receipt(m);
        // Written by the next group commit, before the receipt goes out.
        self.commit.stage(Write::Message { relationship: rel, id: m.id(), bytes: m.bytes_arc() });
        // Our own receipt belongs to the relationship's record too.
        if let (Some(r), Some(_)) = (&receipt, rel) {
            if let Err(e) = self.relationships.apply(r, now, Policy::LIVE) {
                warn!(error = %e, "own receipt refused by the state machine");
            }
            self.commit.stage(Write::Message { relationship: rel, id: r.id(), bytes: r.bytes_arc() });
        }
        Ok(Some(receipt.map(|r| r.bytes().to_vec()).unwrap_or_default()))
    }

    /// The receipt this node stored when it first accepted `m`. A repeat is answered with it,
    /// not with a new one, so that both parties hold the same signed record (spec/node.md §3)
    /// and no signature is made twice.
    fn stored_receipt(&self, m: &Message) -> Option<Vec<u8>> {
        let rel = self.relationships.get(&m.header().relationship?)?;
        rel.acknowledgements()
            .find(|a| a.header().from == self.me && matches!(a.body(), Body::Receipt(r) if r.message == m.id()))
            .map(|a| a.bytes().to_vec())
    }

    /// A new signed receipt for `m`, as bytes to send.
    fn receipt(&self, m: &Message) -> Vec<u8> {
        self.sealed_receipt(m).map(|r| r.bytes().to_vec()).unwrap_or_default()
    }

    /// Our signed receipt for `m`. Sealing checks it as opening would, so it need not be
    /// opened again before it is applied and stored.
    fn sealed_receipt(&self, m: &Message) -> Option<Message> {
        let h = Header::ack(m.header().relationship, self.me, m.header().from, self.now);
        let body = Body::Receipt(Receipt { message: m.id() });
        match Message::seal(Payload { header: h, body }, &self.key) {
            Ok(r) => Some(r),
            Err(e) => {
                warn!(error = %e, "cannot sign a receipt");
                None
            }
        }
    }

    /// One line at info for a refusal, at most [`REFUSALS_LOGGED`] a window: a peer that
    /// sends garbage as fast as it can must not fill the disk through the log. The lines left
    /// out are counted, and said at the next line (they are all in the metrics).
    fn log_refusal(&mut self, peer: &NodeId, from: Option<&KeyId>, code: Code, id: &MessageId) {
        let now = self.now;
        let budget = &mut self.refusals;
        if now.saturating_sub(budget.since) >= REFUSAL_WINDOW_MS {
            budget.since = now;
            budget.logged = 0;
        }
        if budget.logged >= REFUSALS_LOGGED {
            budget.suppressed += 1;
            return;
        }
        budget.logged += 1;
        let suppressed = std::mem::take(&mut budget.suppressed);
        let from = from.map(ToString::to_string).unwrap_or_default();
        if suppressed > 0 {
            info!(%peer, %from, %code, %id, suppressed, "refused (and {suppressed} refusals not logged since the last line)");
        } else {
            info!(%peer, %from, %code, %id, "refused");
        }
    }

    /// Our signed problem report to `peer`.
    pub(crate) fn problem(
        &self,
        peer: &NodeId,
        rel: Option<RelationshipId>,
        code: Code,
        text: &str,
        message: Option<MessageId>,
    ) -> Vec<u8> {
        let to = peer.key().unwrap_or(KeyId::from_bytes([0; 32]));
        let h = Header::ack(rel, self.me, to, self.now);
        let body = Body::ProblemReport(ProblemReport::new(code, message, text));
        match Message::seal(Payload { header: h, body }, &self.key) {
            Ok(r) => r.bytes().to_vec(),
            Err(e) => {
                warn!(error = %e, "cannot sign a problem report");
                Vec::new()
            }
        }
    }

    /// A gossiped message, opened off the state: only valid public offers and intents are
    /// forwarded, and kept in memory (the latest [`MAX_PUBLIC`](crate::MAX_PUBLIC)), never
    /// stored: what anyone may publish must not fill the disk.
    pub(crate) fn on_gossip(&mut self, gossip: GossipId, opened: Result<Message, envelope::Error>) {
        let verdict = match opened {
            Ok(m) if self.quotas.is_blocked(&m.header().from) => {
                self.metrics.gossip_blocked.inc();
                debug!(kind = %m.kind(), from = %m.header().from, "gossiped message from a blocked key; dropped");
                Verdict::Ignore
            }
            Ok(m) if m.header().relationship.is_none() && matches!(m.body(), Body::Offer(_) | Body::Intent(_)) => {
                self.remember_public(m);
                Verdict::Accept
            }
            Ok(m) => {
                debug!(kind = %m.kind(), "gossiped message that is not public; refused");
                Verdict::Reject
            }
            Err(e) => {
                debug!(error = %e, "invalid gossiped message; refused");
                Verdict::Reject
            }
        };
        self.output(Output::Validated { gossip, verdict });
    }
}
