//! `strict/`: signatures and keys at the edges of strict Ed25519 verification (spec §3.3):
//! small-order and mixed-order keys, non-canonical scalars and points.

use super::*;

/// A public intent from `from`, made different by `nonce`, as payload bytes.
pub(super) fn intent_payload(from: &[u8; 32], nonce: u32) -> Vec<u8> {
    let mut body = intent();
    if let Body::Intent(i) = &mut body {
        i.description = format!("Edge-case vector, attempt {nonce}.");
    }
    Payload { header: Header::public(KeyId::from_bytes(*from), T0), body }.encode().unwrap()
}

/// Signs `payload` under the kid `a` with secret scalar `secret` (so that `a` may be any
/// point, including a mixed-order one) and nonce `r`: S = r + k·secret.
pub(super) fn sign_as(
    a: &[u8; 32],
    secret: &curve25519_dalek::Scalar,
    r: &curve25519_dalek::Scalar,
    payload: &[u8],
) -> (Vec<u8>, curve25519_dalek::Scalar) {
    let protected = raw::protected(a);
    let tbs = raw::sig_structure(&protected, payload);
    let big_r = EdwardsPoint::mul_base(r).compress().to_bytes();
    let k = raw::challenge(&big_r, a, &tbs);
    let s = r + k * secret;
    (raw::envelope(&protected, payload, &raw::signature(&big_r, &s.to_bytes())), k)
}

