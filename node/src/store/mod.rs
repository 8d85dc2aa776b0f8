//! Durable storage behind a small trait (spec/node.md §4): signed messages by id, each
//! relationship's messages in the order this node accepted them, the outbox and known peers.
//!
//! [`Disk`] keeps them in sled; [`Memory`] in maps, for tests. No sled type appears in a public
//! signature, so the backend can change behind [`Store`].
//!
//! A write is durable only after [`Store::flush`] returns: sled acknowledges writes before they
//! reach the disk. The node flushes once for every batch of messages that arrived meanwhile
//! (group commit) and sends their receipts only after that flush.

mod disk;
mod log;
mod memory;

pub use disk::Disk;
pub use log::{repair, Log, Repaired};
pub use memory::Memory;

use rapport_protocol::{MessageId, RelationshipId};

/// Why the store failed. Nothing the store reports is caused by a peer's input.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The backend failed (disk full, I/O error, corruption). The node stops accepting messages
    /// rather than answer with receipts it cannot honour; restart it once the disk is fixed.
    #[error("storage backend: {0}")]
    Backend(String),
    /// A stored record could not be decoded: the data directory was written by an incompatible
    /// version or damaged.
    #[error("corrupt record in {tree}: {detail}")]
    Corrupt {
        /// Which collection.
        tree: &'static str,
        /// What was wrong.
        detail: String,
    },
}

/// A stretch of the log store that holds no whole frame, between whole frames: found, skipped
/// and reported when the store opens (spec/node.md §4).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Damage {
    /// Byte offset in the file.
    pub offset: u64,
    /// Bytes skipped.
    pub len: u64,
    /// Relationships the damaged bytes still name (possibly not all it held).
    #[serde(serialize_with = "hex_ids")]
    pub relationships: Vec<RelationshipId>,
}

fn hex_ids<S: serde::Serializer>(ids: &[RelationshipId], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(ids.iter().map(|r| r.to_hex()))
}

pub use rapport_engine::store::{OutboxEntry, Write};

/// Storage for one node. Implementations are shared between the event loop and the API, so
/// every method takes `&self`.
pub trait Store: Send + Sync + 'static {
    /// Stores `bytes` under `id` and, if `relationship` is given, appends `id` to that
    /// relationship's index. Returns `false`, changing nothing, if `id` was already stored.
    fn put_message(&self, relationship: Option<RelationshipId>, id: MessageId, bytes: &[u8]) -> Result<bool, Error>;
    /// The bytes of message `id`.
    fn message(&self, id: &MessageId) -> Result<Option<Vec<u8>>, Error>;
    /// The messages of `relationship` in the order they were stored.
    fn relationship(&self, relationship: &RelationshipId) -> Result<Vec<Vec<u8>>, Error>;
    /// Every relationship with at least one stored message.
    fn relationships(&self) -> Result<Vec<RelationshipId>, Error>;
    /// Adds or replaces an outbox entry.
    fn outbox_put(&self, entry: &OutboxEntry) -> Result<(), Error>;
    /// Removes an outbox entry; `false` if there was none.
    fn outbox_remove(&self, id: &MessageId) -> Result<bool, Error>;
    /// Every outbox entry.
    fn outbox(&self) -> Result<Vec<OutboxEntry>, Error>;
    /// Remembers the addresses of a peer (text forms of its peer id and multiaddrs).
    fn peer_put(&self, peer: &str, addresses: &[String]) -> Result<(), Error>;
    /// Every remembered peer and its addresses.
    fn peers(&self) -> Result<Vec<(String, Vec<String>)>, Error>;
    /// The remembered addresses of one peer, if any.
    fn peer(&self, peer: &str) -> Result<Option<Vec<String>>, Error>;
    /// Makes every write so far durable.
    fn flush(&self) -> Result<(), Error>;

    /// Damage found when the store opened, skipped so that everything else is served.
    fn damage(&self) -> Vec<Damage> {
        Vec::new()
    }
    /// Work done off the event loop after a flush has been reported, to keep the next ones
    /// short (the log store zeros the file ahead of its appends). Nothing by default.
    fn prepare(&self) -> Result<(), Error> {
        Ok(())
    }

    /// Applies `writes` in order, all or none where the backend can: the node calls this once
    /// per group commit, then [`Store::flush`].
    fn write_all(&self, writes: &[Write]) -> Result<(), Error> {
        for w in writes {
            match w {
                Write::Message { relationship, id, bytes } => {
                    self.put_message(*relationship, *id, bytes)?;
                }
                Write::Outbox(entry) => self.outbox_put(entry)?,
                Write::Delivered(id) => {
                    self.outbox_remove(id)?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
