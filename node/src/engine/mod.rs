//! The node's driver (spec/node.md §3): one tokio loop that feeds the sans-IO state
//! ([`rapport_engine::State`]) and carries out what it asks. The path of a message:
//!
//! ```text
//!   rapport offer ─▶ POST /v1/send/offer ─▶ Command::Send(Draft) ─▶ Input::Send
//!        State signs and stages it ─▶ Output::Write ─▶ store ─▶ Input::Written
//!        ─▶ Output::Send ─▶ Host (libp2p request) ─▶ peer's Host ─▶ Input::Request
//!        ─▶ peer's State stages it ─▶ write, Output::Flush ─▶ Input::Flushed
//!        ─▶ Output::Respond (its receipt) ─▶ our Input::Answer ─▶ delivered
//! ```
//!
//! The loop is biased: shutdown first, then the end of a flush, checked gossip, the swarm
//! ([`Host`], which turns swarm events into the state's inputs), the API's commands, the
//! connection upkeep and the state's timer; when nothing else is ready, the group the events
//! staged is committed ([`Input::Idle`]). Signature checks never run on the loop: peers'
//! messages and answers arrive opened by the codec, on their connection's own task, and
//! gossiped messages are checked on blocking workers. Writes go to the store on the loop (one
//! `write` per group); flushes run off it, but for a lone received message.

mod blocked;

pub use blocked::{read_blocked, write_blocked, BLOCKED_FILE};

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use libp2p::{Multiaddr, PeerId, Swarm};
use rapport_engine::{CommandId, GossipId, Input, Loaded, Output, State, StoreFailure};
use rapport_protocol::{envelope, KeyId, Message, MessageId, RelationshipId, Timestamp};
use rayon::prelude::*;
use tokio::sync::{mpsc, oneshot, Semaphore};
use tracing::{debug, info, warn};

pub use rapport_engine::{outbox, quota, relationships, Draft, Error, Relationships, Submitted, Summary};

use crate::bundle::Bundle;
use crate::identity::Identity;
use crate::metrics::Metrics;
use crate::network::host::{self, Event, Host};
use crate::network::Behaviour;
use crate::store::Store;

/// Commands waiting for the loop, at most.
pub const COMMAND_QUEUE: usize = 256;
/// Gossiped messages being checked on the worker pool, at most; further ones are dropped and
/// counted (`rapport_gossip_dropped_total`).
pub const MAX_VERIFYING: usize = 1024;
/// The driver wakes at least this often (real time) to see whether the state's next timeout
/// has come: a simulation's clock may run faster than the runtime's.
pub const OUTBOX_TICK: Duration = Duration::from_millis(200);
/// How often the node dials known peers when it has fewer connections than its target.
pub const NEIGHBOUR_TICK: Duration = Duration::from_secs(5);
pub use crate::network::host::{REDIAL_INTERVAL, TRIM_GRACE};

/// The node at a glance.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Status {
    /// libp2p peer id.
    pub peer_id: String,
    /// Rapport key id, hex.
    pub key_id: String,
    /// Network profile.
    pub network: String,
    /// Addresses the swarm listens on.
    pub listen: Vec<String>,
    /// Connected peers.
    pub peers: usize,
    /// Messages waiting for a receipt.
    pub outbox: usize,
    /// Relationships by phase.
    pub relationships: HashMap<&'static str, usize>,
    /// Damage the store skipped when it opened (`rapport repair` salvages the rest); empty when
    /// the store is whole.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub damage: Vec<crate::store::Damage>,
    /// Relationships set aside because their record is damaged.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub damaged: Vec<Damaged>,
}

/// A relationship set aside because its stored record no longer replays or was damaged.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Damaged {
    /// Relationship id, hex.
    pub relationship: String,
    /// Why.
    pub detail: String,
}

/// A peer the node is connected to, or knows from its DHT routing table.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Peer {
    /// Its peer id.
    pub peer_id: String,
    /// The address of its first connection; for a peer only known, its first known address.
    pub address: String,
    /// Whether a connection is open.
    pub connected: bool,
}

