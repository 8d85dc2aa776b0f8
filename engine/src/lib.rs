//! The Rapport node's state machine, sans-IO (spec/node.md §3).
//!
//! Everything a node decides lives here: which peer's message to accept and what to answer,
//! which of our messages goes to whom and when, what must be durable before a receipt or a
//! reply may go, what strangers may make the node store. Nothing here touches a socket, a file,
//! a thread or a clock. The driver (the daemon's tokio loop in `rapport-node`, or a simulation)
//! feeds [`State::handle`] each event with the time, and carries out what
//! [`State::poll_output`] asks:
//!
//! ```text
//!   transport ─┐                         ┌─▶ Send / Respond / Publish / Validated ─▶ transport
//!   store ─────┼─▶ Input ─▶ State ─▶ Output ─▶ Write / Flush / Reload ─────────────▶ store
//!   API ───────┤      ▲                  └─▶ Reply / Delivered ───────────────────▶ API
//!   timer ─────┘      └──── poll_timeout(): when to come back with Input::Timeout
//! ```
//!
//! Two outputs are answered at once, before any other input: [`Output::Write`] by
//! [`Input::Written`], and [`Output::Reload`] by [`Input::Reloaded`]. A [`Output::Flush`] is
//! answered by [`Input::Flushed`] whenever it ends; the state asks for one flush at a time.
//!
//! The state is split by responsibility: [`outbox::Outbox`] (our messages until their
//! receipts), `commit` (the group commit: what waits for which write and flush),
//! [`relationships::Relationships`] (the protocol's state machines), [`quota::Quotas`] (what
//! strangers may store), and the peers connected and looked up.

mod backoff;
mod commit;
pub mod discovery;
mod id;
mod inbound;
pub mod metrics;
mod outbound;
pub mod outbox;
pub mod quota;
pub mod relationships;
pub mod store;

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

use ed25519_dalek::SigningKey;
use rand::SeedableRng as _;
use rand_chacha::ChaCha8Rng;
use rapport_protocol::{envelope, Body, Code, KeyId, Kind, Message, MessageId, RelationshipId, Timestamp};

pub use backoff::{
    backoff, backoff_unknown, BASE as BACKOFF_BASE, MAX as BACKOFF_MAX, UNKNOWN_BASE as BACKOFF_UNKNOWN_BASE,
    UNKNOWN_MAX as BACKOFF_UNKNOWN_MAX,
};
pub use discovery::LOOKUP_INTERVAL_MS;
pub use id::{ChannelId, CommandId, GossipId, NodeId, RequestId, MAX_NODE_ID};
pub use metrics::Metrics;
pub use relationships::{Relationships, Summary};
pub use store::{OutboxEntry, StoreFailure, Write};

use commit::Commit;

/// Public offers and intents kept for `GET /v1/public`, at most.
pub const MAX_PUBLIC: usize = 1000;
/// Writes that promise nothing (delivered entries, retry times) are flushed this long after
/// the first of them, ms, unless a group commit flushes them sooner.
pub const QUIET_FLUSH_MS: u64 = 200;
/// Refusals logged at info, at most, per [`REFUSAL_WINDOW_MS`]; the rest are counted.
pub const REFUSALS_LOGGED: u32 = 20;
/// The window of [`REFUSALS_LOGGED`], ms.
pub const REFUSAL_WINDOW_MS: u64 = 10_000;

/// How the state behaves.
#[derive(Debug, Clone, Copy)]
pub struct Config {
    /// What strangers may make the node store.
    pub quota: quota::Quota,
    /// A group is written (and flushed, if no flush runs) once it holds this much work, even
    /// if the driver is never idle.
    pub max_group: usize,
    /// Messages sent at most per [`Input::Timeout`]: the work of one turn is bounded however
    /// many messages fall due at once.
    pub max_due_per_turn: usize,
}

impl Default for Config {
    fn default() -> Config {
        Config { quota: quota::Quota::default(), max_group: 64, max_due_per_turn: 256 }
    }
}

