//! One simulated node: the event loop of `node/src/engine/` (mod.rs and outbound.rs) with
//! libp2p and tokio taken out, run turn by turn by the simulation.
//!
//! Real code: signing, strict verification, [`Relationships`] (the state machine, and its
//! rebuilding from the store at start), the store, [`outbox::backoff`]. Mirrored line by line
//! from the engine: staging a message and its outbox entry for the group commit, writing our
//! own messages at once and sending them, receipts only after the flush that covers their
//! message, one message in flight per relationship (`waits_for_earlier`), the answers that
//! end delivery (a receipt, or a problem report with a final code) and retries after the
//! backoff. Function names match the engine's so the two can be read side by side.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use ed25519_dalek::SigningKey;
use rand_chacha::ChaCha8Rng;
use rapport_node::engine::Relationships;
use rapport_node::store::{OutboxEntry, Store as _, Write};
use rapport_protocol::relationship::Policy;
use rapport_protocol::{
    Body, Code, Event, HasCode as _, Header, KeyId, Message, MessageId, Payload, ProblemReport, Receipt,
    RelationshipId, Timestamp,
};

use super::store::Disk;

/// A request id, unique in one run.
pub(crate) type ReqId = u64;

/// Where an answer to a peer's request goes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Channel {
    pub from: usize,
    pub req: ReqId,
}

/// What a turn of the node asks of the world.
#[derive(Debug)]
pub(crate) enum Out {
    /// A request carrying one of our messages to node `to`.
    Request { req: ReqId, to: usize, bytes: Arc<[u8]> },
    /// An answer on a peer's request.
    Respond { channel: Channel, bytes: Vec<u8> },
    /// A flush began, covering `covered` frames.
    Flush { covered: usize },
    /// The caller that asked for message `id` is told it is durable.
    Confirmed(MessageId),
    /// We hold node `to`'s receipt for our message `id`.
    Receipted { id: MessageId, to: usize },
    /// A peer's message was answered with a problem report.
    Refused { code: Code },
    /// A peer's message was already held (answered with a receipt, stored once).
    Repeat,
}

/// Deliberate defects, to show that the checks can fail.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Faults {
    /// Answer with a receipt once the message is written, before the flush.
    pub receipt_before_flush: bool,
}

/// What a node's turn may use of the world.
#[derive(Debug)]
pub(crate) struct Ctx<'a> {
    /// The node's clock, Unix ms.
    pub now: Timestamp,
    pub next_req: &'a mut ReqId,
    pub out: &'a mut Vec<Out>,
    /// Node index by libp2p peer id text.
    pub peers: &'a BTreeMap<String, usize>,
    pub faults: Faults,
}

/// Why a submitted draft was refused.
#[derive(Debug)]
pub(crate) enum Refusal {
    /// By the protocol: nothing was stored.
    Protocol(Code),
    /// Not a valid request here.
    Bad(String),
}

/// Our own message, staged for the next group commit.
#[derive(Debug)]
struct Staged {
    entry: OutboxEntry,
    place: Option<(RelationshipId, u64)>,
    id: MessageId,
    bytes: Arc<[u8]>,
}

/// Work that waits for its writes (the engine's `Pending`).
#[derive(Debug)]
enum Pending {
    /// (The engine also keeps the relationship, to reload it if the write fails; the
    /// simulated disk does not fail.)
    Receipt(Channel, Vec<u8>),
    Sent(Staged),
    Reply(MessageId),
}

/// A node's process: everything a crash loses.
#[derive(Debug)]
pub(crate) struct Process {
    relationships: Relationships,
    writes: Vec<Write>,
    unwritten: Vec<Pending>,
    unflushed: Vec<Pending>,
    dirty: bool,
    flushing: Option<Vec<Pending>>,
    outbox: BTreeMap<MessageId, OutboxEntry>,
    payloads: BTreeMap<MessageId, Arc<[u8]>>,
    order: BTreeMap<MessageId, (RelationshipId, u64)>,
    in_flight: BTreeMap<ReqId, MessageId>,
    sending: BTreeSet<MessageId>,
}

