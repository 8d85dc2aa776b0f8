//! The identifiers the state machine deals in: peers of the transport, and the tokens that tie an
//! output to the input that answers it.

use std::fmt;

use rapport_protocol::KeyId;

/// The longest peer id a node keeps: libp2p inlines public keys of up to 42 bytes in the
/// identity multihash (2 bytes of header), and hashes longer ones with SHA-256 (34 bytes).
pub const MAX_NODE_ID: usize = 44;

/// The bytes before the 32 key bytes in the peer id of an Ed25519 key: the identity multihash
/// (code 0, length 36) of the key's protobuf encoding (field 1, key type 1 = Ed25519; field 2,
/// 32 bytes).
const ED25519_PREFIX: [u8; 6] = [0x00, 0x24, 0x08, 0x01, 0x12, 0x20];

/// A peer of the transport: the bytes of its libp2p peer id, kept inline so that the outbox's
/// indexes compare and hash them without allocating, and never as text. A Rapport node's peer
/// id embeds its Ed25519 key ([`NodeId::of_key`]), so each key id names exactly one peer.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId {
    len: u8,
    bytes: [u8; MAX_NODE_ID],
}

impl NodeId {
    /// The peer id given as bytes, if it is not longer than [`MAX_NODE_ID`] and not empty.
    pub fn from_bytes(bytes: &[u8]) -> Option<NodeId> {
        if bytes.is_empty() || bytes.len() > MAX_NODE_ID {
            return None;
        }
        let mut id = NodeId { len: bytes.len() as u8, bytes: [0; MAX_NODE_ID] };
        id.bytes[..bytes.len()].copy_from_slice(bytes);
        Some(id)
    }

    /// The peer id of the node whose key is `key`: byte arithmetic, no point decompressed.
    pub fn of_key(key: &KeyId) -> NodeId {
        let mut id = NodeId { len: 38, bytes: [0; MAX_NODE_ID] };
        id.bytes[..6].copy_from_slice(&ED25519_PREFIX);
        id.bytes[6..38].copy_from_slice(key.as_bytes());
        id
    }

    /// The Ed25519 key this peer id embeds, if it is one.
    pub fn key(&self) -> Option<KeyId> {
        let b = self.as_bytes();
        if b.len() != 38 || b[..6] != ED25519_PREFIX {
            return None;
        }
        let mut key = [0u8; 32];
        key.copy_from_slice(&b[6..]);
        Some(KeyId::from_bytes(key))
    }

    /// Whether this is the peer id of `key`.
    pub fn is_of(&self, key: &KeyId) -> bool {
        let b = self.as_bytes();
        b.len() == 38 && b[..6] == ED25519_PREFIX && b[6..] == key.as_bytes()[..]
    }

    /// The peer id's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len as usize]
    }

    /// The peer id in its usual text form (base58btc of its bytes), as stored outbox entries
    /// name it; `None` if the text is not one.
    pub fn from_base58(text: &str) -> Option<NodeId> {
        let bytes = bs58::decode(text).into_vec().ok()?;
        NodeId::from_bytes(&bytes)
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&bs58::encode(self.as_bytes()).into_string())
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeId({self})")
    }
}

macro_rules! token {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub u64);
    };
}

token!(
    /// One of our requests to a peer: given by the state in [`crate::Output::Send`] and named
    /// again by the answer or failure that ends it.
    RequestId
);
token!(
    /// A peer's request waiting for our answer: given by the driver with the request, named by
    /// the state in [`crate::Output::Respond`].
    ChannelId
);
token!(
    /// A command waiting for its reply: given by the driver, named in [`crate::Output::Reply`].
    CommandId
);
token!(
    /// A gossiped message held by the transport until the state says whether to forward it.
    GossipId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ed25519_peer_id_round_trips_through_its_key_and_text() {
        let key = KeyId::from_bytes([7; 32]);
        let id = NodeId::of_key(&key);
        assert_eq!(id.key(), Some(key));
        assert!(id.is_of(&key));
        assert!(!id.is_of(&KeyId::from_bytes([8; 32])));
        let text = id.to_string();
        assert!(text.starts_with("12D3KooW"), "{text}");
        assert_eq!(NodeId::from_base58(&text), Some(id));
        assert_eq!(NodeId::from_base58("not base58 0OIl"), None);
    }

    #[test]
    fn other_peer_ids_carry_no_key() {
        let sha = NodeId::from_bytes(&[0x12, 0x20, 1, 2, 3]).expect("short enough");
        assert_eq!(sha.key(), None);
        assert_eq!(NodeId::from_bytes(&[]), None);
        assert_eq!(NodeId::from_bytes(&[0; MAX_NODE_ID + 1]), None);
    }
}
