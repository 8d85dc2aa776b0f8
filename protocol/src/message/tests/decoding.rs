//! Version, kind, schema and determinism (spec §4.2 checks 3–7): each malformed payload is
//! refused with the error §4.2 names, in its order of checks.

use super::*;

#[test]
fn version_and_kind_come_first() {
    let good = to_value(&sample(Kind::ConsentGrant));
    let decode = |f: &dyn Fn(&mut Value)| {
        let mut v = good.clone();
        f(&mut v);
        Payload::decode(&canonical(v))
    };
    assert_eq!(decode(&|v| set(v, &["v"], int(2))), Err(Error::UnsupportedVersion(2)));
    assert_eq!(decode(&|v| set(v, &["v"], int(0))), Err(Error::UnsupportedVersion(0)));
    assert_eq!(decode(&|v| set(v, &["v"], int(-1))), Err(Error::UnsupportedVersion(-1)));
    assert!(is_schema(&decode(&|v| set(v, &["v"], text("1")))));
    assert!(is_schema(&decode(&|v| remove(v, &["v"]))));
    assert_eq!(decode(&|v| set(v, &["kind"], text("gift"))), Err(Error::UnknownKind("gift".into())));
    assert_eq!(decode(&|v| set(v, &["kind"], text("Consent_Grant"))), Err(Error::UnknownKind("Consent_Grant".into())));
    assert!(is_schema(&decode(&|v| set(v, &["kind"], int(5)))));
    assert!(is_schema(&decode(&|v| remove(v, &["kind"]))));
    // A later version's fields are "unsupported version", not a schema violation; an unknown
    // kind's body is not looked at.
    assert_eq!(
        decode(&|v| {
            set(v, &["v"], int(2));
            set(v, &["sig2"], Value::Bytes(vec![0; 3]));
            remove(v, &["body"]);
        }),
        Err(Error::UnsupportedVersion(2))
    );
    assert_eq!(
        decode(&|v| {
            set(v, &["kind"], text("gift"));
            set(v, &["body", "wrapping"], text("paper"));
        }),
        Err(Error::UnknownKind("gift".into()))
    );
    // The top level must be a map.
    assert!(is_schema(&Payload::decode(&cbor::encode_value(&Value::Array(vec![int(1)])))));
    assert!(is_schema(&Payload::decode(&cbor::encode_value(&int(1)))));
}

#[test]
fn non_deterministic_encodings_are_refused_before_the_schema() {
    let p = sample(Kind::Receipt);
    let bytes = p.encode().unwrap();
    let non_det = |b: &[u8]| matches!(Payload::decode(b), Err(Error::Cbor(cbor::Error::NonDeterministic(_))));
    // The payload starts with its map head and "v": 1 (`61 76 01`).
    assert_eq!(&bytes[1..4], &[0x61, 0x76, 0x01]);
    let long_int = [&bytes[..3], &[0x18, 0x01], &bytes[4..]].concat();
    assert!(non_det(&long_int), "1 in two bytes");
    let long_v2 = [&bytes[..3], &[0x18, 0x02], &bytes[4..]].concat();
    assert!(non_det(&long_v2), "determinism is checked before the version");
    let indefinite = [&[0xbf], &bytes[1..], &[0xff]].concat();
    assert!(non_det(&indefinite), "indefinite-length map");
    let long_key = [&bytes[..1], &[0x78, 0x01, 0x76, 0x01], &bytes[4..]].concat();
    assert!(non_det(&long_key), "key length in two bytes");

    let mut value = decode_value(&bytes, MAX_MESSAGE_SIZE).unwrap();
    entries(&mut value).reverse();
    assert!(non_det(&cbor::encode_value(&value)), "unsorted keys");
    let mut value = decode_value(&bytes, MAX_MESSAGE_SIZE).unwrap();
    let first = entries(&mut value)[0].clone();
    entries(&mut value).insert(0, first);
    assert!(non_det(&cbor::encode_value(&value)), "duplicate key");
    // Unsorted inside the body too.
    let mut value = to_value(&sample(Kind::Introduction));
    entries(at(&mut value, &["body", "party"])).reverse();
    assert!(non_det(&cbor::encode_value(&value)), "unsorted nested keys");

    // Trailing bytes and truncation are malformed.
    let malformed = |b: &[u8]| matches!(Payload::decode(b), Err(Error::Cbor(cbor::Error::Malformed(_))));
    assert!(malformed(&[bytes.as_slice(), &[0x00]].concat()));
    assert!(malformed(&bytes[..bytes.len() - 1]));
    assert!(malformed(&[]));
    assert!(matches!(
        Payload::decode(&vec![0x40; MAX_MESSAGE_SIZE + 1]),
        Err(Error::Cbor(cbor::Error::TooLarge { .. }))
    ));
}