/// A simulated node: its key, its store, and its process while it runs.
#[derive(Debug)]
pub(crate) struct Node {
    pub key: SigningKey,
    pub key_id: KeyId,
    /// Its libp2p peer id, as text (what outbox entries name).
    pub peer: String,
    pub store: Disk,
    pub process: Option<Process>,
}

fn key_id(key: &SigningKey) -> KeyId {
    KeyId::from_bytes(key.verifying_key().to_bytes())
}

impl Node {
    pub(crate) fn new(key: SigningKey, store: Disk) -> Result<Node, String> {
        let key_id = key_id(&key);
        let peer = rapport_node::identity::peer_of(&key_id).ok_or("not an Ed25519 key")?.to_string();
        Ok(Node { key, key_id, peer, store, process: None })
    }

    /// Starts the process as `Engine::new` does: relationships replayed from the store, the
    /// outbox and each entry's place in its relationship read back.
    pub(crate) fn start(&mut self) -> Result<(), String> {
        let relationships = rapport_node::engine::load_relationships(&self.store).map_err(|e| e.to_string())?;
        let outbox: BTreeMap<MessageId, OutboxEntry> =
            self.store.outbox().map_err(|e| e.to_string())?.into_iter().map(|e| (e.id, e)).collect();
        let mut order = BTreeMap::new();
        for id in outbox.keys() {
            if let Some(m) = self.store.message(id).map_err(|e| e.to_string())?.and_then(|b| Message::open(&b).ok()) {
                if let Some(rel) = m.header().relationship {
                    order.insert(*id, (rel, m.header().seq));
                }
            }
        }
        self.process = Some(Process {
            relationships,
            writes: Vec::new(),
            unwritten: Vec::new(),
            unflushed: Vec::new(),
            dirty: false,
            flushing: None,
            outbox,
            payloads: BTreeMap::new(),
            order,
            in_flight: BTreeMap::new(),
            sending: BTreeSet::new(),
        });
        Ok(())
    }

    pub(crate) fn relationships(&self) -> Option<&Relationships> {
        self.process.as_ref().map(|p| &p.relationships)
    }

    /// Messages waiting for a receipt.
    pub(crate) fn outbox_len(&self) -> usize {
        self.process.as_ref().map_or(0, |p| p.outbox.len())
    }

    /// The relationship of each outbox entry (`None` for one not in a relationship).
    pub(crate) fn outbox_relationships(&self) -> Vec<Option<RelationshipId>> {
        let Some(p) = self.process.as_ref() else { return Vec::new() };
        p.outbox.keys().map(|id| p.order.get(id).map(|(rel, _)| *rel)).collect()
    }

    /// Whether nothing is staged, written but unflushed, or being flushed.
    pub(crate) fn idle(&self) -> bool {
        self.process.as_ref().is_none_or(|p| {
            p.writes.is_empty() && p.unwritten.is_empty() && p.unflushed.is_empty() && p.flushing.is_none() && !p.dirty
        })
    }

    /// Requests in flight, by request id, with the node each went to.
    pub(crate) fn in_flight(&self) -> Vec<(ReqId, MessageId)> {
        self.process.as_ref().map(|p| p.in_flight.iter().map(|(r, m)| (*r, *m)).collect()).unwrap_or_default()
    }

    /// What a refused message must not change: every relationship as the API summarises
    /// it, and the work staged for the next group commit.
    pub(crate) fn digest(&self) -> Vec<String> {
        let Some(p) = self.process.as_ref() else { return Vec::new() };
        let mut out: Vec<String> = p
            .relationships
            .summaries(&self.key_id)
            .into_iter()
            .map(|s| {
                let consents: Vec<String> =
                    s.consents.iter().map(|c| format!("{}:{:?}", c.grant, c.revoked_by)).collect();
                format!("{} {} {} {} {}", s.id, s.phase, s.messages, s.acknowledgements, consents.join(","))
            })
            .collect();
        out.push(format!("staged {} {} outbox {}", p.writes.len(), p.unwritten.len(), p.outbox.len()));
        out
    }

