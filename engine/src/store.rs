//! What the state asks the store to keep, and what it is told back. The store itself (a log
//! file, sled, memory) belongs to the driver; these are the records it writes.

use std::sync::Arc;

use rapport_protocol::{MessageId, RelationshipId, Timestamp};

/// A message waiting for its recipient's signed receipt, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEntry {
    /// The message.
    pub id: MessageId,
    /// The recipient's libp2p peer id, as text.
    pub peer: String,
    /// Delivery attempts so far.
    pub attempts: u32,
    /// Earliest time of the next attempt, Unix ms.
    pub next_attempt: Timestamp,
    /// When the message was queued, Unix ms.
    pub queued_at: Timestamp,
}

/// One write of a group commit.
#[derive(Debug, Clone)]
pub enum Write {
    /// A signed message, indexed under its relationship if it has one.
    Message {
        /// The relationship to index it under, if any.
        relationship: Option<RelationshipId>,
        /// Its id.
        id: MessageId,
        /// The envelope.
        bytes: Arc<[u8]>,
    },
    /// An outbox entry, added or replaced.
    Outbox(OutboxEntry),
    /// The outbox entry of a delivered message, removed.
    Delivered(MessageId),
}

/// The store failed to write or flush: whatever waited on it is not promised.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("storage: {0}")]
pub struct StoreFailure(pub String);
