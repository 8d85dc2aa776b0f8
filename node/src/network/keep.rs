//! Keeps up to `target` connections open although no stream is open on them (spec/node.md §2).
//!
//! libp2p closes a connection once no behaviour needs it and [`super::IDLE_TIMEOUT`] has
//! passed. A Rapport node wants a few long-lived neighbours instead: the DHT stays warm,
//! gossip reaches it, and a message to a neighbour needs no new handshake. So the first
//! `target` connections established are kept for as long as they last; those beyond the
//! target close when idle, as before. The event loop dials known peers while it has fewer
//! than `target` (see `engine`). The hard caps stay with `connection_limits`.

use std::collections::HashSet;
use std::convert::Infallible;
use std::task::{Context, Poll};

use libp2p::core::transport::PortUse;
use libp2p::core::upgrade::DeniedUpgrade;
use libp2p::core::Endpoint;
use libp2p::swarm::handler::ConnectionEvent;
use libp2p::swarm::{
    ConnectionDenied, ConnectionHandlerEvent, ConnectionId, FromSwarm, NetworkBehaviour, SubstreamProtocol, THandler,
    THandlerInEvent, THandlerOutEvent, ToSwarm,
};
use libp2p::{Multiaddr, PeerId};

/// The behaviour: it speaks no protocol and only decides, per connection, whether idleness
/// may close it.
#[derive(Debug)]
pub struct Behaviour {
    target: usize,
    kept: HashSet<ConnectionId>,
}

impl Behaviour {
    /// Keeps up to `target` connections.
    pub fn new(target: usize) -> Behaviour {
        Behaviour { target, kept: HashSet::new() }
    }

    fn handler(&mut self, connection: ConnectionId) -> Handler {
        let keep = self.kept.len() < self.target;
        if keep {
            self.kept.insert(connection);
        }
        Handler { keep }
    }
}

impl NetworkBehaviour for Behaviour {
    type ConnectionHandler = Handler;
    type ToSwarm = Infallible;

    fn handle_established_inbound_connection(
        &mut self,
        connection: ConnectionId,
        _: PeerId,
        _: &Multiaddr,
        _: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(self.handler(connection))
    }

    fn handle_established_outbound_connection(
        &mut self,
        connection: ConnectionId,
        _: PeerId,
        _: &Multiaddr,
        _: Endpoint,
        _: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(self.handler(connection))
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        if let FromSwarm::ConnectionClosed(closed) = event {
            self.kept.remove(&closed.connection_id);
        }
    }

    fn on_connection_handler_event(&mut self, _: PeerId, _: ConnectionId, event: THandlerOutEvent<Self>) {
        match event {}
    }

    fn poll(&mut self, _: &mut Context<'_>) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        Poll::Pending
    }
}

/// One connection's handler: it opens and accepts no stream.
#[derive(Debug)]
pub struct Handler {
    keep: bool,
}

impl libp2p::swarm::ConnectionHandler for Handler {
    type FromBehaviour = Infallible;
    type ToBehaviour = Infallible;
    type InboundProtocol = DeniedUpgrade;
    type OutboundProtocol = DeniedUpgrade;
    type InboundOpenInfo = ();
    type OutboundOpenInfo = ();

    fn listen_protocol(&self) -> SubstreamProtocol<Self::InboundProtocol> {
        SubstreamProtocol::new(DeniedUpgrade, ())
    }

    fn connection_keep_alive(&self) -> bool {
        self.keep
    }

    fn on_behaviour_event(&mut self, event: Self::FromBehaviour) {
        match event {}
    }

    fn poll(&mut self, _: &mut Context<'_>) -> Poll<ConnectionHandlerEvent<DeniedUpgrade, (), Infallible>> {
        Poll::Pending
    }

    fn on_connection_event(&mut self, _: ConnectionEvent<DeniedUpgrade, DeniedUpgrade, (), ()>) {}
}