pub(super) fn strict(out: &mut Out, cast: &Cast) {
    let strict = |out: &mut Out, item: Item, code: Option<Code>| out.single("strict", item, code);
    let identity = EdwardsPoint::default().compress().to_bytes();
    let zero = [0u8; 32];

    // Small-order keys: accepted by ZIP-215 (8·S·B = 8·R + 8·k·A holds with S = 0), refused here.
    let payload = intent_payload(&identity, 0);
    strict(
        out,
        Item::raw(
            "weak-key-identity",
            "kid is the identity point (order 1), R is the identity and S = 0: ZIP-215 accepts; strict verification refuses the small-order key.",
            raw::envelope(&raw::protected(&identity), &payload, &raw::signature(&identity, &zero)),
            &identity,
            Some(&payload),
        ),
        Some(Code::WeakKey),
    );
    let order8 = EIGHT_TORSION[1].compress().to_bytes();
    let payload = intent_payload(&order8, 0);
    strict(
        out,
        Item::raw(
            "weak-key-order-8",
            "kid is a point of order 8, R is the identity and S = 0: ZIP-215 accepts; strict verification refuses the small-order key.",
            raw::envelope(&raw::protected(&order8), &payload, &raw::signature(&identity, &zero)),
            &order8,
            Some(&payload),
        ),
        Some(Code::WeakKey),
    );

    // Non-canonical key encodings.
    let mut negative_zero = identity;
    negative_zero[31] |= 0x80;
    let payload = intent_payload(&negative_zero, 0);
    strict(
        out,
        Item::raw(
            "invalid-key-negative-zero",
            "kid is the identity with the sign bit set (x = 0 written as \"-0\"): RFC 8032 decoding fails; lenient decoders read the identity.",
            raw::envelope(&raw::protected(&negative_zero), &payload, &raw::signature(&identity, &zero)),
            &negative_zero,
            Some(&payload),
        ),
        Some(Code::InvalidKey),
    );
    let k = (0..19u8).find(|k| raw::small_y(*k).is_some_and(|p| !p.is_small_order())).unwrap();
    let unreduced = raw::unreduced_y(k);
    let payload = intent_payload(&unreduced, 0);
    strict(
        out,
        Item::raw(
            "invalid-key-unreduced-y",
            &format!("kid encodes y = p + {k} (not reduced mod p) for a point of large order: RFC 8032 decoding fails; lenient decoders reduce y."),
            raw::envelope(&raw::protected(&unreduced), &payload, &[0x22; 64]),
            &unreduced,
            Some(&payload),
        ),
        Some(Code::InvalidKey),
    );

    // Signatures from a real key, bent.
    let key = &cast.customer;
    let a = *key.verifying_key().as_bytes();
    let m = cast.seal(Header::public(KeyId::from_bytes(a), T0), intent());
    let good = m.bytes().to_vec();
    let payload = m.payload_bytes();
    let sig: [u8; 64] = good[good.len() - 64..].try_into().unwrap();
    let (r, s) = sig.split_at(32);
    let s_plus_l = raw::add_order(s.try_into().unwrap());
    let bent = raw::envelope(&raw::protected(&a), &payload, &raw::signature(r.try_into().unwrap(), &s_plus_l));
    strict(
        out,
        Item::raw(
            "non-canonical-s",
            "A valid signature with S replaced by S + L (same value mod L): refused as malleable.",
            bent,
            &a,
            Some(&payload),
        ),
        Some(Code::BadSignature),
    );

    // A key whose secret scalar we hold, for hand-made signatures.
    let secret = raw::scalar("strict-key");
    let big_a = EdwardsPoint::mul_base(&secret);
    let a = big_a.compress().to_bytes();
    let payload = intent_payload(&a, 0);
    let protected = raw::protected(&a);
    let tbs = raw::sig_structure(&protected, &payload);
    let k = raw::challenge(&identity, &a, &tbs);
    let s = k * secret;
    strict(
        out,
        Item::raw(
            "small-order-r",
            "R is the identity and S = k·a, so [S]B − [k]A = R holds exactly (cofactorless and cofactored); strict verification refuses a small-order R.",
            raw::envelope(&protected, &payload, &raw::signature(&identity, &s.to_bytes())),
            &a,
            Some(&payload),
        ),
        Some(Code::BadSignature),
    );
    let unreduced_identity = raw::unreduced_y(1);
    let k = raw::challenge(&unreduced_identity, &a, &tbs);
    let s = k * secret;
    strict(
        out,
        Item::raw(
            "non-canonical-r",
            "R is the identity written as y = p + 1, with S = k·a: ZIP-215 accepts; strict verification refuses (small order, and not the canonical encoding of [S]B − [k]A).",
            raw::envelope(&protected, &payload, &raw::signature(&unreduced_identity, &s.to_bytes())),
            &a,
            Some(&payload),
        ),
        Some(Code::BadSignature),
    );

    // A mixed-order key A = a·B + T, T of order 8. An honest-looking signature S = r + k·a
    // satisfies [S]B − [k]A = R − [k]T: the cofactorless equation holds exactly when k·T = 0
    // (k ≡ 0 mod 8); the cofactored equation of ZIP-215 always holds.
    let mixed = (big_a + EIGHT_TORSION[1]).compress().to_bytes();
    let mut found = (None, None);
    for nonce in 0u32.. {
        let payload = intent_payload(&mixed, nonce);
        let (envelope, k) = sign_as(&mixed, &secret, &raw::scalar(&format!("strict-nonce-{nonce}")), &payload);
        let holds = (EIGHT_TORSION[1] * k).is_identity();
        match (holds, &found) {
            (true, (None, _)) => found.0 = Some((envelope, payload)),
            (false, (_, None)) => found.1 = Some((envelope, payload)),
            _ => {}
        }
        if let (Some(_), Some(_)) = found {
            break;
        }
    }
    let (Some((accepted, accepted_payload)), Some((refused, refused_payload))) = found else { unreachable!() };
    strict(
        out,
        Item::raw(
            "mixed-order-key-accepted",
            "kid is a·B + T with T of order 8 (mixed order, not small): such keys are allowed, and this signature satisfies the cofactorless equation because k ≡ 0 mod 8.",
            accepted,
            &mixed,
            Some(&accepted_payload),
        ),
        None,
    );
    strict(
        out,
        Item::raw(
            "mixed-order-key-refused",
            "The same mixed-order key, a signature whose k is not ≡ 0 mod 8: ZIP-215's cofactored equation holds, the strict cofactorless one does not.",
            refused,
            &mixed,
            Some(&refused_payload),
        ),
        Some(Code::BadSignature),
    );
}
