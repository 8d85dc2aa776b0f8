//! The Rapport envelope (spec §3): a tagged COSE_Sign1 whose protected header is exactly
//! `{1: -8, 4: kid}`, with an empty unprotected header, the payload embedded, and a 64-byte
//! Ed25519 signature. The key id is the signer's 32-byte public key and must equal the
//! payload's `from`. A message's id is the SHA-256 of the envelope bytes as sent.
//!
//! There is exactly one valid encoding of each signed message, so a relay cannot re-encode a
//! message into a second id: [`open`] refuses any envelope that is not byte-for-byte the
//! canonical encoding.

use std::sync::Arc;

use coset::{iana, HeaderBuilder};
use ed25519_dalek::SigningKey;

use crate::cbor;
use crate::cose;
use crate::id::{KeyId, MessageId};
use crate::message::{self, Body, Header, Kind, Payload};

/// Why envelope bytes were refused. Checks run in the order of spec §3.5; the first failure
/// is reported.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Larger than [`cbor::MAX_MESSAGE_SIZE`]; nothing was parsed.
    #[error("envelope of {size} bytes exceeds the limit of {max}")]
    TooLarge {
        /// Size received.
        size: usize,
        /// Limit.
        max: usize,
    },
    /// The COSE layer refused it (malformed, unsupported structure or algorithm, bad key or
    /// signature).
    #[error(transparent)]
    Cose(#[from] cose::Error),
    /// A well-formed COSE_Sign1 that breaks Rapport's profile: wrong header contents, detached
    /// payload, signature length.
    #[error("envelope violates the Rapport profile: {0}")]
    Profile(&'static str),
    /// The envelope bytes are not the one canonical encoding of the message.
    #[error("envelope is not deterministically encoded")]
    NonDeterministic,
    /// The payload was refused.
    #[error(transparent)]
    Payload(#[from] message::Error),
    /// The payload's `from` is not the key that signed it.
    #[error("payload names sender {from} but kid is {kid}")]
    KeyMismatch {
        /// The payload's `from`.
        from: KeyId,
        /// The envelope's kid.
        kid: KeyId,
    },
}

/// A message whose envelope, payload and signature have been checked. It keeps the exact
/// bytes received, so a node forwards and stores them without re-serializing anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    id: MessageId,
    bytes: Arc<[u8]>,
    payload: Payload,
}

impl Message {
    /// Encodes and signs `payload` with `key`. The payload's `from` must be `key`'s public key.
    pub fn seal(payload: Payload, key: &SigningKey) -> Result<Message, Error> {
        let kid = KeyId::from_bytes(key.verifying_key().to_bytes());
        if payload.header.from != kid {
            return Err(Error::KeyMismatch { from: payload.header.from, kid });
        }
        let encoded = payload.encode()?;
        let bytes = cose::sign(protected_header(&kid), coset::Header::default(), encoded, key, &[]);
        Ok(Message { id: MessageId::of(&bytes), bytes: bytes.into(), payload })
    }

    /// Checks envelope bytes completely; see spec §3.5 for the order of checks.
    pub fn open(bytes: &[u8]) -> Result<Message, Error> {
        if bytes.len() > cbor::MAX_MESSAGE_SIZE {
            return Err(Error::TooLarge { size: bytes.len(), max: cbor::MAX_MESSAGE_SIZE });
        }
        let sign1 = cose::parse_sign1(bytes)?;
        cose::check_algorithm(&sign1)?;
        let kid_bytes = &sign1.protected.header.key_id;
        let kid = KeyId::from_slice(kid_bytes).ok_or(Error::Profile("kid must be a 32-byte Ed25519 key"))?;
        let expected = protected_bytes(&kid);
        if sign1.protected.original_data.as_deref() != Some(expected.as_slice()) {
            return Err(Error::Profile("protected header must be exactly {1: -8, 4: kid}"));
        }
        if !sign1.unprotected.is_empty() {
            return Err(Error::Profile("unprotected header must be empty"));
        }
        let Some(payload_bytes) = sign1.payload.as_deref() else {
            return Err(Error::Profile("payload must be embedded"));
        };
        if sign1.signature.len() != 64 {
            return Err(Error::Profile("signature must be 64 bytes"));
        }
        if canonical_envelope(&expected, payload_bytes, &sign1.signature) != bytes {
            return Err(Error::NonDeterministic);
        }
        let key = cose::public_key(kid.as_bytes())?;
        let payload = Payload::decode(payload_bytes)?;
        if payload.header.from != kid {
            return Err(Error::KeyMismatch { from: payload.header.from, kid });
        }
        cose::verify(&sign1, &key, &[])?;
        Ok(Message { id: MessageId::of(bytes), bytes: bytes.into(), payload })
    }

    /// The message id: SHA-256 of [`Self::bytes`].
    pub fn id(&self) -> MessageId {
        self.id
    }

    /// The envelope bytes exactly as signed and sent.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Shared handle to the envelope bytes.
    pub fn bytes_arc(&self) -> Arc<[u8]> {
        self.bytes.clone()
    }

    /// Header and body.
    pub fn payload(&self) -> &Payload {
        &self.payload
    }

    /// The header.
    pub fn header(&self) -> &Header {
        &self.payload.header
    }

    /// The body.
    pub fn body(&self) -> &Body {
        &self.payload.body
    }

    /// The kind.
    pub fn kind(&self) -> Kind {
        self.payload.kind()
    }

    /// The signer, which is also the payload's `from`.
    pub fn signer(&self) -> KeyId {
        self.payload.header.from
    }

    /// The payload bytes inside the envelope.
    pub fn payload_bytes(&self) -> Vec<u8> {
        // The envelope was parsed when the message was made, so this cannot fail.
        cose::parse_sign1(&self.bytes).ok().and_then(|s| s.payload).unwrap_or_default()
    }
}

fn protected_header(kid: &KeyId) -> coset::Header {
    HeaderBuilder::new().algorithm(iana::Algorithm::EdDSA).key_id(kid.as_bytes().to_vec()).build()
}

/// `{1: -8, 4: h'<kid>'}`: a2 01 27 04 58 20 <32 bytes>.
fn protected_bytes(kid: &KeyId) -> Vec<u8> {
    let mut out = Vec::with_capacity(38);
    out.extend_from_slice(&[0xa2, 0x01, 0x27, 0x04, 0x58, 0x20]);
    out.extend_from_slice(kid.as_bytes());
    out
}

/// `18([protected, {}, payload, signature])` in deterministic encoding.
fn canonical_envelope(protected: &[u8], payload: &[u8], signature: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(protected.len() + payload.len() + signature.len() + 16);
    out.extend_from_slice(&[0xd2, 0x84]);
    bstr_header(&mut out, protected.len());
    out.extend_from_slice(protected);
    out.push(0xa0);
    bstr_header(&mut out, payload.len());
    out.extend_from_slice(payload);
    bstr_header(&mut out, signature.len());
    out.extend_from_slice(signature);
    out
}

fn bstr_header(out: &mut Vec<u8>, len: usize) {
    match len {
        0..=23 => out.push(0x40 | len as u8),
        24..=0xff => out.extend_from_slice(&[0x58, len as u8]),
        0x100..=0xffff => {
            out.push(0x59);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        }
        _ => {
            out.push(0x5a);
            out.extend_from_slice(&(len as u32).to_be_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_envelope_matches_coset() {
        let key = SigningKey::from_bytes(&[9; 32]);
        let kid = KeyId::from_bytes(key.verifying_key().to_bytes());
        for len in [0usize, 5, 23, 24, 255, 256, 70_000] {
            let payload = vec![0x41; len];
            let coset_bytes = cose::sign(protected_header(&kid), coset::Header::default(), payload.clone(), &key, &[]);
            let sign1 = cose::parse_sign1(&coset_bytes).unwrap();
            let ours = canonical_envelope(&protected_bytes(&kid), &payload, &sign1.signature);
            assert_eq!(ours, coset_bytes, "payload length {len}");
        }
    }
}
