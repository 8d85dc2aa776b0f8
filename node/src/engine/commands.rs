//! The API's commands to the loop ([`Command`]), each answered on its one-shot channel.

use std::collections::HashSet;
use std::sync::Arc;

use rapport_protocol::{KeyId, MessageId, RelationshipId};
use tracing::info;

use super::{quota, refused, Command, Damaged, Engine, Error, Pending, Status, Write};
use crate::bundle::Bundle;

impl Engine {
    pub(super) fn on_command(&mut self, command: Command) {
        match command {
            Command::Status(reply) => {
                let _ = reply.send(self.status());
            }
            Command::Peers { all, reply } => {
                let _ = reply.send(self.peers(all));
            }
            Command::Find(peer, reply) => self.find(peer, reply),
            Command::Connect(addr, reply) => {
                let opts = libp2p::swarm::dial_opts::DialOpts::from(addr);
                let connection = opts.connection_id();
                match self.swarm.dial(opts) {
                    // Answered when the connection is up or the dial has failed.
                    Ok(()) => {
                        self.connects.insert(connection, reply);
                    }
                    Err(e) => {
                        let _ = reply.send(Err(Error::BadRequest(format!("cannot dial: {e}"))));
                    }
                }
            }
            Command::Send(draft, reply) => {
                if draft.relationship.is_none() && draft.to.is_none() {
                    let _ = reply.send(self.publish(draft.body));
                    return;
                }
                match self.stage(*draft) {
                    Ok(staged) => self.unwritten.push(Pending::Sent(staged, reply)),
                    Err(e) => {
                        let _ = reply.send(Err(e));
                    }
                }
            }
            Command::Relationships(reply) => {
                let _ = reply.send(self.relationships.summaries(&self.identity.key_id()));
            }
            Command::Public(reply) => {
                let _ = reply.send(self.public.iter().cloned().collect());
            }
            Command::Block { key, block, reply } => {
                let _ = reply.send(self.block(key, block));
            }
            Command::Blocked(reply) => {
                let _ = reply.send(self.quotas.blocked());
            }
            Command::RetryNow(reply) => {
                let now = self.now();
                for entry in self.outbox.values_mut() {
                    entry.next_attempt = entry.next_attempt.min(now);
                }
                self.send_due();
                let _ = reply.send(self.outbox.len());
            }
            Command::RefreshGauges(reply) => {
                self.metrics.set_relationships(&self.relationships.by_phase());
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
        let Some(relationship) = self.relationships.get(&rel) else {
            // A damaged record is never sealed: the seal would vouch for what is left of it.
            return Err(Error::NotFound(match self.relationships.damaged().get(&rel) {
                Some(why) => format!("relationship {rel} is set aside as damaged and is not exported: {why}"),
                None => format!("no relationship {rel}"),
            }));
        };
        let mut envelopes: Vec<Arc<[u8]>> = self.store.relationship(&rel)?.into_iter().map(Arc::from).collect();
        let mut held: HashSet<MessageId> = envelopes.iter().map(|e| MessageId::of(e)).collect();
        for write in &self.writes {
            if let Write::Message { relationship: Some(r), id, bytes } = write {
                if *r == rel && held.insert(*id) {
                    envelopes.push(bytes.clone());
                }
            }
        }
        Bundle::new(rel, &self.identity.key, self.now(), relationship.phase().as_str(), &envelopes)
            .map_err(|e| refused(&e, &e))
    }

    fn status(&self) -> Status {
        Status {
            peer_id: self.swarm.local_peer_id().to_string(),
            key_id: self.identity.key_id().to_hex(),
            network: self.network.clone(),
            listen: self.swarm.listeners().map(ToString::to_string).collect(),
            peers: self.swarm.connected_peers().count(),
            outbox: self.outbox.len(),
            relationships: self.relationships.by_phase(),
            damage: self.store.damage(),
            damaged: self
                .relationships
                .damaged()
                .iter()
                .map(|(id, detail)| Damaged { relationship: id.to_hex(), detail: detail.clone() })
                .collect(),
        }
    }

    /// Blocks or unblocks `key` and saves the list; on a failed save nothing changes.
    fn block(&mut self, key: KeyId, block: bool) -> Result<bool, Error> {
        if block && key == self.identity.key_id() {
            return Err(Error::BadRequest("a node cannot block its own key".into()));
        }
        let changed = if block { self.quotas.block(key) } else { self.quotas.unblock(&key) };
        if changed {
            if let Err(e) = quota::write_blocked(&self.blocked_path, &self.quotas.blocked()) {
                if block {
                    self.quotas.unblock(&key);
                } else {
                    self.quotas.block(key);
                }
                return Err(Error::File(format!("cannot save {}: {e}", self.blocked_path.display())));
            }
            info!(%key, blocked = block, "block list changed");
        }
        self.metrics.blocked_keys.set(self.quotas.blocked().len() as i64);
        Ok(changed)
    }
}
