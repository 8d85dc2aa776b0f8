//! The export seal (spec/node.md §7.2): the exporter's signed statement of what an export
//! bundle holds — relationship, exporter, time, phase, how many messages and a digest over
//! their ids in order — so that a bundle whose messages were dropped, added, reordered or whose
//! manifest was edited no longer verifies.
//!
//! A seal is a tagged COSE_Sign1 like a message envelope (spec/protocol.md §3), signed and
//! strictly verified the same way, but its protected header also carries a content type
//! ([`CONTENT_TYPE`]): `{1: -8, 3: CONTENT_TYPE, 4: kid}`. The protected header is part of
//! what is signed, so a signature over a message can never verify as a seal, nor a seal's as a
//! message; and each is refused by the other's profile before any signature is checked.

use std::ops::Range;

use ed25519_dalek::{Signer as _, SigningKey};
use serde::{Deserialize, Serialize};

use crate::cbor;
use crate::cose;
use crate::envelope::{bstr_header, canonical_envelope};
use crate::id::{Digest32, KeyId, MessageId, RelationshipId};
use crate::problem::{Code, HasCode};
use crate::Timestamp;

/// The bundle format a seal of this version covers; its payload's `format`.
pub const FORMAT: &str = "rapport-export/2";

/// The content type (COSE header label 3) that marks a COSE_Sign1 as an export seal.
pub const CONTENT_TYPE: &str = "application/vnd.rapport.export-seal+cbor";

/// Largest seal accepted, in bytes. A seal's fields have fixed sizes but for `phase`, so a
/// well-formed one is under 400 bytes.
pub const MAX_SEAL_SIZE: usize = 1024;

/// What a seal states, exactly as signed: the payload of the COSE_Sign1, in deterministic
/// CBOR with these text keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Seal {
    /// Always [`FORMAT`].
    pub format: String,
    /// The relationship exported.
    pub relationship: RelationshipId,
    /// The exporter: the key that signs the seal.
    pub exported_by: KeyId,
    /// When the bundle was made, Unix ms.
    pub exported_at: Timestamp,
    /// The relationship's phase at export (spec/protocol.md §7.1).
    pub phase: String,
    /// How many envelopes the bundle holds.
    pub count: u64,
    /// [`digest`] of the envelopes' ids, in the bundle's order.
    pub digest: Digest32,
}

