//! The swarm's owner: it turns libp2p's events into the state's domain events
//! ([`rapport_engine::Input`]) and carries out the state's transport outputs, so that nothing
//! past this module sees a libp2p type. It also keeps the connections themselves (spec/node.md
//! §2): the DHT routing table, neighbours dialled up to `target_peers`, the connection manager
//! that trims unused ones, `rapport connect` and `rapport find`.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use libp2p::multiaddr::Protocol;
use libp2p::request_response::{self, OutboundRequestId, ResponseChannel};
use libp2p::swarm::{ConnectionId, SwarmEvent};
use libp2p::{gossipsub, identify, kad, mdns, Multiaddr, PeerId, Swarm};
use rapport_engine::{ChannelId, Failure, GossipId, Input, NodeId, RequestId, Topic, Unopened, Verdict};
use rapport_protocol::{Message, MessageId};
use tokio::sync::oneshot;
use tracing::{debug, info, warn};

use super::codec::{Envelope, Refused, Request, Response};
use super::{Behaviour, BehaviourEvent};
use crate::engine::{Error, Found, Peer};
use crate::metrics::Metrics;
use crate::store::Store;

/// A node that could not be reached is dialled again to keep the target after this long.
pub const REDIAL_INTERVAL: Duration = Duration::from_secs(60);
/// A peer that exchanged a message, or connected, this recently is never trimmed.
pub const TRIM_GRACE: Duration = Duration::from_secs(60);
/// DHT lookups of unreachable recipients running at once, at most: a vendor with thousands of
/// customers offline must not flood the DHT; the outbox asks again at the next failure.
pub const MAX_LOOKUPS: usize = 32;

/// What the host hands the driver.
#[derive(Debug)]
pub enum Event {
    /// An event for the state.
    Input(Input),
    /// A gossiped message to check (off the loop) before the state sees it.
    Gossip {
        /// Gossip's hold on it.
        gossip: GossipId,
        /// Its bytes.
        bytes: Vec<u8>,
    },
}

/// The gossip topics of the node's network.
#[derive(Debug, Clone)]
struct Topics {
    offers: gossipsub::IdentTopic,
    intents: gossipsub::IdentTopic,
}

/// The swarm and what the host keeps beside it.
pub struct Host {
    swarm: Swarm<Behaviour>,
    store: Arc<dyn Store>,
    metrics: Arc<Metrics>,
    topics: Topics,
    events: VecDeque<Event>,
    next_token: u64,
    channels: HashMap<ChannelId, ResponseChannel<Response>>,
    requests: HashMap<OutboundRequestId, RequestId>,
    gossip: HashMap<GossipId, (gossipsub::MessageId, PeerId)>,
    /// The address of the first open connection to each connected peer.
    connected: HashMap<PeerId, Multiaddr>,
    /// Established connections to each connected peer.
    connections: HashMap<PeerId, u32>,
    /// `rapport connect` dials in progress, by connection, with who asked.
    connects: HashMap<ConnectionId, oneshot::Sender<Result<PeerId, Error>>>,
    /// `rapport find` lookups in progress: the DHT query, the peer sought, who asked.
    finds: HashMap<kad::QueryId, (PeerId, oneshot::Sender<Result<Found, Error>>)>,
    /// Lookups of unreachable recipients in progress, by query, and the peers sought.
    lookups: HashMap<kad::QueryId, PeerId>,
    sought: HashSet<PeerId>,
    /// Known peers dialled to keep the connection target, and when.
    neighbour_dials: HashMap<PeerId, Instant>,
    target_peers: usize,
    /// When each connected peer last connected or exchanged a message with us: the connection
    /// manager trims the longest unused first.
    active: HashMap<PeerId, Instant>,
    trim_grace: Duration,
    /// The DHT bootstrap [`start`] began for a node that remembers a full routing table: only
    /// its lookup of our own id runs, and each bucket refresh after it ends before it sends a
    /// request (libp2p-kad has no bootstrap without them).
    joining: Option<kad::QueryId>,
}