/// Why a command failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// The protocol refused the message this node was asked to send; nothing was stored.
    #[error("{code}: {detail}")]
    Refused {
        /// Problem code.
        code: Code,
        /// Why.
        detail: String,
    },
    /// The store failed; nothing was sent, or what was sent is not durable.
    #[error("{0}")]
    Store(#[from] StoreFailure),
    /// A file of the data directory could not be written; nothing changed.
    #[error("{0}")]
    File(String),
    /// The request is not valid (unknown relationship, missing recipient, bad address).
    #[error("{0}")]
    BadRequest(String),
    /// What was asked for could not be found.
    #[error("{0}")]
    NotFound(String),
    /// A peer could not be reached.
    #[error("{0}")]
    Unreachable(String),
    /// The node is stopping.
    #[error("the node is shutting down")]
    Stopped,
}

fn refused(e: &impl rapport_protocol::HasCode, detail: impl ToString) -> Error {
    let code = e.code();
    let detail = detail.to_string();
    // The code travels beside the detail; do not say it twice.
    let detail = detail.strip_prefix(&format!("{code}: ")).map(str::to_owned).unwrap_or(detail);
    Error::Refused { code, detail }
}

/// What the node is asked to send: the one request type from the command line to the state.
/// The CLI builds it, sends it to the control API as JSON (serialized here: ids as hex, the
/// body without its kind, which the route names), the API reads it back, and
/// [`Input::Send`] carries it in.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Draft {
    /// The relationship; `None` opens a new one (the body must be an `offer` or
    /// `terms_proposal`), or with no recipient either, publishes a public `offer` or `intent`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub relationship: Option<RelationshipId>,
    /// The recipient, required when opening a relationship.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<KeyId>,
    /// The body.
    pub body: Body,
}

impl Draft {
    /// The kind of message it asks for.
    pub fn kind(&self) -> Kind {
        self.body.kind()
    }
}

/// A message accepted for delivery.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Submitted {
    /// Message id, hex.
    pub id: String,
    /// Relationship id, hex (empty for a public message).
    pub relationship: String,
    /// Kind.
    pub kind: &'static str,
}

/// The gossip topics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Topic {
    /// Public offers.
    Offers,
    /// Public intents.
    Intents,
}

/// What gossip should do with a message it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Valid: forward it.
    Accept,
    /// Invalid: drop it and count it against the peer.
    Reject,
    /// Valid but unwanted: drop it.
    Ignore,
}

/// Envelope bytes that did not open, with the id they would have had.
#[derive(Debug, Clone)]
pub struct Unopened {
    /// SHA-256 of the bytes.
    pub id: MessageId,
    /// Why they did not open.
    pub error: envelope::Error,
}

/// An event for the state.
#[derive(Debug)]
pub enum Input {
    /// The API asks to sign, store and deliver a message; answered by [`Output::Reply`].
    Send {
        /// Named by the reply.
        command: CommandId,
        /// What to send.
        draft: Box<Draft>,
    },
    /// A peer's request carried one frame: opened already (verification runs off the state),
    /// or not openable.
    Request {
        /// The peer that delivered it.
        peer: NodeId,
        /// Where the answer goes.
        channel: ChannelId,
        /// The message.
        message: Result<Message, Unopened>,
    },
    /// A peer's request was larger than the transport reads.
    TooLarge {
        /// The peer that sent it.
        peer: NodeId,
        /// Where the answer goes.
        channel: ChannelId,
        /// Bytes seen, at least.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A peer answered one of our requests.
    Answer {
        /// The request.
        request: RequestId,
        /// The peer that answered.
        peer: NodeId,
        /// The answer, opened.
        answer: Result<Message, envelope::Error>,
    },
    /// One of our requests failed.
    SendFailed {
        /// The request.
        request: RequestId,
        /// The peer it went to.
        peer: NodeId,
        /// Why.
        failure: Failure,
    },
    /// A connection to `peer` is up (its first).
    Connected(NodeId),
    /// The last connection to `peer` closed.
    Disconnected(NodeId),
    /// Addresses for `peer` are known now (a DHT lookup found it, or the routing table took
    /// it in).
    Reachable(NodeId),
    /// A gossiped message, opened; answered by [`Output::Validated`].
    Gossip {
        /// The transport's hold on it.
        gossip: GossipId,
        /// The message.
        message: Result<Message, envelope::Error>,
    },
    /// The [`Output::Write`] just asked for is done (or failed).
    Written(Result<(), StoreFailure>),
    /// The [`Output::Flush`] in progress ended.
    Flushed(Result<(), StoreFailure>),
    /// The stored envelopes of a relationship, for an [`Output::Reload`].
    Reloaded {
        /// The relationship.
        relationship: RelationshipId,
        /// Its envelopes, in the order stored, or why they could not be read.
        envelopes: Result<Vec<Vec<u8>>, StoreFailure>,
    },
    /// The time [`State::poll_timeout`] gave has come.
    Timeout,
    /// The driver has nothing else ready: the group staged so far is written and flushed now
    /// ([`State::group_ready`] says whether there is one).
    Idle,
    /// The driver is stopping: everything staged is written and flushed, whatever it waits
    /// for (hand it in until [`State::settled`]).
    Drain,
}

/// Why a request of ours failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The peer was reached but did not answer in time, or the stream broke: the message
    /// alone backs off.
    NoAnswer,
    /// Every dial of the peer, at the addresses known for it, failed: the peer backs off, and
    /// every message for it waits as long.
    Unreachable,
    /// No address is known for the peer (it is not connected, not in the routing table, and
    /// not remembered): the peer waits, far longer, until a connection or an address for it
    /// ends the wait ([`Input::Connected`], [`Input::Reachable`]).
    NoAddress,
}