/// Why bytes are not a valid seal. Checks run in the order of spec/node.md §7.2; the first
/// failure is reported.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Larger than [`MAX_SEAL_SIZE`]; nothing was parsed.
    #[error("seal of {size} bytes exceeds the limit of {max}")]
    TooLarge {
        /// Size received.
        size: usize,
        /// Limit.
        max: usize,
    },
    /// The COSE layer refused it (malformed, another structure or algorithm, bad key or
    /// signature).
    #[error(transparent)]
    Cose(#[from] cose::Error),
    /// A well-formed COSE_Sign1 that is not a seal: another protected header (a protocol
    /// message has no content type), unprotected parameters, detached payload, signature length.
    #[error("not an export seal: {0}")]
    Profile(&'static str),
    /// The seal bytes are not the one canonical encoding.
    #[error("seal is not deterministically encoded")]
    NonDeterministic,
    /// The payload is not the deterministic CBOR of a [`Seal`].
    #[error("seal payload: {0}")]
    Payload(#[from] cbor::Error),
    /// The payload's `format` is not [`FORMAT`].
    #[error("seal covers format {0:?}, expected {FORMAT:?}")]
    Format(String),
    /// The payload's `exported_by` is not the key that signed it.
    #[error("seal names exporter {exported_by} but is signed by {kid}")]
    KeyMismatch {
        /// The payload's `exported_by`.
        exported_by: KeyId,
        /// The seal's kid.
        kid: KeyId,
    },
}

impl HasCode for Error {
    fn code(&self) -> Code {
        match self {
            Error::TooLarge { .. } => Code::TooLarge,
            Error::Cose(e) => e.code(),
            Error::Profile(_) => Code::Malformed,
            Error::NonDeterministic => Code::NonDeterministic,
            Error::Payload(e) => e.code(),
            Error::Format(_) => Code::UnsupportedVersion,
            Error::KeyMismatch { .. } => Code::WrongKey,
        }
    }
}

/// SHA-256 of the concatenated 32-byte ids, in order: what a seal's `digest` commits to. Ids
/// have a fixed length, so the concatenation needs no framing; each id is the SHA-256 of its
/// envelope, so the digest pins every envelope's bytes and their order.
pub fn digest<'a>(ids: impl IntoIterator<Item = &'a MessageId>) -> Digest32 {
    let mut all = Vec::new();
    for id in ids {
        all.extend_from_slice(id.as_bytes());
    }
    Digest32::of(&all)
}

impl Seal {
    /// Encodes and signs the seal with `key`, whose public key must be `exported_by`.
    pub fn sign(&self, key: &SigningKey) -> Result<Vec<u8>, Error> {
        let kid = KeyId::from_bytes(key.verifying_key().to_bytes());
        if self.exported_by != kid {
            return Err(Error::KeyMismatch { exported_by: self.exported_by, kid });
        }
        let payload = cbor::to_canonical_vec(self)?;
        let protected = protected_bytes(&kid);
        let mut protected_item = Vec::with_capacity(protected.len() + 2);
        bstr_header(&mut protected_item, protected.len());
        protected_item.extend_from_slice(&protected);
        let mut payload_item = Vec::with_capacity(payload.len() + 3);
        bstr_header(&mut payload_item, payload.len());
        payload_item.extend_from_slice(&payload);
        let tbs = cose::sig_structure(&protected_item, &payload_item).concat();
        let signature = key.sign(&tbs).to_bytes();
        let bytes = canonical_envelope(&protected, &payload, &signature);
        if bytes.len() > MAX_SEAL_SIZE {
            return Err(Error::TooLarge { size: bytes.len(), max: MAX_SEAL_SIZE });
        }
        Ok(bytes)
    }

    /// Checks seal bytes completely and strictly (spec/node.md §7.2) and returns what the
    /// seal states; its signer is `exported_by`.
    pub fn open(bytes: &[u8]) -> Result<Seal, Error> {
        if bytes.len() > MAX_SEAL_SIZE {
            return Err(Error::TooLarge { size: bytes.len(), max: MAX_SEAL_SIZE });
        }
        let sign1 = cose::parse_sign1(bytes)?;
        cose::check_algorithm(&sign1)?;
        let kid = KeyId::from_slice(&sign1.protected.header.key_id)
            .ok_or(Error::Profile("kid must be a 32-byte Ed25519 key"))?;
        let expected = protected_bytes(&kid);
        if sign1.protected.original_data.as_deref() != Some(expected.as_slice()) {
            return Err(Error::Profile(
                "protected header must be exactly {1: -8, 3: \"application/vnd.rapport.export-seal+cbor\", 4: kid}",
            ));
        }
        if !sign1.unprotected.is_empty() {
            return Err(Error::Profile("unprotected header must be empty"));
        }
        let Some(payload) = sign1.payload.as_deref() else {
            return Err(Error::Profile("payload must be embedded"));
        };
        if sign1.signature.len() != 64 {
            return Err(Error::Profile("signature must be 64 bytes"));
        }
        if canonical_envelope(&expected, payload, &sign1.signature) != bytes {
            return Err(Error::NonDeterministic);
        }
        let key = cose::public_key(kid.as_bytes())?;
        let (seal, _) = cbor::decode_canonical::<Seal>(payload, MAX_SEAL_SIZE)?;
        if seal.format != FORMAT {
            return Err(Error::Format(seal.format));
        }
        if seal.exported_by != kid {
            return Err(Error::KeyMismatch { exported_by: seal.exported_by, kid });
        }
        cose::verify(&sign1, &key, &[])?;
        Ok(seal)
    }
}

/// Where the content type lies in [`protected_bytes`]; for tests that edit it.
const CONTENT_TYPE_ITEM: Range<usize> = 4..6 + CONTENT_TYPE.len();

/// `{1: -8, 3: CONTENT_TYPE, 4: h'<kid>'}` in deterministic encoding:
/// `a3 01 27 03 78 28 <content type> 04 58 20 <kid>`.
fn protected_bytes(kid: &KeyId) -> Vec<u8> {
    let mut out = Vec::with_capacity(CONTENT_TYPE_ITEM.end + 35);
    out.extend_from_slice(&[0xa3, 0x01, 0x27, 0x03, 0x78, CONTENT_TYPE.len() as u8]);
    out.extend_from_slice(CONTENT_TYPE.as_bytes());
    out.extend_from_slice(&[0x04, 0x58, 0x20]);
    out.extend_from_slice(kid.as_bytes());
    out
}

#[cfg(test)]
mod tests {
    use coset::{iana, HeaderBuilder};

    use super::*;
    use crate::envelope;
    use crate::message::{Body, Header, Intent, Payload};
    use crate::Message;

    fn key() -> SigningKey {
        SigningKey::from_bytes(&[7; 32])
    }

    fn seal(key: &SigningKey) -> Seal {
        Seal {
            format: FORMAT.into(),
            relationship: RelationshipId::from_bytes([9; 16]),
            exported_by: KeyId::from_bytes(key.verifying_key().to_bytes()),
            exported_at: 1_767_225_600_000,
            phase: "active".into(),
            count: 2,
            digest: digest(&[MessageId::from_bytes([1; 32]), MessageId::from_bytes([2; 32])]),
        }
    }

    #[test]
    fn a_seal_round_trips_and_matches_coset() {
        let key = key();
        let s = seal(&key);
        let bytes = s.sign(&key).unwrap();
        assert_eq!(Seal::open(&bytes), Ok(s.clone()));
        // The bytes are what a generic COSE library writes for the same header and payload.
        let protected = HeaderBuilder::new()
            .algorithm(iana::Algorithm::EdDSA)
            .content_type(CONTENT_TYPE.into())
            .key_id(s.exported_by.as_bytes().to_vec())
            .build();
        let payload = cbor::to_canonical_vec(&s).unwrap();
        let coset_bytes = cose::sign(protected, coset::Header::default(), payload, &key, &[]).unwrap();
        assert_eq!(coset_bytes, bytes);
        assert!(bytes.len() < 400, "{}", bytes.len());
        assert_eq!(
            &protected_bytes(&s.exported_by)[CONTENT_TYPE_ITEM.start + 2..CONTENT_TYPE_ITEM.end],
            CONTENT_TYPE.as_bytes()
        );
    }

    #[test]
    fn the_digest_pins_ids_and_order() {
        let (a, b) = (MessageId::from_bytes([1; 32]), MessageId::from_bytes([2; 32]));
        assert_ne!(digest(&[a, b]), digest(&[b, a]));
        assert_ne!(digest(&[a, b]), digest(&[a]));
        assert_eq!(digest(&[]), Digest32::of(&[]));
    }

    #[test]
    fn seals_and_messages_are_never_confused() {
        let key = key();
        let kid = KeyId::from_bytes(key.verifying_key().to_bytes());
        let sealed = seal(&key).sign(&key).unwrap();
        assert!(matches!(Message::open(&sealed), Err(envelope::Error::Profile(_))));
        let body = Body::Intent(Intent { title: "t".into(), description: String::new(), tags: vec![], budget: None });
        let m = Message::seal(Payload { header: Header::public(kid, 1_767_225_600_000), body }, &key).unwrap();
        assert!(matches!(Seal::open(m.bytes()), Err(Error::Profile(_))));
        // A message's signature moved under a seal's header does not verify: the protected
        // header is signed.
        let forged = canonical_envelope(&protected_bytes(&kid), &m.payload_bytes(), &m.bytes()[m.bytes().len() - 64..]);
        assert!(matches!(Seal::open(&forged), Err(Error::Payload(_))));
    }

    #[test]
    fn every_defect_is_named() {
        let key = key();
        let good = seal(&key);
        let bytes = good.sign(&key).unwrap();
        let mut flipped = bytes.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert_eq!(Seal::open(&flipped), Err(Error::Cose(cose::Error::BadSignature)));
        let other = SigningKey::from_bytes(&[8; 32]);
        assert!(matches!(good.sign(&other), Err(Error::KeyMismatch { .. })));
        // Signed by another key but naming the first as exporter.
        let kid = KeyId::from_bytes(other.verifying_key().to_bytes());
        let payload = cbor::to_canonical_vec(&good).unwrap();
        let protected = protected_bytes(&kid);
        let mut item = Vec::new();
        bstr_header(&mut item, protected.len());
        item.extend_from_slice(&protected);
        let mut pitem = Vec::new();
        bstr_header(&mut pitem, payload.len());
        pitem.extend_from_slice(&payload);
        let sig = other.sign(&cose::sig_structure(&item, &pitem).concat()).to_bytes();
        let wrong = canonical_envelope(&protected, &payload, &sig);
        assert!(matches!(Seal::open(&wrong), Err(Error::KeyMismatch { .. })));
        assert_eq!(Seal::open(&wrong).unwrap_err().code(), Code::WrongKey);
        let mut old = good.clone();
        old.format = "rapport-export/1".into();
        assert_eq!(Seal::open(&old.sign(&key).unwrap()), Err(Error::Format("rapport-export/1".into())));
        assert!(matches!(Seal::open(&[0; MAX_SEAL_SIZE + 1]), Err(Error::TooLarge { .. })));
        assert!(matches!(Seal::open(&bytes[..bytes.len() - 1]), Err(Error::Cose(cose::Error::Malformed(_)))));
    }
}