    /// When the outbox next has work for the engine's periodic tick, if ever; or now, if a
    /// flush of unpromised writes is due.
    pub(crate) fn next_due(&self) -> Option<Timestamp> {
        let p = self.process.as_ref()?;
        if p.dirty && p.flushing.is_none() {
            return Some(0);
        }
        // Entries waiting for an earlier message go when it is delivered, not at a tick.
        p.outbox
            .values()
            .filter(|e| !p.sending.contains(&e.id) && !waits_for_earlier(&p.order, &e.id))
            .map(|e| e.next_attempt)
            .min()
    }
}

/// The turn-by-turn handlers, named after the engine's.
impl Node {
    fn p(&mut self) -> Result<&mut Process, String> {
        self.process.as_mut().ok_or_else(|| "the node is down".to_owned())
    }

    /// `Command::Send` with a relationship or a recipient: signs, applies to our view and
    /// stages the message and its outbox entry (outbound.rs `stage`).
    pub(crate) fn submit(
        &mut self,
        ctx: &mut Ctx<'_>,
        relationship: Option<RelationshipId>,
        to: Option<KeyId>,
        body: Body,
        new_id: [u8; 16],
    ) -> Result<MessageId, Refusal> {
        let me = self.key_id;
        let at = ctx.now;
        let key = self.key.clone();
        let p = self.p().map_err(Refusal::Bad)?;
        let header = match relationship {
            Some(id) => {
                let rel = p.relationships.get(&id).ok_or_else(|| Refusal::Bad(format!("no relationship {id}")))?;
                let role = rel.role(&me).ok_or_else(|| Refusal::Bad("this node is not a party".into()))?;
                rel.next_header(role, at)
            }
            None => {
                let to = to.ok_or_else(|| Refusal::Bad("a new relationship needs a recipient".into()))?;
                Header::opening(RelationshipId::from_bytes(new_id), me, to, at)
            }
        };
        let to = header.to.ok_or_else(|| Refusal::Bad("no recipient".into()))?;
        let peer = rapport_node::identity::peer_of(&to).ok_or_else(|| Refusal::Bad("not an Ed25519 key".into()))?;
        let message = Message::seal(Payload { header, body }, &key).map_err(|e| Refusal::Protocol(e.code()))?;
        p.relationships.apply(&message, at, Policy::LIVE).map_err(|e| Refusal::Protocol(e.code()))?;
        let rel = message.header().relationship;
        let entry =
            OutboxEntry { id: message.id(), peer: peer.to_string(), attempts: 0, next_attempt: at, queued_at: at };
        p.writes.push(Write::Message { relationship: rel, id: message.id(), bytes: message.bytes_arc() });
        p.writes.push(Write::Outbox(entry.clone()));
        let staged = Staged {
            entry,
            place: rel.map(|r| (r, message.header().seq)),
            id: message.id(),
            bytes: message.bytes_arc(),
        };
        p.unwritten.push(Pending::Sent(staged));
        Ok(message.id())
    }

    /// A peer's request (engine `on_request`; the codec's opening of the envelope included).
    pub(crate) fn on_request(&mut self, ctx: &mut Ctx<'_>, peer: KeyId, channel: Channel, bytes: &[u8]) {
        let answer = match Message::open(bytes) {
            Err(e) => {
                ctx.out.push(Out::Refused { code: e.code() });
                self.problem(ctx, peer, None, e.code(), &e.to_string(), Some(MessageId::of(bytes)))
            }
            Ok(m) => match self.accept(ctx, &m) {
                Ok(Some(receipt)) => {
                    if let Some(p) = self.process.as_mut() {
                        p.unwritten.push(Pending::Receipt(channel, receipt));
                    }
                    return;
                }
                Ok(None) => {
                    ctx.out.push(Out::Repeat);
                    // As the engine does: the receipt stored with the message, else a new one.
                    let receipt = self.stored_receipt(&m).unwrap_or_else(|| self.receipt(ctx.now, &m));
                    if let Some(p) = self.process.as_mut() {
                        p.unwritten.push(Pending::Receipt(channel, receipt));
                    }
                    return;
                }
                Err((code, detail)) => {
                    ctx.out.push(Out::Refused { code });
                    self.problem(ctx, peer, m.header().relationship, code, &detail, Some(m.id()))
                }
            },
        };
        ctx.out.push(Out::Respond { channel, bytes: answer });
    }

