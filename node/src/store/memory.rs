//! The in-memory [`Store`], for tests. Same semantics as [`super::Disk`], nothing durable.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use rapport_protocol::{MessageId, RelationshipId};

use super::{Error, OutboxEntry, Store};

#[derive(Debug, Default)]
struct Inner {
    messages: HashMap<MessageId, Vec<u8>>,
    relationships: BTreeMap<RelationshipId, Vec<MessageId>>,
    outbox: BTreeMap<MessageId, OutboxEntry>,
    peers: BTreeMap<String, Vec<String>>,
}

/// A [`Store`] in maps.
#[derive(Debug, Default)]
pub struct Memory(Mutex<Inner>);

impl Memory {
    /// An empty store.
    pub fn new() -> Memory {
        Memory::default()
    }

    fn with<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> Result<T, Error> {
        let mut inner = self.0.lock().map_err(|_| Error::Backend("store lock poisoned".into()))?;
        Ok(f(&mut inner))
    }
}

impl Store for Memory {
    fn put_message(&self, relationship: Option<RelationshipId>, id: MessageId, bytes: &[u8]) -> Result<bool, Error> {
        self.with(|s| {
            if s.messages.contains_key(&id) {
                return false;
            }
            s.messages.insert(id, bytes.to_vec());
            if let Some(rel) = relationship {
                s.relationships.entry(rel).or_default().push(id);
            }
            true
        })
    }

    fn message(&self, id: &MessageId) -> Result<Option<Vec<u8>>, Error> {
        self.with(|s| s.messages.get(id).cloned())
    }

    fn relationship(&self, relationship: &RelationshipId) -> Result<Vec<Vec<u8>>, Error> {
        self.with(|s| {
            let ids = s.relationships.get(relationship).map(Vec::as_slice).unwrap_or_default();
            ids.iter().filter_map(|id| s.messages.get(id).cloned()).collect()
        })
    }

    fn relationships(&self) -> Result<Vec<RelationshipId>, Error> {
        self.with(|s| s.relationships.keys().copied().collect())
    }

    fn outbox_put(&self, entry: &OutboxEntry) -> Result<(), Error> {
        self.with(|s| {
            s.outbox.insert(entry.id, entry.clone());
        })
    }

    fn outbox_remove(&self, id: &MessageId) -> Result<bool, Error> {
        self.with(|s| s.outbox.remove(id).is_some())
    }

    fn outbox(&self) -> Result<Vec<OutboxEntry>, Error> {
        self.with(|s| s.outbox.values().cloned().collect())
    }

    fn peer_put(&self, peer: &str, addresses: &[String]) -> Result<(), Error> {
        self.with(|s| {
            s.peers.insert(peer.to_owned(), addresses.to_vec());
        })
    }

    fn peer(&self, peer: &str) -> Result<Option<Vec<String>>, Error> {
        self.with(|s| s.peers.get(peer).cloned())
    }

    fn peers(&self) -> Result<Vec<(String, Vec<String>)>, Error> {
        self.with(|s| s.peers.iter().map(|(p, a)| (p.clone(), a.clone())).collect())
    }

    fn flush(&self) -> Result<(), Error> {
        Ok(())
    }
}
