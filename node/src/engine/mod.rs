//! The node's one event loop (spec/node.md §3). It owns the swarm, the relationships and the
//! outbox; the API sends it [`Command`]s with one-shot replies. Signature checks never run on
//! the loop: peers' messages and answers arrive opened by the codec, on their connection's own
//! task, and gossiped messages are checked on blocking workers. Writes are made durable in groups
//! ([`commit`]: one write and one flush for the events handled while the loop was busy) and
//! receipts go out only after the flush that covers their message.

mod commands;
mod commit;
mod discovery;
mod gossip;
mod inbound;
mod outbound;
pub mod outbox;
pub mod quota;
pub mod relationships;

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::StreamExt as _;
use libp2p::multiaddr::Protocol;
use libp2p::request_response::{self, OutboundRequestId, ResponseChannel};
use libp2p::swarm::SwarmEvent;
use libp2p::{gossipsub, identify, kad, mdns, Multiaddr, PeerId, Swarm};
use rapport_protocol::{Body, Code, KeyId, Message, MessageId, RelationshipId, Timestamp};
use tokio::sync::{mpsc, oneshot, Semaphore};
use tracing::{debug, info, warn};

use crate::bundle::Bundle;
use crate::identity::Identity;
use crate::metrics::{CodeLabel, Metrics};
use crate::network::codec::{Envelope, Refused, Request, Response};
use crate::network::{self, Behaviour, BehaviourEvent};
use crate::store::{OutboxEntry, Store, Write};
use gossip::Checked;
pub use relationships::{Relationships, Summary};

/// Commands waiting for the loop, at most.
pub const COMMAND_QUEUE: usize = 256;
/// Gossiped messages being checked on the worker pool, at most; further ones are dropped and
/// counted (`rapport_gossip_dropped_total`).
pub const MAX_VERIFYING: usize = 1024;
/// Public offers and intents kept for `GET /v1/public`, at most.
pub const MAX_PUBLIC: usize = 1000;
/// A recipient that cannot be dialled is looked up in the DHT at most this often.
pub const LOOKUP_INTERVAL: Duration = Duration::from_secs(10);
/// How often the outbox looks for messages due.
pub const OUTBOX_TICK: Duration = Duration::from_millis(200);
/// How often the node dials known peers when it has fewer connections than its target.
pub const NEIGHBOUR_TICK: Duration = Duration::from_secs(5);
/// A known peer that could not be reached is dialled again to keep the target after this long.
pub const REDIAL_INTERVAL: Duration = Duration::from_secs(60);
/// A peer that exchanged a message, or connected, this recently is never trimmed.
pub const TRIM_GRACE: Duration = Duration::from_secs(60);

/// Refusals logged at info, at most, per [`REFUSAL_WINDOW`]; the rest are counted.
pub const REFUSALS_LOGGED: u32 = 20;
/// The window of [`REFUSALS_LOGGED`].
pub const REFUSAL_WINDOW: Duration = Duration::from_secs(10);

/// How many refusals the current window has logged, and how many it left out.
#[derive(Debug)]
struct RefusalLog {
    since: std::time::Instant,
    logged: u32,
    suppressed: u64,
}

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The protocol refused the message this node was asked to send; nothing was stored.
    #[error("{code}: {detail}")]
    Refused {
        /// Problem code.
        code: Code,
        /// Why.
        detail: String,
    },
    /// The store failed; nothing was sent.
    #[error("storage: {0}")]
    Store(#[from] crate::store::Error),
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
    /// The loop has stopped.
    #[error("the node is shutting down")]
    Stopped,
}

/// What the node is asked to send.
#[derive(Debug, Clone)]
pub struct Draft {
    /// The relationship; `None` opens a new one (the body must be an `offer` or
    /// `terms_proposal`).
    pub relationship: Option<RelationshipId>,
    /// The recipient, required when opening a relationship.
    pub to: Option<KeyId>,
    /// The body.
    pub body: Body,
}

/// A message accepted for delivery.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Submitted {
    /// Message id, hex.
    pub id: String,
    /// Relationship id, hex.
    pub relationship: String,
    /// Kind.
    pub kind: &'static str,
}

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

/// What the codec read: opened already (the node's codec opens every envelope on the
/// connection's task), or opened here if it came raw.
fn opened(envelope: Envelope) -> Result<Message, Refused> {
    match envelope {
        Envelope::Opened(opened) => *opened,
        Envelope::Raw(bytes) => Message::open(&bytes).map_err(|error| Refused { id: MessageId::of(&bytes), error }),
    }
}