/// What the state asks the driver to do.
#[derive(Debug)]
pub enum Output {
    /// Send one of our messages to `peer` as a request; its answer or failure names `request`.
    Send {
        /// The recipient.
        peer: NodeId,
        /// Named by the outcome.
        request: RequestId,
        /// The envelope.
        bytes: Arc<[u8]>,
    },
    /// Answer a peer's request.
    Respond {
        /// The request.
        channel: ChannelId,
        /// The signed receipt or problem report.
        bytes: Vec<u8>,
    },
    /// Leave a peer's request unanswered (an acknowledgement sent as a request, or a message
    /// whose write failed: nothing is promised for it, and its sender tries again).
    NoAnswer(ChannelId),
    /// Publish a public message on a gossip topic.
    Publish {
        /// The topic.
        topic: Topic,
        /// The envelope.
        bytes: Arc<[u8]>,
    },
    /// Tell gossip what the check of a message it holds found.
    Validated {
        /// The message.
        gossip: GossipId,
        /// What to do with it.
        verdict: Verdict,
    },
    /// Write these records to the store, in order, now; answer with [`Input::Written`] before
    /// anything else.
    Write(Vec<Write>),
    /// Make every write so far durable; answer with [`Input::Flushed`] when done. `here`: a
    /// lone received message waits for it, and nothing else would run meanwhile, so it is
    /// cheaper to flush on the driver's own thread than to hand it off.
    Flush {
        /// Flush on the driver's thread.
        here: bool,
    },
    /// Read a relationship's stored envelopes (our view of it must go back to the store's);
    /// answer with [`Input::Reloaded`] before anything else.
    Reload(RelationshipId),
    /// The answer to a command.
    Reply {
        /// The command.
        command: CommandId,
        /// Its result.
        result: Result<Submitted, Error>,
    },
    /// Delivery of message `id` is over: its receipt is held, or the recipient refused it for
    /// good.
    Delivered(MessageId),
    /// Look `peer` up in the DHT: messages wait for it and it could not be reached.
    LookUp(NodeId),
}

/// What a node starts with, read from its store by the driver.
#[derive(Debug, Default)]
pub struct Loaded {
    /// The relationships, replayed.
    pub relationships: Relationships,
    /// The outbox: each entry and its message's envelope.
    pub outbox: Vec<(OutboxEntry, Arc<[u8]>)>,
    /// The owner's block list.
    pub blocked: Vec<KeyId>,
}

/// How many refusals the current window has logged, and how many it left out.
#[derive(Debug, Default)]
struct RefusalLog {
    since: Timestamp,
    logged: u32,
    suppressed: u64,
}

