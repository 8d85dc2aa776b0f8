//! The nodes of a market, each a real Rapport engine with its own store, swarm and identity,
//! all in one process and one tokio runtime. A node goes offline by stopping its engine (its
//! swarm is dropped, so its connections close and its port frees) and comes back by starting
//! a new engine on the same store, the path a restarted daemon takes.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use ed25519_dalek::SigningKey;
use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId};
use prometheus_client::registry::Registry;
use rapport_node::config::{Config, Layer};
use rapport_node::engine::{self, Clock, Engine, Handle};
use rapport_node::identity::Identity;
use rapport_node::metrics::Metrics;
use rapport_node::network::{self, Behaviour};
use rapport_node::store::{Error as StoreError, Memory, OutboxEntry, Store};
use rapport_protocol::RelationshipId;
use rapport_protocol::{KeyId, MessageId, Timestamp};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::net::{self as simnet, Net};

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Its configuration was refused.
    #[error("config: {0}")]
    Config(#[from] rapport_node::config::Error),
    /// Its identity could not be made.
    #[error("identity: {0}")]
    Identity(#[from] rapport_node::identity::Error),
    /// Its swarm could not be built or could not listen.
    #[error("network: {0}")]
    Network(String),
    /// Its engine could not load its store.
    #[error("engine: {0}")]
    Engine(String),
}

/// The connection manager spares peers used this recently. The daemon's minute
/// ([`engine::TRIM_GRACE`]) is days of a scenario here; the connections the DHT's lookups open
/// would pile up meanwhile.
pub const TRIM_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// Delivery notices, from every engine, are kept for the driver up to this many.
pub const NOTICES: usize = 1 << 16;

/// One node.
#[derive(Debug)]
pub struct Node {
    /// Its identity.
    pub identity: Identity,
    /// Its key id.
    pub key_id: KeyId,
    /// Its peer id.
    pub peer: PeerId,
    /// Its store, kept while it is offline.
    pub store: Arc<Counted>,
    /// Where it listens.
    pub address: Multiaddr,
    running: Option<Running>,
}

#[derive(Debug)]
struct Running {
    handle: Handle,
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

/// Every node of the market, and what they share: the network's faults and the clock.
#[derive(Debug)]
pub struct Fleet {
    /// The nodes, by index.
    pub nodes: Vec<Node>,
    /// The fault state.
    pub net: Arc<Net>,
    /// The simulated time, Unix ms, that every engine reads.
    pub clock: Arc<AtomicU64>,
    config: Config,
    notices: mpsc::Sender<MessageId>,
}

/// Memory-transport ports of this process's fleets: each fleet gets its own range, so that two
/// simulations in one process (tests) never meet.
static PORTS: AtomicU64 = AtomicU64::new(1);

impl Fleet {
    /// Nodes with the given key seeds, not started; notices of delivered messages go to the
    /// returned receiver.
    pub fn new(
        keys: &[[u8; 32]],
        target_peers: u32,
        net: Arc<Net>,
        start: Timestamp,
    ) -> Result<(Fleet, mpsc::Receiver<MessageId>), Error> {
        let layer = Layer {
            network: Some("local".into()),
            listen: Some(Vec::new()),
            mdns: Some(false),
            target_peers: Some(target_peers),
            // The process holds every node: a per-node share of its memory would be meaningless.
            max_memory_fraction: Some(1.0),
            ..Layer::default()
        };
        let config = Config::resolve(Path::new("/nonexistent/rapport-sim"), layer, None)?;
        let base = PORTS.fetch_add(keys.len() as u64 + 1, Ordering::Relaxed) + 1_000_000;
        let mut nodes = Vec::with_capacity(keys.len());
        for (i, seed) in keys.iter().enumerate() {
            let identity = Identity::from_key(SigningKey::from_bytes(seed))?;
            let peer = identity.peer_id();
            net.add(peer, i);
            let address = Multiaddr::empty().with(Protocol::Memory(base + i as u64));
            nodes.push(Node {
                key_id: identity.key_id(),
                identity,
                peer,
                store: Arc::new(Counted::default()),
                address,
                running: None,
            });
        }
        let (notices, rx) = mpsc::channel(NOTICES);
        Ok((Fleet { nodes, net, clock: Arc::new(AtomicU64::new(start)), config, notices }, rx))
    }

    /// Whether node `i` runs.
    pub fn online(&self, i: usize) -> bool {
        self.nodes[i].running.is_some()
    }

    /// Node `i`'s command handle, while it runs.
    pub fn handle(&self, i: usize) -> Option<Handle> {
        self.nodes[i].running.as_ref().map(|r| r.handle.clone())
    }

    /// Starts node `i`, dialling `bootstrap` (other nodes' indices) to join the DHT.
    pub fn start(&mut self, i: usize, bootstrap: &[usize]) -> Result<(), Error> {
        if self.nodes[i].running.is_some() {
            return Ok(());
        }
        let boot: Vec<Multiaddr> = bootstrap
            .iter()
            .filter(|b| **b != i)
            .map(|b| self.nodes[*b].address.clone().with(Protocol::P2p(self.nodes[*b].peer)))
            .collect();
        let node = &self.nodes[i];
        let keypair = node.identity.keypair.clone();
        let behaviour =
            Behaviour::with_refresh(&keypair, &self.config, None).map_err(|e| Error::Network(e.to_string()))?;
        let transport = simnet::transport(&keypair, i, self.net.clone()).map_err(|e| Error::Network(e.to_string()))?;
        let mut swarm = libp2p::SwarmBuilder::with_existing_identity(keypair)
            .with_tokio()
            .with_other_transport(|_| transport)
            .map_err(|e| Error::Network(e.to_string()))?
            .with_behaviour(|_| behaviour)
            .map_err(|e| Error::Network(e.to_string()))?
            .with_swarm_config(|c| c.with_idle_connection_timeout(network::IDLE_TIMEOUT))
            .build();
        engine::start(&mut swarm, node.store.as_ref(), std::slice::from_ref(&node.address), &boot)
            .map_err(|e| Error::Network(e.to_string()))?;
        let store: Arc<dyn Store> = node.store.clone();
        let metrics = Arc::new(Metrics::new(&mut Registry::default()));
        let (mut engine, handle) = Engine::new(swarm, store, node.identity.clone(), &self.config, metrics)
            .map_err(|e| Error::Engine(e.to_string()))?;
        let clock = self.clock.clone();
        let clock: Clock = Arc::new(move || clock.load(Ordering::Relaxed));
        engine.set_clock(clock);
        engine.set_trim_grace(TRIM_GRACE);
        engine.notify_delivered(self.notices.clone());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(engine.run(async move {
            let _ = stopped.await;
        }));
        self.nodes[i].running = Some(Running { handle, stop, task });
        Ok(())
    }

    /// Stops node `i` and waits until its swarm is gone; its store stays.
    pub async fn stop(&mut self, i: usize) {
        if let Some(r) = self.nodes[i].running.take() {
            let _ = r.stop.send(());
            let _ = r.task.await;
        }
    }

    /// Stops every node.
    pub async fn stop_all(&mut self) {
        for i in 0..self.nodes.len() {
            self.stop(i).await;
        }
    }
}

/// A node's store: the node's own in-memory store, counting the delivery attempts that failed
/// (each is an outbox entry written back with one more attempt).
#[derive(Debug, Default)]
pub struct Counted {
    inner: Memory,
    retries: AtomicU64,
}

impl Counted {
    /// Failed delivery attempts so far.
    pub fn retries(&self) -> u64 {
        self.retries.load(Ordering::Relaxed)
    }
}

impl Store for Counted {
    fn put_message(&self, rel: Option<RelationshipId>, id: MessageId, bytes: &[u8]) -> Result<bool, StoreError> {
        self.inner.put_message(rel, id, bytes)
    }
    fn message(&self, id: &MessageId) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.message(id)
    }
    fn relationship(&self, rel: &RelationshipId) -> Result<Vec<Vec<u8>>, StoreError> {
        self.inner.relationship(rel)
    }
    fn relationships(&self) -> Result<Vec<RelationshipId>, StoreError> {
        self.inner.relationships()
    }
    fn outbox_put(&self, entry: &OutboxEntry) -> Result<(), StoreError> {
        if entry.attempts > 0 {
            self.retries.fetch_add(1, Ordering::Relaxed);
        }
        self.inner.outbox_put(entry)
    }
    fn outbox_remove(&self, id: &MessageId) -> Result<bool, StoreError> {
        self.inner.outbox_remove(id)
    }
    fn outbox(&self) -> Result<Vec<OutboxEntry>, StoreError> {
        self.inner.outbox()
    }
    fn peer_put(&self, peer: &str, addresses: &[String]) -> Result<(), StoreError> {
        self.inner.peer_put(peer, addresses)
    }
    fn peer(&self, peer: &str) -> Result<Option<Vec<String>>, StoreError> {
        self.inner.peer(peer)
    }
    fn peers(&self) -> Result<Vec<(String, Vec<String>)>, StoreError> {
        self.inner.peers()
    }
    fn flush(&self) -> Result<(), StoreError> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use rapport_node::engine::{Command, Draft};

    use super::super::bodies::{self, Refs};
    use super::super::driver::EPOCH;
    use super::super::plan::Action;
    use super::*;

    /// A message that failed while its recipient was down waits out its backoff on a clock that
    /// stands still, until `RetryNow` sends it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn retry_now_sends_a_message_before_its_backoff_ends() {
        let (mut fleet, mut delivered) = Fleet::new(&[[1; 32], [2; 32]], 4, Arc::new(Net::new(1, 0.0)), EPOCH).unwrap();
        let (peer, address) = (fleet.nodes[1].peer.to_string(), fleet.nodes[1].address.to_string());
        fleet.nodes[0].store.peer_put(&peer, &[address]).unwrap();
        fleet.start(0, &[]).unwrap();
        let sender = fleet.handle(0).unwrap();
        let body = bodies::body(Action::Offer, &Refs::default(), EPOCH, 14, 0).unwrap();
        let draft = Draft { relationship: None, to: Some(fleet.nodes[1].key_id), body };
        sender.ask(|tx| Command::Send(Box::new(draft), tx)).await.unwrap().unwrap();
        for _ in 0..500 {
            if fleet.nodes[0].store.retries() > 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(fleet.nodes[0].store.retries(), 1, "one attempt, failed: the recipient is down");
        // The failure also started a DHT lookup of the recipient, whose dial must fail too.
        tokio::time::sleep(Duration::from_secs(1)).await;

        fleet.start(1, &[]).unwrap();
        let waited = tokio::time::timeout(Duration::from_secs(2), delivered.recv()).await;
        assert!(waited.is_err(), "the backoff has not ended on a clock that stands still");
        assert_eq!(sender.ask(Command::RetryNow).await.unwrap(), 1);
        let id = tokio::time::timeout(Duration::from_secs(20), delivered.recv()).await;
        assert!(matches!(id, Ok(Some(_))), "delivered once retried");
        fleet.stop_all().await;
    }
}