/// Wall-clock time, Unix ms: the `now` the protocol core is given.
pub fn now() -> Timestamp {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as Timestamp).unwrap_or(0)
}

/// Where the engine reads the time it signs into headers, checks messages against and schedules
/// retries by, Unix ms. The daemon uses [`now`]; a simulation gives its own, so that a year of
/// relationships passes in minutes. Timers of the loop itself (the outbox tick, redials, DHT
/// lookups) stay on the runtime's clock.
pub type Clock = Arc<dyn Fn() -> Timestamp + Send + Sync>;

/// Where a message of ours sits: its relationship and `seq` (none for public messages).
type Place = Option<(RelationshipId, u64)>;

/// Work that waits for its writes: nothing is promised before they are durable.
enum Pending {
    /// A peer's message is staged; once written and flushed, its receipt goes back on
    /// `channel`.
    Receipt(ResponseChannel<Response>, Vec<u8>, Option<RelationshipId>),
    /// One of ours is staged with its outbox entry. Once written (to the operating system, so
    /// that a crash of the process cannot lose it) it goes out; once flushed the caller is told.
    Sent(outbound::Staged, oneshot::Sender<Result<Submitted, Error>>),
    /// One of ours, written and on its way, waiting for the flush to tell the caller.
    Reply(Submitted, oneshot::Sender<Result<Submitted, Error>>),
}

/// The event loop and everything it owns.
pub struct Engine {
    swarm: Swarm<Behaviour>,
    store: Arc<dyn Store>,
    identity: Identity,
    network: String,
    relationships: Relationships,
    commands: mpsc::Receiver<Command>,
    checked_tx: mpsc::Sender<Checked>,
    checked_rx: mpsc::Receiver<Checked>,
    verifying: Arc<Semaphore>,
    /// Writes staged by this turn of the loop, and the work waiting for them: both go to the
    /// store at the end of the turn.
    writes: Vec<Write>,
    unwritten: Vec<Pending>,
    /// Work whose writes are in the store, waiting for the next flush.
    unflushed: Vec<Pending>,
    /// Whether anything was written since the last flush started.
    dirty: bool,
    /// Work waiting on the flush in progress.
    flushing: Option<Vec<Pending>>,
    /// Whether flushes were made on the loop since the store last prepared for more.
    prepare_store: bool,
    flushed_tx: mpsc::Sender<Result<(), crate::store::Error>>,
    flushed_rx: mpsc::Receiver<Result<(), crate::store::Error>>,
    outbox: HashMap<MessageId, OutboxEntry>,
    /// The envelopes of the outbox messages queued since start (older ones are read from the
    /// store).
    payloads: HashMap<MessageId, Arc<[u8]>>,
    /// Relationship and `seq` of each outbox message: within a relationship only the earliest
    /// undelivered message is in flight, so that a recipient never sees a later one first.
    order: HashMap<MessageId, (RelationshipId, u64)>,
    in_flight: HashMap<OutboundRequestId, MessageId>,
    sending: HashSet<MessageId>,
    topics: Topics,
    public: VecDeque<Message>,
    metrics: Arc<Metrics>,
    delivered_tx: Option<mpsc::Sender<MessageId>>,
    clock: Clock,
    /// The address of the first open connection to each connected peer.
    connected: HashMap<PeerId, Multiaddr>,
    /// The budget of refusal lines in the log.
    refusal_log: RefusalLog,
    /// Established connections to each connected peer.
    connections: HashMap<PeerId, u32>,
    /// `rapport connect` dials in progress, by connection, with who asked.
    connects: HashMap<libp2p::swarm::ConnectionId, oneshot::Sender<Result<PeerId, Error>>>,
    /// `rapport find` lookups in progress: the DHT query, the peer sought, who asked.
    finds: HashMap<kad::QueryId, (PeerId, oneshot::Sender<Result<Found, Error>>)>,
    /// Known peers dialled to keep the connection target, and when.
    neighbour_dials: HashMap<PeerId, std::time::Instant>,
    /// Connections to keep open.
    target_peers: usize,
    /// When each unreachable recipient was last looked up in the DHT.
    lookups: HashMap<PeerId, std::time::Instant>,
    /// When each connected peer last connected or exchanged a message with us: the connection
    /// manager trims the longest unused first.
    active: HashMap<PeerId, std::time::Instant>,
    trim_grace: Duration,
    /// What strangers may make the node store, and the owner's block list.
    quotas: quota::Quotas<PeerId>,
    /// Where the block list is saved.
    blocked_path: std::path::PathBuf,
    /// The DHT bootstrap [`start`] began for a node that remembers a full routing table: only
    /// its lookup of our own id runs, and each bucket refresh after it ends before it sends a
    /// request (libp2p-kad has no bootstrap without them).
    joining: Option<kad::QueryId>,
}

