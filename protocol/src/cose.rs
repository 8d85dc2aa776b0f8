//! COSE_Sign1 with EdDSA over Ed25519 (RFC 9052, RFC 9053 §2.2), verified under the RFC 8032
//! strict rule (spec §3.3): non-canonical `S`, small-order `R` and small-order public keys are
//! rejected, as `ed25519_dalek::VerifyingKey::verify_strict` does.
//!
//! This module is generic COSE, used for the envelope and for the COSE working group's
//! examples; [`crate::envelope`] adds Rapport's narrower profile.

use coset::{iana, CborSerializable, CoseSign1, CoseSign1Builder, Header, TaggedCborSerializable};
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};

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

/// Parses a 32-byte Ed25519 public key and refuses small-order keys.
pub fn public_key(x: &[u8]) -> Result<VerifyingKey, Error> {
    let bytes: [u8; 32] = x.try_into().map_err(|_| Error::InvalidKey)?;
    let key = VerifyingKey::from_bytes(&bytes).map_err(|_| Error::InvalidKey)?;
    if key.is_weak() {
        return Err(Error::WeakKey);
    }
    Ok(key)
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
    let sig = Signature::from_slice(&sign1.signature).map_err(|_| Error::BadSignature)?;
    key.verify_strict(&sign1.tbs_data(aad), &sig).map_err(|_| Error::BadSignature)
}

/// Parses and verifies tagged COSE_Sign1 bytes, returning the parsed structure.
pub fn verify_bytes(bytes: &[u8], key: &VerifyingKey, aad: &[u8]) -> Result<CoseSign1, Error> {
    let sign1 = parse_sign1(bytes)?;
    verify(&sign1, key, aad)?;
    Ok(sign1)
}

/// Builds and signs a tagged COSE_Sign1. Ed25519 is deterministic, so the same inputs always
/// give the same bytes.
pub fn sign(protected: Header, unprotected: Header, payload: Vec<u8>, key: &SigningKey, aad: &[u8]) -> Vec<u8> {
    let sign1 = CoseSign1Builder::new()
        .protected(protected)
        .unprotected(unprotected)
        .payload(payload)
        .create_signature(aad, |tbs| key.sign(tbs).to_bytes().to_vec())
        .build();
    encode_tagged(sign1)
}

/// Encodes a COSE_Sign1 with its tag.
pub fn encode_tagged(sign1: CoseSign1) -> Vec<u8> {
    // A CoseSign1 built from bytes or a builder always encodes; the fallback is unreachable.
    sign1.to_tagged_vec().unwrap_or_default()
}

/// The Sig_structure ("ToBeSigned") bytes of a COSE_Sign1 (RFC 9052 §4.4).
pub fn to_be_signed(sign1: &CoseSign1, aad: &[u8]) -> Vec<u8> {
    sign1.tbs_data(aad)
}

/// Encodes an untagged structure, for tests that compare intermediate bytes.
pub fn encode_untagged(sign1: CoseSign1) -> Vec<u8> {
    sign1.to_vec().unwrap_or_default()
}
