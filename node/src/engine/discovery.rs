//! Finding peers (spec/node.md §2): DHT lookups, for `rapport find` and for recipients the
//! node cannot dial, the peer list, and the neighbours kept up to `target_peers`.

use std::collections::HashSet;

use libp2p::{kad, Multiaddr, PeerId};
use tokio::sync::oneshot;
use tracing::debug;

use super::{Engine, Error, Found, Peer, LOOKUP_INTERVAL, REDIAL_INTERVAL};

impl Engine {
    /// Connected peers and, with `all`, the routing table's other peers: connected first,
    /// each group by peer id.
    pub(super) fn peers(&mut self, all: bool) -> Vec<Peer> {
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

    /// Starts a DHT lookup of `peer` for `rapport find`; [`Engine::on_closest_peers`] answers.
    pub(super) fn find(&mut self, peer: PeerId, reply: oneshot::Sender<Result<Found, Error>>) {
        if peer == *self.swarm.local_peer_id() {
            let _ = reply.send(Err(Error::BadRequest("that is this node's own peer id".into())));
            return;
        }
        debug!(%peer, "looking up a peer in the DHT");
        let query = self.swarm.behaviour_mut().kad.get_closest_peers(peer);
        self.finds.insert(query, (peer, reply));
    }

    /// The answer to a DHT lookup: messages waiting for a peer found go now, and a
    /// `rapport find` gets its answer when its query ends.
    pub(super) fn on_closest_peers(&mut self, query: kad::QueryId, last: bool, found: Vec<kad::PeerInfo>) {
        for info in &found {
            if self.lookups.contains_key(&info.peer_id) && !info.addrs.is_empty() {
                for address in &info.addrs {
                    self.swarm.add_peer_address(info.peer_id, address.clone());
                }
                self.deliver_waiting(&info.peer_id);
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
    pub(super) fn known_peers(&mut self) -> Vec<(PeerId, Multiaddr)> {
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

    /// Puts a peer in the DHT routing table if it is there already or its bucket has room.
    ///
    /// A full bucket keeps the peers it has, as Kademlia prefers long-known peers, and nothing
    /// is dialed to make room. libp2p's own rule (`BucketInserts::OnConnected`) dials a
    /// disconnected entry of the full bucket to see whether it is still there; once the
    /// connection manager has closed the idle connections, most entries are disconnected, so
    /// each new connection dialed another peer, whose bucket dialed another, without end. Dead
    /// entries still leave: a failed dial or query removes them.
    pub(super) fn route(&mut self, peer: PeerId, address: Multiaddr) {
        route(&mut self.swarm.behaviour_mut().kad, peer, address);
    }

    /// Dials known peers while the node has fewer connections than its target, each at most
    /// once per [`REDIAL_INTERVAL`].
    pub(super) fn keep_neighbours(&mut self) {
        let now = std::time::Instant::now();
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
    /// the peers unused longest until [`target_peers`](crate::config::Config::target_peers)
    /// remain. Spared: peers that connected or exchanged a message within the grace period
    /// ([`TRIM_GRACE`](super::TRIM_GRACE)), peers
    /// with a message of ours waiting, and our gossip mesh.
    ///
    /// Without it a node never lets a connection go: the gossip streams libp2p opens on every
    /// connection count as activity, so each DHT query's connection stayed open for good, and a
    /// node of a 200-node network ended up connected to nearly all the others.
    pub(super) fn trim(&mut self) {
        let high = high_water(self.target_peers);
        if self.connected.len() <= high {
            return;
        }
        let now = std::time::Instant::now();
        let waiting: HashSet<&str> = self.outbox.values().map(|e| e.peer.as_str()).collect();
        let mesh: HashSet<PeerId> = self.swarm.behaviour().gossipsub.all_mesh_peers().copied().collect();
        let mut idle: Vec<(std::time::Instant, PeerId)> = self
            .connected
            .keys()
            .filter(|p| !mesh.contains(p) && !waiting.contains(p.to_string().as_str()))
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

    /// Asks the DHT where `peer` is, at most once per [`LOOKUP_INTERVAL`].
    pub(super) fn look_up(&mut self, peer: PeerId) {
        let now = std::time::Instant::now();
        if self.lookups.get(&peer).is_some_and(|at| now.duration_since(*at) < LOOKUP_INTERVAL) {
            return;
        }
        // Only peers with waiting messages are looked up, so the map is bounded by the outbox.
        let waiting: HashSet<String> = self.outbox.values().map(|e| e.peer.clone()).collect();
        self.lookups.retain(|p, _| waiting.contains(&p.to_string()));
        self.lookups.insert(peer, now);
        debug!(%peer, "looking up an unreachable recipient in the DHT");
        self.swarm.behaviour_mut().kad.get_closest_peers(peer);
    }
}

/// [`Engine::route`], for the swarm before its engine exists.
pub(super) fn route(kad: &mut kad::Behaviour<kad::store::MemoryStore>, peer: PeerId, address: Multiaddr) {
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
pub(super) fn high_water(target: usize) -> usize {
    target.saturating_mul(2).max(target + 16)
}

#[cfg(test)]
mod tests {
    #[test]
    fn high_water_leaves_room_above_the_target() {
        assert_eq!(super::high_water(4), 20);
        assert_eq!(super::high_water(32), 64);
        assert_eq!(super::high_water(0), 16);
    }
}
