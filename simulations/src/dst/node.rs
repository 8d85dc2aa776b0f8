//! One simulated node: the node's real state machine ([`rapport_engine::State`]) on a real
//! store, driven turn by turn by the simulation as the daemon's driver drives it.
//!
//! This is the driver's job and nothing more: each event of the world becomes the state's
//! input with the node's clock; each output becomes an event of the world (a request or an
//! answer on the simulated network, a flush that ends later, a reply to the party that asked).
//! A turn ends as the daemon's loop does when nothing else is ready: with
//! [`Input::Idle`], which commits the group the turn staged. What the daemon's codec does (open
//! each envelope before the state sees it) is done here too.

use std::collections::BTreeMap;
use std::sync::Arc;

use ed25519_dalek::SigningKey;
use rapport_engine::{
    ChannelId, CommandId, Draft, Error, Failure, Input, NodeId, Output, RequestId, State, StoreFailure, Unopened, Write,
};
use rapport_node::store::Store as _;
use rapport_protocol::{Body, Code, KeyId, Message, MessageId, RelationshipId, Timestamp};

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
    /// The driver tells the state a flush has ended as soon as it starts, before the store
    /// has made anything durable: receipts then go out for messages a crash can lose.
    pub receipt_before_flush: bool,
}

/// What a node's turn may use of the world.
#[derive(Debug)]
pub(crate) struct Ctx<'a> {
    /// The node's clock, Unix ms.
    pub now: Timestamp,
    pub next_req: &'a mut ReqId,
    pub out: &'a mut Vec<Out>,
    /// Node index by peer id.
    pub peers: &'a BTreeMap<NodeId, usize>,
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

/// A node's process: everything a crash loses.
pub(crate) struct Process {
    state: State,
    /// The world's request ids of the state's requests, both ways.
    requests: BTreeMap<RequestId, ReqId>,
    by_req: BTreeMap<ReqId, RequestId>,
    /// The world's channels of the peers' requests waiting for an answer.
    channels: BTreeMap<ChannelId, Channel>,
    next_channel: u64,
    /// The message each command waiting for its reply staged.
    commands: BTreeMap<CommandId, MessageId>,
    next_command: u64,
    /// The flush in progress: frames it covers.
    flushing: Option<usize>,
    /// The message a receipt just answered, while the state handles it.
    receipt_for: Option<(MessageId, usize)>,
}

impl std::fmt::Debug for Process {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Process").field("state", &self.state).finish_non_exhaustive()
    }
}

/// A simulated node: its key, its store, and its process while it runs.
#[derive(Debug)]
pub(crate) struct Node {
    pub key: SigningKey,
    pub key_id: KeyId,
    pub peer: NodeId,
    pub store: Disk,
    pub process: Option<Process>,
}

impl Node {
    pub(crate) fn new(key: SigningKey, store: Disk) -> Result<Node, String> {
        let key_id = KeyId::from_bytes(key.verifying_key().to_bytes());
        Ok(Node { key, key_id, peer: NodeId::of_key(&key_id), store, process: None })
    }

    /// Starts the process as the daemon does: what the store holds loaded
    /// ([`rapport_node::engine::load`]) into a fresh state, its randomness from `seed`.
    pub(crate) fn start(&mut self, seed: u64) -> Result<(), String> {
        let loaded = rapport_node::engine::load(&self.store, Vec::new()).map_err(|e| e.to_string())?;
        let metrics = Arc::new(rapport_engine::Metrics::default());
        let state = State::new(self.key.clone(), rapport_engine::Config::default(), loaded, metrics, seed);
        self.process = Some(Process {
            state,
            requests: BTreeMap::new(),
            by_req: BTreeMap::new(),
            channels: BTreeMap::new(),
            next_channel: 0,
            commands: BTreeMap::new(),
            next_command: 0,
            flushing: None,
            receipt_for: None,
        });
        Ok(())
    }

    pub(crate) fn relationships(&self) -> Option<&rapport_engine::Relationships> {
        self.process.as_ref().map(|p| p.state.relationships())
    }

    /// Messages waiting for a receipt.
    pub(crate) fn outbox_len(&self) -> usize {
        self.process.as_ref().map_or(0, |p| p.state.outbox().len())
    }

    /// Whether nothing is staged, written but unflushed, or being flushed.
    pub(crate) fn idle(&self) -> bool {
        self.process.as_ref().is_none_or(|p| p.state.settled())
    }

    /// Requests in flight, by the world's request id.
    pub(crate) fn in_flight(&self) -> Vec<(ReqId, MessageId)> {
        let Some(p) = self.process.as_ref() else { return Vec::new() };
        let mut out: Vec<(ReqId, MessageId)> =
            p.state.outbox().in_flight().filter_map(|(r, m)| p.requests.get(&r).map(|req| (*req, m))).collect();
        out.sort();
        out
    }