/// The node's state.
pub struct State {
    key: SigningKey,
    me: KeyId,
    config: Config,
    relationships: Relationships,
    quotas: quota::Quotas<NodeId>,
    outbox: outbox::Outbox,
    commit: Commit,
    public: VecDeque<Message>,
    connected: HashSet<NodeId>,
    /// Which unreachable recipients are looked up in the DHT.
    lookups: discovery::Lookups,
    refusals: RefusalLog,
    rng: ChaCha8Rng,
    next_request: u64,
    metrics: Arc<Metrics>,
    outputs: VecDeque<Output>,
    now: Timestamp,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State")
            .field("me", &self.me)
            .field("outbox", &self.outbox.len())
            .field("connected", &self.connected.len())
            .finish_non_exhaustive()
    }
}

impl State {
    /// The state of the node whose key is `key`, from what its store holds. `seed` seeds the
    /// randomness it uses (relationship ids, retry jitter): the daemon passes a random one, a
    /// simulation its own, so that a run replays exactly.
    pub fn new(key: SigningKey, config: Config, loaded: Loaded, metrics: Arc<Metrics>, seed: u64) -> State {
        let me = KeyId::from_bytes(key.verifying_key().to_bytes());
        let Loaded { relationships, outbox: stored, blocked } = loaded;
        let mut quotas = quota::Quotas::new(config.quota, blocked);
        // Each of our messages' place in its relationship, from the relationships replayed.
        // And its recipient: the outbox entry's peer is that key's node id, so nothing needs to
        // decode the stored base58 form (100,000 decodes at a vendor's restart).
        let mut places: HashMap<MessageId, (RelationshipId, u64, Option<KeyId>)> = HashMap::with_capacity(stored.len());
        for rel in relationships.iter() {
            // Unanswered: the other party opened it and every chained message is theirs.
            let opener = rel.key(rel.opener());
            if opener != me && rel.log().iter().all(|m| m.header().from == opener) {
                let bytes = rel.log().iter().map(|m| m.bytes().len() as u64).sum();
                quotas.restore(rel.id(), opener, bytes);
            }
            for m in rel.log().iter().filter(|m| m.header().from == me) {
                places.insert(m.id(), (rel.id(), m.header().seq, m.header().to));
            }
        }
        let mut outbox = outbox::Outbox::with_capacity(stored.len());
        for (entry, bytes) in stored {
            let known = places.get(&entry.id).copied();
            let peer = match known.and_then(|(_, _, to)| to) {
                Some(to) => NodeId::of_key(&to),
                None => match NodeId::from_base58(&entry.peer) {
                    Some(peer) => peer,
                    None => {
                        tracing::warn!(id = %entry.id, peer = %entry.peer, "outbox entry with an invalid peer id; skipped");
                        continue;
                    }
                },
            };
            outbox.insert(entry, peer, known.map(|(rel, seq, _)| (rel, seq)), bytes);
        }
        let state = State {
            key,
            me,
            config,
            relationships,
            quotas,
            outbox,
            commit: Commit::default(),
            public: VecDeque::new(),
            connected: HashSet::new(),
            lookups: discovery::Lookups::default(),
            refusals: RefusalLog::default(),
            rng: ChaCha8Rng::seed_from_u64(seed),
            next_request: 0,
            metrics,
            outputs: VecDeque::new(),
            now: 0,
        };
        state.update_gauges();
        state.metrics.blocked_keys.set(state.quotas.blocked().len() as i64);
        state.metrics.set_relationships(&state.relationships.by_phase());
        state
    }