impl std::fmt::Debug for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Host").field("peer_id", self.swarm.local_peer_id()).finish_non_exhaustive()
    }
}

/// The state's name for a libp2p peer.
pub fn node_id(peer: &PeerId) -> NodeId {
    // A peer id is at most 44 bytes (libp2p inlines keys of up to 42); a longer one cannot
    // be made, so the fallback is never taken.
    NodeId::from_bytes(&peer.to_bytes())
        .unwrap_or_else(|| NodeId::of_key(&rapport_protocol::KeyId::from_bytes([0; 32])))
}

/// The libp2p peer the state names.
pub fn peer_id(node: &NodeId) -> Option<PeerId> {
    PeerId::from_bytes(node.as_bytes()).ok()
}

impl Host {
    /// The host of `swarm`, subscribed to the network's gossip topics.
    pub fn new(
        mut swarm: Swarm<Behaviour>,
        store: Arc<dyn Store>,
        metrics: Arc<Metrics>,
        network: &crate::config::Network,
        target_peers: usize,
    ) -> Result<Host, anyhow::Error> {
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
        Ok(Host {
            swarm,
            store,
            metrics,
            topics,
            events: VecDeque::new(),
            next_token: 0,
            channels: HashMap::new(),
            requests: HashMap::new(),
            gossip: HashMap::new(),
            connected: HashMap::new(),
            connections: HashMap::new(),
            connects: HashMap::new(),
            finds: HashMap::new(),
            lookups: HashMap::new(),
            sought: HashSet::new(),
            neighbour_dials: HashMap::new(),
            target_peers,
            active: HashMap::new(),
            trim_grace: TRIM_GRACE,
            joining,
        })
    }

    /// Spares peers used within `grace` from the connection manager, instead of [`TRIM_GRACE`].
    pub fn set_trim_grace(&mut self, grace: Duration) {
        self.trim_grace = grace;
    }

    /// This node's peer id.
    pub fn local_peer_id(&self) -> PeerId {
        *self.swarm.local_peer_id()
    }

    /// Addresses the swarm listens on.
    pub fn listeners(&self) -> Vec<String> {
        self.swarm.listeners().map(ToString::to_string).collect()
    }

    /// Connected peers.
    pub fn peer_count(&self) -> usize {
        self.swarm.connected_peers().count()
    }

    fn token(&mut self) -> u64 {
        self.next_token += 1;
        self.next_token
    }

    /// The next event for the driver. Cancel-safe: an event taken from the swarm is handled
    /// before the next is awaited, and what it yields waits in a queue.
    pub async fn next(&mut self) -> Event {
        loop {
            if let Some(event) = self.events.pop_front() {
                return event;
            }
            let event = self.swarm.select_next_some().await;
            self.on_swarm(event);
        }
    }

    /// Sends one of our messages to `peer`. A peer not connected is dialled at the addresses
    /// it was last seen at, as well as those the swarm knows: the routing table holds only some
    /// peers, and libp2p's address cache only the most recent.
    pub fn send(&mut self, peer: NodeId, request: RequestId, bytes: &[u8]) {
        let Some(to) = peer_id(&peer) else {
            warn!(%peer, "a message for a peer id libp2p does not accept");
            self.events.push_back(Event::Input(Input::SendFailed { request, peer, failure: Failure::NoAddress }));
            return;
        };
        let connected = self.connected.contains_key(&to);
        let addresses = if connected { Vec::new() } else { self.remembered(&to) };
        // Nowhere to dial: said at once, without a dial the swarm would fail anyway. The state
        // hears of the peer again when it connects or an address for it turns up.
        if !connected && addresses.is_empty() && !self.routable(&to) {
            self.events.push_back(Event::Input(Input::SendFailed { request, peer, failure: Failure::NoAddress }));
            return;
        }
        let id = self.swarm.behaviour_mut().messages.send_request_with_addresses(
            &to,
            Request::Envelope(Envelope::Raw(bytes.to_vec())),
            addresses,
        );
        self.requests.insert(id, request);
    }