/// A peer found through the DHT.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Found {
    /// Its peer id.
    pub peer_id: String,
    /// The addresses the DHT gave for it; the node dials them.
    pub addresses: Vec<String>,
}

/// A request to the loop, with its one-shot reply.
#[derive(Debug)]
pub enum Command {
    /// [`Status`].
    Status(oneshot::Sender<Status>),
    /// Connected peers, and with `all` the other peers of the DHT routing table.
    Peers {
        /// Include peers known but not connected.
        all: bool,
        /// Where the answer goes.
        reply: oneshot::Sender<Vec<Peer>>,
    },
    /// Find a peer by its id through the DHT alone, and dial it.
    Find(PeerId, oneshot::Sender<Result<Found, Error>>),
    /// Dial an address; answered with the peer once the connection is up, or with why it
    /// could not be made.
    Connect(Multiaddr, oneshot::Sender<Result<PeerId, Error>>),
    /// Sign, store and deliver a message.
    Send(Box<Draft>, oneshot::Sender<Result<Submitted, Error>>),
    /// Relationship summaries.
    Relationships(oneshot::Sender<Vec<Summary>>),
    /// The public offers and intents heard most recently (and our own), oldest first.
    Public(oneshot::Sender<Vec<Message>>),
    /// Bring the gauges that cost a pass over every relationship up to date (before a scrape
    /// of `/metrics`, rather than at every message).
    RefreshGauges(oneshot::Sender<()>),
    /// Block (`true`) or unblock (`false`) a key, and save the block list; answers whether
    /// anything changed.
    Block {
        /// The key.
        key: KeyId,
        /// Block, or unblock.
        block: bool,
        /// Where the answer goes.
        reply: oneshot::Sender<Result<bool, Error>>,
    },
    /// The blocked keys.
    Blocked(oneshot::Sender<Vec<KeyId>>),
    /// Make every message waiting in the outbox due now, as after its backoff, and send it (as
    /// `postqueue -f` flushes a mail queue); answers how many were waiting.
    RetryNow(oneshot::Sender<usize>),
    /// A relationship's export bundle (spec/node.md §7), sealed with the node's key: its
    /// messages and its phase read in one turn of the loop, so the seal states the phase those
    /// messages establish.
    Export(RelationshipId, oneshot::Sender<Result<Bundle, Error>>),
}

/// A handle for sending commands to the loop.
#[derive(Debug, Clone)]
pub struct Handle(pub(crate) mpsc::Sender<Command>);

impl Handle {
    /// Sends a command built around a fresh reply channel and waits for the reply.
    pub async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Command) -> Result<T, Error> {
        let (tx, rx) = oneshot::channel();
        self.0.send(make(tx)).await.map_err(|_| Error::Stopped)?;
        rx.await.map_err(|_| Error::Stopped)
    }
}

/// Wall-clock time, Unix ms: the `now` the protocol core is given.
pub fn now() -> Timestamp {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as Timestamp).unwrap_or(0)
}

/// Where the engine reads the time it signs into headers, checks messages against and schedules
/// retries by, Unix ms. The daemon uses [`now`]; a simulation gives its own, so that a year of
/// relationships passes in minutes. The connection upkeep stays on the runtime's clock.
pub type Clock = Arc<dyn Fn() -> Timestamp + Send + Sync>;

/// Replays every relationship `store` holds. One that does not replay, or that damage in the
/// store names, is set aside as damaged while the others load.
pub fn load_relationships(store: &dyn Store) -> Result<Relationships, crate::store::Error> {
    let mut relationships = Relationships::new();
    for d in store.damage() {
        for rel in d.relationships {
            relationships.set_damaged(
                rel,
                format!(
                    "the store is damaged at offset {} ({} bytes) where it held messages of this relationship",
                    d.offset, d.len
                ),
            );
        }
    }
    // 100,000 relationships are 100,000 independent reads and replays: on every core.
    let ids = store.relationships()?;
    let rebuilt: Vec<_> =
        ids.par_iter().map(|id| Ok(Relationships::rebuild(id, &store.relationship(id)?))).collect::<Result<_, _>>()?;
    relationships.reserve(ids.len());
    for (id, rebuilt) in ids.into_iter().zip(rebuilt) {
        // A relationship that does not replay is set aside inside; the others load.
        let _ = relationships.insert_rebuilt(id, rebuilt);
    }
    Ok(relationships)
}

