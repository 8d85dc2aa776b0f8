//! `invalid/`: envelopes and payloads broken one way each (spec §3–§5), each judged by
//! `Message::open` with the code of the first check it fails.

use super::*;

/// A payload's CBOR value, to be edited.
pub(super) fn value_of(m: &Message) -> Value {
    ciborium::from_reader(m.payload_bytes().as_slice()).unwrap()
}

pub(super) fn canonical(v: &Value) -> Vec<u8> {
    cbor::to_canonical_vec(v).unwrap()
}

/// Encodes `v` as it stands, without sorting map keys.
pub(super) fn as_is(v: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    ciborium::into_writer(v, &mut out).unwrap();
    out
}

pub(super) fn entries(v: &mut Value) -> &mut Vec<(Value, Value)> {
    match v {
        Value::Map(entries) => entries,
        _ => panic!("not a map"),
    }
}

pub(super) fn field<'v>(v: &'v mut Value, key: &str) -> &'v mut Value {
    entries(v).iter_mut().find(|(k, _)| k.as_text() == Some(key)).map(|(_, v)| v).unwrap()
}

pub(super) fn without(mut v: Value, key: &str) -> Value {
    entries(&mut v).retain(|(k, _)| k.as_text() != Some(key));
    v
}

pub(super) fn with(mut v: Value, key: &str, value: Value) -> Value {
    let e = entries(&mut v);
    e.retain(|(k, _)| k.as_text() != Some(key));
    e.push((Value::Text(key.into()), value));
    v
}

/// Replaces the first occurrence of `from` in `bytes` with `to`.
pub(super) fn splice(bytes: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let at = bytes.windows(from.len()).position(|w| w == from).expect("the pattern occurs");
    [&bytes[..at], to, &bytes[at + from.len()..]].concat()
}

