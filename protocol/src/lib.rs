//! # rapport-protocol
//!
//! The Rapport protocol core: signed CBOR messages between a customer and a vendor, the
//! relationship state machine both parties apply, and verification of a relationship's log.
//! The normative text is `spec/protocol.md`; each module says which section it implements.
//!
//! The crate is sans-IO: it reads no clock, opens no sockets or files and spawns no tasks.
//! Time (`now`, Unix milliseconds) and randomness are inputs; verdicts and events are outputs.
//!
//! ```
//! use rapport_protocol::{Message, Payload, Header, Body, Intent, KeyId};
//! use ed25519_dalek::SigningKey;
//!
//! let key = SigningKey::from_bytes(&[1; 32]);
//! let intent = Payload {
//!     header: Header::public(KeyId::from_bytes(key.verifying_key().to_bytes()), 1_700_000_000_000),
//!     body: Body::Intent(Intent {
//!         title: "A quiet electric bike".into(),
//!         description: String::new(),
//!         tags: vec!["bikes".into()],
//!         budget: None,
//!     }),
//! };
//! let sent = Message::seal(intent, &key)?;
//! let received = Message::open(sent.bytes())?;
//! assert_eq!(received.id(), sent.id());
//! # Ok::<(), rapport_protocol::envelope::Error>(())
//! ```
#![deny(missing_docs)]

pub mod cbor;
pub mod cose;
pub mod envelope;
mod id;
pub mod log;
pub mod message;
pub mod problem;
pub mod relationship;
pub mod seal;
mod strict;
pub mod vocab;

pub use envelope::Message;
pub use id::{Digest32, KeyId, MessageId, RelationshipId, SALT_LEN};
pub use message::*;
pub use problem::{Code, HasCode};
pub use relationship::{Event, Phase, Policy, Relationship};
pub use vocab::{Category, Purpose};

/// A point in time: milliseconds since the Unix epoch, UTC.
pub type Timestamp = u64;