/// The gossip topics of the node's network.
#[derive(Debug, Clone)]
struct Topics {
    offers: gossipsub::IdentTopic,
    intents: gossipsub::IdentTopic,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").field("peer_id", &self.swarm.local_peer_id()).finish_non_exhaustive()
    }
}

fn refused(e: &impl rapport_protocol::HasCode, detail: impl ToString) -> Error {
    let code = e.code();
    let detail = detail.to_string();
    // The code travels beside the detail; do not say it twice.
    let detail = detail.strip_prefix(&format!("{code}: ")).map(str::to_owned).unwrap_or(detail);
    Error::Refused { code, detail }
}

impl Engine {
    /// An engine over `swarm` and `store`, and the handle that commands it. Relationships and
    /// the outbox are loaded from the store.
    pub fn new(
        mut swarm: Swarm<Behaviour>,
        store: Arc<dyn Store>,
        identity: Identity,
        config: &crate::config::Config,
        metrics: Arc<Metrics>,
    ) -> Result<(Engine, Handle), anyhow::Error> {
        let network = &config.network;
        let target_peers = config.target_peers as usize;
        let joining = remembers_full_table(&mut swarm.behaviour_mut().kad)
            .then(|| {
                let mut queries = swarm.behaviour_mut().kad.iter_queries();
                queries.find(|query| matches!(query.info(), kad::QueryInfo::Bootstrap { .. })).map(|query| query.id())
            })
            .flatten();
        let topics = Topics {
            offers: gossipsub::IdentTopic::new(network.offers_topic()),
            intents: gossipsub::IdentTopic::new(network.intents_topic()),
        };
        for topic in [&topics.offers, &topics.intents] {
            swarm.behaviour_mut().gossipsub.subscribe(topic)?;
        }
        let network = network.name.clone();
        let relationships = Relationships::load(store.as_ref())?;
        let blocked_path = config.data_dir.join(quota::BLOCKED_FILE);
        let blocked = quota::read_blocked(&blocked_path).map_err(|e| anyhow::anyhow!(e))?;
        let mut quotas = quota::Quotas::new(config.quota, blocked);
        let me = identity.key_id();
        for rel in relationships.iter() {
            // Unanswered: the other party opened it and every chained message is theirs.
            let opener = rel.key(rel.opener());
            if opener != me && rel.log().iter().all(|m| m.header().from == opener) {
                let bytes = rel.log().iter().map(|m| m.bytes().len() as u64).sum();
                quotas.restore(rel.id(), opener, bytes);
            }
        }
        let outbox: HashMap<MessageId, OutboxEntry> = store.outbox()?.into_iter().map(|e| (e.id, e)).collect();
        let mut order = HashMap::new();
        for id in outbox.keys() {
            if let Some(m) = store.message(id)?.and_then(|b| Message::open(&b).ok()) {
                if let Some(rel) = m.header().relationship {
                    order.insert(*id, (rel, m.header().seq));
                }
            }
        }
        let (tx, commands) = mpsc::channel(COMMAND_QUEUE);
        let (checked_tx, checked_rx) = mpsc::channel(MAX_VERIFYING);
        let (flushed_tx, flushed_rx) = mpsc::channel(1);
        let engine = Engine {
            swarm,
            store,
            identity,
            network,
            relationships,
            commands,
            checked_tx,
            checked_rx,
            verifying: Arc::new(Semaphore::new(MAX_VERIFYING)),
            writes: Vec::new(),
            unwritten: Vec::new(),
            unflushed: Vec::new(),
            dirty: false,
            flushing: None,
            prepare_store: false,
            flushed_tx,
            flushed_rx,
            outbox,
            payloads: HashMap::new(),
            order,
            in_flight: HashMap::new(),
            sending: HashSet::new(),
            topics,
            public: VecDeque::new(),
            metrics,
            delivered_tx: None,
            clock: Arc::new(now),
            lookups: HashMap::new(),
            connected: HashMap::new(),
            finds: HashMap::new(),
            connects: HashMap::new(),
            connections: HashMap::new(),
            refusal_log: RefusalLog { since: std::time::Instant::now(), logged: 0, suppressed: 0 },
            neighbour_dials: HashMap::new(),
            active: HashMap::new(),
            trim_grace: TRIM_GRACE,
            target_peers,
            quotas,
            blocked_path,
            joining,
        };
        engine.update_gauges();
        engine.metrics.blocked_keys.set(engine.quotas.blocked().len() as i64);
        engine.metrics.set_relationships(&engine.relationships.by_phase());
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
        self.trim_grace = grace;
    }

