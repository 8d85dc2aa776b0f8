//! Fixed-size identifiers (spec §3.2): message ids, key ids, relationship ids and salted
//! commitments. On the wire every one of them is a CBOR byte string of its exact length, never
//! an array of integers.

use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::{Serialize, Serializer};
use sha2::{Digest, Sha256};

macro_rules! byte_id {
    ($(#[$doc:meta])* $name:ident, $len:expr, $what:expr) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name([u8; $len]);

        impl $name {
            /// Length of the identifier in bytes.
            pub const LEN: usize = $len;

            /// Wraps raw bytes.
            pub const fn from_bytes(bytes: [u8; $len]) -> Self {
                Self(bytes)
            }

            /// The raw bytes.
            pub const fn as_bytes(&self) -> &[u8; $len] {
                &self.0
            }

            /// Parses a slice of exactly [`Self::LEN`] bytes.
            pub fn from_slice(bytes: &[u8]) -> Option<Self> {
                <[u8; $len]>::try_from(bytes).ok().map(Self)
            }

            /// Parses lower- or upper-case hex of exactly [`Self::LEN`] bytes.
            pub fn from_hex(text: &str) -> Option<Self> {
                let bytes = hex::decode(text).ok()?;
                Self::from_slice(&bytes)
            }

            /// Lower-case hex.
            pub fn to_hex(&self) -> String {
                hex::encode(self.0)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_hex())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.to_hex())
            }
        }

        /// A byte string in CBOR; lowercase hex text in human-readable formats (JSON), so that
        /// the node's API can carry bodies as they are.
        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                if serializer.is_human_readable() {
                    serializer.serialize_str(&self.to_hex())
                } else {
                    serializer.serialize_bytes(&self.0)
                }
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                struct V;
                impl Visitor<'_> for V {
                    type Value = $name;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        write!(f, "a byte string of {} bytes ({})", $len, $what)
                    }
                    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<$name, E> {
                        $name::from_slice(v).ok_or_else(|| E::invalid_length(v.len(), &self))
                    }
                    fn visit_str<E: de::Error>(self, v: &str) -> Result<$name, E> {
                        $name::from_hex(v).ok_or_else(|| E::invalid_value(de::Unexpected::Str(v), &self))
                    }
                }
                if deserializer.is_human_readable() {
                    deserializer.deserialize_str(V)
                } else {
                    deserializer.deserialize_bytes(V)
                }
            }
        }
    };
}

byte_id!(
    /// Identifies a message: SHA-256 of its COSE_Sign1 bytes exactly as sent (spec §3.4).
    MessageId,
    32,
    "message id"
);

byte_id!(
    /// Names a signing key. In protocol version 1 it is the raw 32-byte Ed25519 public key,
    /// so a message can be verified with nothing but its own bytes (spec §3.2).
    KeyId,
    32,
    "Ed25519 public key"
);

byte_id!(
    /// Names a relationship; chosen at random by the party that opens it (spec §3.2).
    RelationshipId,
    16,
    "relationship id"
);

byte_id!(
    /// A SHA-256 digest used as a commitment: to shared data (salted) or to an export bundle.
    Digest32,
    32,
    "SHA-256 digest"
);

impl MessageId {
    /// The id of a message given its exact envelope bytes.
    pub fn of(envelope: &[u8]) -> Self {
        Self(Sha256::digest(envelope).into())
    }
}

/// Length of the salt that blinds a [`DataShare`](crate::DataShare) commitment.
pub const SALT_LEN: usize = 32;

impl Digest32 {
    /// SHA-256 of arbitrary bytes, e.g. an export bundle.
    pub fn of(bytes: &[u8]) -> Self {
        Self(Sha256::digest(bytes).into())
    }

    /// The salted commitment to shared data: SHA-256(salt ‖ data) with a 32-byte salt
    /// (spec §5.9). The salt never enters the log, so deleting salt and data leaves nothing
    /// that can be checked against a guess of the data.
    pub fn commit(salt: &[u8; SALT_LEN], data: &[u8]) -> Self {
        let mut h = Sha256::new();
        h.update(salt);
        h.update(data);
        Self(h.finalize().into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_encode_as_byte_strings() {
        let id = MessageId::from_bytes([7; 32]);
        let mut out = Vec::new();
        ciborium::into_writer(&id, &mut out).unwrap();
        assert_eq!(&out[..2], &[0x58, 0x20], "bstr header of length 32");
        assert_eq!(&out[2..], &[7; 32]);
        let back: MessageId = ciborium::from_reader(out.as_slice()).unwrap();
        assert_eq!(back, id);
    }

    #[test]
    fn ids_are_hex_text_in_json_and_only_there() {
        let id = MessageId::from_bytes([0xab; 32]);
        let text = serde_json::to_string(&id).unwrap();
        assert_eq!(text, format!("\"{}\"", "ab".repeat(32)));
        assert_eq!(serde_json::from_str::<MessageId>(&text).unwrap(), id);
        assert!(serde_json::from_str::<MessageId>("\"abab\"").is_err(), "wrong length");
        assert!(serde_json::from_str::<MessageId>(&format!("\"{}\"", "zz".repeat(32))).is_err(), "not hex");
        assert!(serde_json::from_str::<MessageId>(&format!("{:?}", vec![0xabu8; 32])).is_err(), "arrays");
        // A CBOR text string is still refused where a byte string belongs.
        let mut cbor = Vec::new();
        ciborium::into_writer(&"ab".repeat(32), &mut cbor).unwrap();
        assert!(ciborium::from_reader::<MessageId, _>(cbor.as_slice()).is_err());
    }

    #[test]
    fn ids_reject_arrays_and_wrong_lengths() {
        let mut arr = Vec::new();
        ciborium::into_writer(&vec![1u8; 32], &mut arr).unwrap();
        assert!(ciborium::from_reader::<MessageId, _>(arr.as_slice()).is_err());
        let mut short = Vec::new();
        ciborium::into_writer(&ciborium::Value::Bytes(vec![1; 31]), &mut short).unwrap();
        assert!(ciborium::from_reader::<MessageId, _>(short.as_slice()).is_err());
    }

    #[test]
    fn commitment_depends_on_salt_and_data() {
        let a = Digest32::commit(&[0; 32], b"x");
        assert_ne!(a, Digest32::commit(&[1; 32], b"x"));
        assert_ne!(a, Digest32::commit(&[0; 32], b"y"));
        assert_eq!(a, Digest32::commit(&[0; 32], b"x"));
    }

    #[test]
    fn hex_round_trip() {
        let k = KeyId::from_bytes([0xab; 32]);
        assert_eq!(KeyId::from_hex(&k.to_hex()), Some(k));
        assert_eq!(KeyId::from_hex("abcd"), None);
    }
}
