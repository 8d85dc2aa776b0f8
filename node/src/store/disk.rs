//! The on-disk [`Store`]: sled, one tree per collection.

use std::collections::HashSet;
use std::path::Path;

use rapport_protocol::{MessageId, RelationshipId};
use serde::{Deserialize, Serialize};

use super::{Error, OutboxEntry, Store, Write};

/// A [`Store`] in a sled database.
#[derive(Debug, Clone)]
pub struct Disk {
    db: sled::Db,
    /// Messages, their per-relationship index and the outbox, in one tree so that a group
    /// commit is one atomic batch: `m` ‖ message id → envelope bytes; `i` ‖ relationship id
    /// (16 bytes) ‖ arrival counter (8 bytes, big-endian) → message id; `o` ‖ message id →
    /// outbox [`Record`].
    messages: sled::Tree,
    /// Peer id text → JSON list of multiaddrs.
    peers: sled::Tree,
}

/// An [`OutboxEntry`] as stored.
#[derive(Serialize, Deserialize)]
struct Record {
    id: String,
    peer: String,
    attempts: u32,
    next_attempt: u64,
    queued_at: u64,
}

fn backend(e: impl std::fmt::Display) -> Error {
    Error::Backend(e.to_string())
}

fn message_key(id: &MessageId) -> [u8; 33] {
    let mut key = [0u8; 33];
    key[0] = b'm';
    key[1..].copy_from_slice(id.as_bytes());
    key
}

fn index_key(rel: &RelationshipId, counter: u64) -> [u8; 25] {
    let mut key = [0u8; 25];
    key[0] = b'i';
    key[1..17].copy_from_slice(rel.as_bytes());
    key[17..].copy_from_slice(&counter.to_be_bytes());
    key
}

fn corrupt(tree: &'static str, detail: impl std::fmt::Display) -> Error {
    Error::Corrupt { tree, detail: detail.to_string() }
}

impl Disk {
    /// Opens (or creates) the database in directory `path`.
    pub fn open(path: &Path) -> Result<Disk, Error> {
        let db = sled::Config::new().path(path).open().map_err(backend)?;
        Ok(Disk {
            messages: db.open_tree("messages").map_err(backend)?,
            peers: db.open_tree("peers").map_err(backend)?,
            db,
        })
    }
}

impl Disk {
    /// Adds message `id` (and its index entry) to `batch`, unless it is stored already or
    /// already in this batch. Both records go in one batch, so a message is never stored
    /// without its index entry; the node writes from one task, so nothing can store the same
    /// id between the check and the batch.
    fn stage_message(
        &self,
        batch: &mut sled::Batch,
        staged: &mut HashSet<MessageId>,
        relationship: Option<RelationshipId>,
        id: MessageId,
        bytes: &[u8],
    ) -> Result<bool, Error> {
        let key = message_key(&id);
        if staged.contains(&id) || self.messages.contains_key(key).map_err(backend)? {
            return Ok(false);
        }
        staged.insert(id);
        batch.insert(key.as_slice(), bytes);
        if let Some(rel) = relationship {
            let counter = self.db.generate_id().map_err(backend)?;
            batch.insert(index_key(&rel, counter).as_slice(), id.as_bytes().as_slice());
        }
        Ok(true)
    }
}

fn record(entry: &OutboxEntry) -> Result<Vec<u8>, Error> {
    let record = Record {
        id: entry.id.to_hex(),
        peer: entry.peer.clone(),
        attempts: entry.attempts,
        next_attempt: entry.next_attempt,
        queued_at: entry.queued_at,
    };
    serde_json::to_vec(&record).map_err(backend)
}

fn outbox_key(id: &MessageId) -> [u8; 33] {
    let mut key = [0u8; 33];
    key[0] = b'o';
    key[1..].copy_from_slice(id.as_bytes());
    key
}

impl Store for Disk {
    fn put_message(&self, relationship: Option<RelationshipId>, id: MessageId, bytes: &[u8]) -> Result<bool, Error> {
        let mut batch = sled::Batch::default();
        let added = self.stage_message(&mut batch, &mut HashSet::new(), relationship, id, bytes)?;
        self.messages.apply_batch(batch).map_err(backend)?;
        Ok(added)
    }