/// Reads a node's store into what its state starts with: the relationships
/// ([`load_relationships`]), the outbox with its messages, and the block list.
pub fn load(store: &dyn Store, blocked: Vec<KeyId>) -> Result<Loaded, crate::store::Error> {
    let relationships = load_relationships(store)?;
    let entries = store.outbox()?;
    let messages: Vec<_> = entries.par_iter().map(|entry| store.message(&entry.id)).collect::<Result<_, _>>()?;
    let mut outbox = Vec::with_capacity(entries.len());
    for (entry, message) in entries.into_iter().zip(messages) {
        match message {
            Some(bytes) => outbox.push((entry, Arc::from(bytes))),
            None => warn!(id = %entry.id, "outbox entry without its message; dropped"),
        }
    }
    Ok(Loaded { relationships, outbox, blocked })
}

/// The driver and what it owns.
pub struct Engine {
    host: Host,
    state: State,
    store: Arc<dyn Store>,
    identity: Identity,
    network: String,
    commands: mpsc::Receiver<Command>,
    replies: HashMap<CommandId, oneshot::Sender<Result<Submitted, Error>>>,
    next_command: u64,
    checked_tx: mpsc::Sender<(GossipId, Result<Message, envelope::Error>)>,
    checked_rx: mpsc::Receiver<(GossipId, Result<Message, envelope::Error>)>,
    verifying: Arc<Semaphore>,
    flushed_tx: mpsc::Sender<Result<(), crate::store::Error>>,
    flushed_rx: mpsc::Receiver<Result<(), crate::store::Error>>,
    /// A flush runs off the loop.
    flushing: bool,
    /// Flushes were made on the loop since the store last prepared for more.
    prepare_store: bool,
    /// The loop is stopping: every flush runs on it.
    stopping: bool,
    metrics: Arc<Metrics>,
    delivered_tx: Option<mpsc::Sender<MessageId>>,
    clock: Clock,
    blocked_path: std::path::PathBuf,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").field("host", &self.host).field("state", &self.state).finish_non_exhaustive()
    }
}

fn failure(e: crate::store::Error) -> StoreFailure {
    StoreFailure(e.to_string())
}

impl Engine {
    /// An engine over `swarm` and `store`, and the handle that commands it. Relationships and
    /// the outbox are loaded from the store.
    pub fn new(
        swarm: Swarm<Behaviour>,
        store: Arc<dyn Store>,
        identity: Identity,
        config: &crate::config::Config,
        metrics: Arc<Metrics>,
    ) -> Result<(Engine, Handle), anyhow::Error> {
        let host = Host::new(swarm, store.clone(), metrics.clone(), &config.network, config.target_peers as usize)?;
        let blocked_path = config.data_dir.join(BLOCKED_FILE);
        let blocked = read_blocked(&blocked_path).map_err(|e| anyhow::anyhow!(e))?;
        let loaded = load(store.as_ref(), blocked)?;
        let state_config = rapport_engine::Config { quota: config.quota, ..rapport_engine::Config::default() };
        let seed = rand::random();
        let state = State::new(identity.key.clone(), state_config, loaded, metrics.engine.clone(), seed);
        let (tx, commands) = mpsc::channel(COMMAND_QUEUE);
        let (checked_tx, checked_rx) = mpsc::channel(MAX_VERIFYING);
        let (flushed_tx, flushed_rx) = mpsc::channel(1);
        let engine = Engine {
            host,
            state,
            store,
            identity,
            network: config.network.name.clone(),
            commands,
            replies: HashMap::new(),
            next_command: 0,
            checked_tx,
            checked_rx,
            verifying: Arc::new(Semaphore::new(MAX_VERIFYING)),
            flushed_tx,
            flushed_rx,
            flushing: false,
            prepare_store: false,
            stopping: false,
            metrics,
            delivered_tx: None,
            clock: Arc::new(now),
            blocked_path,
        };
        Ok((engine, Handle(tx)))
    }

