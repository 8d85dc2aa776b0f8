//! Envelopes and signatures built by hand, byte by byte, independently of the protocol crate:
//! the generator uses these to make defective vectors, and the tests use them to check the
//! protocol crate's output against a second construction.

use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::scalar::Scalar;
use ed25519_dalek::{Signer as _, SigningKey};
use sha2::{Digest as _, Sha512};

/// A CBOR head: major type and argument, in shortest form.
pub fn head(major: u8, n: u64) -> Vec<u8> {
    let m = major << 5;
    match n {
        0..=23 => vec![m | n as u8],
        24..=0xff => vec![m | 24, n as u8],
        0x100..=0xffff => [&[m | 25][..], &(n as u16).to_be_bytes()].concat(),
        0x1_0000..=0xffff_ffff => [&[m | 26][..], &(n as u32).to_be_bytes()].concat(),
        _ => [&[m | 27][..], &n.to_be_bytes()].concat(),
    }
}

/// A byte string item.
pub fn bstr(bytes: &[u8]) -> Vec<u8> {
    [head(2, bytes.len() as u64), bytes.to_vec()].concat()
}

/// The protected header of the profile: `{1: -8, 4: kid}`.
pub fn protected(kid: &[u8]) -> Vec<u8> {
    [&[0xa2, 0x01, 0x27, 0x04][..], &bstr(kid)].concat()
}

/// The COSE_Sign1 Sig_structure with an empty external AAD (RFC 9052 §4.4).
pub fn sig_structure(protected: &[u8], payload: &[u8]) -> Vec<u8> {
    [&[0x84, 0x6a][..], b"Signature1", &bstr(protected), &[0x40], &bstr(payload)].concat()
}

/// A tagged COSE_Sign1 with an empty unprotected header.
pub fn envelope(protected: &[u8], payload: &[u8], signature: &[u8]) -> Vec<u8> {
    [&[0xd2, 0x84][..], &bstr(protected), &[0xa0], &bstr(payload), &bstr(signature)].concat()
}

/// The envelope of the profile around any payload bytes, correctly signed by `key`.
pub fn sign(key: &SigningKey, payload: &[u8]) -> Vec<u8> {
    let p = protected(key.verifying_key().as_bytes());
    let signature = key.sign(&sig_structure(&p, payload));
    envelope(&p, payload, &signature.to_bytes())
}

/// `k` = SHA-512(R ‖ A ‖ M) mod L (RFC 8032 §5.1.7), over the bytes as given.
pub fn challenge(r: &[u8; 32], a: &[u8; 32], message: &[u8]) -> Scalar {
    let mut h = Sha512::new();
    h.update(r);
    h.update(a);
    h.update(message);
    Scalar::from_bytes_mod_order_wide(&h.finalize().into())
}

/// A scalar from a label, for keys and nonces nobody else will hold.
pub fn scalar(label: &str) -> Scalar {
    Scalar::from_bytes_mod_order_wide(&Sha512::digest(format!("rapport-vectors:scalar:{label}").as_bytes()).into())
}

/// A signature `(R, S)` as 64 bytes.
pub fn signature(r: &[u8; 32], s: &[u8; 32]) -> [u8; 64] {
    let mut out = [0; 64];
    out[..32].copy_from_slice(r);
    out[32..].copy_from_slice(s);
    out
}

/// `S` + L as 32 little-endian bytes: the same scalar, not reduced.
pub fn add_order(s: &[u8; 32]) -> [u8; 32] {
    // L = 2^252 + 27742317777372353535851937790883648493, little-endian.
    const L: [u8; 32] = [
        0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14, 0, 0, 0, 0, 0,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
    ];
    let mut out = [0; 32];
    let mut carry = 0u16;
    for i in 0..32 {
        let sum = u16::from(s[i]) + u16::from(L[i]) + carry;
        out[i] = sum as u8;
        carry = sum >> 8;
    }
    out
}

/// The encoding of `y` = p + `k` (p = 2^255 − 19): a non-canonical encoding of the point
/// whose canonical encoding has `y` = `k`, when there is one.
pub fn unreduced_y(k: u8) -> [u8; 32] {
    let mut b = [0xff; 32];
    b[0] = 0xed + k;
    b[31] = 0x7f;
    b
}

/// The canonical encoding of the point with `y` = `k` and `x` even, if it is on the curve.
pub fn small_y(k: u8) -> Option<EdwardsPoint> {
    let mut b = [0; 32];
    b[0] = k;
    CompressedEdwardsY(b).decompress()
}

/// The content type of an export seal (spec/node.md §7.2).
pub const SEAL_CONTENT_TYPE: &str = "application/vnd.rapport.export-seal+cbor";

/// The protected header of an export seal: `{1: -8, 3: SEAL_CONTENT_TYPE, 4: kid}`.
pub fn seal_protected(kid: &[u8]) -> Vec<u8> {
    let ct = SEAL_CONTENT_TYPE.as_bytes();
    [&[0xa3, 0x01, 0x27, 0x03][..], &head(3, ct.len() as u64), ct, &[0x04], &bstr(kid)].concat()
}

/// An export seal around any payload bytes, signed by `key` but naming `kid` in its header.
pub fn sign_seal(key: &SigningKey, kid: &[u8], payload: &[u8]) -> Vec<u8> {
    let p = seal_protected(kid);
    let signature = key.sign(&sig_structure(&p, payload));
    envelope(&p, payload, &signature.to_bytes())
}