pub(super) fn invalid(out: &mut Out, cast: &Cast, w: &Walk<'_>) {
    let vendor = &cast.vendor;
    let v_kid = *kid(vendor).as_bytes();
    let offer = w.message("offer");
    let offer_payload = offer.payload_bytes();
    let good = offer.bytes().to_vec();
    let single = |out: &mut Out, item: Item, code: Code| out.single("invalid", item, Some(code));

    // Signatures and keys.
    let mut flipped = good.clone();
    *flipped.last_mut().unwrap() ^= 0x01;
    single(
        out,
        Item::raw("bad-signature", "The last byte of the signature is changed.", flipped, &v_kid, Some(&offer_payload)),
        Code::BadSignature,
    );
    let tampered_payload = splice(&offer_payload, b"Twelve panels", b"Twenty panels");
    let tampered = raw::envelope(&raw::protected(&v_kid), &tampered_payload, &good[good.len() - 64..]);
    single(
        out,
        Item::raw(
            "bad-signature-tampered-payload",
            "The payload is changed (\"Twelve\" to \"Twenty\") under the original signature; it is still a valid payload.",
            tampered,
            &v_kid,
            Some(&tampered_payload),
        ),
        Code::BadSignature,
    );
    let as_customer = Payload { header: Header::public(kid(&cast.customer), T0), body: intent() }.encode().unwrap();
    single(
        out,
        Item::signed(
            "wrong-key",
            "The payload's `from` is the customer, but the vendor's key signed it (kid = vendor): kid ≠ from.",
            vendor,
            &as_customer,
        ),
        Code::WrongKey,
    );
    let not_a_point = (0u8..=255).find(|k| raw::small_y(*k).is_none()).map(raw_y).unwrap();
    let forged = payload_from(w, &not_a_point);
    single(
        out,
        Item::raw(
            "invalid-key",
            "The kid (and `from`) is 32 bytes that decode to no curve point.",
            raw::envelope(&raw::protected(&not_a_point), &forged, &[0x55; 64]),
            &not_a_point,
            Some(&forged),
        ),
        Code::InvalidKey,
    );

    // Envelope structure.
    single(
        out,
        Item::raw(
            "malformed-truncated",
            "The envelope is cut 10 bytes short.",
            good[..good.len() - 10].to_vec(),
            &v_kid,
            None,
        ),
        Code::Malformed,
    );
    single(
        out,
        Item::raw(
            "malformed-trailing-bytes",
            "A zero byte follows the envelope: more than one CBOR data item.",
            [good.as_slice(), &[0x00]].concat(),
            &v_kid,
            Some(&offer_payload),
        ),
        Code::Malformed,
    );
    single(
        out,
        Item::raw(
            "malformed-untagged",
            "The COSE_Sign1 array without its tag 18.",
            good[1..].to_vec(),
            &v_kid,
            Some(&offer_payload),
        ),
        Code::Malformed,
    );
    single(
        out,
        Item::raw("malformed-not-cbor", "Text, not CBOR.", b"hello, vendor".to_vec(), &v_kid, None),
        Code::Malformed,
    );
    let short_kid = [&[0xa2, 0x01, 0x27, 0x04][..], &raw::bstr(&v_kid[..31])].concat();
    single(
        out,
        Item::raw(
            "malformed-short-kid",
            "The kid is 31 bytes.",
            raw::envelope(&short_kid, &offer_payload, &good[good.len() - 64..]),
            &v_kid,
            Some(&offer_payload),
        ),
        Code::Malformed,
    );
    let extra = [&[0xa3, 0x01, 0x27, 0x03, 0x00, 0x04][..], &raw::bstr(&v_kid)].concat();
    single(
        out,
        Item::signed_with_protected(
            "malformed-extra-header",
            "The protected header also carries a content type (label 3), which the profile forbids.",
            vendor,
            &extra,
            &offer_payload,
        ),
        Code::Malformed,
    );
    let mut with_unprotected = raw::envelope(&raw::protected(&v_kid), &offer_payload, &good[good.len() - 64..]);
    let at = 2 + 40;
    with_unprotected.splice(at..at + 1, [0xa1, 0x04, 0x42, 0x31, 0x31]);
    single(
        out,
        Item::raw(
            "malformed-unprotected-header",
            "The unprotected header carries a kid; it must be empty.",
            with_unprotected,
            &v_kid,
            Some(&offer_payload),
        ),
        Code::Malformed,
    );
    let detached =
        [&[0xd2, 0x84][..], &raw::bstr(&raw::protected(&v_kid)), &[0xa0, 0xf6], &raw::bstr(&[0x11; 64])].concat();
    single(
        out,
        Item::raw("malformed-detached-payload", "The payload is detached (nil).", detached, &v_kid, None),
        Code::Malformed,
    );
    let short_sig = raw::envelope(&raw::protected(&v_kid), &offer_payload, &good[good.len() - 64..good.len() - 1]);
    single(
        out,
        Item::raw("malformed-short-signature", "The signature is 63 bytes.", short_sig, &v_kid, Some(&offer_payload)),
        Code::Malformed,
    );
    single(
        out,
        Item::signed("malformed-payload", "The signed payload is not CBOR.", vendor, b"\xff\xfe not cbor"),
        Code::Malformed,
    );
    let es256 = [&[0xa2, 0x01, 0x26, 0x04][..], &raw::bstr(&v_kid)].concat();
    single(
        out,
        Item::signed_with_protected(
            "unsupported-algorithm",
            "The protected header names ES256 (-7), not EdDSA (-8).",
            vendor,
            &es256,
            &offer_payload,
        ),
        Code::UnsupportedAlgorithm,
    );
    let cose_sign = [
        &[0xd8, 0x62, 0x84, 0x40, 0xa0][..],
        &raw::bstr(&offer_payload),
        &[0x81, 0x83],
        &raw::bstr(&raw::protected(&v_kid)),
        &[0xa0],
        &raw::bstr(&good[good.len() - 64..]),
    ]
    .concat();
    single(
        out,
        Item::raw(
            "unsupported-structure",
            "A COSE_Sign (tag 98) with one signer; Rapport uses only COSE_Sign1.",
            cose_sign,
            &v_kid,
            Some(&offer_payload),
        ),
        Code::UnsupportedStructure,
    );
    let big = "x".repeat(cbor::MAX_MESSAGE_SIZE);
    let mut big_offer = value_of(offer);
    *field(field(&mut big_offer, "body"), "description") = Value::Text(big);
    let big_payload = canonical(&big_offer);
    single(
        out,
        Item::signed(
            "too-large",
            "A 64 KiB description makes the envelope larger than 65 536 bytes.",
            vendor,
            &big_payload,
        ),
        Code::TooLarge,
    );

    // Determinism.
    let long_len = [
        &[0xd2, 0x84][..],
        &raw::bstr(&raw::protected(&v_kid)),
        &[0xa0, 0x5a],
        &(offer_payload.len() as u32).to_be_bytes(),
        &offer_payload,
        &raw::bstr(&good[good.len() - 64..]),
    ]
    .concat();
    single(
        out,
        Item::raw(
            "non-deterministic-envelope-length",
            "The payload's length is written in 4 bytes where 2 suffice; the signature is valid.",
            long_len,
            &v_kid,
            Some(&offer_payload),
        ),
        Code::NonDeterministic,
    );
    let long_tag = [&[0xd8, 0x12][..], &good[1..]].concat();
    single(
        out,
        Item::raw(
            "non-deterministic-tag",
            "Tag 18 written in two bytes (d8 12) instead of one (d2).",
            long_tag,
            &v_kid,
            Some(&offer_payload),
        ),
        Code::NonDeterministic,
    );
    let mut reordered = value_of(offer);
    entries(&mut reordered).reverse();
    single(
        out,
        Item::signed(
            "non-deterministic-key-order",
            "The payload's map keys are in reverse order; correctly signed.",
            vendor,
            &as_is(&reordered),
        ),
        Code::NonDeterministic,
    );
    single(
        out,
        Item::signed(
            "non-deterministic-integer",
            "The payload's `seq` 1 is written in two bytes (18 01); correctly signed.",
            vendor,
            &splice(&offer_payload, b"cseq\x01", b"cseq\x18\x01"),
        ),
        Code::NonDeterministic,
    );
    let mut indefinite = offer_payload.clone();
    indefinite[0] = 0xbf;
    indefinite.push(0xff);
    single(
        out,
        Item::signed(
            "non-deterministic-indefinite-length",
            "The payload's top-level map has indefinite length; correctly signed.",
            vendor,
            &indefinite,
        ),
        Code::NonDeterministic,
    );
    let mut undefined = value_of(offer);
    *field(field(&mut undefined, "body"), "title") = Value::Null;
    single(
        out,
        Item::signed(
            "non-deterministic-undefined",
            "The title is `undefined` (f7), which a deterministic encoder never writes for any value of the schema.",
            vendor,
            &splice(&canonical(&undefined), b"etitle\xf6", b"etitle\xf7"),
        ),
        Code::NonDeterministic,
    );

    // The payload: depth, version, kind, schema.
    let mut deep = Value::Array(vec![]);
    for _ in 0..20 {
        deep = Value::Array(vec![deep]);
    }
    single(
        out,
        Item::signed(
            "too-deep",
            "An extra header field nests 21 arrays: deeper than the limit of 16.",
            vendor,
            &canonical(&with(value_of(offer), "x", deep)),
        ),
        Code::TooDeep,
    );
    single(
        out,
        Item::signed(
            "unsupported-version",
            "The payload says `v: 2`.",
            vendor,
            &canonical(&with(value_of(offer), "v", Value::Integer(2.into()))),
        ),
        Code::UnsupportedVersion,
    );
    single(
        out,
        Item::signed(
            "unknown-kind",
            "The kind is `gift`, which version 1 does not define.",
            vendor,
            &canonical(&with(value_of(offer), "kind", Value::Text("gift".into()))),
        ),
        Code::UnknownKind,
    );
    let schema: Vec<(&str, &str, Value)> = vec![
        ("schema-violation-missing-field", "The offer's body has no `title`.", {
            let mut v = value_of(offer);
            let body = field(&mut v, "body").clone();
            *field(&mut v, "body") = without(body, "title");
            v
        }),
        ("schema-violation-unknown-field", "The header has an unknown key `color`.", {
            with(value_of(offer), "color", Value::Text("blue".into()))
        }),
        ("schema-violation-wrong-type", "`seq` is a text string.", {
            with(value_of(offer), "seq", Value::Text("1".into()))
        }),
        ("schema-violation-null", "`re` is null; optional fields are left out, never null.", {
            with(value_of(offer), "re", Value::Null)
        }),
        ("schema-violation-float", "`at` is a floating-point number.", {
            with(value_of(offer), "at", Value::Float(1.5))
        }),
        ("schema-violation-short-id", "`rel` is 15 bytes, not 16.", {
            with(value_of(offer), "rel", Value::Bytes(vec![7; 15]))
        }),
        (
            "schema-violation-public-intent-with-rel",
            "An intent, which is always public, carries `rel`, `to` and `seq` 1.",
            {
                let mut v = value_of(offer);
                *field(&mut v, "kind") = Value::Text("intent".into());
                let mut body = value_of(&cast.seal(Header::public(kid(vendor), T0), intent()));
                *field(&mut v, "body") = field(&mut body, "body").clone();
                v
            },
        ),
        (
            "schema-violation-bad-vocabulary",
            "A consent purpose is `dpv:Nonsense`, neither a built-in DPV term nor a URI.",
            {
                let mut v = value_of(w.message("grant"));
                *field(&mut v, "from") = Value::Bytes(v_kid.to_vec());
                let purposes = field(field(&mut v, "body"), "purposes");
                *purposes = Value::Array(vec![Value::Text("dpv:Nonsense".into())]);
                v
            },
        ),
    ];
    for (name, description, value) in schema {
        single(out, Item::signed(name, description, vendor, &canonical(&value)), Code::SchemaViolation);
    }
}

pub(super) fn raw_y(k: u8) -> [u8; 32] {
    let mut b = [0; 32];
    b[0] = k;
    b
}

/// The offer's payload with `from` set to `key`.
pub(super) fn payload_from(w: &Walk<'_>, key: &[u8; 32]) -> Vec<u8> {
    canonical(&with(value_of(w.message("offer")), "from", Value::Bytes(key.to_vec())))
}

impl Item {
    /// An envelope with this protected header, correctly signed by `key`.
    fn signed_with_protected(
        name: &str,
        description: &str,
        key: &SigningKey,
        protected: &[u8],
        payload: &[u8],
    ) -> Item {
        use ed25519_dalek::Signer as _;
        let sig = key.sign(&raw::sig_structure(protected, payload));
        Item::raw(
            name,
            description,
            raw::envelope(protected, payload, &sig.to_bytes()),
            key.verifying_key().as_bytes(),
            Some(payload),
        )
    }
}