    /// Engine `accept`.
    fn accept(&mut self, ctx: &mut Ctx<'_>, m: &Message) -> Result<Option<Vec<u8>>, (Code, String)> {
        let me = self.key_id;
        if m.header().to != Some(me) {
            return Err((Code::WrongRecipient, "the message is not addressed to this node".into()));
        }
        let p = self.process.as_mut().ok_or((Code::Internal, "down".to_owned()))?;
        let events = p.relationships.apply(m, ctx.now, Policy::LIVE).map_err(|e| (e.code(), e.to_string()))?;
        if events.iter().any(|e| matches!(e, Event::Duplicate { .. })) {
            return Ok(None);
        }
        let rel = m.header().relationship;
        let receipt = self.sealed_receipt(ctx.now, m);
        let p = self.process.as_mut().ok_or((Code::Internal, "down".to_owned()))?;
        p.writes.push(Write::Message { relationship: rel, id: m.id(), bytes: m.bytes_arc() });
        if let (Some(r), Some(_)) = (&receipt, rel) {
            // The engine logs a refusal of its own receipt and stores the receipt anyway.
            let _ = p.relationships.apply(r, ctx.now, Policy::LIVE);
            p.writes.push(Write::Message { relationship: rel, id: r.id(), bytes: r.bytes_arc() });
        }
        Ok(Some(receipt.map(|r| r.bytes().to_vec()).unwrap_or_default()))
    }

    /// Our receipt for `m` as stored in its relationship, if any.
    fn stored_receipt(&self, m: &Message) -> Option<Vec<u8>> {
        let rel = self.relationships()?.get(&m.header().relationship?)?;
        rel.acknowledgements()
            .find(|a| a.header().from == self.key_id && matches!(a.body(), Body::Receipt(r) if r.message == m.id()))
            .map(|a| a.bytes().to_vec())
    }

    fn receipt(&self, now: Timestamp, m: &Message) -> Vec<u8> {
        self.sealed_receipt(now, m).map(|r| r.bytes().to_vec()).unwrap_or_default()
    }

    fn sealed_receipt(&self, now: Timestamp, m: &Message) -> Option<Message> {
        let h = Header::ack(m.header().relationship, self.key_id, m.header().from, now);
        Message::seal(Payload { header: h, body: Body::Receipt(Receipt { message: m.id() }) }, &self.key).ok()
    }

    fn problem(
        &self,
        ctx: &Ctx<'_>,
        to: KeyId,
        rel: Option<RelationshipId>,
        code: Code,
        text: &str,
        message: Option<MessageId>,
    ) -> Vec<u8> {
        let h = Header::ack(rel, self.key_id, to, ctx.now);
        let body = Body::ProblemReport(ProblemReport::new(code, message, text));
        Message::seal(Payload { header: h, body }, &self.key).map(|r| r.bytes().to_vec()).unwrap_or_default()
    }

    /// `ConnectionEstablished`: messages waiting for `peer` go now (engine `deliver_waiting`).
    pub(crate) fn deliver_waiting(&mut self, ctx: &mut Ctx<'_>, peer: &str) {
        let Some(p) = self.process.as_ref() else { return };
        let waiting: Vec<MessageId> = p.outbox.values().filter(|e| e.peer == peer).map(|e| e.id).collect();
        for id in waiting {
            self.deliver(ctx, id);
        }
    }

    /// The outbox tick (engine `run`): messages due go, and unpromised writes are flushed.
    pub(crate) fn tick(&mut self, ctx: &mut Ctx<'_>) {
        self.send_due(ctx);
        let Some(p) = self.process.as_ref() else { return };
        if p.flushing.is_none() && p.dirty {
            self.start_flush(ctx);
        }
    }

    /// The end of every turn of the engine's loop: our own messages are written at once;
    /// everything else waits for the flush in progress, then goes as one group commit.
    pub(crate) fn end_turn(&mut self, ctx: &mut Ctx<'_>) {
        let Some(p) = self.process.as_ref() else { return };
        if p.flushing.is_none() || p.unwritten.iter().any(|p| matches!(p, Pending::Sent(..))) {
            self.write_staged(ctx);
        }
        let Some(p) = self.process.as_ref() else { return };
        if p.flushing.is_none() && !p.unflushed.is_empty() {
            self.start_flush(ctx);
        }
    }