    /// Handles one event at `now` (Unix ms; a `now` earlier than one seen before counts as
    /// that one, so that the state's time never runs backwards).
    pub fn handle(&mut self, input: Input, now: Timestamp) {
        self.now = self.now.max(now);
        match input {
            Input::Send { command, draft } => self.on_send(command, *draft),
            Input::Request { peer, channel, message } => self.on_request(peer, channel, message),
            Input::TooLarge { peer, channel, len, max } => {
                self.metrics.rejected(Code::TooLarge);
                let text = format!("a frame of {len} bytes or more exceeds {max}");
                let problem = self.problem(&peer, None, Code::TooLarge, &text, None);
                self.outputs.push_back(Output::Respond { channel, bytes: problem });
            }
            Input::Answer { request, peer, answer } => self.on_answer(request, peer, answer),
            Input::SendFailed { request, peer, failure } => self.on_send_failed(request, peer, failure),
            Input::Connected(peer) => {
                self.connected.insert(peer);
                self.outbox.reachable(&peer, self.now);
                self.send_due();
            }
            Input::Disconnected(peer) => {
                self.connected.remove(&peer);
            }
            Input::Reachable(peer) => {
                self.outbox.reachable(&peer, self.now);
                self.send_due();
            }
            Input::Gossip { gossip, message } => self.on_gossip(gossip, message),
            Input::Written(result) => self.on_written(result),
            Input::Flushed(result) => self.on_flushed(result),
            Input::Reloaded { relationship, envelopes } => match envelopes {
                Ok(envelopes) => {
                    if let Err(e) = self.relationships.restore(&relationship, &envelopes) {
                        tracing::warn!(error = %e, "cannot rebuild a relationship from the store");
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, %relationship, "cannot reload a relationship; it is set aside");
                    self.relationships.set_damaged(relationship, e.to_string());
                }
            },
            Input::Timeout => {
                self.send_due();
                self.commit_quiet();
            }
            Input::Idle => self.commit_group(),
            Input::Drain => self.commit_drain(),
        }
        if self.commit.full(self.config.max_group) {
            self.commit_group();
        }
    }

    /// The next thing for the driver to do, if any.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// When the state next wants [`Input::Timeout`]: a message falls due, or writes that
    /// promise nothing have waited long enough for their flush.
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        let quiet = self.commit.quiet_due(QUIET_FLUSH_MS);
        match (self.outbox.next_due(), quiet) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Whether, once the driver has nothing else ready, there is a group to write or flush
    /// (then it hands in [`Input::Idle`]).
    pub fn group_ready(&self) -> bool {
        self.commit.ready()
    }

    /// This node's key id.
    pub fn key_id(&self) -> KeyId {
        self.me
    }

    /// The relationships.
    pub fn relationships(&self) -> &Relationships {
        &self.relationships
    }

    /// Relationship summaries, as this node sees them.
    pub fn summaries(&self) -> Vec<Summary> {
        self.relationships.summaries(&self.me)
    }

    /// The outbox.
    pub fn outbox(&self) -> &outbox::Outbox {
        &self.outbox
    }

    /// Whether any message of ours waits for `peer`.
    pub fn has_waiting(&self, peer: &NodeId) -> bool {
        self.outbox.has_waiting(peer)
    }

    /// Writes staged for the next group commit, not yet given to the store.
    pub fn staged(&self) -> &[Write] {
        self.commit.staged()
    }

    /// Whether nothing is staged, being written, waiting for a flush or being flushed.
    pub fn settled(&self) -> bool {
        self.commit.settled()
    }

    /// The public offers and intents heard most recently (and our own), oldest first.
    pub fn public(&self) -> impl Iterator<Item = &Message> {
        self.public.iter()
    }

    /// The blocked keys.
    pub fn blocked(&self) -> Vec<KeyId> {
        self.quotas.blocked()
    }

    /// Blocks (`true`) or unblocks (`false`) `key`; whether anything changed. The driver saves
    /// the list, and on failure calls this again the other way.
    pub fn block(&mut self, key: KeyId, block: bool) -> Result<bool, Error> {
        if block && key == self.me {
            return Err(Error::BadRequest("a node cannot block its own key".into()));
        }
        let changed = if block { self.quotas.block(key) } else { self.quotas.unblock(&key) };
        self.metrics.blocked_keys.set(self.quotas.blocked().len() as i64);
        Ok(changed)
    }

    /// Makes every message waiting in the outbox due now, as after its backoff, and sends
    /// what it can; returns how many wait.
    pub fn retry_now(&mut self, now: Timestamp) -> usize {
        self.now = self.now.max(now);
        let waiting = self.outbox.retry_all(self.now);
        self.send_due();
        waiting
    }

    /// Brings the gauges that cost a pass over every relationship up to date.
    pub fn refresh_gauges(&self) {
        self.metrics.set_relationships(&self.relationships.by_phase());
    }

    /// The outbox gauges.
    fn update_gauges(&self) {
        self.metrics.outbox.set(self.outbox.len() as i64);
        self.metrics.unanswered.set(self.quotas.unanswered() as i64);
    }

    fn output(&mut self, output: Output) {
        self.outputs.push_back(output);
    }
}