    /// What a refused message must not change: every relationship as the API summarises
    /// it, and the work staged for the next group commit.
    pub(crate) fn digest(&self) -> Vec<String> {
        let Some(p) = self.process.as_ref() else { return Vec::new() };
        let mut out: Vec<String> = p
            .state
            .summaries()
            .into_iter()
            .map(|s| {
                let consents: Vec<String> =
                    s.consents.iter().map(|c| format!("{}:{:?}", c.grant, c.revoked_by)).collect();
                format!("{} {} {} {} {}", s.id, s.phase, s.messages, s.acknowledgements, consents.join(","))
            })
            .collect();
        out.push(format!("staged {} outbox {}", p.state.staged().len(), p.state.outbox().len()));
        out
    }

    /// When the state next wants its timeout, if ever.
    pub(crate) fn next_due(&self) -> Option<Timestamp> {
        self.process.as_ref()?.state.poll_timeout()
    }
}

/// The turn-by-turn handlers: the world's events as the state's inputs.
impl Node {
    /// The API's `Send` with a relationship or a recipient: the state signs and stages it.
    /// Returns its id and relationship, known as soon as it is staged.
    pub(crate) fn submit(
        &mut self,
        ctx: &mut Ctx<'_>,
        relationship: Option<RelationshipId>,
        to: Option<KeyId>,
        body: Body,
    ) -> Result<(MessageId, Option<RelationshipId>), Refusal> {
        let p = self.process.as_mut().ok_or_else(|| Refusal::Bad("the node is down".into()))?;
        p.next_command += 1;
        let command = CommandId(p.next_command);
        let before = p.state.staged().len();
        p.state.handle(Input::Send { command, draft: Box::new(Draft { relationship, to, body }) }, ctx.now);
        // A refusal is answered at once; anything else stages the message and its entry.
        let staged = p.state.staged().get(before..).unwrap_or_default();
        let ours = staged.iter().find_map(|w| match w {
            Write::Message { relationship, id, .. } => Some((*id, *relationship)),
            _ => None,
        });
        let mut refusal = None;
        let mut outputs = Vec::new();
        while let Some(o) = p.state.poll_output() {
            match o {
                Output::Reply { command: c, result: Err(e) } if c == command => refusal = Some(e),
                other => outputs.push(other),
            }
        }
        if let Some(e) = refusal {
            return Err(match e {
                Error::Refused { code, .. } => Refusal::Protocol(code),
                other => Refusal::Bad(other.to_string()),
            });
        }
        let Some((id, rel)) = ours else { return Err(Refusal::Bad("nothing was staged".into())) };
        p.commands.insert(command, id);
        for o in outputs {
            self.carry_out(ctx, o);
        }
        Ok((id, rel))
    }

    /// A peer's request: opened, as the daemon's codec opens it, and handed in.
    pub(crate) fn on_request(&mut self, ctx: &mut Ctx<'_>, peer: KeyId, channel: Channel, bytes: &[u8]) {
        let Some(p) = self.process.as_mut() else { return };
        let message = Message::open(bytes).map_err(|error| Unopened { id: MessageId::of(bytes), error });
        if let Ok(m) = &message {
            let held = m.header().relationship.and_then(|r| p.state.relationships().get(&r));
            if held.is_some_and(|r| r.contains(&m.id())) {
                ctx.out.push(Out::Repeat);
            }
        }
        p.next_channel += 1;
        let token = ChannelId(p.next_channel);
        p.channels.insert(token, channel);
        self.feed(ctx, Input::Request { peer: NodeId::of_key(&peer), channel: token, message });
    }

    /// The answer to request `req` from `peer`.
    pub(crate) fn on_response(&mut self, ctx: &mut Ctx<'_>, peer: KeyId, req: ReqId, bytes: &[u8]) {
        let Some(p) = self.process.as_mut() else { return };
        let Some(request) = p.by_req.remove(&req) else { return };
        p.requests.remove(&request);
        let answer = Message::open(bytes);
        let sent = p.state.outbox().in_flight().find(|(r, _)| *r == request).map(|(_, m)| m);
        if let (Ok(a), Some(sent)) = (&answer, sent) {
            if matches!(a.body(), Body::Receipt(r) if r.message == sent) && a.header().from == peer {
                p.receipt_for = ctx.peers.get(&NodeId::of_key(&peer)).map(|to| (sent, *to));
            }
        }
        self.feed(ctx, Input::Answer { request, peer: NodeId::of_key(&peer), answer });
        if let Some(p) = self.process.as_mut() {
            p.receipt_for = None;
        }
    }