    fn write_all(&self, writes: &[Write]) -> Result<(), Error> {
        let mut batch = sled::Batch::default();
        let mut staged = HashSet::new();
        for w in writes {
            match w {
                Write::Message { relationship, id, bytes } => {
                    self.stage_message(&mut batch, &mut staged, *relationship, *id, bytes)?;
                }
                Write::Outbox(entry) => batch.insert(outbox_key(&entry.id).as_slice(), record(entry)?),
                Write::Delivered(id) => batch.remove(outbox_key(id).as_slice()),
            }
        }
        self.messages.apply_batch(batch).map_err(backend)?;
        Ok(())
    }

    fn message(&self, id: &MessageId) -> Result<Option<Vec<u8>>, Error> {
        Ok(self.messages.get(message_key(id)).map_err(backend)?.map(|v| v.to_vec()))
    }

    fn relationship(&self, relationship: &RelationshipId) -> Result<Vec<Vec<u8>>, Error> {
        let mut prefix = [0u8; 17];
        prefix[0] = b'i';
        prefix[1..].copy_from_slice(relationship.as_bytes());
        let mut out = Vec::new();
        for entry in self.messages.scan_prefix(prefix) {
            let (_, id) = entry.map_err(backend)?;
            let id =
                MessageId::from_slice(&id).ok_or_else(|| corrupt("messages", "index entry is not a message id"))?;
            let bytes = self
                .messages
                .get(message_key(&id))
                .map_err(backend)?
                .ok_or_else(|| corrupt("messages", "dangling id"))?;
            out.push(bytes.to_vec());
        }
        Ok(out)
    }

    fn relationships(&self) -> Result<Vec<RelationshipId>, Error> {
        let mut out: Vec<RelationshipId> = Vec::new();
        for entry in self.messages.scan_prefix(b"i") {
            let (key, _) = entry.map_err(backend)?;
            let rel = key
                .get(1..17)
                .and_then(RelationshipId::from_slice)
                .ok_or_else(|| corrupt("messages", "short index key"))?;
            if out.last() != Some(&rel) {
                out.push(rel);
            }
        }
        Ok(out)
    }

    fn outbox_put(&self, entry: &OutboxEntry) -> Result<(), Error> {
        self.messages.insert(outbox_key(&entry.id), record(entry)?).map_err(backend)?;
        Ok(())
    }

    fn outbox_remove(&self, id: &MessageId) -> Result<bool, Error> {
        Ok(self.messages.remove(outbox_key(id)).map_err(backend)?.is_some())
    }

    fn outbox(&self) -> Result<Vec<OutboxEntry>, Error> {
        let mut out = Vec::new();
        for entry in self.messages.scan_prefix(b"o") {
            let (_, value) = entry.map_err(backend)?;
            let r: Record = serde_json::from_slice(&value).map_err(|e| corrupt("outbox", e))?;
            let id = MessageId::from_hex(&r.id).ok_or_else(|| corrupt("outbox", "bad message id"))?;
            out.push(OutboxEntry {
                id,
                peer: r.peer,
                attempts: r.attempts,
                next_attempt: r.next_attempt,
                queued_at: r.queued_at,
            });
        }
        Ok(out)
    }

    fn peer_put(&self, peer: &str, addresses: &[String]) -> Result<(), Error> {
        let value = serde_json::to_vec(addresses).map_err(backend)?;
        self.peers.insert(peer.as_bytes(), value).map_err(backend)?;
        Ok(())
    }

    fn peer(&self, peer: &str) -> Result<Option<Vec<String>>, Error> {
        let Some(value) = self.peers.get(peer.as_bytes()).map_err(backend)? else { return Ok(None) };
        serde_json::from_slice(&value).map(Some).map_err(|e| corrupt("peers", e))
    }

    fn peers(&self) -> Result<Vec<(String, Vec<String>)>, Error> {
        let mut out = Vec::new();
        for entry in self.peers.iter() {
            let (key, value) = entry.map_err(backend)?;
            let peer = String::from_utf8(key.to_vec()).map_err(|e| corrupt("peers", e))?;
            let addresses: Vec<String> = serde_json::from_slice(&value).map_err(|e| corrupt("peers", e))?;
            out.push((peer, addresses));
        }
        Ok(out)
    }

    fn flush(&self) -> Result<(), Error> {
        self.db.flush().map_err(backend)?;
        Ok(())
    }
}