    /// Reports the id of each message of ours once its delivery is over: its receipt is held,
    /// or the recipient refused it for good (for benchmarks and tests). Notices that do not
    /// fit in the channel are dropped, never waited for.
    pub fn notify_delivered(&mut self, tx: mpsc::Sender<MessageId>) {
        self.delivered_tx = Some(tx);
    }

    /// Reads the time from `clock` instead of the system clock (see [`Clock`]).
    pub fn set_clock(&mut self, clock: Clock) {
        self.clock = clock;
    }

    /// Spares peers used within `grace` from the connection manager, instead of [`TRIM_GRACE`]
    /// (a simulation whose minute is days of its scenario wants a shorter one).
    pub fn set_trim_grace(&mut self, grace: Duration) {
        self.host.set_trim_grace(grace);
    }

    /// The time, Unix ms, by the engine's [`Clock`].
    fn now(&self) -> Timestamp {
        (self.clock)()
    }

    /// Runs until `shutdown` resolves, then stops accepting, finishes the flush in progress
    /// and returns. Messages not yet receipted stay in the outbox for the next start.
    pub async fn run(mut self, shutdown: impl std::future::Future<Output = ()>) {
        let mut neighbours = tokio::time::interval(NEIGHBOUR_TICK);
        neighbours.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let timer = tokio::time::sleep(OUTBOX_TICK);
        tokio::pin!(timer);
        let mut armed: Option<tokio::time::Instant> = None;
        tokio::pin!(shutdown);
        loop {
            // The state's next timeout, as a deadline on the runtime's clock (at most a tick
            // away, for a clock that runs faster than the runtime's).
            let wanted = self.state.poll_timeout().map(|at| {
                let wait = Duration::from_millis(at.saturating_sub(self.now())).min(OUTBOX_TICK);
                tokio::time::Instant::now() + wait
            });
            if let Some(at) = wanted {
                // Rearmed only when the deadline moves earlier, or the last one passed.
                if armed.is_none_or(|a| at < a || a <= tokio::time::Instant::now()) {
                    timer.as_mut().reset(at);
                    armed = Some(at);
                }
            }
            tokio::select! {
                biased;
                () = &mut shutdown => {
                    info!("shutting down");
                    break;
                }
                Some(result) = self.flushed_rx.recv() => {
                    self.flushing = false;
                    self.feed(Input::Flushed(result.map_err(failure)));
                }
                Some((gossip, message)) = self.checked_rx.recv() => self.feed(Input::Gossip { gossip, message }),
                event = self.host.next() => self.on_host(event),
                Some(command) = self.commands.recv() => self.on_command(command),
                _ = neighbours.tick() => {
                    let state = &self.state;
                    self.host.maintain(|peer| state.has_waiting(peer));
                }
                () = &mut timer, if armed.is_some() => {
                    armed = None;
                    if self.state.poll_timeout().is_some_and(|at| at <= self.now()) {
                        self.feed(Input::Timeout);
                    }
                    if std::mem::take(&mut self.prepare_store) && !self.flushing {
                        let store = self.store.clone();
                        tokio::task::spawn_blocking(move || prepare(store.as_ref()));
                    }
                }
                // Nothing else is ready: what the events handled since the last group staged
                // is written and flushed as one group.
                () = std::future::ready(()), if self.state.group_ready() => self.feed(Input::Idle),
            }
        }
        // Graceful end: whatever was stored is flushed before the process exits; receipts not
        // sent are sent again, as duplicates, when the peer retries.
        self.stopping = true;
        if self.flushing {
            if let Some(result) = self.flushed_rx.recv().await {
                self.flushing = false;
                self.feed(Input::Flushed(result.map_err(failure)));
            }
        }
        for _ in 0..4 {
            if self.state.settled() {
                break;
            }
            self.feed(Input::Drain);
        }
    }

