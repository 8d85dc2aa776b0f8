//! COSE_Sign1 with EdDSA over Ed25519 (RFC 9052, RFC 9053 §2.2), verified under the RFC 8032
//! strict rule (spec §3.3): non-canonical `S`, small-order `R` and small-order public keys are
//! rejected, exactly as `ed25519_dalek::VerifyingKey::verify_strict` does (see [`crate::strict`]).
//!
//! This module is generic COSE, used for the envelope and for the COSE working group's
//! examples; [`crate::envelope`] adds Rapport's narrower profile.

use std::cell::RefCell;

use coset::{iana, CborSerializable, CoseSign1, CoseSign1Builder, Header, TaggedCborSerializable};
use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};

use crate::strict;

/// CBOR tag of COSE_Sign1.
pub const TAG_SIGN1: u64 = 18;
/// CBOR tag of COSE_Sign (several signers), which Rapport does not use.
pub const TAG_SIGN: u64 = 98;

/// Why a COSE object or key was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Not a well-formed tagged COSE_Sign1.
    #[error("malformed COSE_Sign1: {0}")]
    Malformed(String),
    /// A COSE structure Rapport does not use (COSE_Sign, COSE_Mac, ...). Rapport's jointly
    /// signed records are separate COSE_Sign1 messages, never one COSE_Sign.
    #[error("unsupported COSE structure: {0}")]
    UnsupportedStructure(&'static str),
    /// The algorithm is not EdDSA (-8).
    #[error("unsupported algorithm: {0}")]
    UnsupportedAlgorithm(String),
    /// The curve is not Ed25519 (for instance Ed448).
    #[error("unsupported curve: {0}")]
    UnsupportedCurve(String),
    /// The public key bytes are not a valid Ed25519 point encoding.
    #[error("invalid Ed25519 public key")]
    InvalidKey,
    /// The public key has small order; strict verification refuses it.
    #[error("small-order (weak) Ed25519 public key")]
    WeakKey,
    /// The signature does not verify under the strict rule.
    #[error("signature does not verify")]
    BadSignature,
}

/// Parses an OKP public key given its COSE curve name (`crv`) and `x` coordinate.
pub fn okp_public_key(crv: &str, x: &[u8]) -> Result<VerifyingKey, Error> {
    match crv {
        "Ed25519" => public_key(x),
        other => Err(Error::UnsupportedCurve(other.to_owned())),
    }
}

/// Parses a 32-byte Ed25519 public key as RFC 8032 §5.1.3 decodes it, and refuses small-order
/// keys.
///
/// curve25519-dalek's decoder is more lenient than RFC 8032: it reduces a `y` ≥ p and ignores
/// the sign bit when `x` = 0. Here an encoding is accepted only if it is the canonical encoding
/// of the point it decodes to, which is exactly the RFC's rule (spec §3.3 step 1).
pub fn public_key(x: &[u8]) -> Result<VerifyingKey, Error> {
    let bytes: [u8; 32] = x.try_into().map_err(|_| Error::InvalidKey)?;
    let key = VerifyingKey::from_bytes(&bytes).map_err(|_| Error::InvalidKey)?;
    if key.to_edwards().compress().to_bytes() != bytes {
        return Err(Error::InvalidKey);
    }
    if key.is_weak() {
        return Err(Error::WeakKey);
    }
    Ok(key)
}

/// How many public keys each thread keeps parsed for [`public_key_cached`].
pub const KEY_CACHE_SIZE: usize = 16;

/// The valid keys most recently parsed on this thread, replaced round-robin.
#[derive(Default)]
struct KeyCache {
    keys: Vec<([u8; 32], VerifyingKey)>,
    next: usize,
}

thread_local! {
    static KEYS: RefCell<KeyCache> = RefCell::new(KeyCache::default());
}

/// [`public_key`], remembering the last [`KEY_CACHE_SIZE`] valid keys parsed on this thread.
///
/// Decompressing a point costs about a tenth of a strict signature check, and a node hears
/// from the same few keys over and over (a log has two). The cache holds only public data and
/// the outcome of a pure function, so the answer is the same with or without it; invalid and
/// weak keys are not cached and are refused afresh each time.
pub(crate) fn public_key_cached(x: &[u8; 32]) -> Result<VerifyingKey, Error> {
    let hit = KEYS.try_with(|cache| {
        let cache = cache.try_borrow().ok()?;
        cache.keys.iter().find(|(bytes, _)| bytes == x).map(|(_, key)| *key)
    });
    if let Ok(Some(key)) = hit {
        return Ok(key);
    }
    let key = public_key(x)?;
    // If the thread is shutting down there is no cache; the key is still valid.
    let _ = KEYS.try_with(|cache| {
        let Ok(mut cache) = cache.try_borrow_mut() else { return };
        let slot = cache.next;
        if slot < cache.keys.len() {
            cache.keys[slot] = (*x, key);
        } else {
            cache.keys.push((*x, key));
        }
        cache.next = (slot + 1) % KEY_CACHE_SIZE;
    });
    Ok(key)
}

/// The COSE_Sign1 Sig_structure (RFC 9052 §4.4) with an empty external AAD, in pieces:
/// `["Signature1", protected, h'', payload]`. `protected_item` and `payload_item` are the two
/// byte strings exactly as they appear in the envelope, heads included, so nothing is
/// re-encoded or copied. Concatenated, equal to [`to_be_signed`] of the same message with `aad`
/// empty.
pub(crate) fn sig_structure<'a>(protected_item: &'a [u8], payload_item: &'a [u8]) -> [&'a [u8]; 4] {
    const CONTEXT: &[u8] = b"\x84\x6aSignature1";
    [CONTEXT, protected_item, &[0x40], payload_item]
}