    /// Whether the routing table holds `peer` (and so addresses for it).
    fn routable(&mut self, peer: &PeerId) -> bool {
        self.swarm
            .behaviour_mut()
            .kad
            .kbucket(*peer)
            .is_some_and(|bucket| bucket.iter().any(|entry| entry.node.key.preimage() == peer))
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

    /// Answers a peer's request.
    pub fn respond(&mut self, channel: ChannelId, bytes: Vec<u8>) {
        let Some(channel) = self.channels.remove(&channel) else { return };
        if self.swarm.behaviour_mut().messages.send_response(channel, Envelope::Raw(bytes)).is_err() {
            debug!("the peer left before its answer");
        }
    }

    /// Leaves a peer's request unanswered: its stream closes.
    pub fn no_answer(&mut self, channel: ChannelId) {
        self.channels.remove(&channel);
    }

    /// Publishes a public message. No peer subscribed yet: the message is stored and listed;
    /// it is not retried.
    pub fn publish(&mut self, topic: Topic, bytes: &[u8]) {
        let topic = match topic {
            Topic::Offers => self.topics.offers.clone(),
            Topic::Intents => self.topics.intents.clone(),
        };
        if let Err(e) = self.swarm.behaviour_mut().gossipsub.publish(topic, bytes.to_vec()) {
            debug!(error = %e, "publish");
        }
    }

    /// Tells gossipsub what the check of a message it holds found: only accepted messages are
    /// forwarded to the mesh, so that a node never relays what it would refuse.
    pub fn validated(&mut self, gossip: GossipId, verdict: Verdict) {
        let Some((id, source)) = self.gossip.remove(&gossip) else { return };
        let acceptance = match verdict {
            Verdict::Accept => gossipsub::MessageAcceptance::Accept,
            Verdict::Reject => gossipsub::MessageAcceptance::Reject,
            Verdict::Ignore => gossipsub::MessageAcceptance::Ignore,
        };
        let _ = self.swarm.behaviour_mut().gossipsub.report_message_validation_result(&id, &source, acceptance);
    }

    /// Asks the DHT where `peer` is (the state limits how often), unless [`MAX_LOOKUPS`] run.
    pub fn look_up(&mut self, peer: NodeId) {
        let Some(peer) = peer_id(&peer) else { return };
        if self.lookups.len() >= MAX_LOOKUPS || self.sought.contains(&peer) {
            return;
        }
        debug!(%peer, "looking up an unreachable recipient in the DHT");
        let query = self.swarm.behaviour_mut().kad.get_closest_peers(peer);
        self.lookups.insert(query, peer);
        self.sought.insert(peer);
    }

    /// Dials `address` for `rapport connect`; answered once the connection is up or the dial
    /// has failed.
    pub fn connect(&mut self, address: Multiaddr, reply: oneshot::Sender<Result<PeerId, Error>>) {
        let opts = libp2p::swarm::dial_opts::DialOpts::from(address);
        let connection = opts.connection_id();
        match self.swarm.dial(opts) {
            Ok(()) => {
                self.connects.insert(connection, reply);
            }
            Err(e) => {
                let _ = reply.send(Err(Error::BadRequest(format!("cannot dial: {e}"))));
            }
        }
    }

    /// Starts a DHT lookup of `peer` for `rapport find`; answered when its query ends.
    pub fn find(&mut self, peer: PeerId, reply: oneshot::Sender<Result<Found, Error>>) {
        if peer == *self.swarm.local_peer_id() {
            let _ = reply.send(Err(Error::BadRequest("that is this node's own peer id".into())));
            return;
        }
        debug!(%peer, "looking up a peer in the DHT");
        let query = self.swarm.behaviour_mut().kad.get_closest_peers(peer);
        self.finds.insert(query, (peer, reply));
    }

    /// Connected peers and, with `all`, the routing table's other peers: connected first,
    /// each group by peer id.
    pub fn peers(&mut self, all: bool) -> Vec<Peer> {
        let mut peers: Vec<Peer> = self
            .connected
            .iter()
            .map(|(p, a)| Peer { peer_id: p.to_string(), address: a.to_string(), connected: true })
            .collect();
        if all {
            for (peer, address) in self.known_peers() {
                if !self.connected.contains_key(&peer) {
                    peers.push(Peer { peer_id: peer.to_string(), address: address.to_string(), connected: false });
                }
            }
        }
        peers.sort_by(|a, b| (!a.connected, &a.peer_id).cmp(&(!b.connected, &b.peer_id)));
        peers
    }

    /// The periodic upkeep of connections: trims unused ones above the high water mark
    /// (sparing peers for which `waiting` says messages wait), and dials known peers below the
    /// target.
    pub fn maintain(&mut self, waiting: impl Fn(&NodeId) -> bool) {
        self.trim(waiting);
        self.keep_neighbours();
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
                self.active.insert(peer_id, Instant::now());
                // Messages waiting for the peer go at once, on every new connection.
                self.events.push_back(Event::Input(Input::Connected(node_id(&peer_id))));
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
                self.events.push_back(Event::Input(Input::Disconnected(node_id(&peer_id))));
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
                let gossip = GossipId(self.token());
                self.gossip.insert(gossip, (id, source));
                self.events.push_back(Event::Gossip { gossip, bytes: message.data });
            }
            SwarmEvent::Behaviour(BehaviourEvent::Kad(
                kad::Event::RoutablePeer { peer, address } | kad::Event::PendingRoutablePeer { peer, address },
            )) => self.route(peer, address),
            SwarmEvent::Behaviour(BehaviourEvent::Kad(kad::Event::RoutingUpdated { peer, .. })) => {
                debug!(%peer, "routing table updated");
                // Addresses for it are known now: messages that waited for them may go.
                self.events.push_back(Event::Input(Input::Reachable(node_id(&peer))));
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
            self.active.insert(*peer, Instant::now());
        }
        match event {
            request_response::Event::Message { peer, message, .. } => match message {
                request_response::Message::Request { request, channel, .. } => {
                    let token = ChannelId(self.token());
                    self.channels.insert(token, channel);
                    let peer = node_id(&peer);
                    let input = match request {
                        Request::Envelope(envelope) => {
                            Input::Request { peer, channel: token, message: opened(envelope).map_err(unopened) }
                        }
                        Request::TooLarge(len) => {
                            Input::TooLarge { peer, channel: token, len, max: super::codec::MAX_FRAME }
                        }
                    };
                    self.events.push_back(Event::Input(input));
                }
                request_response::Message::Response { request_id, response } => {
                    let Some(request) = self.requests.remove(&request_id) else { return };
                    let answer = opened(response).map_err(|r| r.error);
                    self.events.push_back(Event::Input(Input::Answer { request, peer: node_id(&peer), answer }));
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
                if let Some(request) = self.requests.remove(&request_id) {
                    debug!(%peer, %error, "delivery failed");
                    let failure = match error {
                        request_response::OutboundFailure::DialFailure => Failure::Unreachable,
                        _ => Failure::NoAnswer,
                    };
                    self.events.push_back(Event::Input(Input::SendFailed { request, peer: node_id(&peer), failure }));
                }
            }
            request_response::Event::InboundFailure { peer, error, .. } => debug!(%peer, %error, "inbound failure"),
            request_response::Event::ResponseSent { .. } => {}
        }
    }

    /// The answer to a DHT lookup: recipients found go to the state as reachable, and a
    /// `rapport find` gets its answer when its query ends.
    fn on_closest_peers(&mut self, query: kad::QueryId, last: bool, found: Vec<kad::PeerInfo>) {
        for info in &found {
            if self.sought.contains(&info.peer_id) && !info.addrs.is_empty() {
                for address in &info.addrs {
                    self.swarm.add_peer_address(info.peer_id, address.clone());
                }
                self.sought.remove(&info.peer_id);
                self.events.push_back(Event::Input(Input::Reachable(node_id(&info.peer_id))));
            }
        }
        if last {
            if let Some(peer) = self.lookups.remove(&query) {
                self.sought.remove(&peer);
            }
        }
        let Some((sought, _)) = self.finds.get(&query) else { return };
        let sought = *sought;
        let hit = found.into_iter().find(|info| info.peer_id == sought && !info.addrs.is_empty());
        if hit.is_none() && !last {
            return;
        }
        let Some((_, reply)) = self.finds.remove(&query) else { return };
        let Some(info) = hit else {
            let _ = reply.send(Err(Error::NotFound(format!("the DHT does not know peer {sought}"))));
            return;
        };
        for address in &info.addrs {
            self.swarm.add_peer_address(sought, address.clone());
        }
        if !self.connected.contains_key(&sought) {
            if let Err(e) = self.swarm.dial(sought) {
                debug!(peer = %sought, error = %e, "cannot dial a peer found in the DHT");
            }
        }
        let addresses = info.addrs.iter().map(ToString::to_string).collect();
        let _ = reply.send(Ok(Found { peer_id: sought.to_string(), addresses }));
    }

    /// Peers of the DHT routing table, each with its first address.
    fn known_peers(&mut self) -> Vec<(PeerId, Multiaddr)> {
        let mut known = Vec::new();
        for bucket in self.swarm.behaviour_mut().kad.kbuckets() {
            for entry in bucket.iter() {
                if let Some(address) = entry.node.value.iter().next() {
                    known.push((*entry.node.key.preimage(), address.clone()));
                }
            }
        }
        known
    }

    fn route(&mut self, peer: PeerId, address: Multiaddr) {
        route(&mut self.swarm.behaviour_mut().kad, peer, address);
    }

    /// Dials known peers while the node has fewer connections than its target, each at most
    /// once per [`REDIAL_INTERVAL`].
    fn keep_neighbours(&mut self) {
        let now = Instant::now();
        self.neighbour_dials.retain(|_, at| now.duration_since(*at) < REDIAL_INTERVAL);
        let missing = self.target_peers.saturating_sub(self.connected.len());
        if missing == 0 {
            return;
        }
        let candidates: Vec<PeerId> = self
            .known_peers()
            .into_iter()
            .map(|(peer, _)| peer)
            .filter(|peer| !self.connected.contains_key(peer) && !self.neighbour_dials.contains_key(peer))
            .take(missing)
            .collect();
        for peer in candidates {
            self.neighbour_dials.insert(peer, now);
            if let Err(e) = self.swarm.dial(peer) {
                debug!(%peer, error = %e, "cannot dial a known peer");
            }
        }
    }

    /// The connection manager: above [`high_water`] connected peers, closes the connections of
    /// the peers unused longest until `target_peers` remain. Spared: peers that connected or
    /// exchanged a message within the grace period ([`TRIM_GRACE`]), peers with a message of
    /// ours waiting, and our gossip mesh.
    ///
    /// Without it a node never lets a connection go: the gossip streams libp2p opens on every
    /// connection count as activity, so each DHT query's connection stayed open for good, and a
    /// node of a 200-node network ended up connected to nearly all the others.
    fn trim(&mut self, waiting: impl Fn(&NodeId) -> bool) {
        let high = high_water(self.target_peers);
        if self.connected.len() <= high {
            return;
        }
        let now = Instant::now();
        let mesh: HashSet<PeerId> = self.swarm.behaviour().gossipsub.all_mesh_peers().copied().collect();
        let mut idle: Vec<(Instant, PeerId)> = self
            .connected
            .keys()
            .filter(|p| !mesh.contains(p) && !waiting(&node_id(p)))
            .filter_map(|p| {
                let at = self.active.get(p).copied().unwrap_or(now);
                (now.duration_since(at) >= self.trim_grace).then_some((at, *p))
            })
            .collect();
        idle.sort();
        let excess = self.connected.len() - self.target_peers;
        for (_, peer) in idle.into_iter().take(excess) {
            debug!(%peer, "trimming an unused connection");
            let _ = self.swarm.disconnect_peer_id(peer);
        }
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

fn unopened(r: Refused) -> Unopened {
    Unopened { id: r.id, error: r.error }
}

/// Whether the routing table holds at least K peers, as when a node remembers a full table.
fn remembers_full_table(kad: &mut kad::Behaviour<kad::store::MemoryStore>) -> bool {
    kad.kbuckets().map(|bucket| bucket.num_entries()).sum::<usize>() >= kad::K_VALUE.get()
}

/// Puts a peer in the DHT routing table if it is there already or its bucket has room.
///
/// A full bucket keeps the peers it has, as Kademlia prefers long-known peers, and nothing
/// is dialed to make room. libp2p's own rule (`BucketInserts::OnConnected`) dials a
/// disconnected entry of the full bucket to see whether it is still there; once the
/// connection manager has closed the idle connections, most entries are disconnected, so
/// each new connection dialed another peer, whose bucket dialed another, without end. Dead
/// entries still leave: a failed dial or query removes them.
fn route(kad: &mut kad::Behaviour<kad::store::MemoryStore>, peer: PeerId, address: Multiaddr) {
    let room = kad.kbucket(peer).is_some_and(|bucket| {
        bucket.num_entries() < kad::K_VALUE.get() || bucket.iter().any(|entry| *entry.node.key.preimage() == peer)
    });
    if room {
        kad.add_address(&peer, address);
    } else {
        debug!(%peer, "its routing bucket is full; not added");
    }
}

/// Connected peers above which the connection manager trims: twice the target, and at least 16
/// more, so that a node's relationship peers and DHT queries have room.
pub fn high_water(target: usize) -> usize {
    target.saturating_mul(2).max(target + 16)
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
        super::check_port_free(addr)?;
        swarm.listen_on(addr.clone()).map_err(|e| super::Error::Transport(format!("listen on {addr}: {e}")))?;
    }
    for (peer, addresses) in store.peers()? {
        let Ok(peer) = peer.parse::<PeerId>() else { continue };
        for address in addresses.iter().filter_map(|a| a.parse::<Multiaddr>().ok()) {
            route(&mut swarm.behaviour_mut().kad, peer, address);
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
    // A node that remembers a full table needs only the first lookup, so the host ends its
    // bootstrap there ([`Host::joining`]); the periodic refresh ([`super::DHT_REFRESH`])
    // reaches the farther buckets later.
    let kad = &mut swarm.behaviour_mut().kad;
    if kad.kbuckets().any(|bucket| bucket.num_entries() > 0) {
        if let Err(e) = kad.bootstrap() {
            warn!(error = %e, "cannot join the DHT");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn high_water_leaves_room_above_the_target() {
        assert_eq!(super::high_water(4), 20);
        assert_eq!(super::high_water(32), 64);
        assert_eq!(super::high_water(0), 16);
    }

    #[test]
    fn a_node_id_is_the_peer_ids_bytes() {
        let key = rapport_protocol::KeyId::from_bytes(
            ed25519_dalek::SigningKey::from_bytes(&[3; 32]).verifying_key().to_bytes(),
        );
        let peer = crate::identity::peer_of(&key).expect("a valid key");
        let node = super::node_id(&peer);
        assert_eq!(node, rapport_engine::NodeId::of_key(&key));
        assert_eq!(node.to_string(), peer.to_string(), "the same text form");
        assert_eq!(super::peer_id(&node), Some(peer));
    }
}