    /// Hands `input` to the state and carries out everything it asks.
    fn feed(&mut self, input: Input) {
        let now = self.now();
        self.state.handle(input, now);
        while let Some(output) = self.state.poll_output() {
            self.carry_out(output);
        }
    }

    fn carry_out(&mut self, output: Output) {
        match output {
            Output::Send { peer, request, bytes } => self.host.send(peer, request, &bytes),
            Output::Respond { channel, bytes } => self.host.respond(channel, bytes),
            Output::NoAnswer(channel) => self.host.no_answer(channel),
            Output::Publish { topic, bytes } => self.host.publish(topic, &bytes),
            Output::Validated { gossip, verdict } => self.host.validated(gossip, verdict),
            Output::LookUp(peer) => self.host.look_up(peer),
            Output::Write(writes) => {
                let result = self.store.write_all(&writes).map_err(failure);
                let now = self.now();
                self.state.handle(Input::Written(result), now);
            }
            Output::Flush { here } => {
                if here || self.stopping {
                    let result = self.store.flush().map_err(failure);
                    self.prepare_store = true;
                    let now = self.now();
                    self.state.handle(Input::Flushed(result), now);
                } else {
                    self.flushing = true;
                    self.prepare_store = false;
                    let store = self.store.clone();
                    let tx = self.flushed_tx.clone();
                    tokio::task::spawn_blocking(move || {
                        let _ = tx.blocking_send(store.flush());
                        prepare(store.as_ref());
                    });
                }
            }
            Output::Reload(relationship) => {
                let envelopes = self.store.relationship(&relationship).map_err(failure);
                let now = self.now();
                self.state.handle(Input::Reloaded { relationship, envelopes }, now);
            }
            Output::Reply { command, result } => {
                if let Some(reply) = self.replies.remove(&command) {
                    let _ = reply.send(result);
                }
            }
            Output::Delivered(id) => {
                if let Some(tx) = &self.delivered_tx {
                    let _ = tx.try_send(id);
                }
            }
        }
    }

    fn on_host(&mut self, event: Event) {
        match event {
            Event::Input(input) => self.feed(input),
            Event::Gossip { gossip, bytes } => {
                // The permit is taken before anything is spawned, so a flood holds at most
                // MAX_VERIFYING messages in memory; gossip is best effort, and what does not fit
                // is dropped and counted (gossipsub's own dedup and the publisher's later
                // messages make up for it). Unchecked, it is neither forwarded nor kept waiting.
                let Ok(permit) = self.verifying.clone().try_acquire_owned() else {
                    self.metrics.gossip_dropped.inc();
                    debug!("verification workers full; gossiped message dropped");
                    self.host.validated(gossip, rapport_engine::Verdict::Ignore);
                    return;
                };
                let tx = self.checked_tx.clone();
                tokio::spawn(async move {
                    let checked = tokio::task::spawn_blocking(move || Message::open(&bytes)).await;
                    if let Ok(opened) = checked {
                        let _ = tx.send((gossip, opened)).await;
                    }
                    drop(permit);
                });
            }
        }
    }

