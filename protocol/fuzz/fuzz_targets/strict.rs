//! Differential: Rapport's strict Ed25519 verification (`cose::verify_signature`, which runs
//! `src/strict.rs`) against `ed25519_dalek::VerifyingKey::verify_strict`, the rule spec §3.3
//! names. Any (key, message, signature) on which they disagree is a crash.
//!
//! Random triples almost never verify, so most inputs are built: the first byte picks how.
//! - `0`: raw: key (32 bytes), signature (64), message (the rest).
//! - otherwise: an honest signature by the key whose seed is the next 32 bytes, of the message
//!   after them, then bent by the bits of the first byte, each an edge case of the strict rule:
//!   bit 0 replaces `R` with a small-order point (which one: the next byte), bit 1 adds the
//!   group order to `S` (unreduced), bit 2 adds a small-order point to the key (mixed order),
//!   bit 3 replaces the key with a small-order point, bit 4 writes `R` non-canonically
//!   (`y` + p, or the sign bit on `x` = 0), bit 5 writes the key non-canonically, bit 6 flips
//!   one bit of the message, bit 7 re-signs so that `R` and `S` match the bent key.
#![no_main]

use curve25519_dalek::constants::EIGHT_TORSION;
use curve25519_dalek::edwards::CompressedEdwardsY;
use curve25519_dalek::scalar::Scalar;
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use libfuzzer_sys::fuzz_target;
use rapport_protocol::cose;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    if mode == 0 {
        if rest.len() < 96 {
            return;
        }
        let key: [u8; 32] = rest[..32].try_into().unwrap();
        let signature: [u8; 64] = rest[32..96].try_into().unwrap();
        compare(&key, &rest[96..], &signature);
        return;
    }
    if rest.len() < 33 {
        return;
    }
    let seed: [u8; 32] = rest[..32].try_into().unwrap();
    let pick = usize::from(rest[32]);
    let mut message = rest[33..].to_vec();
    let signer = SigningKey::from_bytes(&seed);
    let mut signature = signer.sign(&message).to_bytes();
    let mut key = signer.verifying_key().to_bytes();
    let torsion = EIGHT_TORSION[pick % 8];

    if mode & 1 != 0 {
        signature[..32].copy_from_slice(torsion.compress().as_bytes());
    }
    if mode & 2 != 0 {
        let s: [u8; 32] = signature[32..].try_into().unwrap();
        signature[32..].copy_from_slice(&plus_l(&s));
    }
    if mode & 4 != 0 {
        if let Some(a) = CompressedEdwardsY(key).decompress() {
            key = (a + torsion).compress().to_bytes();
        }
    }
    if mode & 8 != 0 {
        key = torsion.compress().to_bytes();
    }
    if mode & 16 != 0 {
        let r: [u8; 32] = signature[..32].try_into().unwrap();
        signature[..32].copy_from_slice(&non_canonical(&r, pick));
    }
    if mode & 32 != 0 {
        key = non_canonical(&key, pick);
    }
    if mode & 64 != 0 && !message.is_empty() {
        let at = pick % message.len();
        message[at] ^= 1 << (pick % 8);
    }
    if mode & 128 != 0 {
        // A signature whose challenge hashes the bent key: S = r + k·a over R = [r]B, with the
        // honest secret scalar a, so that a mixed-order or non-canonical key meets a
        // signature made for its bytes.
        let a = signer.to_scalar();
        // The nonce as RFC 8032 would derive it, from the seed and the message: never 0 in
        // practice (an `R` of the identity is refused by the strict rule, rightly).
        let r = {
            use sha2::{Digest as _, Sha512};
            Scalar::from_bytes_mod_order_wide(&Sha512::new().chain_update(seed).chain_update(&message).finalize().into())
        };
        let big_r = curve25519_dalek::EdwardsPoint::mul_base(&r).compress();
        let k = challenge(big_r.as_bytes(), &key, &message);
        let s = r + k * a;
        signature[..32].copy_from_slice(big_r.as_bytes());
        signature[32..].copy_from_slice(s.as_bytes());
    }
    let accepted = compare(&key, &message, &signature);
    if mode & 0x7f == 0 {
        assert!(accepted, "an honest signature (re-signed or not) was refused: seed {seed:02x?}");
    }
});

/// Both verdicts on one triple, which must agree; returns dalek's. A key that does not decode
/// at all is refused by both sides (`cose::public_key` decodes with the same decompression,
/// then refuses more).
fn compare(key: &[u8; 32], message: &[u8], signature: &[u8; 64]) -> bool {
    let Ok(vk) = VerifyingKey::from_bytes(key) else {
        assert!(cose::public_key(key).is_err(), "a key dalek cannot decode was accepted: {key:02x?}");
        return false;
    };
    let dalek = vk.verify_strict(message, &Signature::from_bytes(signature)).is_ok();
    let ours = cose::verify_signature(&vk, message, signature).is_ok();
    assert_eq!(ours, dalek, "key {key:02x?} signature {signature:02x?} message {message:02x?}");
    // What a node accepts on the wire: a canonical, non-weak key and a strict signature. Such a
    // key is always one dalek decodes, and its signature verdict is dalek's.
    if let Ok(parsed) = cose::public_key(key) {
        assert_eq!(parsed.as_bytes(), key);
        assert_eq!(cose::verify_signature(&parsed, message, signature).is_ok(), dalek);
    }
    dalek
}

/// SHA-512(R ‖ A ‖ M) reduced: the challenge of RFC 8032 §5.1.7.
fn challenge(r: &[u8; 32], key: &[u8; 32], message: &[u8]) -> Scalar {
    use sha2::{Digest as _, Sha512};
    let mut h = Sha512::new();
    h.update(r);
    h.update(key);
    h.update(message);
    Scalar::from_bytes_mod_order_wide(&h.finalize().into())
}

/// `s` + ℓ, little-endian: the same scalar, unreduced (it fits: s < ℓ < 2^253).
fn plus_l(s: &[u8; 32]) -> [u8; 32] {
    let l_minus_1 = (-Scalar::ONE).to_bytes();
    let mut out = [0u8; 32];
    let mut carry = 1u16;
    for i in 0..32 {
        let sum = u16::from(s[i]) + u16::from(l_minus_1[i]) + carry;
        out[i] = sum as u8;
        carry = sum >> 8;
    }
    out
}

/// A non-canonical encoding of the point `bytes` encodes, where one exists: `y` + p when
/// `y` < 19 (so that the sum is below 2^255), or the sign bit set when `x` = 0 (`y` = ±1).
/// Otherwise, `y` + p written anyway for a small `y` chosen by `pick`, which may decode to a
/// point or not: either way both verifiers must agree.
fn non_canonical(bytes: &[u8; 32], pick: usize) -> [u8; 32] {
    let sign = bytes[31] & 0x80;
    let mut y = *bytes;
    y[31] &= 0x7f;
    let small = y[1..].iter().all(|&b| b == 0) && y[0] < 19;
    let y0 = if small { y[0] } else { (pick % 19) as u8 };
    if small && (y0 == 1) && pick % 2 == 0 {
        // x = 0 here: setting the sign bit is the "negative zero" encoding.
        let mut out = *bytes;
        out[31] |= 0x80;
        return out;
    }
    // p = 2^255 - 19, so p + y0 = 0x7fff…ff(ed + y0) little-endian, for y0 < 19.
    let mut out = [0xffu8; 32];
    out[0] = 0xed + y0;
    out[31] = 0x7f | sign;
    out
}