#[test]
fn unknown_missing_and_mistyped_fields_are_schema_violations() {
    type Edit = Box<dyn Fn(&mut Value)>;
    let cases: Vec<(Kind, &str, Edit)> = vec![
        // Unknown fields, at the top, in the body, and nested in the body.
        (Kind::Receipt, "unknown header key", Box::new(|v| set(v, &["sig"], Value::Bytes(vec![1])))),
        (Kind::Receipt, "unknown body key", Box::new(|v| set(v, &["body", "note"], text("hi")))),
        (Kind::Offer, "unknown price key", Box::new(|v| set(v, &["body", "price", "vat"], int(19)))),
        (Kind::Offer, "unknown terms key", Box::new(|v| set(v, &["body", "terms", "exit_fee", "fx"], int(1)))),
        (Kind::Introduction, "unknown party key", Box::new(|v| set(v, &["body", "party", "email"], text("a@b")))),
        (Kind::Receipt, "integer key", Box::new(|v| entries(v).push((int(99), int(1))))),
        (Kind::Receipt, "integer key in body", Box::new(|v| entries(at(v, &["body"])).push((int(0), int(1))))),
        // Missing fields.
        (Kind::Receipt, "no from", Box::new(|v| remove(v, &["from"]))),
        (Kind::Receipt, "no at", Box::new(|v| remove(v, &["at"]))),
        (Kind::Receipt, "no seq", Box::new(|v| remove(v, &["seq"]))),
        (Kind::Receipt, "no body", Box::new(|v| remove(v, &["body"]))),
        (Kind::Receipt, "no body.message", Box::new(|v| remove(v, &["body", "message"]))),
        (Kind::Offer, "no title", Box::new(|v| remove(v, &["body", "title"]))),
        (Kind::Offer, "no description", Box::new(|v| remove(v, &["body", "description"]))),
        (Kind::Intent, "no tags", Box::new(|v| remove(v, &["body", "tags"]))),
        (Kind::Introduction, "no commission", Box::new(|v| remove(v, &["body", "commission"]))),
        (Kind::Introduction, "no commission basis", Box::new(|v| remove(v, &["body", "commission", "basis"]))),
        (Kind::TermsProposal, "no exit fee", Box::new(|v| remove(v, &["body", "terms", "exit_fee"]))),
        (Kind::ConsentGrant, "no third_party_sharing", Box::new(|v| remove(v, &["body", "third_party_sharing"]))),
        (Kind::SeparationNotice, "no disposition", Box::new(|v| remove(v, &["body", "disposition"]))),
        // Wrong types.
        (Kind::Receipt, "seq as text", Box::new(|v| set(v, &["seq"], text("0")))),
        (Kind::Receipt, "negative at", Box::new(|v| set(v, &["at"], int(-1)))),
        (Kind::Receipt, "at of -2^64", Box::new(|v| set(v, &["at"], int(-(1 << 64))))),
        (Kind::Receipt, "rel of 15 bytes", Box::new(|v| set(v, &["rel"], Value::Bytes(vec![0x42; 15])))),
        (Kind::Receipt, "rel of 17 bytes", Box::new(|v| set(v, &["rel"], Value::Bytes(vec![0x42; 17])))),
        (
            Kind::Receipt,
            "from as an array of integers",
            Box::new(|v| set(v, &["from"], Value::Array(vec![int(0xc1); 32]))),
        ),
        (Kind::Receipt, "to as hex text", Box::new(|v| set(v, &["to"], text(&"7e".repeat(32))))),
        (
            Kind::Receipt,
            "message id of 31 bytes",
            Box::new(|v| set(v, &["body", "message"], Value::Bytes(vec![6; 31]))),
        ),
        (Kind::Receipt, "body as an array", Box::new(|v| set(v, &["body"], Value::Array(vec![])))),
        (Kind::Offer, "title as bytes", Box::new(|v| set(v, &["body", "title"], Value::Bytes(b"x".to_vec())))),
        (Kind::ConsentGrant, "bool as integer", Box::new(|v| set(v, &["body", "third_party_sharing"], int(0)))),
        (Kind::ConsentGrant, "retention negative", Box::new(|v| set(v, &["body", "retention"], int(-5)))),
        (Kind::Offer, "unknown price model", Box::new(|v| set(v, &["body", "price", "model"], text("free")))),
        (Kind::Offer, "price model in upper case", Box::new(|v| set(v, &["body", "price", "model"], text("UPFRONT")))),
        (
            Kind::Offer,
            "price model as a map",
            Box::new(|v| set(v, &["body", "price", "model"], Value::Map(vec![(text("upfront"), int(0))]))),
        ),
        (Kind::TermsProposal, "unknown role", Box::new(|v| set(v, &["body", "role"], text("admin")))),
        (
            Kind::ConsentGrant,
            "category as purpose",
            Box::new(|v| set(v, &["body", "purposes"], Value::Array(vec![text("pd:Name")]))),
        ),
        (
            Kind::ConsentGrant,
            "unknown purpose",
            Box::new(|v| set(v, &["body", "purposes"], Value::Array(vec![text("marketing")]))),
        ),
        (
            Kind::ConsentGrant,
            "extension URI with a space",
            Box::new(|v| set(v, &["body", "categories"], Value::Array(vec![text("urn:shoe size")]))),
        ),
        (
            Kind::ConsentGrant,
            "extension URI over 256 bytes",
            Box::new(|v| {
                set(v, &["body", "categories"], Value::Array(vec![text(&format!("urn:{}", "x".repeat(253)))]))
            }),
        ),
        (Kind::DataShare, "unknown content", Box::new(|v| set(v, &["body", "content"], text("gossip")))),
        (Kind::DispositionStatement, "items as a map", Box::new(|v| set(v, &["body", "items"], Value::Map(vec![])))),
        // No null, float or tag anywhere (§4.2 check 6).
        (Kind::Receipt, "null ack", Box::new(|v| set(v, &["ack"], Value::Null))),
        (Kind::ConsentRevocation, "null reason", Box::new(|v| set(v, &["body", "reason"], Value::Null))),
        (Kind::UsageReport, "float value", Box::new(|v| set(v, &["body", "value"], Value::Float(412.0)))),
        (
            Kind::UsageReport,
            "tagged timestamp",
            Box::new(|v| set(v, &["body", "start"], Value::Tag(1, Box::new(int(1_750_000_000))))),
        ),
        (
            Kind::Receipt,
            "tagged id",
            Box::new(|v| set(v, &["body", "message"], Value::Tag(64, Box::new(Value::Bytes(vec![6; 32]))))),
        ),
    ];
    for (kind, why, edit) in cases {
        let mut v = to_value(&sample(kind));
        edit(&mut v);
        let r = Payload::decode(&canonical(v));
        assert!(is_schema(&r), "{kind}, {why}: {r:?}");
    }
    // Boundary values of the right type are accepted.
    let mut v = to_value(&sample(Kind::Receipt));
    set(&mut v, &["at"], int(u64::MAX.into()));
    assert_eq!(Payload::decode(&canonical(v)).unwrap().header.created_at, u64::MAX);
    let mut v = to_value(&sample(Kind::ConsentGrant));
    set(&mut v, &["body", "categories"], Value::Array(vec![text(&format!("urn:{}", "x".repeat(252)))]));
    assert!(Payload::decode(&canonical(v)).is_ok(), "a 256-byte extension URI");
}
