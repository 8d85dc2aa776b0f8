//! The libp2p side of the node (spec/protocol.md §11 and spec/node.md §2): the swarm, its behaviours and their limits. This
//! module owns the `Swarm`; the node's event loop drives it and sees only the events of
//! [`Behaviour`].
//!
//! Every protocol id carries the network's prefix (`/rapport/<network>/…`), so nodes of
//! different networks, and the IPFS DHT, never mix.

pub mod codec;
pub mod host;
pub mod keep;
pub mod pending;

use std::time::Duration;

use libp2p::core::upgrade;
use libp2p::identity::Keypair;
use libp2p::kad::store::MemoryStore;
use libp2p::swarm::NetworkBehaviour;
use libp2p::{
    connection_limits, gossipsub, identify, kad, mdns, memory_connection_limits, noise, ping, request_response, tcp,
    yamux, Multiaddr, StreamProtocol, Swarm,
};
use prometheus_client::registry::Registry;

use crate::config::Config;

/// Most message streams a connection may have open at once, each way. Raised from
/// request-response's default of 100 so that 64 messages in flight to one peer, with their
/// receipts, never wait on the limit; bounded so that one peer cannot open streams without end.
pub const MAX_CONCURRENT_STREAMS: usize = 256;
/// How long a request may wait for its receipt before the outbox tries again.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections with no open stream are closed after this long.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// How often the DHT refreshes its routing table (Kademlia's periodic bootstrap): libp2p's
/// default.
pub const DHT_REFRESH: Duration = Duration::from_secs(5 * 60);
/// Most incoming connections being set up at once.
pub const MAX_PENDING_INCOMING: u32 = 64;
/// Inbound connections still in their handshake from any one IP address ([`pending`]): one
/// host cannot take more than this of the [`MAX_PENDING_INCOMING`] slots.
pub const MAX_PENDING_PER_IP: usize = 8;
/// Largest gossiped message: a public offer or intent, signed.
pub const MAX_GOSSIP_SIZE: usize = rapport_protocol::cbor::MAX_MESSAGE_SIZE + 1024;

/// Why the swarm could not be built.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A transport could not be set up.
    #[error("transport: {0}")]
    Transport(String),
    /// A behaviour's configuration was refused.
    #[error("behaviour: {0}")]
    Behaviour(String),
    /// A protocol id is not valid (it must start with `/`).
    #[error("invalid protocol id {0:?}")]
    Protocol(String),
}

pub use behaviour::{Behaviour, BehaviourEvent};

/// Refuses a TCP listen address whose port another socket already holds.
///
/// libp2p's TCP transport listens with `SO_REUSEPORT` (so that dials can leave from the listen
/// port), which lets a second process bind a port the first one listens on, and the kernel then
/// splits incoming connections between the two nodes. A plain bind, without the option, fails
/// on a port any listener holds; trying one first turns that into a clear error. (Another
/// program could still take the port between the check and the listen; the check is for the
/// mistake, not for a race.) Port 0 and non-TCP addresses pass.
pub fn check_port_free(addr: &Multiaddr) -> Result<(), Error> {
    use libp2p::multiaddr::Protocol;
    let mut parts = addr.iter();
    let ip: std::net::IpAddr = match parts.next() {
        Some(Protocol::Ip4(ip)) => ip.into(),
        Some(Protocol::Ip6(ip)) => ip.into(),
        _ => return Ok(()),
    };
    let Some(Protocol::Tcp(port)) = parts.next() else { return Ok(()) };
    if port == 0 {
        return Ok(());
    }
    match std::net::TcpListener::bind((ip, port)) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => Err(Error::Transport(format!(
            "listen on {addr}: TCP port {port} is already in use (is another node running with this port?)"
        ))),
        // Anything else (an address this host lacks, say) the transport reports itself.
        Err(_) => Ok(()),
    }
}

/// The derive generates `BehaviourEvent`, one variant per field, each holding that
/// behaviour's own (documented) event type.
mod behaviour {
    #![allow(missing_docs)]
    use super::*;

    /// The behaviours a Rapport node runs. Limits come first, so that a connection refused by
    /// them never reaches the others.
    #[derive(NetworkBehaviour)]
    pub struct Behaviour {
        /// Caps on established and pending connections.
        pub pending: pending::Behaviour,
        pub limits: connection_limits::Behaviour,
        /// Refuses new connections when the process uses too much memory.
        pub memory: memory_connection_limits::Behaviour,
        /// Signed messages and their receipts.
        pub messages: request_response::Behaviour<codec::Codec>,
        /// Peer routing under Rapport's own protocol name.
        pub kad: kad::Behaviour<MemoryStore>,
        /// Public offers and intents.
        pub gossipsub: gossipsub::Behaviour,
        /// Exchange of listen addresses and protocols.
        pub identify: identify::Behaviour,
        /// Liveness.
        pub ping: ping::Behaviour,
        /// Local discovery, when the configuration turns it on.
        pub mdns: libp2p::swarm::behaviour::toggle::Toggle<mdns::tokio::Behaviour>,
        /// Keeps up to `target_peers` connections open while idle.
        pub keep: keep::Behaviour,
    }