    fn write_staged(&mut self, ctx: &mut Ctx<'_>) {
        let Some(p) = self.process.as_mut() else { return };
        if p.writes.is_empty() && p.unwritten.is_empty() {
            return;
        }
        let writes = std::mem::take(&mut p.writes);
        let batch = std::mem::take(&mut p.unwritten);
        p.dirty = true;
        if self.store.write_all(&writes).is_err() {
            // The simulated disk does not fail; a failure here is reported by the checks as
            // an outbox that never drains.
            return;
        }
        for pending in batch {
            match pending {
                Pending::Sent(staged) => {
                    let id = staged.id;
                    self.sent(ctx, staged);
                    if let Some(p) = self.process.as_mut() {
                        p.unflushed.push(Pending::Reply(id));
                    }
                }
                Pending::Receipt(channel, bytes) if ctx.faults.receipt_before_flush => {
                    ctx.out.push(Out::Respond { channel, bytes });
                }
                other => {
                    if let Some(p) = self.process.as_mut() {
                        p.unflushed.push(other);
                    }
                }
            }
        }
    }

    fn start_flush(&mut self, ctx: &mut Ctx<'_>) {
        let Some(p) = self.process.as_mut() else { return };
        let batch = std::mem::take(&mut p.unflushed);
        p.flushing = Some(batch);
        p.dirty = false;
        match self.store.begin_flush() {
            Ok(covered) => ctx.out.push(Out::Flush { covered }),
            Err(_) => ctx.out.push(Out::Flush { covered: 0 }),
        }
    }

    /// The flush in progress ended (engine `on_flushed` and `settle`, for a flush that worked).
    pub(crate) fn on_flushed(&mut self, ctx: &mut Ctx<'_>, covered: usize) {
        if self.store.end_flush(covered).is_err() {
            return;
        }
        let Some(p) = self.process.as_mut() else { return };
        let batch = p.flushing.take().unwrap_or_default();
        for pending in batch {
            match pending {
                Pending::Receipt(channel, bytes) => ctx.out.push(Out::Respond { channel, bytes }),
                Pending::Reply(id) => ctx.out.push(Out::Confirmed(id)),
                Pending::Sent(_) => {}
            }
        }
    }

    /// outbound.rs `sent`.
    fn sent(&mut self, ctx: &mut Ctx<'_>, staged: Staged) {
        let Some(p) = self.process.as_mut() else { return };
        let id = staged.id;
        p.payloads.insert(id, staged.bytes);
        if let Some(place) = staged.place {
            p.order.insert(id, place);
        }
        p.outbox.insert(id, staged.entry);
        self.deliver(ctx, id);
    }

    /// outbound.rs `deliver`.
    fn deliver(&mut self, ctx: &mut Ctx<'_>, id: MessageId) {
        let Some(p) = self.process.as_ref() else { return };
        if p.sending.contains(&id) || waits_for_earlier(&p.order, &id) {
            return;
        }
        let Some(entry) = p.outbox.get(&id) else { return };
        let Some(&to) = ctx.peers.get(&entry.peer) else { return };
        let stored = match p.payloads.get(&id) {
            Some(bytes) => Ok(Some(bytes.to_vec())),
            None => self.store.message(&id),
        };
        let Some(p) = self.process.as_mut() else { return };
        let bytes = match stored {
            Ok(Some(bytes)) => bytes,
            Ok(None) => {
                p.outbox.remove(&id);
                p.writes.push(Write::Delivered(id));
                return;
            }
            Err(_) => return,
        };
        let req = *ctx.next_req;
        *ctx.next_req += 1;
        ctx.out.push(Out::Request { req, to, bytes: bytes.into() });
        p.in_flight.insert(req, id);
        p.sending.insert(id);
    }

