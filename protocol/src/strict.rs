//! Ed25519 verification under the strict rule of spec §3.3, exactly as
//! `ed25519_dalek::VerifyingKey::verify_strict` decides it, with one field exponentiation
//! fewer.
//!
//! `verify_strict` decompresses `R` (a square root), refuses it if it has small order, computes
//! `R' = [S]B - [k]A` and compresses `R'` (an inversion) to compare it with `R`'s bytes. The
//! decompression is redundant: the comparison already requires `R` to be the canonical encoding
//! of `R'`, and then `R` has small order exactly when `R'` has. So [`verify`] computes `R'`,
//! compares its encoding with `R`, and checks the order of `R'` (three doublings). It accepts
//! exactly what `verify_strict` accepts; the tests below check that on valid signatures and on
//! every class of edge case (small-order and non-canonical `R`, unreduced `S`, small-order and
//! mixed-order keys), and the strict vectors of `spec/vectors/strict/` check it again.

use curve25519_dalek::edwards::EdwardsPoint;
use curve25519_dalek::scalar::Scalar;
use ed25519_dalek::VerifyingKey;
use sha2::{Digest as _, Sha512};

/// Whether `signature` is a strict Ed25519 signature by `key` of the concatenation of
/// `message`'s pieces (given in pieces so that callers need not copy them into one buffer).
pub(crate) fn verify(key: &VerifyingKey, message: &[&[u8]], signature: &[u8; 64]) -> bool {
    let (r, s) = signature.split_at(32);
    // S must be reduced (RFC 8032 §5.1.7 step 1).
    let Ok(s) = <[u8; 32]>::try_from(s) else { return false };
    let Some(s) = Option::<Scalar>::from(Scalar::from_canonical_bytes(s)) else {
        return false;
    };
    // A small-order key is refused whatever the signature.
    if key.is_weak() {
        return false;
    }
    let mut h = Sha512::new();
    h.update(r);
    h.update(key.as_bytes());
    for piece in message {
        h.update(piece);
    }
    let k = Scalar::from_bytes_mod_order_wide(&h.finalize().into());
    let expected = EdwardsPoint::vartime_double_scalar_mul_basepoint(&k, &-key.to_edwards(), &s);
    // `R` must be the canonical encoding of `R'`, which then must not have small order.
    expected.compress().as_bytes() == r && !expected.is_small_order()
}

#[cfg(test)]
mod tests {
    use curve25519_dalek::constants::{ED25519_BASEPOINT_POINT, EIGHT_TORSION};
    use curve25519_dalek::edwards::CompressedEdwardsY;
    use ed25519_dalek::{Signature, Signer as _, SigningKey};
    use proptest::prelude::*;

    use super::*;

    /// Both verifiers' verdicts on one case, which must agree.
    fn agree(key: &VerifyingKey, message: &[u8], signature: &[u8; 64]) -> bool {
        let dalek = key.verify_strict(message, &Signature::from_bytes(signature)).is_ok();
        let ours = verify(key, &[message], signature);
        assert_eq!(ours, dalek, "key {:02x?} signature {:02x?}", key.as_bytes(), signature);
        ours
    }

    /// `R`'s point as `verify_strict` decodes it.
    fn r_point(signature: &[u8; 64]) -> Option<EdwardsPoint> {
        CompressedEdwardsY::from_slice(&signature[..32]).ok()?.decompress()
    }

    /// `s` + l as little-endian bytes: the same scalar, unreduced (it fits, as s < l < 2^253).
    fn plus_l(s: &[u8]) -> [u8; 32] {
        // l - 1 is the scalar -1; the initial carry adds the 1.
        let l_minus_1 = (-Scalar::ONE).to_bytes();
        let mut out = [0u8; 32];
        let mut carry = 1u16;
        for i in 0..32 {
            let sum = u16::from(s[i]) + u16::from(l_minus_1[i]) + carry;
            out[i] = sum as u8;
            carry = sum >> 8;
        }
        assert_eq!(carry, 0);
        out
    }

    /// Every 32-byte string that dalek decodes to a small-order point: the canonical encodings
    /// of the eight torsion points, their unreduced twins (y + p) and their "negative zero"
    /// variants.
    fn small_order_encodings() -> Vec<[u8; 32]> {
        let mut out = Vec::new();
        for t in EIGHT_TORSION {
            let canonical = t.compress().to_bytes();
            out.push(canonical);
            let mut flipped = canonical;
            flipped[31] ^= 0x80;
            out.push(flipped);
        }
        for k in 0..19u8 {
            for sign in [0, 0x80] {
                let mut b = [0xff; 32];
                b[0] = 0xed + k;
                b[31] = 0x7f | sign;
                out.push(b);
            }
        }
        out
    }