/// Verifies a raw 64-byte Ed25519 signature over the concatenation of `tbs` under the strict
/// rule.
pub(crate) fn verify_raw(key: &VerifyingKey, tbs: &[&[u8]], signature: &[u8; 64]) -> Result<(), Error> {
    if strict::verify(key, tbs, signature) {
        Ok(())
    } else {
        Err(Error::BadSignature)
    }
}

/// Verifies a raw 64-byte Ed25519 signature of `message` under the strict rule of spec §3.3:
/// the same verdict as `ed25519_dalek::VerifyingKey::verify_strict`, a little faster.
pub fn verify_signature(key: &VerifyingKey, message: &[u8], signature: &[u8; 64]) -> Result<(), Error> {
    verify_raw(key, &[message], signature)
}

/// Parses tagged COSE_Sign1 bytes (no verification).
pub fn parse_sign1(bytes: &[u8]) -> Result<CoseSign1, Error> {
    match bytes {
        [0xd8, 0x62, ..] => return Err(Error::UnsupportedStructure("COSE_Sign (tag 98)")),
        [0xd1, ..] | [0xd0, ..] | [0xd8, 0x61, ..] | [0xd8, 0x60, ..] => {
            return Err(Error::UnsupportedStructure("COSE_Mac or COSE_Encrypt"))
        }
        _ => {}
    }
    CoseSign1::from_tagged_slice(bytes).map_err(|e| Error::Malformed(format!("{e:?}")))
}

/// Checks that the protected header names EdDSA.
pub fn check_algorithm(sign1: &CoseSign1) -> Result<(), Error> {
    match &sign1.protected.header.alg {
        Some(coset::Algorithm::Assigned(iana::Algorithm::EdDSA)) => Ok(()),
        Some(other) => Err(Error::UnsupportedAlgorithm(format!("{other:?}"))),
        None => Err(Error::UnsupportedAlgorithm("none in the protected header".into())),
    }
}

/// Verifies the signature of a parsed COSE_Sign1 with external AAD `aad`, strictly.
pub fn verify(sign1: &CoseSign1, key: &VerifyingKey, aad: &[u8]) -> Result<(), Error> {
    check_algorithm(sign1)?;
    let signature: &[u8; 64] = sign1.signature.as_slice().try_into().map_err(|_| Error::BadSignature)?;
    verify_raw(key, &[&sign1.tbs_data(aad)], signature)
}

/// Parses and verifies tagged COSE_Sign1 bytes, returning the parsed structure.
pub fn verify_bytes(bytes: &[u8], key: &VerifyingKey, aad: &[u8]) -> Result<CoseSign1, Error> {
    let sign1 = parse_sign1(bytes)?;
    verify(&sign1, key, aad)?;
    Ok(sign1)
}

/// Builds and signs a tagged COSE_Sign1. Ed25519 is deterministic, so the same inputs always
/// give the same bytes.
pub fn sign(
    protected: Header,
    unprotected: Header,
    payload: Vec<u8>,
    key: &SigningKey,
    aad: &[u8],
) -> Result<Vec<u8>, Error> {
    let sign1 = CoseSign1Builder::new()
        .protected(protected)
        .unprotected(unprotected)
        .payload(payload)
        .create_signature(aad, |tbs| key.sign(tbs).to_bytes().to_vec())
        .build();
    encode_tagged(sign1)
}

/// Encodes a COSE_Sign1 with its tag.
pub fn encode_tagged(sign1: CoseSign1) -> Result<Vec<u8>, Error> {
    sign1.to_tagged_vec().map_err(|e| Error::Malformed(e.to_string()))
}

/// The Sig_structure ("ToBeSigned") bytes of a COSE_Sign1 (RFC 9052 §4.4).
pub fn to_be_signed(sign1: &CoseSign1, aad: &[u8]) -> Vec<u8> {
    sign1.tbs_data(aad)
}

/// Encodes an untagged structure, for tests that compare intermediate bytes.
pub fn encode_untagged(sign1: CoseSign1) -> Result<Vec<u8>, Error> {
    sign1.to_vec().map_err(|e| Error::Malformed(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The little-endian encoding of `y` = p + `k` (p = 2^255 - 19), sign bit `sign`.
    fn unreduced(k: u8, sign: bool) -> [u8; 32] {
        let mut b = [0xff; 32];
        b[0] = 0xed + k;
        b[31] = 0x7f | if sign { 0x80 } else { 0 };
        b
    }

    #[test]
    fn only_canonical_encodings_are_keys() {
        let mut identity = [0u8; 32];
        identity[0] = 1;
        assert_eq!(public_key(&identity), Err(Error::WeakKey));
        // The identity with the sign bit set (x = 0, "negative zero") and as y = p + 1.
        let mut negative_zero = identity;
        negative_zero[31] |= 0x80;
        assert_eq!(public_key(&negative_zero), Err(Error::InvalidKey));
        assert_eq!(public_key(&unreduced(1, false)), Err(Error::InvalidKey));
        // Every y < 19 that decodes has an unreduced twin y + p, which is refused, whether the
        // point has small order or not; at least one such point has large order.
        let mut large = 0;
        for k in 0..19u8 {
            let mut canonical = [0u8; 32];
            canonical[0] = k;
            match public_key(&canonical) {
                Ok(_) => large += 1,
                Err(Error::WeakKey) => {}
                Err(_) => continue,
            }
            assert_eq!(public_key(&unreduced(k, false)), Err(Error::InvalidKey), "y = p + {k}");
        }
        assert!(large > 0);
        let key = SigningKey::from_bytes(&[7; 32]).verifying_key();
        assert_eq!(public_key(key.as_bytes()), Ok(key));
        assert_eq!(public_key(&key.as_bytes()[1..]), Err(Error::InvalidKey));
    }
}