    fn on_command(&mut self, command: Command) {
        match command {
            Command::Status(reply) => {
                let _ = reply.send(self.status());
            }
            Command::Peers { all, reply } => {
                let _ = reply.send(self.host.peers(all));
            }
            Command::Find(peer, reply) => self.host.find(peer, reply),
            Command::Connect(addr, reply) => self.host.connect(addr, reply),
            Command::Send(draft, reply) => {
                self.next_command += 1;
                let command = CommandId(self.next_command);
                self.replies.insert(command, reply);
                self.feed(Input::Send { command, draft });
            }
            Command::Relationships(reply) => {
                let _ = reply.send(self.state.summaries());
            }
            Command::Public(reply) => {
                let _ = reply.send(self.state.public().cloned().collect());
            }
            Command::Block { key, block, reply } => {
                let _ = reply.send(self.block(key, block));
            }
            Command::Blocked(reply) => {
                let _ = reply.send(self.state.blocked());
            }
            Command::RetryNow(reply) => {
                let now = self.now();
                let waiting = self.state.retry_now(now);
                while let Some(output) = self.state.poll_output() {
                    self.carry_out(output);
                }
                let _ = reply.send(waiting);
            }
            Command::RefreshGauges(reply) => {
                self.state.refresh_gauges();
                let _ = reply.send(());
            }
            Command::Export(rel, reply) => {
                let _ = reply.send(self.export(rel));
            }
        }
    }

    /// The bundle of `rel`: every message stored under it, then those this turn staged (the
    /// in-memory phase already counts them), sealed as of now.
    fn export(&self, rel: RelationshipId) -> Result<Bundle, Error> {
        let Some(relationship) = self.state.relationships().get(&rel) else {
            // A damaged record is never sealed: the seal would vouch for what is left of it.
            return Err(Error::NotFound(match self.state.relationships().damaged().get(&rel) {
                Some(why) => format!("relationship {rel} is set aside as damaged and is not exported: {why}"),
                None => format!("no relationship {rel}"),
            }));
        };
        let stored = self.store.relationship(&rel).map_err(|e| Error::Store(failure(e)))?;
        let mut envelopes: Vec<Arc<[u8]>> = stored.into_iter().map(Arc::from).collect();
        let mut held: std::collections::HashSet<MessageId> = envelopes.iter().map(|e| MessageId::of(e)).collect();
        for write in self.state.staged() {
            if let rapport_engine::Write::Message { relationship: Some(r), id, bytes } = write {
                if *r == rel && held.insert(*id) {
                    envelopes.push(bytes.clone());
                }
            }
        }
        Bundle::new(rel, &self.identity.key, self.now(), relationship.phase().as_str(), &envelopes).map_err(|e| {
            let code = rapport_protocol::HasCode::code(&e);
            Error::Refused { code, detail: e.to_string() }
        })
    }

    fn status(&self) -> Status {
        let relationships = self.state.relationships();
        Status {
            peer_id: self.host.local_peer_id().to_string(),
            key_id: self.state.key_id().to_hex(),
            network: self.network.clone(),
            listen: self.host.listeners(),
            peers: self.host.peer_count(),
            outbox: self.state.outbox().len(),
            relationships: relationships.by_phase(),
            damage: self.store.damage(),
            damaged: relationships
                .damaged()
                .iter()
                .map(|(id, detail)| Damaged { relationship: id.to_hex(), detail: detail.clone() })
                .collect(),
        }
    }

    /// Blocks or unblocks `key` and saves the list; on a failed save nothing changes.
    fn block(&mut self, key: KeyId, block: bool) -> Result<bool, Error> {
        let changed = self.state.block(key, block)?;
        if changed {
            if let Err(e) = write_blocked(&self.blocked_path, &self.state.blocked()) {
                let _ = self.state.block(key, !block);
                return Err(Error::File(format!("cannot save {}: {e}", self.blocked_path.display())));
            }
            info!(%key, blocked = block, "block list changed");
        }
        Ok(changed)
    }
}

/// [`Store::prepare`], off the loop, after a flush was reported.
fn prepare(store: &dyn Store) {
    if let Err(e) = store.prepare() {
        warn!(error = %e, "cannot make room in the store ahead of its writes");
    }
}

/// Starts listening, puts the peers `store` remembers in the routing table, and dials the
/// bootstrap peers ([`host::start`]).
pub fn start(
    swarm: &mut Swarm<Behaviour>,
    store: &dyn Store,
    listen: &[Multiaddr],
    bootstrap: &[Multiaddr],
) -> Result<(), anyhow::Error> {
    host::start(swarm, store, listen, bootstrap)
}