    #[test]
    fn agrees_on_valid_signatures_and_their_corruptions() {
        let key = SigningKey::from_bytes(&[7; 32]);
        let message = b"a relationship message".as_slice();
        let signature = key.sign(message).to_bytes();
        assert!(agree(&key.verifying_key(), message, &signature));
        assert!(verify(&key.verifying_key(), &[&message[..2], &message[2..]], &signature), "pieces");
        assert!(!agree(&key.verifying_key(), b"another message", &signature));
        // Unreduced S: the same signature with S + l is refused.
        let mut unreduced = signature;
        unreduced[32..].copy_from_slice(&plus_l(&signature[32..]));
        assert!(!agree(&key.verifying_key(), message, &unreduced));
        // Small-order R, including non-canonical encodings, whatever S.
        for r in small_order_encodings() {
            let mut bad = signature;
            bad[..32].copy_from_slice(&r);
            assert!(!agree(&key.verifying_key(), message, &bad));
        }
    }

    #[test]
    fn agrees_on_small_order_keys() {
        // With a small-order key A and R = [s]B, the equation [s]B = R + [k]A holds whenever
        // [k]A is the identity, which a forger can arrange; strict verification refuses the key.
        let r = Scalar::from_bytes_mod_order([3; 32]);
        let big_r = (ED25519_BASEPOINT_POINT * r).compress().to_bytes();
        let mut signature = [0u8; 64];
        signature[..32].copy_from_slice(&big_r);
        signature[32..].copy_from_slice(r.as_bytes());
        let mut tried = 0;
        for t in EIGHT_TORSION {
            let Ok(key) = VerifyingKey::from_bytes(&t.compress().to_bytes()) else { continue };
            tried += 1;
            for m in 0..16u8 {
                assert!(!agree(&key, &[m], &signature));
            }
        }
        assert_eq!(tried, 8);
    }

    #[test]
    fn agrees_on_mixed_order_keys_and_r() {
        // A = [a]B + T with T of order 8, R = [r]B + T' with T' = -[k]T: the cofactorless
        // equation [S]B = R + [k]A holds with S = r + k·a, and both verifiers accept (neither
        // point has small order). With any other torsion in R both refuse.
        let a = Scalar::from_bytes_mod_order([5; 32]);
        let t = EIGHT_TORSION[1];
        let key = VerifyingKey::from_bytes(&(ED25519_BASEPOINT_POINT * a + t).compress().to_bytes()).unwrap();
        let (mut accepted, mut refused) = (0, 0);
        for i in 0..64u8 {
            let r = Scalar::from_bytes_mod_order([i.wrapping_add(1); 32]);
            for t_r in EIGHT_TORSION {
                let big_r = (ED25519_BASEPOINT_POINT * r + t_r).compress().to_bytes();
                let mut h = Sha512::new();
                h.update(big_r);
                h.update(key.as_bytes());
                h.update([i]);
                let k = Scalar::from_bytes_mod_order_wide(&h.finalize().into());
                let mut signature = [0u8; 64];
                signature[..32].copy_from_slice(&big_r);
                signature[32..].copy_from_slice((r + k * a).as_bytes());
                if agree(&key, &[i], &signature) {
                    accepted += 1;
                    assert_eq!(r_point(&signature).map(|p| p - ED25519_BASEPOINT_POINT * r), Some(-(t * k)));
                } else {
                    refused += 1;
                }
            }
        }
        assert!(accepted > 0 && refused > 0, "accepted {accepted}, refused {refused}");
    }

    proptest! {
        /// On arbitrary bytes, and on valid signatures with one byte changed, the two agree.
        #[test]
        fn agrees_on_arbitrary_input(
            seed in any::<[u8; 32]>(),
            message in proptest::collection::vec(any::<u8>(), 0..200),
            flip in any::<(usize, u8)>(),
            junk in any::<[u8; 32]>(),
        ) {
            let key = SigningKey::from_bytes(&seed);
            let mut signature = key.sign(&message).to_bytes();
            prop_assert!(agree(&key.verifying_key(), &message, &signature));
            signature[flip.0 % 64] ^= flip.1.max(1);
            agree(&key.verifying_key(), &message, &signature);
            // Arbitrary bytes as the key, and as R.
            if let Ok(other) = VerifyingKey::from_bytes(&junk) {
                agree(&other, &message, &signature);
            }
            signature[..32].copy_from_slice(&junk);
            agree(&key.verifying_key(), &message, &signature);
        }
    }
}