    /// Request `req` failed: the peer could not be reached (`unreachable`), or it timed out.
    pub(crate) fn on_failure(&mut self, ctx: &mut Ctx<'_>, req: ReqId, to: usize, unreachable: bool) {
        let Some(p) = self.process.as_mut() else { return };
        let Some(request) = p.by_req.remove(&req) else { return };
        p.requests.remove(&request);
        let peer = ctx.peers.iter().find(|(_, i)| **i == to).map(|(n, _)| *n);
        let Some(peer) = peer else { return };
        // Every simulated node's address is known, so a failed dial is `Unreachable`.
        let failure = if unreachable { Failure::Unreachable } else { Failure::NoAnswer };
        self.feed(ctx, Input::SendFailed { request, peer, failure });
    }

    /// A connection to `peer` is up.
    pub(crate) fn connected(&mut self, ctx: &mut Ctx<'_>, peer: NodeId) {
        self.feed(ctx, Input::Connected(peer));
    }

    /// The connection to `peer` is gone.
    pub(crate) fn disconnected(&mut self, ctx: &mut Ctx<'_>, peer: NodeId) {
        self.feed(ctx, Input::Disconnected(peer));
    }

    /// The state's timeout has come.
    pub(crate) fn tick(&mut self, ctx: &mut Ctx<'_>) {
        self.feed(ctx, Input::Timeout);
    }

    /// The end of every turn of the daemon's loop: nothing else is ready, so the group the
    /// turn staged is written and flushed.
    pub(crate) fn end_turn(&mut self, ctx: &mut Ctx<'_>) {
        if self.process.as_ref().is_some_and(|p| p.state.group_ready()) {
            self.feed(ctx, Input::Idle);
        }
    }

    /// The flush in progress ended.
    pub(crate) fn on_flushed(&mut self, ctx: &mut Ctx<'_>, covered: usize) {
        let Some(p) = self.process.as_mut() else { return };
        if ctx.faults.receipt_before_flush {
            // The state was told when the flush began; the store makes the frames durable now.
            let _ = self.store.end_flush(covered);
            return;
        }
        if p.flushing != Some(covered) {
            return;
        }
        p.flushing = None;
        let result = self.store.end_flush(covered).map_err(|e| StoreFailure(e.to_string()));
        self.feed(ctx, Input::Flushed(result));
    }

    fn feed(&mut self, ctx: &mut Ctx<'_>, input: Input) {
        let Some(p) = self.process.as_mut() else { return };
        p.state.handle(input, ctx.now);
        while let Some(o) = self.process.as_mut().and_then(|p| p.state.poll_output()) {
            self.carry_out(ctx, o);
        }
    }

    /// What the daemon's driver does with each output, on the simulated network and store.
    fn carry_out(&mut self, ctx: &mut Ctx<'_>, output: Output) {
        let Some(p) = self.process.as_mut() else { return };
        match output {
            Output::Send { peer, request, bytes } => {
                let Some(&to) = ctx.peers.get(&peer) else { return };
                let req = *ctx.next_req;
                *ctx.next_req += 1;
                p.requests.insert(request, req);
                p.by_req.insert(req, request);
                ctx.out.push(Out::Request { req, to, bytes });
            }
            Output::Respond { channel, bytes } => {
                let Some(channel) = p.channels.remove(&channel) else { return };
                if let Ok(m) = Message::open(&bytes) {
                    if let Body::ProblemReport(r) = m.body() {
                        let code = r.code.parse::<Code>().unwrap_or(Code::Internal);
                        ctx.out.push(Out::Refused { code });
                    }
                }
                ctx.out.push(Out::Respond { channel, bytes });
            }
            Output::NoAnswer(channel) => {
                p.channels.remove(&channel);
            }
            Output::Write(writes) => {
                let result = self.store.write_all(&writes).map_err(|e| StoreFailure(e.to_string()));
                p.state.handle(Input::Written(result), ctx.now);
            }
            Output::Flush { .. } => {
                let covered = self.store.begin_flush().unwrap_or(0);
                ctx.out.push(Out::Flush { covered });
                if ctx.faults.receipt_before_flush {
                    p.state.handle(Input::Flushed(Ok(())), ctx.now);
                } else {
                    p.flushing = Some(covered);
                }
            }
            Output::Reload(relationship) => {
                let envelopes = self.store.relationship(&relationship).map_err(|e| StoreFailure(e.to_string()));
                p.state.handle(Input::Reloaded { relationship, envelopes }, ctx.now);
            }
            Output::Reply { command, result } => {
                if let (Some(id), Ok(_)) = (p.commands.remove(&command), result) {
                    ctx.out.push(Out::Confirmed(id));
                }
            }
            Output::Delivered(id) => {
                if let Some((sent, to)) = p.receipt_for {
                    if sent == id {
                        ctx.out.push(Out::Receipted { id, to });
                    }
                }
            }
            // No DHT and no gossip in this world.
            Output::LookUp(_) | Output::Publish { .. } | Output::Validated { .. } => {}
        }
    }
}