    /// The time, Unix ms, by the engine's [`Clock`].
    fn now(&self) -> Timestamp {
        (self.clock)()
    }

    /// Runs until `shutdown` resolves, then stops accepting, finishes the flush in progress
    /// and returns. Messages not yet receipted stay in the outbox for the next start.
    pub async fn run(mut self, shutdown: impl std::future::Future<Output = ()>) {
        let mut tick = tokio::time::interval(OUTBOX_TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut neighbours = tokio::time::interval(NEIGHBOUR_TICK);
        neighbours.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                biased;
                () = &mut shutdown => {
                    info!("shutting down");
                    break;
                }
                Some(result) = self.flushed_rx.recv() => self.on_flushed(result),
                Some(checked) = self.checked_rx.recv() => self.on_checked(checked),
                event = self.swarm.select_next_some() => self.on_swarm(event),
                Some(command) = self.commands.recv() => self.on_command(command),
                _ = neighbours.tick() => {
                    self.trim();
                    self.keep_neighbours();
                }
                _ = tick.tick() => {
                    self.send_due();
                    self.commit_quiet();
                }
                // Nothing else is ready: what the events handled since the last group staged
                // is written and flushed as one group.
                () = std::future::ready(()), if self.group_ready() => self.commit(),
            }
            if self.group_full() {
                self.commit();
            }
        }
        // Graceful end: whatever was stored is flushed before the process exits; receipts not
        // sent are sent again, as duplicates, when the peer retries.
        if let Some(batch) = self.flushing.take() {
            if let Some(result) = self.flushed_rx.recv().await {
                self.flushing = Some(batch);
                self.on_flushed(result);
            }
        }
        // Work staged since: one last flush, then the answers it allows.
        self.write_staged();
        let last = self.store.flush();
        if let Err(e) = &last {
            warn!(error = %e, "final flush failed");
        }
        if !self.unflushed.is_empty() {
            self.flushing = Some(std::mem::take(&mut self.unflushed));
            self.on_flushed(last);
        }
    }

    fn on_swarm(&mut self, event: SwarmEvent<BehaviourEvent>) {
        use libp2p::metrics::Recorder as _;
        self.metrics.libp2p.record(&event);
        match &event {
            SwarmEvent::Behaviour(BehaviourEvent::Identify(e)) => self.metrics.libp2p.record(e),
            SwarmEvent::Behaviour(BehaviourEvent::Kad(e)) => self.metrics.libp2p.record(e),
            SwarmEvent::Behaviour(BehaviourEvent::Ping(e)) => {
                self.metrics.libp2p.record(e);
                // A connection whose pings go unanswered is dead, though its TCP session may not
                // know it (a peer that slept or lost its network): closed, so that requests stop
                // going to it and the peer's next connection carries them.
                if let Err(libp2p::ping::Failure::Timeout) = &e.result {
                    info!(peer = %e.peer, "no answer to ping; closing the connection");
                    self.swarm.close_connection(e.connection);
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(e)) => self.metrics.libp2p.record(e),
            _ => {}
        }
        match event {
            SwarmEvent::NewListenAddr { address, .. } => info!(%address, "listening"),
            SwarmEvent::ConnectionEstablished { peer_id, endpoint, connection_id, num_established, .. } => {
                if num_established.get() == 1 {
                    info!(peer = %peer_id, address = %endpoint.get_remote_address(), "connected");
                }
                self.connections.insert(peer_id, num_established.get());
                if let Some(reply) = self.connects.remove(&connection_id) {
                    let _ = reply.send(Ok(peer_id));
                }
                self.connected.entry(peer_id).or_insert_with(|| endpoint.get_remote_address().clone());
                self.active.insert(peer_id, std::time::Instant::now());
                self.deliver_waiting(&peer_id);
            }
            SwarmEvent::OutgoingConnectionError { connection_id, error, .. } => {
                if let Some(reply) = self.connects.remove(&connection_id) {
                    let _ = reply.send(Err(Error::Unreachable(format!("cannot connect: {error}"))));
                }
            }
            SwarmEvent::ConnectionClosed { peer_id, num_established, .. } if num_established > 0 => {
                self.connections.insert(peer_id, num_established);
            }
            SwarmEvent::ConnectionClosed { peer_id, num_established: 0, .. } => {
                info!(peer = %peer_id, "disconnected");
                self.connections.remove(&peer_id);
                self.connected.remove(&peer_id);
                self.active.remove(&peer_id);
            }
            SwarmEvent::Behaviour(BehaviourEvent::Messages(event)) => self.on_messages(event),
            SwarmEvent::Behaviour(BehaviourEvent::Identify(identify::Event::Received { peer_id, info, .. })) => {
                // Remembered across restarts, so that the outbox can reach the peer again.
                let addresses: Vec<String> = info.listen_addrs.iter().map(ToString::to_string).collect();
                if let Err(e) = self.store.peer_put(&peer_id.to_string(), &addresses) {
                    warn!(error = %e, "cannot remember a peer");
                }
                for address in info.listen_addrs {
                    self.route(peer_id, address);
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Mdns(mdns::Event::Discovered(found))) => {
                for (peer_id, address) in found {
                    self.route(peer_id, address.clone());
                    let _ = self.swarm.dial(address);
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(gossipsub::Event::Message {
                propagation_source: source,
                message_id: id,
                message,
            })) => {
                let held = id.clone();
                if !self.check(move |opened| Checked::Public { opened, id, source }, message.data) {
                    // Not checked, so neither forwarded nor kept waiting for a verdict.
                    self.validated(&held, &source, gossipsub::MessageAcceptance::Ignore);
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Kad(
                kad::Event::RoutablePeer { peer, address } | kad::Event::PendingRoutablePeer { peer, address },
            )) => self.route(peer, address),
            SwarmEvent::Behaviour(BehaviourEvent::Kad(kad::Event::RoutingUpdated { peer, .. })) => {
                debug!(%peer, "routing table updated");
            }
            SwarmEvent::Behaviour(BehaviourEvent::Kad(kad::Event::OutboundQueryProgressed {
                id,
                result: kad::QueryResult::Bootstrap(_),
                step,
                ..
            })) if self.joining == Some(id) => {
                // Each bucket refresh after the first lookup ends before it sends a request.
                if step.last {
                    self.joining = None;
                } else if let Some(mut query) = self.swarm.behaviour_mut().kad.query_mut(&id) {
                    query.finish();
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Kad(kad::Event::OutboundQueryProgressed {
                id,
                result: kad::QueryResult::GetClosestPeers(result),
                step,
                ..
            })) => {
                // A timed-out lookup still reports the peers it reached.
                let found = match result {
                    Ok(ok) => ok.peers,
                    Err(kad::GetClosestPeersError::Timeout { peers, .. }) => peers,
                };
                self.on_closest_peers(id, step.last, found);
            }
            other => debug!(event = ?other, "swarm event"),
        }
    }

    fn on_messages(&mut self, event: request_response::Event<Request, Response>) {
        if let request_response::Event::Message { peer, .. } = &event {
            self.active.insert(*peer, std::time::Instant::now());
        }
        match event {
            request_response::Event::Message { peer, message, .. } => match message {
                request_response::Message::Request { request: Request::Envelope(envelope), channel, .. } => {
                    self.on_request(peer, opened(envelope), channel)
                }
                request_response::Message::Request { request: Request::TooLarge(len), channel, .. } => {
                    self.rejected(Code::TooLarge);
                    let text = format!("a frame of {len} bytes or more exceeds {}", network::codec::MAX_FRAME);
                    let problem = self.problem(&peer, None, Code::TooLarge, &text, None);
                    self.respond(channel, problem);
                }
                request_response::Message::Response { request_id, response } => {
                    let Some(sent) = self.in_flight.remove(&request_id) else { return };
                    self.on_answer(peer, sent, opened(response).map_err(|r| r.error));
                }
            },
            request_response::Event::OutboundFailure { request_id, error, peer, connection_id } => {
                // Requests to a peer take its connections in turn, so one that never answers
                // (the peer's old connection, dead but not closed) would take every other
                // attempt, each for the whole timeout: with another connection to the peer, it
                // is closed at its first timeout.
                if matches!(error, request_response::OutboundFailure::Timeout)
                    && self.connections.get(&peer).is_some_and(|&n| n > 1)
                {
                    info!(%peer, "no answer on one of this peer's connections; closing that one");
                    self.swarm.close_connection(connection_id);
                }
                if let Some(id) = self.in_flight.remove(&request_id) {
                    debug!(%id, %peer, %error, "delivery failed; will retry");
                    if matches!(error, request_response::OutboundFailure::DialFailure) {
                        self.look_up(peer);
                    }
                    self.retry_later(id);
                }
            }
            request_response::Event::InboundFailure { peer, error, .. } => debug!(%peer, %error, "inbound failure"),
            request_response::Event::ResponseSent { .. } => {}
        }
    }

    /// Messages waiting for `peer` go now rather than at their next backoff.
    fn deliver_waiting(&mut self, peer: &PeerId) {
        let peer = peer.to_string();
        let waiting: Vec<MessageId> = self.outbox.values().filter(|e| e.peer == peer).map(|e| e.id).collect();
        for id in waiting {
            self.deliver(id);
        }
    }

    /// The outbox gauge; relationships by phase are counted when `/metrics` is read
    /// ([`Command::RefreshGauges`]), not at every message.
    fn update_gauges(&self) {
        self.metrics.outbox.set(self.outbox.len() as i64);
        self.metrics.unanswered.set(self.quotas.unanswered() as i64);
    }

    fn rejected(&self, code: Code) {
        self.metrics.rejected.get_or_create(&CodeLabel { code: code.as_str().into() }).inc();
    }

    fn respond(&mut self, channel: ResponseChannel<Response>, bytes: Vec<u8>) {
        if self.swarm.behaviour_mut().messages.send_response(channel, Envelope::Raw(bytes)).is_err() {
            debug!("the peer left before its answer");
        }
    }
}

/// Whether the routing table holds at least K peers, as when a node remembers a full table.
fn remembers_full_table(kad: &mut kad::Behaviour<kad::store::MemoryStore>) -> bool {
    kad.kbuckets().map(|bucket| bucket.num_entries()).sum::<usize>() >= kad::K_VALUE.get()
}

/// Starts listening, puts the peers `store` remembers in the routing table, and dials the
/// bootstrap peers.
///
/// The remembered peers go in first: Kademlia bootstraps again after its first bootstrap if
/// peers joined a table of fewer than 20 meanwhile, so a node that loaded them afterwards
/// bootstrapped twice each time it started (most of a simulated market's connections).
pub fn start(
    swarm: &mut Swarm<Behaviour>,
    store: &dyn Store,
    listen: &[Multiaddr],
    bootstrap: &[Multiaddr],
) -> Result<(), anyhow::Error> {
    for addr in listen {
        network::check_port_free(addr)?;
        swarm.listen_on(addr.clone()).map_err(|e| network::Error::Transport(format!("listen on {addr}: {e}")))?;
    }
    for (peer, addresses) in store.peers()? {
        let Ok(peer) = peer.parse::<PeerId>() else { continue };
        for address in addresses.iter().filter_map(|a| a.parse::<Multiaddr>().ok()) {
            discovery::route(&mut swarm.behaviour_mut().kad, peer, address);
        }
    }
    let local = *swarm.local_peer_id();
    for addr in bootstrap {
        // A bootstrap peer named by its id seeds the DHT's routing table; the network's own
        // bootstrap node finds itself in the list and skips it.
        if let Some(Protocol::P2p(peer)) = addr.iter().last() {
            if peer == local {
                continue;
            }
            let mut address = addr.clone();
            address.pop();
            swarm.behaviour_mut().kad.add_address(&peer, address);
        }
        if let Err(e) = swarm.dial(addr.clone()) {
            warn!(%addr, error = %e, "cannot dial bootstrap peer");
        }
    }
    // Join the DHT: Kademlia's bootstrap looks up our own id, which announces us to our
    // neighbours and fills our closest buckets, then a random id in each farther bucket.
    // libp2p also starts a bootstrap by itself whenever a peer joins a table of fewer than K
    // peers, as the first peers of every start do; starting ours clears that trigger.
    // A node that remembers a full table needs only the first lookup, so the engine ends its
    // bootstrap there ([`Engine::joining`]); the periodic refresh ([`network::DHT_REFRESH`])
    // reaches the farther buckets later.
    let kad = &mut swarm.behaviour_mut().kad;
    if kad.kbuckets().any(|bucket| bucket.num_entries() > 0) {
        if let Err(e) = kad.bootstrap() {
            warn!(error = %e, "cannot join the DHT");
        }
    }
    Ok(())
}