    impl std::fmt::Debug for Behaviour {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("Behaviour").finish_non_exhaustive()
        }
    }
}

fn protocol(id: String) -> Result<StreamProtocol, Error> {
    StreamProtocol::try_from_owned(id.clone()).map_err(|_| Error::Protocol(id))
}

impl Behaviour {
    /// The behaviours for `config`, as `keypair`'s node.
    pub fn new(keypair: &Keypair, config: &Config) -> Result<Behaviour, Error> {
        Behaviour::with_refresh(keypair, config, Some(DHT_REFRESH))
    }

    /// [`Behaviour::new`] with the DHT's periodic bootstrap every `refresh`, or never.
    ///
    /// For simulations, which compress a year into minutes: a real-time refresh there adds
    /// nothing a node would see in the simulated time, and costs every node's bucket refresh at
    /// once, hundreds of connections each. Joins still bootstrap.
    pub fn with_refresh(keypair: &Keypair, config: &Config, refresh: Option<Duration>) -> Result<Behaviour, Error> {
        let peer_id = keypair.public().to_peer_id();
        let net = &config.network;
        let limits = connection_limits::ConnectionLimits::default()
            .with_max_established(Some(config.max_connections))
            .with_max_established_per_peer(Some(config.max_connections_per_peer))
            .with_max_pending_incoming(Some(MAX_PENDING_INCOMING));
        let messages = request_response::Behaviour::with_codec(
            codec::Codec::opening(),
            [(protocol(net.message_protocol())?, request_response::ProtocolSupport::Full)],
            request_response::Config::default()
                .with_request_timeout(REQUEST_TIMEOUT)
                .with_max_concurrent_streams(MAX_CONCURRENT_STREAMS),
        );
        let mut kad_config = kad::Config::new(protocol(net.kad_protocol())?);
        kad_config.set_query_timeout(Duration::from_secs(30));
        // The engine decides who enters the routing table (Engine::route): Kademlia's own rule
        // dials a disconnected entry of a full bucket to test it, and with the connection
        // manager closing idle connections most entries are disconnected, so every new
        // connection set off another dial, network-wide, for ever.
        kad_config.set_kbucket_inserts(kad::BucketInserts::Manual);
        kad_config.set_periodic_bootstrap_interval(refresh);
        let mut kad = kad::Behaviour::with_config(peer_id, MemoryStore::new(peer_id), kad_config);
        kad.set_mode(Some(kad::Mode::Server));
        let gossip_config = gossipsub::ConfigBuilder::default()
            .validation_mode(gossipsub::ValidationMode::Strict)
            // Each message waits for the engine's check before it is forwarded.
            .validate_messages()
            .max_transmit_size(MAX_GOSSIP_SIZE)
            .build()
            .map_err(|e| Error::Behaviour(e.to_string()))?;
        let gossipsub =
            gossipsub::Behaviour::new(gossipsub::MessageAuthenticity::Signed(keypair.clone()), gossip_config)
                .map_err(|e| Error::Behaviour(e.to_string()))?;
        let identify = identify::Behaviour::new(identify::Config::new(net.identify_version(), keypair.public()));
        let mdns = if config.mdns {
            Some(
                mdns::tokio::Behaviour::new(mdns::Config::default(), peer_id)
                    .map_err(|e| Error::Behaviour(format!("mdns: {e}")))?,
            )
        } else {
            None
        };
        Ok(Behaviour {
            pending: pending::Behaviour::new(MAX_PENDING_PER_IP),
            limits: connection_limits::Behaviour::new(limits),
            memory: memory_connection_limits::Behaviour::with_max_percentage(config.max_memory_fraction),
            messages,
            kad,
            gossipsub,
            identify,
            ping: ping::Behaviour::default(),
            mdns: mdns.into(),
            keep: keep::Behaviour::new(config.target_peers as usize),
        })
    }
}

/// Builds the swarm: TCP (Noise, Yamux) and QUIC, the behaviours of [`Behaviour::new`], and
/// libp2p's bandwidth metrics in `registry`.
pub fn swarm(keypair: Keypair, config: &Config, registry: &mut Registry) -> Result<Swarm<Behaviour>, Error> {
    let behaviour = Behaviour::new(&keypair, config)?;
    let swarm = libp2p::SwarmBuilder::with_existing_identity(keypair)
        .with_tokio()
        .with_tcp(tcp::Config::default().nodelay(true), noise::Config::new, yamux::Config::default)
        .map_err(|e| Error::Transport(e.to_string()))?
        .with_quic()
        .with_bandwidth_metrics(registry)
        .with_behaviour(|_| behaviour)
        .map_err(|e| Error::Behaviour(e.to_string()))?
        // A stream's first frame follows its protocol proposal at once, without waiting for the
        // peer to confirm it (spec §11.2): one round trip per message instead of two.
        .with_swarm_config(|c| {
            c.with_substream_upgrade_protocol_override(upgrade::Version::V1Lazy)
                .with_idle_connection_timeout(IDLE_TIMEOUT)
        })
        .build();
    Ok(swarm)
}