    /// outbound.rs `send_due`.
    fn send_due(&mut self, ctx: &mut Ctx<'_>) {
        let Some(p) = self.process.as_ref() else { return };
        let due: Vec<MessageId> = p
            .outbox
            .values()
            .filter(|e| e.next_attempt <= ctx.now && !p.sending.contains(&e.id))
            .map(|e| e.id)
            .collect();
        for id in due {
            self.deliver(ctx, id);
        }
    }

    /// `OutboundFailure`, or a request that timed out.
    pub(crate) fn on_failure(&mut self, ctx: &mut Ctx<'_>, req: ReqId, rng: &mut ChaCha8Rng) {
        let Some(p) = self.process.as_mut() else { return };
        if let Some(id) = p.in_flight.remove(&req) {
            retry_later(p, ctx, id, rng);
        }
    }

    /// A response to request `req` from `peer` (engine `on_messages`, then `on_answer`).
    pub(crate) fn on_response(
        &mut self,
        ctx: &mut Ctx<'_>,
        peer: KeyId,
        req: ReqId,
        bytes: &[u8],
        rng: &mut ChaCha8Rng,
    ) {
        let Some(p) = self.process.as_mut() else { return };
        let Some(sent) = p.in_flight.remove(&req) else { return };
        let answer = match Message::open(bytes) {
            Ok(a) if a.header().from == peer => a,
            _ => return retry_later(p, ctx, sent, rng),
        };
        let done = match answer.body() {
            Body::Receipt(r) if r.message == sent => true,
            Body::ProblemReport(pr) if pr.message == Some(sent) => {
                pr.code != Code::Internal.as_str() && pr.code != Code::ChainGap.as_str()
            }
            _ => false,
        };
        if !done {
            return retry_later(p, ctx, sent, rng);
        }
        if let Body::Receipt(_) = answer.body() {
            if let Some(&to) = ctx.peers.get(&p.outbox.get(&sent).map(|e| e.peer.clone()).unwrap_or_default()) {
                ctx.out.push(Out::Receipted { id: sent, to });
            }
        }
        if let Some(rel) = answer.header().relationship {
            if p.relationships.get(&rel).is_some() && p.relationships.apply(&answer, ctx.now, Policy::LIVE).is_ok() {
                p.writes.push(Write::Message { relationship: Some(rel), id: answer.id(), bytes: answer.bytes_arc() });
            }
        }
        self.delivered(ctx, sent);
    }

    /// outbound.rs `delivered`.
    fn delivered(&mut self, ctx: &mut Ctx<'_>, id: MessageId) {
        let Some(p) = self.process.as_mut() else { return };
        p.sending.remove(&id);
        let mut next = None;
        if let Some((rel, _)) = p.order.remove(&id) {
            next = next_of(&p.order, &rel);
        }
        if let Some(next) = next {
            self.deliver(ctx, next);
        }
        let Some(p) = self.process.as_mut() else { return };
        p.payloads.remove(&id);
        if p.outbox.remove(&id).is_some() {
            p.writes.push(Write::Delivered(id));
        }
    }
}

/// outbound.rs `retry_later`, with the simulation's seeded rng for the jitter.
fn retry_later(p: &mut Process, ctx: &Ctx<'_>, id: MessageId, rng: &mut ChaCha8Rng) {
    p.sending.remove(&id);
    let Some(entry) = p.outbox.get_mut(&id) else { return };
    entry.attempts = entry.attempts.saturating_add(1);
    entry.next_attempt = ctx.now + rapport_engine::backoff(entry.attempts, rng).as_millis() as u64;
    p.writes.push(Write::Outbox(entry.clone()));
}

/// outbound.rs `waits_for_earlier`.
fn waits_for_earlier(order: &BTreeMap<MessageId, (RelationshipId, u64)>, id: &MessageId) -> bool {
    let Some((rel, seq)) = order.get(id) else { return false };
    order.iter().any(|(other, (r, s))| r == rel && s < seq && other != id)
}

/// outbound.rs `next_of`.
fn next_of(order: &BTreeMap<MessageId, (RelationshipId, u64)>, rel: &RelationshipId) -> Option<MessageId> {
    order.iter().filter(|(_, (r, _))| r == rel).min_by_key(|(_, (_, s))| *s).map(|(id, _)| *id)
}
