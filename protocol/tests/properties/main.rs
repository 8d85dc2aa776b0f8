//! Property tests of the protocol core (issue #2): sealing and opening round-trip for arbitrary
//! valid payloads (spec §3–§5), encodings are stable and unique (§3.1), any change to a signed
//! envelope is refused (§3.5), and the relationship state machine refuses exactly what the
//! state table of spec §7.3.2 forbids, changing nothing when it refuses (§7, §7.4, §7.5).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod envelopes;
mod state_machine;
mod strategies;

use std::collections::BTreeSet;

use ciborium::Value;
use ed25519_dalek::SigningKey;
use proptest::prelude::*;
use proptest::sample::select;
use rapport_protocol::cbor::{self, MAX_MESSAGE_SIZE};
use rapport_protocol::relationship::{Agreement, Grant};
use rapport_protocol::vocab::{self, CATEGORIES, PURPOSES};
use rapport_protocol::*;
use strategies::*;

pub(crate) fn kid(key: &SigningKey) -> KeyId {
    KeyId::from_bytes(key.verifying_key().to_bytes())
}
