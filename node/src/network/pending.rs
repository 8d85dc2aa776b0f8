//! A per-address cap on inbound connections still in their handshake (spec/node.md §2).
//!
//! `connection_limits` caps pending inbound connections in total ([`super::MAX_PENDING_INCOMING`]).
//! Alone, that cap lets one host lock every other peer out: it opens that many TCP connections,
//! never starts the handshake, and opens them again when the handshake timeout closes them.
//! This behaviour also caps the pending connections of each remote IP address at
//! [`super::MAX_PENDING_PER_IP`], so one host holds a few of the slots at most. A connection
//! leaves the count once its handshake ends, whether it was established, failed or denied.

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::net::IpAddr;
use std::task::{Context, Poll};

use libp2p::core::transport::PortUse;
use libp2p::core::Endpoint;
use libp2p::multiaddr::Protocol;
use libp2p::swarm::{
    dummy, ConnectionDenied, ConnectionId, FromSwarm, NetworkBehaviour, THandler, THandlerInEvent, THandlerOutEvent,
    ToSwarm,
};
use libp2p::{Multiaddr, PeerId};

/// The refusal of a connection from an address that has too many handshakes under way.
#[derive(Debug, thiserror::Error)]
#[error("{ip} already has {max} inbound connections in their handshake")]
pub struct TooManyPending {
    /// The remote address.
    pub ip: IpAddr,
    /// The cap.
    pub max: usize,
}

/// The behaviour: it speaks no protocol and only counts handshakes.
#[derive(Debug)]
pub struct Behaviour {
    max: usize,
    pending: HashMap<IpAddr, HashSet<ConnectionId>>,
}

fn ip_of(address: &Multiaddr) -> Option<IpAddr> {
    address.iter().find_map(|p| match p {
        Protocol::Ip4(ip) => Some(IpAddr::V4(ip)),
        Protocol::Ip6(ip) => Some(IpAddr::V6(ip)),
        _ => None,
    })
}

impl Behaviour {
    /// At most `max` handshakes per remote address.
    pub fn new(max: usize) -> Behaviour {
        Behaviour { max, pending: HashMap::new() }
    }

    /// Handshakes under way, over all addresses.
    pub fn pending(&self) -> usize {
        self.pending.values().map(HashSet::len).sum()
    }

    fn done(&mut self, connection: ConnectionId, remote: &Multiaddr) {
        let Some(ip) = ip_of(remote) else { return };
        if let Some(set) = self.pending.get_mut(&ip) {
            set.remove(&connection);
            if set.is_empty() {
                self.pending.remove(&ip);
            }
        }
    }
}

impl NetworkBehaviour for Behaviour {
    type ConnectionHandler = dummy::ConnectionHandler;
    type ToSwarm = Infallible;

    fn handle_pending_inbound_connection(
        &mut self,
        connection: ConnectionId,
        _: &Multiaddr,
        remote: &Multiaddr,
    ) -> Result<(), ConnectionDenied> {
        // An address without an IP (a relay, a memory transport) is not counted.
        let Some(ip) = ip_of(remote) else { return Ok(()) };
        let set = self.pending.entry(ip).or_default();
        if set.len() >= self.max {
            return Err(ConnectionDenied::new(TooManyPending { ip, max: self.max }));
        }
        set.insert(connection);
        Ok(())
    }

    fn handle_established_inbound_connection(
        &mut self,
        connection: ConnectionId,
        _: PeerId,
        _: &Multiaddr,
        remote: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.done(connection, remote);
        Ok(dummy::ConnectionHandler)
    }

    fn handle_established_outbound_connection(
        &mut self,
        _: ConnectionId,
        _: PeerId,
        _: &Multiaddr,
        _: Endpoint,
        _: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(dummy::ConnectionHandler)
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        // A handshake that failed, or a connection another behaviour denied (before or after
        // this one counted it).
        if let FromSwarm::ListenFailure(failure) = event {
            self.done(failure.connection_id, failure.send_back_addr);
        }
    }

    fn on_connection_handler_event(&mut self, _: PeerId, _: ConnectionId, event: THandlerOutEvent<Self>) {
        match event {}
    }

    fn poll(&mut self, _: &mut Context<'_>) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from(ip: &str) -> Multiaddr {
        format!("/ip4/{ip}/tcp/5000").parse().unwrap_or_else(|_| Multiaddr::empty())
    }

    #[test]
    fn each_address_gets_at_most_max_handshakes_and_its_slots_come_back() {
        let local = from("127.0.0.1");
        let mut b = Behaviour::new(2);
        let ids: Vec<ConnectionId> = (0..5).map(|_| ConnectionId::new_unchecked(rand::random())).collect();
        assert!(b.handle_pending_inbound_connection(ids[0], &local, &from("10.0.0.1")).is_ok());
        assert!(b.handle_pending_inbound_connection(ids[1], &local, &from("10.0.0.1")).is_ok());
        let refused = b.handle_pending_inbound_connection(ids[2], &local, &from("10.0.0.1"));
        assert!(refused.is_err(), "a third handshake from one address is refused");
        // Another address is not affected.
        assert!(b.handle_pending_inbound_connection(ids[3], &local, &from("10.0.0.2")).is_ok());
        assert_eq!(b.pending(), 3);
        // A handshake that ends, established, frees its slot.
        assert!(b.handle_established_inbound_connection(ids[0], PeerId::random(), &local, &from("10.0.0.1")).is_ok());
        assert_eq!(b.pending(), 2);
        assert!(b.handle_pending_inbound_connection(ids[4], &local, &from("10.0.0.1")).is_ok());
        // One that fails frees its slot too.
        let error = libp2p::swarm::ListenError::Aborted;
        for (id, ip) in [(ids[1], "10.0.0.1"), (ids[4], "10.0.0.1"), (ids[3], "10.0.0.2")] {
            let remote = from(ip);
            b.on_swarm_event(FromSwarm::ListenFailure(libp2p::swarm::behaviour::ListenFailure {
                local_addr: &local,
                send_back_addr: &remote,
                error: &error,
                connection_id: id,
                peer_id: None,
            }));
        }
        assert_eq!(b.pending(), 0);
        assert!(b.pending.is_empty(), "no address is left with an empty set");
    }
}
